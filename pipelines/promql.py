"""PromQL from SLO specs, and Prometheus answers back to buckets: pure, no I/O, no spec reader imported.

Per minute (the Prometheus source; DESIGN §2): bucket `[t, t+1m)` holds a counter's increase between its
samples at `t` and `t+1m`, which is what `increase(x[1m])` returns when evaluated at `t+1m`. So every
event query is rewritten to `sum(increase(<selector>[1m]))` and asked over a range of evaluation
instants `t+1m` with a 60 s step; the answer at instant `s` is the bucket labelled `s − 1m`. A threshold
SLI's query is evaluated at the same instants; a minute with a value is valid, and good when the value
meets the threshold.

Over a window (the rules exporter records an SLO's error ratio for every burn-rate window and the SLO
period): a query is put over a window `W` by substituting the `{{.window}}` placeholder; a query
written with literal ranges (the seed's `rate(x[5m])`) has every range selector set to `W` — a ratio of
two rates over `W` is exactly Σnumerator / Σdenominator over `W`; a bare counter selector
(`errors_total`) is read as `sum(increase(errors_total[W]))`. This is the same reading as per minute.

A query that cannot be read either way is a `QueryShapeError` saying why and what would work; the spec
loader turns it into a problem at the field's line.
"""

from __future__ import annotations

import functools
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.model import Sli, Slo

if TYPE_CHECKING:  # pandas is imported where frames are built: the spec loader uses this module too
    import pandas as pd

# Per minute (the Prometheus source).
STEP_SECONDS = 60
PER_MINUTE = "1m"

# The window placeholder, as Sloth writes it (`{{.window}}`), spaces and the dot optional: one
# definition for the Prometheus source (which puts one minute there) and the rules exporter (each window),
# so a query one of them reads, the other reads too.
WINDOW_PLACEHOLDER = re.compile(r"\{\{\s*\.?window\s*\}\}")
_RANGE = re.compile(r"\[\s*\d+[smhdwy][0-9smhdwy]*\s*\]")
_SUBQUERY = re.compile(r"\[[^\[\]]*:[^\[\]]*\]")
_FUNCTION = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(")
_RATE = re.compile(r"\brate\s*\(")
_SUM_ALL = re.compile(r"sum\s*\(")
_SELECTOR = re.compile(r"(?:[a-zA-Z_:][a-zA-Z0-9_:]*\s*)?(?:\{[^{}]*\})?")
# Functions over range vectors whose per-minute value is not a counter's increase.
_NOT_COUNTERS = frozenset(
    {
        "irate",
        "delta",
        "idelta",
        "deriv",
        "changes",
        "resets",
        "predict_linear",
        "holt_winters",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "quantile_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "last_over_time",
        "present_over_time",
    }
)
_EXPECTED = (
    "expected counters inside rate(...[window]) or increase(...[window]), or a bare counter selector "
    'such as requests_total{code=~"5.."}'
)

# One PromQL duration: units in descending order, e.g. 5m, 1h30m, 2d.
_DURATION = re.compile(r"\s*(?:\d+(?:y|w|d|h|ms|m|s))+\s*")
# A bare instant-vector selector: a metric name with optional label matchers, nothing else.
_BARE_SELECTOR = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{.*\})?", re.DOTALL)
# A time slice is one minute (DESIGN §2: buckets are one minute).
SLICE_WINDOW = "1m"


class QueryShapeError(ValueError):
    """A spec query that cannot be turned into per-minute increases or put over a window; the message
    says why and what would work."""


# ---------------------------------------------------------------------------------------------------
# Reading a query: its top-level '/', its quoted strings, its outer parentheses


def split_ratio(query: str) -> tuple[str, str] | None:
    """Numerator and denominator of a ratio query split at its single top-level `/`, else None.

    Slashes inside brackets, braces, parentheses or quotes (label values like "/api") do not count.
    """
    slashes = top_level_slashes(query)
    if len(slashes) != 1:
        return None
    at = slashes[0]
    return query[:at].strip(), query[at + 1 :].strip()


def top_level_slashes(query: str) -> list[int]:
    """Offsets of `/` outside brackets and quotes."""
    depth = 0
    quote: str | None = None
    slashes: list[int] = []
    escaped = False
    for at, char in enumerate(query):
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "/" and depth == 0:
            slashes.append(at)
    return slashes


def _segments(expr: str) -> list[tuple[bool, str]]:
    """`expr` cut into (is_quoted_string, text) pieces, so label values are never taken for syntax."""
    pieces: list[tuple[bool, str]] = []
    code_from = at = 0
    while at < len(expr):
        if expr[at] in "\"'`":
            quote, end = expr[at], at + 1
            while end < len(expr) and expr[end] != quote:
                end += 2 if expr[end] == "\\" else 1
            pieces += [(False, expr[code_from:at]), (True, expr[at : end + 1])]
            at = code_from = end + 1
        else:
            at += 1
    pieces.append((False, expr[code_from:]))
    return pieces


def _code(expr: str) -> str:
    """`expr` with every quoted string emptied: what to scan for functions and ranges."""
    return "".join('""' if quoted else text for quoted, text in _segments(expr))


def _outside_strings(expr: str, change: Callable[[str], str]) -> str:
    """`expr` with `change` applied to everything outside quoted strings."""
    return "".join(text if quoted else change(text) for quoted, text in _segments(expr))


def _unwrap(part: str) -> str:
    """`(a + b)` → `a + b` when the parentheses enclose the whole part."""
    part = part.strip()
    while part.startswith("(") and part.endswith(")"):
        depth = 0
        for at, char in enumerate(part):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and at < len(part) - 1:
                return part
        part = part[1:-1].strip()
    return part


def _unwrap_once(part: str) -> str:
    """A numerator/denominator without one pair of redundant outer parentheses (the rules exporter's
    reading, which keeps the rule text it has always written; `_unwrap` takes off every pair)."""
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


# ---------------------------------------------------------------------------------------------------
# Per minute: the queries the Prometheus source asks for


@dataclass(frozen=True)
class SliQueries:
    """The per-minute queries of one SLO: `valid` with `good` or `bad`, or one `threshold` query."""

    slo_id: str
    kind: str  # "ratio" | "threshold"
    good: str | None = None
    bad: str | None = None
    valid: str | None = None
    threshold: str | None = None

    def named(self) -> list[tuple[str, str]]:
        """(role, query) pairs in a fixed order: the requests one pull of this SLO makes per chunk."""
        roles = ("good", "bad", "valid", "threshold")
        return [(role, q) for role in roles if (q := getattr(self, role)) is not None]


def fill_window(query: str) -> str:
    """Replace the `{{.window}}` placeholder by the one-minute bucket width."""
    return WINDOW_PLACEHOLDER.sub(PER_MINUTE, query.strip())


@functools.lru_cache(maxsize=8192)  # pure; every spec reader and the pull planner ask for each query
def per_minute_increase(query: str) -> str:
    """`rate(x[5m])` → `sum(increase(x[1m]))`; a bare `x` → `sum(increase(x[1m]))`.

    An outer `sum(...)` (added unless the query is one already) makes one series whatever the
    query's labels. Rates become increases over one minute (DESIGN §2: per-minute increases, not
    smoothed rates). Raises QueryShapeError when the query is not made of counters this way
    (gauges, subqueries, irate, *_over_time, …). Quoted label values are left alone.
    """
    expr = fill_window(query)
    if not expr:
        raise QueryShapeError(f"the query is empty; {_EXPECTED}")
    code = _code(expr)  # label values do not count as syntax
    if _SUBQUERY.search(code):
        raise QueryShapeError(f"subqueries ([range:step]) cannot give per-minute increases; {_EXPECTED}")
    other = sorted({m.group(1) for m in _FUNCTION.finditer(code)} & _NOT_COUNTERS)
    if other:
        raise QueryShapeError(
            f"{', '.join(f + '()' for f in other)} does not give a counter's per-minute increase; {_EXPECTED}"
        )
    if _RANGE.search(code):
        expr = _outside_strings(
            expr, lambda text: _RANGE.sub(f"[{PER_MINUTE}]", _RATE.sub("increase(", text))
        )
    elif _SELECTOR.fullmatch(expr):
        expr = f"increase({expr}[{PER_MINUTE}])"
    else:
        raise QueryShapeError(f"no range selector (like [5m] or [{{{{.window}}}}]) in {expr!r}; {_EXPECTED}")
    if _SUM_ALL.match(expr) and _unwrap(expr[3:]) != expr[3:].strip():
        return expr  # already one series: sum(...) over everything
    return f"sum({expr})"


def ratio_parts(metric: str) -> tuple[str, str] | None:
    """A ratio `metric`'s numerator and denominator queries, split at its top-level '/'."""
    parts = split_ratio(fill_window(metric))
    return None if parts is None else (_unwrap(parts[0]), _unwrap(parts[1]))


def plan_queries(slo: Slo) -> SliQueries:
    """The per-minute queries for one SLO, from whichever form its SLI uses (DESIGN §2)."""
    sli = slo.sli
    if sli.kind == "threshold":
        if not sli.threshold_query:
            raise QueryShapeError("threshold SLI without a metric query")
        return SliQueries(slo.id, "threshold", threshold=fill_window(sli.threshold_query))

    def convert(field: str, query: str) -> str:
        try:
            return per_minute_increase(query)
        except QueryShapeError as exc:
            raise QueryShapeError(f"slis.{sli.name}.{field}: {exc}") from None

    if sli.valid_query and (sli.good_query or sli.bad_query):
        if sli.good_query:
            return SliQueries(
                slo.id, "ratio", good=convert("good", sli.good_query), valid=convert("valid", sli.valid_query)
            )
        assert sli.bad_query is not None
        return SliQueries(
            slo.id, "ratio", bad=convert("bad", sli.bad_query), valid=convert("valid", sli.valid_query)
        )
    if sli.ratio_query:
        parts = ratio_parts(sli.ratio_query)
        if parts is None:
            raise QueryShapeError(
                f"slis.{sli.name}.metric: cannot split the ratio at a single top-level '/'; give "
                "'good' (or 'bad') and 'valid' queries instead"
            )
        numerator, denominator = parts
        role = "bad" if sli.ratio_direction == "bad" else "good"
        return SliQueries(
            slo.id,
            "ratio",
            **{role: convert("metric (numerator)", numerator)},
            valid=convert("metric (denominator)", denominator),
        )
    raise QueryShapeError(f"slis.{sli.name}: no query to pull")


# ---------------------------------------------------------------------------------------------------
# Over a window: the error ratio the rules exporter records


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
    """The error-ratio recipe for an SLO's SLI, or `QueryShapeError` when it cannot be windowed."""
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
        raise QueryShapeError(
            f"{slo.id}: the ratio metric has no single top-level '/' to split into events; "
            "expected 'numerator / denominator', or good + valid queries with {{.window}}"
        )
    numerator, rewritten_num = as_template(_unwrap_once(parts[0]), slo, "metric numerator")
    denominator, rewritten_den = as_template(_unwrap_once(parts[1]), slo, "metric denominator")
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
        raise QueryShapeError(
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
    raise QueryShapeError(
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


def _indent(query: str) -> str:
    return textwrap.indent(textwrap.dedent(query), "  ")


def _short(query: str) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= 80 else flat[:77] + "..."


# ---------------------------------------------------------------------------------------------------
# Range queries and their answers as buckets


def minute_chunks(start: int, end: int, max_points: int) -> list[tuple[int, int]]:
    """Split buckets `[start, end)` into consecutive `[a, b)` of at most `max_points` minutes.

    Each chunk is one range query over instants `(a+1)·60 … b·60` (inclusive, 60 s step), so it
    returns `b − a` points per series and neighbouring chunks share no instant.
    """
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    return [(a, min(a + max_points, end)) for a in range(start, end, max_points)]


def range_params(chunk: tuple[int, int]) -> tuple[int, int]:
    """Query-range start and end (epoch seconds) for the buckets of `chunk`."""
    a, b = chunk
    return (a + 1) * STEP_SECONDS, b * STEP_SECONDS


def series_values(result: list[dict], chunk: tuple[int, int]) -> dict[int, float]:
    """Bucket minute → value from one query_range answer (`resultType: matrix`).

    No series means no data in the chunk. More than one series is an error: event queries are
    wrapped in `sum()`, and a threshold query must be aggregated to one series by its author.
    Instants outside the chunk are dropped, so overlapping answers never add duplicate minutes.
    """
    if len(result) > 1:
        labels = ", ".join(str(s.get("metric", {})) for s in result[:3])
        raise ValueError(
            f"the query returned {len(result)} series ({labels}…); expected one — aggregate it, "
            "e.g. max(...) or sum(...)"
        )
    a, b = chunk
    values: dict[int, float] = {}
    for series in result:
        for stamp, text in series.get("values", []):
            minute = int(float(stamp)) // STEP_SECONDS - 1
            if a <= minute < b:
                values[minute] = float(text)
    return values


def ratio_buckets(
    slo_id: str,
    valid: Mapping[int, float],
    good: Mapping[int, float] | None = None,
    bad: Mapping[int, float] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Buckets from per-minute event counts, and how many minutes had to be clipped.

    A minute is a bucket when `valid` has a finite value there (a missing `good`/`bad` value then
    means none of those events: the selector matched no series). Counts are rounded to whole
    events (increases are floats); `good` is clipped into `[0, valid]` — it can only stray there
    when the two queries disagree, and such minutes are counted for the run's warnings.
    """
    minutes: list[int] = []
    goods: list[int] = []
    valids: list[int] = []
    clipped = 0
    for minute in sorted(valid):
        v = valid[minute]
        if not math.isfinite(v):
            continue
        n = max(0, round(v))
        if good is not None:
            g = round(_finite(good.get(minute, 0.0)))
        else:
            g = n - round(_finite((bad or {}).get(minute, 0.0)))
        if g < 0 or g > n:
            clipped += 1
            g = min(max(g, 0), n)
        minutes.append(minute)
        goods.append(g)
        valids.append(n)
    return _frame(slo_id, minutes, goods, valids), clipped


def threshold_buckets(
    slo_id: str, values: Mapping[int, float], threshold: float, comparison: str
) -> pd.DataFrame:
    """Time-slice buckets: `valid = 1` for a minute with a finite value, `good = 1` when it meets
    the threshold by `comparison` (NaN, e.g. a quantile over no requests, is no data)."""
    meets = {
        "<=": lambda x: x <= threshold,
        "<": lambda x: x < threshold,
        ">=": lambda x: x >= threshold,
        ">": lambda x: x > threshold,
    }[comparison]
    minutes = sorted(m for m, x in values.items() if math.isfinite(x))
    return _frame(slo_id, minutes, [int(meets(values[m])) for m in minutes], [1] * len(minutes))


def merge_chunks(parts: Iterable[Mapping[int, float]]) -> dict[int, float]:
    """One minute → value map from the answers of several chunks; a later answer wins a shared minute."""
    merged: dict[int, float] = {}
    for part in parts:
        merged.update(part)
    return merged


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def _frame(slo_id: str, minutes: list[int], goods: list[int], valids: list[int]) -> pd.DataFrame:
    import pandas as pd  # lazy: the spec loader imports this module and need not load pandas

    return pd.DataFrame(
        {
            "slo_id": pd.Series([slo_id] * len(minutes), dtype="object"),
            "minute": pd.Series(minutes, dtype="int64"),
            "good": pd.Series(goods, dtype="int64"),
            "valid": pd.Series(valids, dtype="int64"),
        }
    )
