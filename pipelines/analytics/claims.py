"""Checks an executive summary's sentences as claims about the review's named figures.

Each number a sentence quotes must be a figure of a quantity the sentence names next to it (before or
after the number, in the same clause): "MTTR was 25 min" is checked against MTTR, "100% of post-mortems"
against the post-mortem share, never against "some number somewhere in the review". Identifiers are not
figures ("INC-0042", "2026-Q3", "SEV1", "p50"). A target is a valid figure only where the clause says
"target" (or goal); a previous-quarter figure only where it speaks of the previous quarter; "by N%" /
"by N min" only as the change between the two quarters. Direction words ("improved", "worse", "fell",
"rose", ...) must agree with the sign of that change (for durations, incidents and pages lower is
better; for attainment and shares higher is better).

`check(text, quantities(review))` returns the problems found, in words a reader can act on; none means
every claim holds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.analytics.formats import minutes, number, pct

MIN, SHARE, COUNT = "min", "share", "count"


@dataclass(frozen=True)
class Quantity:
    """A figure of the review a summary may quote, under the words that name it."""

    name: str
    pattern: re.Pattern[str]
    kind: str  # MIN, SHARE or COUNT: how its values are written
    values: tuple[float, ...]  # this quarter's figures
    previous: tuple[float, ...] = ()
    targets: tuple[float, ...] = ()
    counts: tuple[float, ...] = ()  # counts that go with it ("5 of 10 post-mortems")
    now: float | None = None  # the figure direction words speak of, and its previous-quarter value
    before: float | None = None
    lower_is_better: bool = True
    extra: tuple[float, ...] = field(default=())  # constants of its definition ("within 48 h")


def _nums(*xs: Any) -> tuple[float, ...]:
    return tuple(
        float(x) for x in xs if isinstance(x, int | float) and not isinstance(x, bool) and not math.isnan(x)
    )


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


def quantities(review: dict[str, Any]) -> list[Quantity]:
    """The review's quotable quantities (what the model is given, and the rows behind it)."""
    h = review["headline"]
    metrics = {m["metric"]: m for m in review["success_metrics"]}
    out: list[Quantity] = []

    def duration(name: str, pattern: re.Pattern[str], key: str, metric: str) -> None:
        v, m = h[key], metrics[metric]
        out.append(
            Quantity(
                name,
                pattern,
                MIN,
                _nums(v["p50"], v["p90"], m["detail"].get("mean")),
                previous=_nums(v["previous_p50"], v["previous_p90"]),
                targets=_nums(m["target_value"]),
                counts=_nums(v["count"]),
                now=v["p50"],
                before=v["previous_p50"],
            )
        )

    duration(
        "MTTR (SEV1) p50",
        _words(r"\bMTTR\b", r"mean time to (?:resolve|recover|repair|restore)"),
        "mttr_sev1",
        "mttr_sev1",
    )
    duration(
        "MTTD (SEV1/SEV2) p50",
        _words(r"\bMTTD\b", r"mean time to detect"),
        "mttd_sev1_sev2",
        "mttd_sev1_sev2",
    )
    ttr = h["ttr_all"]
    out.append(
        Quantity(
            "time to resolve (all severities) p50",
            _words(r"\bTTR\b", r"time to resol\w*", r"resolution times?"),
            MIN,
            _nums(ttr["this_quarter"]["p50"], ttr["this_quarter"]["p90"], ttr["this_quarter"]["mean"]),
            previous=_nums(
                ttr["previous_quarter"]["p50"],
                ttr["previous_quarter"]["p90"],
                ttr["previous_quarter"]["mean"],
            ),
            counts=_nums(ttr["this_quarter"]["count"]),
            now=ttr["this_quarter"]["p50"],
            before=ttr["previous_quarter"]["p50"],
        )
    )
    inc = review["incidents"]
    ttd = inc["ttd_minutes"]
    out.append(
        Quantity(
            "time to detect (all severities) p50",
            _words(r"\bTTD\b", r"time to detect\w*", r"detection times?"),
            MIN,
            _nums(ttd["p50"], ttd["p90"], ttd["mean"], review["alert_quality"]["detection_minutes"]["p50"]),
            counts=_nums(ttd["count"]),
        )
    )
    out.append(
        Quantity(
            "incidents",
            _words(r"\bincidents?\b", r"\boutages?\b"),
            COUNT,
            _nums(h["incidents"], inc["open"], *h["by_severity"].values()),
            previous=_nums(h["incidents_previous_quarter"]),
            now=h["incidents"],
            before=h["incidents_previous_quarter"],
        )
    )
    health = h.get("slo_health", {})
    out.append(
        Quantity(
            "SLOs met",
            _words(r"\bSLOs?\b", r"\bobjectives\b", r"service level"),
            COUNT,
            _nums(
                h["slos_met"],
                h["slos_measured"],
                h["slos_exhausted"],
                h.get("slos_missed"),
                *health.values(),
                h.get("slos_better"),
                h.get("slos_worse"),
            ),
        )
    )
    worst = h["budget_spent_worst"] or {}
    out.append(
        Quantity(
            "error budget spent",
            _words(r"\b(?:error )?budgets?\b"),
            SHARE,
            _nums(h["budget_spent_median"], worst.get("budget_spent")),
        )
    )
    for s in review["slos"]:
        out.append(
            Quantity(
                s["slo"],
                re.compile(re.escape(s["slo"]), re.IGNORECASE),
                SHARE,
                _nums(s["attainment"], s["budget_spent"], s["budget_remaining_at_end"]),
                previous=_nums(s.get("previous_attainment"), s.get("previous_budget_spent")),
                targets=_nums(s["target"]),
                extra=_nums(s["policy_minutes"]["exhausted"], s["policy_minutes"]["exhausted"] / 60),
                now=s["attainment"],
                before=s.get("previous_attainment"),
                lower_is_better=False,
            )
        )
    pm = metrics["postmortems_within_48h"]
    out.append(
        Quantity(
            "post-mortems within 48 h",
            _words(r"post-?mortems?"),
            SHARE,
            _nums(pm["value"]),
            targets=_nums(pm["target_value"]),
            counts=_nums(
                pm["detail"]["on_time"],
                pm["detail"]["missed"],
                pm["detail"]["pending"],
                pm["detail"]["on_time"] + pm["detail"]["missed"],
            ),
            lower_is_better=False,
            extra=(48.0,),
        )
    )
    ai = metrics["action_items_on_time"]
    repeats = review.get("repeats", {}).get("repeats", [])
    out.append(
        Quantity(
            "action items done by their due date",
            _words(r"action[- ]items?"),
            SHARE,
            _nums(ai["value"]),
            targets=_nums(ai["target_value"]),
            counts=_nums(
                *(ai["detail"][k] for k in ("due", "done_on_time", "done_late", "still_open")),
                *(r["open_action_items"] for r in repeats),
                *(r["action_items"] for r in repeats),
            ),
            lower_is_better=False,
        )
    )
    pages = metrics["pages_per_oncall_week"]
    weeks = review["oncall"]["pages_per_week"]
    out.append(
        Quantity(
            "pages per on-call week",
            _words(r"\bpages?\b", r"\bpaged\b", r"on-?call"),
            COUNT,
            _nums(
                pages["value"],
                pages["detail"]["mean"],
                pages["detail"]["weeks_at_or_over_target"],
                pages["detail"]["weeks"],
                sum(weeks),
                review["alert_quality"]["pages"],
                pages["detail"]["distinct_responders"],
                # the on-call schedule's per-engineer figures, when the review used one
                pages["detail"].get("unattributed_pages"),
                pages["detail"].get("engineers_at_or_over_target"),
                *(p[k] for p in pages["detail"].get("people", []) for k in ("pages", "on_call_weeks")),
                *(p["pages_per_week"] for p in pages["detail"].get("people", [])),
            ),
            targets=_nums(pages["target_value"]),
        )
    )
    rep = review.get("repeats", {})
    out.append(
        Quantity(
            "repeat incidents",
            _words(r"\brepeat\w*", r"\brecurr\w*", r"\bchains?\b"),
            COUNT,
            _nums(
                rep.get("count"),
                rep.get("with_open_action_items"),
                *(c["length"] for c in rep.get("chains", [])),
            ),
            targets=_nums(metrics["no_repeats"]["target_value"]),
        )
    )
    aq = review["alert_quality"]
    backtest = review.get("backtest", [])
    truths = [b[k] for b in backtest for k in ("vs_incidents", "vs_demo_events") if b.get(k)]
    out.append(
        Quantity(
            "alert precision and recall",
            _words(r"\bprecision\b", r"\brecall\b"),
            SHARE,
            _nums(
                aq["precision"],
                aq["recall"],
                *(t["precision"] for t in truths),
                *(t["recall"] for t in truths),
            ),
            counts=_nums(
                aq["pages"],
                aq["pages_linked"],
                aq["incidents"],
                aq["incidents_preceded_by_alert"],
                *(b["pages"] for b in backtest),
            ),
            lower_is_better=False,
        )
    )
    d = review["deploys"]
    out.append(
        Quantity(
            "deploys",
            _words(r"\bdeploy\w*", r"change[- ]failure"),
            SHARE,
            _nums(d["change_failure_rate"]),
            counts=_nums(
                d["deploys"],
                d["incidents_after_deploy"],
                d["deploys_followed_by_incident"],
                d["incidents"],
                d["window_hours"],
            ),
        )
    )
    return out


# Identifiers, never figures: incident ids, quarters, severities, percentile names, weeks, versions,
# quoted names (alert settings), SLO ids with digits, years.
_IDENTIFIER = re.compile(
    r"\b[A-Za-z][A-Za-z]*-\d+\b|\b\d{4}-?Q[1-4]\b|\bQ[1-4]\b|\bSEV\d\b|\b[pP]\d{2}\b|\bW\d+\b|\bv\d[\w.-]*"
    r"|'[^']*'|\"[^\"]*\"|“[^”]*”|\b\w+/\w*\d\w*\b|\b(?:19|20)\d{2}\b(?!\s*(?:%|percent|min|h\b|hours?|days?))"
)
_NUMBER = re.compile(
    r"(?<![\w.])(?P<num>\d[\d,]*(?:\.\d+)?)\s*(?P<unit>%|percent\b|per cent\b|pp\b|percentage points?\b"
    r"|min(?:utes?)?\b|h\b|hrs?\b|hours?\b|days?\b)?",
    re.IGNORECASE,
)
_BY = re.compile(r"\bby\s*$", re.IGNORECASE)
_TARGET_WORDS = re.compile(r"\btargets?\b|\bgoals?\b|\bobjective\b", re.IGNORECASE)
_PREVIOUS_WORDS = re.compile(
    r"\bprevious\b|\blast quarter\b|\bprior\b|\bfrom\b|\bbefore\b|\bcompared\b|\bvs\.?|\bversus\b|\bwas\b",
    re.IGNORECASE,
)
# Direction words: (pattern, kind, sign). "quality" words say better (+1) or worse (−1); "movement"
# words say the figure went up (+1) or down (−1).
_DIRECTIONS = (
    (
        re.compile(r"\b(?:improved|improvements?|better|(?:faster|quicker) than)\b", re.IGNORECASE),
        "quality",
        +1,
    ),
    (
        re.compile(
            r"\b(?:worse|worsened|worsening|regressed|regression|deteriorated|slower than)\b", re.IGNORECASE
        ),
        "quality",
        -1,
    ),
    (
        re.compile(
            r"\b(?:fell|dropped|decreased|declined|reduced|fewer|(?:went )?down (?:by|from|to)|lower than"
            r"|shorter than)\b",
            re.IGNORECASE,
        ),
        "movement",
        -1,
    ),
    (
        re.compile(
            r"\b(?:rose|increased|grew|climbed|jumped|(?:went )?up (?:by|from|to)|higher than|longer than)\b",
            re.IGNORECASE,
        ),
        "movement",
        +1,
    ),
)
_CLAUSES = re.compile(r"(?<=[.!?])\s+|;\s*|\s+—\s+|,\s+(?:but|while|whereas|and)\s+")


def _mask(text: str) -> str:
    return _IDENTIFIER.sub(lambda m: " " * len(m.group(0)), text)


def _close(quoted: float, digits: int, candidates: list[float]) -> bool:
    tolerance = 0.5 * 10**-digits + 1e-9
    return any(abs(c - quoted) <= tolerance for c in candidates)


def _forms(q: Quantity, values: tuple[float, ...], unit: str) -> list[float]:
    """How `values` of q may be written with `unit`."""
    unit = unit.lower()
    percent = unit in ("%", "percent", "per cent")
    if q.kind == SHARE:
        return [v * 100 for v in values] if percent else []
    if q.kind == MIN:
        if unit.startswith(("h", "hr")):
            return [v / 60 for v in values]
        if unit.startswith("day"):
            return [v / 1440 for v in values]
        return [] if percent else list(values)
    return [] if percent else list(values)


def _allowed(q: Quantity, clause: str, unit: str, by: bool) -> list[float]:
    """The numbers q may be quoted as in this clause."""
    if by:  # "by N%": the relative change; "by N min" / "by N pp" / "by N": the absolute change
        if q.now is None or q.before is None:
            return []
        change = abs(q.now - q.before)
        unit_l = unit.lower()
        if unit_l in ("%", "percent", "per cent"):
            relative = [change / abs(q.before) * 100] if q.before else []
            return relative + ([change * 100] if q.kind == SHARE else [])
        if unit_l.startswith(("pp", "percentage")):
            return [change * 100] if q.kind == SHARE else []
        return _forms(q, (change,), unit)
    values = q.values
    if _PREVIOUS_WORDS.search(clause):
        values += q.previous
    if _TARGET_WORDS.search(clause):
        values += q.targets
    forms = _forms(q, values, unit)
    if not unit:
        forms += list(q.counts)
    if not unit or unit.lower().startswith(("h", "min")):
        forms += list(q.extra)
    return forms


def _nearest(mentions: list[tuple[int, int, Quantity]], start: int, end: int) -> list[Quantity]:
    """The quantity the clause names first (its subject), and those named closest before and after
    the number."""
    before = [m for m in mentions if m[1] <= start]
    after = [m for m in mentions if m[0] >= end]
    out = [min(mentions, key=lambda m: m[0])[2]] if mentions else []
    if before:
        out.append(max(before, key=lambda m: m[1])[2])
    if after:
        out.append(min(after, key=lambda m: m[0])[2])
    return out


def _written(q: Quantity, value: float | None) -> str:
    if q.kind == MIN:
        return minutes(value)
    if q.kind == SHARE:
        return pct(value)
    return number(value)


def check(text: str, given: list[Quantity]) -> list[str]:
    """The claims of `text` that the quantities do not bear out, each as a sentence; [] when all hold."""
    problems: list[str] = []
    for clause in _CLAUSES.split(text):
        masked = _mask(clause)
        mentions = [(m.start(), m.end(), q) for q in given for m in q.pattern.finditer(masked)]
        for n in _NUMBER.finditer(masked):
            raw, unit = n.group("num"), (n.group("unit") or "").strip()
            value = float(raw.replace(",", ""))
            digits = len(raw.split(".")[1]) if "." in raw else 0
            by = bool(_BY.search(masked[: n.start()]))
            near = _nearest(mentions, n.start(), n.end())
            quoted = n.group(0).strip()
            if not near:
                problems.append(
                    f"“{quoted}” is not tied to any figure the sentence names: “{clause.strip()}”"
                )
                continue
            if not any(_close(value, digits, _allowed(q, clause, unit, by)) for q in near):
                what = " or ".join(dict.fromkeys(q.name for q in near))
                kind = "the change in " if by else ""
                problems.append(f"“{quoted}” is not {kind}{what} (“{clause.strip()}”)")
        for pattern, kind, sign in _DIRECTIONS:
            for d in pattern.finditer(masked):
                if not mentions:
                    continue
                q = min(mentions, key=lambda m: min(abs(m[0] - d.end()), abs(d.start() - m[1])))[2]
                word = d.group(0)
                if q.now is None or q.before is None:
                    problems.append(f"“{word}”: {q.name} has no previous-quarter figure to compare with")
                    continue
                moved = (q.now > q.before) - (q.now < q.before)
                expected = sign if kind == "movement" else (-sign if q.lower_is_better else sign)
                if moved != expected:
                    change = "did not change" if moved == 0 else ("went up" if moved > 0 else "went down")
                    problems.append(
                        f"“{word}” but {q.name} {change}: {_written(q, q.before)} the previous quarter, "
                        f"{_written(q, q.now)} this quarter"
                    )
    return problems
