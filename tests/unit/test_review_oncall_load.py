"""The review's on-call load from the on-call schedule (issue 17): pages per engineer per on-call week
when an on-call file is configured, the one-primary-per-week rule as the stated fallback without one.

The schedule: alice and bob alternate weekly from 2026-07-01 00:00 UTC (alice first); the data reaches
2026-07-29 00:00, four weeks, so each was on call two weeks. Pages (SEV2 alert episodes) at known
instants: alice 3 in her first week and 7 in her second (10 pages / 2 weeks = 5.0: not under 5), bob 2
and 1 (3 / 2 = 1.5); one page of `search`, whose escalation policy pages erin first, not a schedule, is
unattributed. By week of the quarter: 3, 3 (bob's 2 and search's), 7, 1.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.analytics.oncall_load import NO_FILE, NO_FIRST_TIER, schedule_load
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.render import render_markdown
from pipelines.analytics.review import build_review
from pipelines.incidents.oncall import OnCall, parse_oncall
from tests.support.incident_rows import add_alert, store, t

Q3 = Quarter(2026, 3)
AS_OF = dt.datetime(2026, 7, 29)
FILE = {
    "people": {"alice": {}, "bob": {}, "erin": {}},
    "schedules": {
        "primary": {
            "layers": [
                {"start": "2026-07-01T00:00:00Z", "rotation_turn_length": "1w", "users": ["alice", "bob"]}
            ]
        }
    },
    "policies": {
        "default": {
            "tiers": [{"target": {"schedule": "primary"}, "timeout": "5m"}, {"target": {"person": "erin"}}]
        },
        "search": {"tiers": [{"target": {"person": "erin"}}]},
    },
}
PAGES = {
    "checkout-api": [
        # alice's first week, Jul 1 00:00 – Jul 8 00:00
        "2026-07-01T10:00", "2026-07-03T02:00", "2026-07-07T23:59",
        # bob's first week: his turn starts at Jul 8 00:00 sharp
        "2026-07-08T00:00", "2026-07-10T12:00",
        # alice's second week, Jul 15 – Jul 22
        "2026-07-15T00:00", "2026-07-16T09:00", "2026-07-17T09:00", "2026-07-18T09:00",
        "2026-07-19T09:00", "2026-07-20T09:00", "2026-07-21T12:00",
        # bob's second week
        "2026-07-25T03:00",
    ],
    "search": ["2026-07-09T12:00"],
}  # fmt: skip


def book() -> OnCall:
    return parse_oncall(FILE, "oncall.yaml")


def pages() -> list[tuple[str, dt.datetime]]:
    return [(service, t(at)) for service, ats in PAGES.items() for at in ats]


ALICE = {
    "schedule": "primary", "person": "alice", "pages": 10, "on_call_weeks": 2.0, "pages_per_week": 5.0,
    "under_target": False,
}  # fmt: skip
BOB = {
    "schedule": "primary", "person": "bob", "pages": 3, "on_call_weeks": 2.0, "pages_per_week": 1.5,
    "under_target": True,
}  # fmt: skip


def test_each_page_counts_for_whoever_was_on_call_divided_by_their_weeks() -> None:
    assert schedule_load(book(), pages(), Q3.start, AS_OF) == {
        "schedules": ["primary"],
        "people": [ALICE, BOB],
        "unattributed_pages": 1,
    }


def review_store():
    con = store()
    for service, ats in PAGES.items():
        for i, at in enumerate(ats):
            add_alert(con, f"{service}-{i}", service=service, starts=at, incident_id=None)
    return con


def test_the_review_uses_the_schedule_per_engineer() -> None:
    review = build_review(review_store(), Q3, as_of=AS_OF, with_backtest=False, oncall=book())
    oncall = review["oncall"]
    # the keys the review always had, unchanged
    assert (oncall["pages_per_week"], oncall["weeks"], oncall["weeks_at_or_over_target"]) == (
        [3, 3, 7, 1],
        4,
        1,
    )
    assert (oncall["method"], oncall["method_reason"], oncall["schedules"]) == ("schedule", None, ["primary"])
    assert oncall["people"] == [ALICE, BOB]
    assert (oncall["unattributed_pages"], oncall["engineers_at_or_over_target"]) == (1, 1)
    (metric,) = [m for m in review["success_metrics"] if m["metric"] == "pages_per_oncall_week"]
    assert (metric["value"], metric["unit"], metric["met"]) == (
        5.0,
        "pages per on-call week (worst engineer)",
        False,
    )
    assert metric["target"] == "< 5 per on-call week, every engineer"
    text = render_markdown(review)
    assert "| primary | alice | 10 | 2 | 5 | no |" in text
    assert "| primary | bob | 3 | 2 | 1.5 | yes |" in text
    assert (
        "Method: the on-call schedule (primary): each page counts for whoever its service's first-tier "
        "schedule had on call when it started, divided by that person's on-call weeks in the quarter; a "
        "page is one alert episode; 1 page(s) found nobody on call and are not attributed."
    ) in text.replace("\\", "")
    (noise,) = [
        r for r in review["recommendations"] if r["recommendation"].startswith("Reduce on-call noise")
    ]
    assert noise["because"].startswith("worst engineer 5.0 pages per on-call week;")


@pytest.mark.parametrize(
    ("oncall", "reason"),
    [
        (None, NO_FILE),
        (
            parse_oncall(
                {
                    "people": {"erin": {}},
                    "policies": {"default": {"tiers": [{"target": {"person": "erin"}}]}},
                },
                "x",
            ),
            NO_FIRST_TIER,
        ),
    ],
)
def test_without_a_schedule_the_weekly_rule_is_the_stated_fallback(
    oncall: OnCall | None, reason: str
) -> None:
    review = build_review(review_store(), Q3, as_of=AS_OF, with_backtest=False, oncall=oncall)
    oc = review["oncall"]
    assert (oc["method"], oc["method_reason"], oc["people"], oc["engineers_at_or_over_target"]) == (
        "one primary per week",
        reason,
        [],
        None,
    )
    (metric,) = [m for m in review["success_metrics"] if m["metric"] == "pages_per_oncall_week"]
    assert (metric["value"], metric["unit"], metric["met"], metric["target"]) == (
        7,
        "pages (worst week)",
        False,
        "< 5 every week",
    )  # the third week's 7 pages are that week's primary's
    text = render_markdown(review).replace("\\", "")
    assert f"Method: one primary on-call engineer per week; a page is one alert episode ({reason})." in text
    assert "| primary | alice |" not in text
