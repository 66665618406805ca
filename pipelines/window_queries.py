"""PromQL for an SLO's error ratio over any window, built from the spec's own queries (pure; no I/O).

The rules exporter records it for every burn-rate window and the SLO period. A query is put over a
window `W` by substituting the `{{.window}}` placeholder; a query written with literal ranges (the
seed's `rate(x[5m])`) has every range selector set to `W` — a ratio of two rates over `W` is exactly
Σnumerator / Σdenominator over `W`; a bare counter selector (`errors_total`) is read as
`sum(increase(errors_total[W]))`. This is the same reading the Prometheus source gives the queries
per minute (`pipelines/sources/promql.py` on the prom branch). Anything else cannot be put over a
window and is a `QueryError` naming the SLO and saying what would work.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from pipelines.model import Sli, Slo
from pipelines.specs import split_ratio

WINDOW_PLACEHOLDER = re.compile(r"\{\{\s*\.window\s*\}\}")
# One PromQL duration: units in descending order, e.g. 5m, 1h30m, 2d.
_DURATION = re.compile(r"\s*(?:\d+(?:y|w|d|h|ms|m|s))+\s*")
# A bare instant-vector selector: a metric name with optional label matchers, nothing else.
_BARE_SELECTOR = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{.*\})?", re.DOTALL)
# A time slice is one minute (DESIGN §2: buckets are one minute).
SLICE_WINDOW = "1m"


class QueryError(ValueError):
    """An SLI's queries cannot be evaluated over a window; the message says why and what would work."""


@dataclass(frozen=True)
class ErrorRatio:
    """How to get an SLO's error ratio (bad / valid) over any window from PromQL.

    kind "events": `expr(window)` is the ratio of bad to valid events over the window.
    kind "slices": `slice_expr` is 1 for a bad minute, 0 for a good one, absent without data; the error
    ratio over a window is the average of its recorded values (the share of bad slices).
    """

    kind: str  # "events" | "slices"
    bad: str | None = None  # template with {{.window}}: bad events (events kind)
    valid: str | None = None  # template with {{.window}}: valid events (events kind)
    good: str | None = None  # template: good events, when the spec counts good ones
    slice_expr: str | None = None  # slices kind: the per-slice 0/1 indicator
    rewritten: bool = False  # ranges were rewritten or counters wrapped (said in the rules' notes)

    def expr(self, window: str) -> str:
        """The error ratio over `window` (events kind)."""
        assert self.kind == "events" and self.valid is not None
        valid = _indent(over_window(self.valid, window))
        if self.bad is not None:
            return f"(\n{_indent(over_window(self.bad, window))}\n)\n/\n(\n{valid}\n)"
        assert self.good is not None
        return f"1 - (\n{_indent(over_window(self.good, window))}\n)\n/\n(\n{valid}\n)"


def over_window(template: str, window: str) -> str:
    """A query template (with `{{.window}}`) put over `window`, e.g. '5m', '30d'."""
    return WINDOW_PLACEHOLDER.sub(window, template.strip())


def error_ratio(slo: Slo) -> ErrorRatio:
    """The error-ratio recipe for an SLO's SLI, or `QueryError` when it cannot be windowed."""
    sli = slo.sli
    if sli.kind == "threshold":
        return ErrorRatio(kind="slices", slice_expr=bad_slice(sli))
    if sli.valid_query is not None:
        valid, rewritten_valid = as_template(sli.valid_query, slo, "valid")
        if sli.bad_query is not None:
            bad, rewritten = as_template(sli.bad_query, slo, "bad")
            return ErrorRatio(kind="events", bad=bad, valid=valid, rewritten=rewritten or rewritten_valid)
        assert sli.good_query is not None
        good, rewritten = as_template(sli.good_query, slo, "good")
        return ErrorRatio(kind="events", good=good, valid=valid, rewritten=rewritten or rewritten_valid)
    assert sli.ratio_query is not None
    parts = split_ratio(sli.ratio_query)
    if parts is None:
        raise QueryError(
            f"{slo.id}: the ratio metric has no single top-level '/' to split into events; "
            "expected 'numerator / denominator', or good + valid queries with {{.window}}"
        )
    numerator, rewritten_num = as_template(_unwrap(parts[0]), slo, "metric numerator")
    denominator, rewritten_den = as_template(_unwrap(parts[1]), slo, "metric denominator")
    rewritten = rewritten_num or rewritten_den
    if sli.ratio_direction == "bad":
        return ErrorRatio(kind="events", bad=numerator, valid=denominator, rewritten=rewritten)
    return ErrorRatio(kind="events", good=numerator, valid=denominator, rewritten=rewritten)


def as_template(query: str, slo: Slo, what: str) -> tuple[str, bool]:
    """(the query with a `{{.window}}` placeholder, whether it had to be rewritten to get one)."""
    text = query.strip()
    if WINDOW_PLACEHOLDER.search(text):
        return text, False
    ranges = _range_selectors(text)
    if any(":" in text[start:end] for start, end in ranges):
        raise QueryError(
            f"{slo.id}: the {what} query '{_short(text)}' uses a subquery and no {{{{.window}}}}; "
            "expected {{.window}} where the window goes, like sum(increase(x[{{.window}}]))"
        )
    if ranges:
        pieces, at = [], 0
        for start, end in ranges:
            pieces += [text[at:start], "{{.window}}"]
            at = end
        pieces.append(text[at:])
        return "".join(pieces), True
    if _BARE_SELECTOR.fullmatch(text):
        return f"sum(increase({text}[{{{{.window}}}}]))", True
    raise QueryError(
        f"{slo.id}: the {what} query '{_short(text)}' has no range selector and no {{{{.window}}}}, so it "
        "cannot be summed over a window; expected a counter query like sum(increase(x[{{.window}}]))"
    )


def bad_slice(sli: Sli) -> str:
    """1 when the measured value misses the threshold, 0 when it meets it, no sample without data.

    `>= -Inf` drops NaN (a quantile over no traffic) so minutes without data are not slices at all,
    as DESIGN §2 says: valid = 1 only when there is data.
    """
    assert sli.threshold_query is not None and sli.threshold is not None
    measured = over_window(sli.threshold_query, SLICE_WINDOW)
    missed = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}[sli.comparison]
    return f"(\n{_indent(measured)}\n) >= -Inf {missed} bool {sli.threshold!r}"


def _range_selectors(query: str) -> list[tuple[int, int]]:
    """(start, end) of the text inside every `[...]` outside quotes that holds a duration or subquery."""
    found: list[tuple[int, int]] = []
    quote: str | None = None
    escaped = False
    at = 0
    while at < len(query):
        char = query[at]
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char == "[":
            end = query.find("]", at)
            inside = query[at + 1 : end] if end > 0 else ""
            if end > 0 and _DURATION.fullmatch(inside.split(":")[0]):
                found.append((at + 1, end))
                at = end
        at += 1
    return found


def _unwrap(part: str) -> str:
    """A numerator/denominator without one pair of redundant outer parentheses."""
    text = part.strip()
    if text.startswith("(") and text.endswith(")"):
        depth = 0
        for index, char in enumerate(text):
            depth += char == "("
            depth -= char == ")"
            if depth == 0 and index < len(text) - 1:
                return text
        return text[1:-1].strip()
    return text


def _indent(query: str) -> str:
    return textwrap.indent(textwrap.dedent(query), "  ")


def _short(query: str) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= 80 else flat[:77] + "..."
