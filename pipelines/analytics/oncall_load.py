"""The review's on-call load: pages per engineer per on-call week, from the on-call schedule when there is
one (`SLO_ONCALL_FILE`), else by the rule that one primary engineer is on call per week.

With a schedule: each page of the quarter (the review's pages: alert episodes, or the engine's page-level
burn-rate alerts, `alert_quality`) counts for whoever its service's first-tier schedule had on call at
the page's start (`pipelines.incidents.oncall.on_call_load`, the attribution of `slo oncall load`, whose
pages are those PagerDuty accepted instead); each person's pages are divided by their time on call in
the quarter up to the data's end, in weeks. A page
whose service's policy does not start with a schedule, or that falls where the schedule has nobody, is
counted as unattributed. Pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from pipelines.incidents.oncall import OnCall, on_call_load

PAGES_PER_WEEK_TARGET = 5
SCHEDULE = "schedule"
WEEKLY = "one primary per week"
# What each method counts, as the review says it.
COUNTING = {
    SCHEDULE: "each page counts for whoever its service's first-tier schedule had on call when it started, "
    "divided by that person's on-call weeks in the quarter; a page is one alert episode",
    WEEKLY: "one primary on-call engineer per week; a page is one alert episode",
}
NO_FILE = "no on-call schedule configured (SLO_ONCALL_FILE)"
NO_FIRST_TIER = "the on-call file's escalation policies start with no schedule"


def primary_schedules(book: OnCall) -> list[str]:
    """The schedules some escalation policy pages first (the default policy's included)."""
    policies = [*book.policies.values(), book.policy_for("")]
    return sorted(
        {p.tiers[0].target.value for p in policies if p.tiers and p.tiers[0].target.kind == SCHEDULE}
        & set(book.schedules)
    )


def schedule_load(
    book: OnCall, pages: Iterable[tuple[str, dt.datetime]], start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """Per person of each first-tier schedule, for the pages `(service, started at)` in [start, end):
    `{schedules, people: [{schedule, person, pages, on_call_weeks, pages_per_week, under_target}],
    unattributed_pages}`, people most pages first within each schedule."""
    by_schedule: dict[str, list[dt.datetime]] = {name: [] for name in primary_schedules(book)}
    unattributed = 0
    for service, at in pages:
        target = book.policy_for(service).tiers[0].target
        schedule = book.schedules.get(target.value) if target.kind == SCHEDULE else None
        if schedule is not None and start <= at < end and schedule.on_call(at) is not None:
            by_schedule.setdefault(target.value, []).append(at)
        else:
            unattributed += 1
    people = [
        {
            "schedule": name,
            "person": x.person,
            "pages": x.pages,
            "on_call_weeks": x.on_call_weeks,
            "pages_per_week": x.pages_per_week,
            "under_target": x.pages_per_week is None or x.pages_per_week < PAGES_PER_WEEK_TARGET,
        }
        for name in sorted(by_schedule)
        for x in on_call_load(book.schedules[name], by_schedule[name], start, end)
    ]
    return {"schedules": sorted(by_schedule), "people": people, "unattributed_pages": unattributed}


def review_load(
    book: OnCall | None,
    pages: Iterable[tuple[str, dt.datetime]],
    start: dt.datetime,
    end: dt.datetime,
    problem: str | None = None,
) -> dict[str, Any]:
    """The on-call load's method and per-person figures for the review: the schedule's when `book` has
    a first-tier schedule, else the weekly rule's (no per-person figures), with the reason (`problem`:
    why the on-call file could not be read, when that is the reason)."""
    reason = (problem or NO_FILE) if book is None else None if primary_schedules(book) else NO_FIRST_TIER
    if book is None or reason is not None:
        return {
            "method": WEEKLY,
            "method_reason": reason,
            "schedules": [],
            "people": [],
            "unattributed_pages": 0,
        }
    return {"method": SCHEDULE, "method_reason": None, **schedule_load(book, pages, start, end)}
