"""How the review judges an SLO's quarter, defined once: met / missed / exhausted, healthy / at risk /
exhausted, and better / worse / same than the previous quarter.

The review (every format), the dashboard's Quarterly page and `slo report quarterly` read these fields
from the review; nothing else decides them, so an SLO is never "met" in one place and "exhausted" in
another.
"""

from __future__ import annotations

from typing import Any

# An SLO's quarter, worst first.
OUTCOMES = ("exhausted", "missed", "met")
HEALTH = ("exhausted", "at_risk", "healthy")
HEALTH_LABELS = {"healthy": "healthy", "at_risk": "at risk", "exhausted": "exhausted"}

# At risk: the quarter spent at least this share of its own error budget, or the SLO's window ends the
# quarter with less than AT_RISK_REMAINING of its budget left.
AT_RISK_SPENT = 0.75
AT_RISK_REMAINING = 0.25

# Better / worse: the quarter's budget spent moved by more than this share of the budget (e.g. from
# 40 % to 25 % spent is better); anything smaller is "same".
TREND_THRESHOLD = 0.10

OUTCOME_RULE = (
    "exhausted: the error budget of the SLO's own window ran out at some minute of the quarter; "
    "otherwise met when attainment (good ÷ valid events over the quarter) ≥ target, missed when below"
)
HEALTH_RULE = (
    f"exhausted as above; at risk: missed, or {AT_RISK_SPENT:.0%} or more of the quarter's budget spent, or "
    f"under {AT_RISK_REMAINING:.0%} of the window's budget left at the quarter's end; healthy otherwise"
)
TREND_RULE = (
    f"better / worse when the share of the quarter's error budget spent fell / rose by more than "
    f"{TREND_THRESHOLD * 100:.0f} points of the budget against the previous quarter; same otherwise"
)


def outcome(good: int, valid: int, target: float, exhausted_minutes: int) -> str | None:
    """`exhausted`, `missed` or `met` (None without valid events): the one definition."""
    if not valid:
        return None
    if exhausted_minutes > 0:
        return "exhausted"
    return "met" if good >= target * valid else "missed"


def health(slo_outcome: str | None, budget_spent: float | None, remaining_at_end: float | None) -> str | None:
    """`exhausted`, `at_risk` or `healthy` (None without data), from the outcome and the budget."""
    if slo_outcome is None:
        return None
    if slo_outcome == "exhausted":
        return "exhausted"
    if (
        slo_outcome == "missed"
        or (budget_spent is not None and budget_spent >= AT_RISK_SPENT)
        or (remaining_at_end is not None and remaining_at_end < AT_RISK_REMAINING)
    ):
        return "at_risk"
    return "healthy"


def trend(spent_now: float | None, spent_before: float | None) -> str | None:
    """`better`, `worse` or `same` by TREND_RULE; None when either quarter has no data."""
    if spent_now is None or spent_before is None:
        return None
    change = spent_now - spent_before
    if change < -TREND_THRESHOLD:
        return "better"
    if change > TREND_THRESHOLD:
        return "worse"
    return "same"


def judge(row: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The verdict fields of one SLO row of `slo_quarter` (this quarter), given last quarter's row."""
    slo_outcome = outcome(row["good"], row["valid"], row["target"], row["policy_minutes"]["exhausted"])
    before = previous or {}
    prev_attainment = before.get("attainment")
    return {
        "outcome": slo_outcome,
        "met": None if slo_outcome is None else slo_outcome == "met",
        "exhausted": slo_outcome == "exhausted",
        "health": health(slo_outcome, row["budget_spent"], row["budget_remaining_at_end"]),
        "previous_attainment": prev_attainment,
        "previous_budget_spent": before.get("budget_spent"),
        "attainment_change": None
        if row["attainment"] is None or prev_attainment is None
        else round(row["attainment"] - prev_attainment, 6),
        "trend": trend(row["budget_spent"], before.get("budget_spent")),
    }


def by_service(slos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per service, its SLOs grouped healthy / at risk / exhausted (a service's worst group first)."""
    groups: dict[str, dict[str, list[str]]] = {}
    for s in slos:
        if s["health"] is None:
            continue
        groups.setdefault(s["service"], {h: [] for h in HEALTH})[s["health"]].append(s["slo"])
    rows = [{"service": service, **g} for service, g in groups.items()]
    return sorted(rows, key=lambda r: (-len(r["exhausted"]), -len(r["at_risk"]), r["service"]))
