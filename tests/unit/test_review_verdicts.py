"""Known answers for how the review judges and writes its figures (issue 16): met / missed / exhausted,
healthy / at risk / exhausted, better / worse / same, and percentages that never print equal to their
target unless they are."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.analytics import formats, verdicts
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.slo_quarter import slo_quarter
from pipelines.timeutil import minute_of
from tests.support.incident_rows import store


@pytest.mark.parametrize(
    ("good", "valid", "target", "exhausted_minutes", "expected"),
    [
        (297, 300, 0.99, 0, "met"),  # exactly on target
        (296, 300, 0.99, 0, "missed"),  # one bad event too many
        (297, 300, 0.99, 1, "exhausted"),  # on target over the quarter, but a window ran out
        (300, 300, 0.99, 60, "exhausted"),
        (0, 0, 0.99, 0, None),  # no events: no verdict
    ],
)
def test_outcome(good: int, valid: int, target: float, exhausted_minutes: int, expected: str | None) -> None:
    assert verdicts.outcome(good, valid, target, exhausted_minutes) == expected


@pytest.mark.parametrize(
    ("outcome", "spent", "remaining", "expected"),
    [
        ("met", 0.50, 0.60, "healthy"),
        ("met", 0.75, 0.60, "at_risk"),  # three quarters of the quarter's budget spent
        ("met", 0.20, 0.24, "at_risk"),  # under a quarter of the window's budget left at the end
        ("met", 0.20, None, "healthy"),
        ("missed", 0.10, 0.90, "at_risk"),
        ("exhausted", 0.10, 0.90, "exhausted"),
        (None, None, None, None),
    ],
)
def test_health(
    outcome: str | None, spent: float | None, remaining: float | None, expected: str | None
) -> None:
    assert verdicts.health(outcome, spent, remaining) == expected


@pytest.mark.parametrize(
    ("now", "before", "expected"),
    [
        (0.25, 0.40, "better"),  # 15 points of the budget less
        (0.52, 0.40, "worse"),
        (0.35, 0.40, "same"),  # within 10 points
        (0.35, None, None),  # no previous quarter
    ],
)
def test_trend(now: float, before: float | None, expected: str | None) -> None:
    assert verdicts.trend(now, before) == expected


def test_services_are_grouped_worst_first() -> None:
    rows = [
        {"slo": "a/x", "service": "a", "health": "healthy"},
        {"slo": "b/x", "service": "b", "health": "exhausted"},
        {"slo": "b/y", "service": "b", "health": "healthy"},
        {"slo": "c/x", "service": "c", "health": "at_risk"},
        {"slo": "d/x", "service": "d", "health": None},  # no data: not grouped
    ]
    assert verdicts.by_service(rows) == [
        {"service": "b", "exhausted": ["b/x"], "at_risk": [], "healthy": ["b/y"]},
        {"service": "c", "exhausted": [], "at_risk": ["c/x"], "healthy": []},
        {"service": "a", "exhausted": [], "at_risk": [], "healthy": ["a/x"]},
    ]


@pytest.mark.parametrize(
    ("value", "digits", "against", "text"),
    [
        (0.999496, 2, 0.9995, "99.9496%"),  # rounds to the target at 2 and 3 decimals: more shown
        (0.9995, 2, 0.9995, "99.95%"),  # equal: printed equal
        (0.99951, 2, 0.9995, "99.951%"),
        (0.999008, 3, 0.999, "99.901%"),
        (0.99996, 1, 1.0, "99.996%"),  # budget spent just under the whole budget
        (1.0, 1, 1.0, "100.0%"),
        (0.5, 1, None, "50.0%"),
        (None, 1, 0.9, "—"),
    ],
)
def test_percentages_never_print_equal_to_their_target_unless_equal(
    value: float | None, digits: int, against: float | None, text: str
) -> None:
    assert formats.pct(value, digits, against=against) == text


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: formats.minutes(6.5), "6.5 min"),  # never 7 on one page and 6.5 on another
        (lambda: formats.minutes(6.5, unit=False), "6.5"),
        (lambda: formats.minutes(1234.56), "1,234.6 min"),
        (lambda: formats.minutes(None), "—"),
        (lambda: formats.minutes(float("nan")), "—"),
        (lambda: formats.target_pct(0.999), "99.9%"),
        (lambda: formats.target_pct(0.9995), "99.95%"),
        (lambda: formats.target_pct(0.99), "99%"),
        (lambda: formats.points(0.00012), "+0.012 pp"),
        (lambda: formats.points(-0.0025), "−0.250 pp"),
        (lambda: formats.points(0.000001), "+0.0001 pp"),
        (lambda: formats.points(0.0), "0 pp"),
        (lambda: formats.number(1234), "1,234"),
        (lambda: formats.number(2.345, 2), "2.35"),
    ],
)
def test_formats(call, text: str) -> None:  # type: ignore[no-untyped-def]
    assert call() == text


@pytest.mark.parametrize(
    ("instant", "quarter"),
    [
        (dt.datetime(2026, 12, 7, 4, 35), "2026-Q3"),  # Q4 is not over: the review opens on Q3
        (dt.datetime(2026, 10, 1), "2026-Q3"),  # Q3 has just ended
        (dt.datetime(2026, 1, 15), "2025-Q4"),
    ],
)
def test_last_full_quarter(instant: dt.datetime, quarter: str) -> None:
    assert Quarter.last_full(instant).label == quarter


def test_attainment_rounding_never_lands_on_the_target() -> None:
    """9,994,999 good of 10,000,000 at 99.95 %: 0.9994999 rounds to 0.9995 at 6 decimals, which would
    read as met; the row keeps the exact value and the outcome is missed."""
    con = store()
    con.execute(
        "INSERT INTO slos (slo_key, slo_id, service, name, target, window_text, window_kind, window_minutes, "
        "budget_minutes, alerts_custom) VALUES (1, 'pay/availability', 'pay', 'availability', 0.9995, '30d', "
        "'rolling', 43200, 21.6, FALSE)"
    )
    qs = minute_of(dt.datetime(2026, 7, 1))
    con.execute("INSERT INTO buckets_open VALUES (1, ?, 9994999, 10000000)", [qs])
    [s] = slo_quarter(con, Quarter(2026, 3))
    assert s["attainment"] < 0.9995 and s["outcome"] == "missed" and s["met"] is False
    assert formats.pct(s["attainment"], 3, against=s["target"]) == "99.94999%"
    # previous quarter has no events: no comparison, and the trend says so
    assert (s["previous_attainment"], s["trend"]) == (None, None)
