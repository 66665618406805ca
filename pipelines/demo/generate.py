"""The embedded demo: deterministic synthetic per-minute `good`/`valid` counts for several services.

`generate_demo` covers the last two full quarters and the current one up to `now`, with diurnal and weekly
traffic, background errors well inside budget, injected events (fast and slow burns, partial outages,
a recurrence, latency degradations, a metrics gap) and deploys, plus the ground truth of every event.
Each (seed, SLO, UTC day) has its own random stream and events are placed relative to quarter starts,
so a minute's counts never depend on `now`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.model import MINUTES_PER_DAY, Slo
from pipelines.specs import load_specs
from pipelines.timeutil import datetime_of, minute_of

DEMO_SPECS_DIR = Path(__file__).parent / "specs"
DEFAULT_SEED = 20261123

# 1970-01-01 was a Thursday: (day number + 3) % 7 is the ISO weekday counted from Monday = 0.
_EPOCH_WEEKDAY = 3
_WEEKEND_DAYS = (5, 6)

# Labels that keep the event-placement and deploy random streams apart from the per-SLO ones
# (those are keyed by a crc32 of the SLO id).
_JITTER_STREAM = 1_000_003
_DEPLOY_STREAM = 2_000_003
# No background errors in the first 12 hours of a month (see `_slo_minutes`).
_CLEAN_MONTH_START_MINUTES = 12 * 60


@dataclass(frozen=True)
class DemoEvent:
    """Ground truth of one injected event: which SLOs it hit, when, and what kind of problem it was."""

    event_id: str
    service: str
    slo_ids: tuple[str, ...]
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive; clipped to the demo's end for an event still running then
    shape: str  # fast_burn | slow_burn | partial_outage | recurrence | latency_degradation | metrics_gap
    fingerprint: str  # stable per underlying problem; a recurrence shares its original's fingerprint
    description: str


@dataclass(frozen=True)
class Deploy:
    """One deploy of a service."""

    service: str
    at: datetime  # UTC
    version: str
    description: str


@dataclass
class DemoData:
    """Everything the demo source provides: specs, per-minute buckets, and the ground truth."""

    slos: list[Slo]
    # slo_id (str), minute (int64, minutes since the Unix epoch), good (int64), valid (int64);
    # sorted by minute then slo_id; minutes lost to a metrics gap have no row at all.
    buckets: pd.DataFrame
    events: list[DemoEvent]
    deploys: list[Deploy]
    start: datetime
    end: datetime


# ---------------------------------------------------------------------------------------------------
# Traffic profiles: how much each SLO sees and how it behaves when nothing is wrong.


@dataclass(frozen=True)
class _Profile:
    peak: float  # events per minute at the weekday peak (ratio SLIs); time slices only need "any"
    trough: float  # the night-time level as a share of the peak
    background: float  # background bad share, as a fraction of the budget rate (1 − target)
    peak_hour: float = 15.0  # UTC hour of the daily peak (Europe afternoon, US morning)
    weekend: float = 0.6  # weekend traffic as a share of weekday traffic
    hours: tuple[int, int] | None = None  # UTC [from, to); no traffic at all outside them


_PROFILES: dict[str, _Profile] = {
    "auth/availability": _Profile(peak=2000, trough=0.25, background=0.12, peak_hour=14),
    "auth/latency": _Profile(peak=2000, trough=0.25, background=0.08, peak_hour=14),
    "checkout-api/availability": _Profile(peak=1800, trough=0.3, background=0.12),
    "checkout-api/latency": _Profile(peak=1800, trough=0.3, background=0.08),
    "checkout-api/correctness": _Profile(peak=450, trough=0.3, background=0.15),
    "inventory/availability": _Profile(peak=1200, trough=0.3, background=0.10),
    "inventory/correctness": _Profile(peak=300, trough=0.3, background=0.20),
    "notifications/availability": _Profile(peak=900, trough=0.2, background=0.06, peak_hour=13),
    "notifications/latency": _Profile(peak=900, trough=0.2, background=0.04, peak_hour=13),
    "payments/availability": _Profile(peak=900, trough=0.3, background=0.10),
    "payments/latency": _Profile(peak=900, trough=0.3, background=0.08),
    "payments/correctness": _Profile(peak=400, trough=0.3, background=0.12),
    "reports/availability": _Profile(peak=250, trough=0.4, background=0.08, weekend=0.5, hours=(6, 22)),
    "reports/correctness": _Profile(peak=150, trough=0.4, background=0.05, weekend=0.5, hours=(6, 22)),
    "search/availability": _Profile(peak=2000, trough=0.3, background=0.10),
    "search/latency": _Profile(peak=2000, trough=0.3, background=0.08),
    "search/correctness": _Profile(peak=2000, trough=0.3, background=0.08),
}


# ---------------------------------------------------------------------------------------------------
# Injected events, placed relative to each quarter's start (day 0 is the quarter's first day).


@dataclass(frozen=True)
class _Injection:
    key: str
    service: str
    shape: str
    fingerprint: str
    day: int
    at: str  # "HH:MM" UTC
    minutes: int
    effects: tuple[tuple[str, float], ...]  # (SLO name, bad share while it lasts); a gap drops rows
    description: str
    deploy: str | None = None  # the deploy that set it off, shortly before the start
    quarters: str = "all"  # "all" | "even" | "odd": quarter number (year·4 + q) parity


# fmt: off
INJECTIONS: tuple[_Injection, ...] = (
    _Injection(
        "search-planner", "search", "fast_burn", "search/query-planner-regression",
        day=6, at="14:20", minutes=25, effects=(("availability", 0.40),),
        description="New query planner times out on multi-facet queries: ~40% of searches fail with 503.",
        deploy="query planner v2 rollout",
    ),
    _Injection(
        "checkout-payment-timeouts", "checkout-api", "fast_burn", "checkout-api/payment-client-timeout",
        day=12, at="16:40", minutes=20, effects=(("availability", 0.12), ("latency", 0.9)),
        description="Payment client timeout lowered to 2 s: 12% of checkouts time out, p99 over 300 ms.",
        deploy="payment client library upgrade",
    ),
    _Injection(
        "payments-pool-leak", "payments", "slow_burn", "payments/db-connection-pool-leak",
        day=18, at="06:00", minutes=36 * 60, effects=(("availability", 4 * 0.0005),),
        description="Connection-pool leak in the refund worker: 0.2% of calls fail (4× budget rate).",
    ),
    _Injection(
        "inventory-scrape-gap", "inventory", "metrics_gap", "inventory/scrape-target-down",
        day=22, at="02:10", minutes=45, effects=(("availability", 0.0),),
        description="A network policy change blocks Prometheus from scraping inventory: 45 min without data.",
    ),
    _Injection(
        "search-planner-recurs", "search", "recurrence", "search/query-planner-regression",
        day=25, at="15:05", minutes=20, effects=(("availability", 0.30),),
        description="The query-planner regression is back (the fix missed the fallback path): 30% fail.",
        deploy="ranking tweaks re-enabling the planner fallback path",
    ),
    _Injection(
        "payments-duplicate-ledger", "payments", "fast_burn", "payments/duplicate-ledger-entries",
        day=30, at="11:15", minutes=40, effects=(("correctness", 0.05),),
        description="A retry bug writes duplicate ledger entries: 5% of entries fail reconciliation.",
        deploy="ledger writer retry policy change",
    ),
    _Injection(
        "search-index-lag", "search", "slow_burn", "search/index-refresh-lag",
        day=40, at="09:00", minutes=30 * 60, effects=(("correctness", 4 * 0.005),),
        description="Index refresh falls behind after a mapping change: 2% of queries see a stale index.",
    ),
    _Injection(
        "inventory-replica-crashloop", "inventory", "partial_outage", "inventory/replica-crashloop",
        day=47, at="13:30", minutes=90, effects=(("availability", 0.25),),
        description="One of four inventory replicas crash-loops: ~25% of lookups fail for 90 min.",
    ),
    _Injection(
        "search-gc-pauses", "search", "latency_degradation", "search/jvm-gc-pauses",
        day=55, at="11:00", minutes=150, effects=(("latency", 0.7),),
        description="Long GC pauses on the search nodes: p99 over 250 ms in most minutes for 2.5 h.",
    ),
    _Injection(
        "checkout-db-failover", "checkout-api", "fast_burn", "checkout-api/db-failover",
        day=60, at="15:30", minutes=15, effects=(("availability", 1.0),), quarters="even",
        description="The primary database failover stalls: checkout is fully down for 15 min.",
    ),
    _Injection(
        "checkout-cart-cache", "checkout-api", "partial_outage", "checkout-api/cart-cache-eviction",
        day=60, at="15:30", minutes=60, effects=(("availability", 0.03),), quarters="odd",
        description="Cart cache evictions under memory pressure: 3% of checkouts fail for an hour.",
    ),
    _Injection(
        "payments-fraud-latency", "payments", "latency_degradation", "payments/fraud-check-slowdown",
        day=70, at="19:00", minutes=45, effects=(("latency", 0.8),),
        description="The new fraud model doubles scoring time: p99 authorisation over 800 ms for 45 min.",
        deploy="fraud scoring model update",
    ),
    _Injection(
        "auth-token-cache", "auth", "fast_burn", "auth/token-cache-stampede",
        day=75, at="09:10", minutes=12, effects=(("availability", 0.20),),
        description="A shorter token-cache TTL makes every node refresh at once: 20% of logins fail.",
        deploy="token cache TTL change",
    ),
)
# fmt: on

_RELEASE_NOTES = (
    "dependency updates",
    "feature flag cleanup",
    "logging and metrics improvements",
    "configuration change",
    "bug fixes",
    "performance improvements",
    "new API field behind a flag",
    "base image update",
)


@dataclass(frozen=True)
class _Placed:
    """One injection placed in one quarter: absolute minutes [start, end)."""

    injection: _Injection
    quarter: str  # "2026-Q3"
    start: int
    end: int
    deploy_at: int | None


# ---------------------------------------------------------------------------------------------------
# Public API


def demo_span(now: datetime) -> tuple[datetime, datetime]:
    """[start, end): from the first day of the quarter two before `now`'s, to `now` floored to the minute."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got naive {now.isoformat()}")
    now = now.astimezone(UTC)
    end = now.replace(second=0, microsecond=0)
    year, quarter = _quarter_of(now)
    start_year, start_quarter = divmod(year * 4 + quarter - 2, 4)
    return _quarter_start(start_year, start_quarter), end


def generate_demo(
    now: datetime | None = None,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int, int], None] | None = None,
) -> DemoData:
    """Build the demo's specs, per-minute buckets, events and deploys for the span ending at `now`."""
    start, end = demo_span(now if now is not None else datetime.now(UTC))
    return generate_range(start, end, seed, progress)


def demo_slos() -> list[Slo]:
    """The demo's SLOs, by id; each has its traffic profile."""
    slos, _ = load_specs(sorted(DEMO_SPECS_DIR.glob("*.yaml")))
    slos = sorted(slos, key=lambda slo: slo.id)
    missing = [slo.id for slo in slos if slo.id not in _PROFILES]
    if missing:
        raise ValueError(
            f"demo specs without a traffic profile in pipelines/demo/generate.py: {', '.join(missing)}"
        )
    return slos


def generate_range(
    start: datetime,
    end: datetime,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int, int], None] | None = None,
) -> DemoData:
    """The demo's minutes [start, end) (UTC minute boundaries), the same counts as any longer span
    gives them (each day has its own random stream), with the events and deploys that touch them:
    what the live demo appends minute by minute."""
    slos = demo_slos()
    start_minute, end_minute = minute_of(start), minute_of(end)
    first_day = start_minute // MINUTES_PER_DAY
    days = -(-end_minute // MINUTES_PER_DAY) - first_day  # whole days, so a day's draws never depend on now
    # From a few days back: an event placed in the quarter before `start` may still run at `start`.
    placed = _place_injections(seed, start - timedelta(days=3), end)

    n = end_minute - start_minute
    good = np.empty((n, len(slos)), dtype=np.int64)
    valid = np.empty((n, len(slos)), dtype=np.int64)
    present = np.ones((n, len(slos)), dtype=bool)
    skip = start_minute - first_day * MINUTES_PER_DAY  # minutes of the first day before `start`
    for index, slo in enumerate(slos):
        slo_good, slo_valid, slo_present = _slo_minutes(slo, seed, first_day, days, placed)
        good[:, index] = slo_good[skip : skip + n]
        valid[:, index] = slo_valid[skip : skip + n]
        present[:, index] = slo_present[skip : skip + n]
        if progress is not None:
            progress(index + 1, len(slos))

    # Row-major flattening of the (minute, SLO) grid gives the order "by minute, then slo_id".
    keep = present.ravel()
    codes = np.tile(np.arange(len(slos), dtype=np.int32), n)[keep]
    buckets = pd.DataFrame(
        {
            "slo_id": pd.array([slo.id for slo in slos], dtype="str").take(codes),
            "minute": np.repeat(np.arange(start_minute, end_minute, dtype=np.int64), len(slos))[keep],
            "good": good.ravel()[keep],
            "valid": valid.ravel()[keep],
        },
        copy=False,
    )
    return DemoData(
        slos=slos,
        buckets=buckets,
        events=[e for e in _events(placed, slos, end_minute) if e.end > start],
        deploys=_deploys(seed, slos, placed, start_minute, end_minute),
        start=start,
        end=end,
    )


# ---------------------------------------------------------------------------------------------------
# Per-SLO minutes


def _slo_minutes(
    slo: Slo, seed: int, first_day: int, days: int, placed: list[_Placed]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """good, valid and "row present" per minute over whole UTC days from `first_day`."""
    profile = _PROFILES[slo.id]
    stream = _stable_hash(slo.id)  # not the SLO's position, so adding a spec changes no other SLO
    base = first_day * MINUTES_PER_DAY
    minutes = np.arange(base, base + days * MINUTES_PER_DAY, dtype=np.int64)
    expected = _traffic(profile, minutes)
    background = np.full(minutes.size, profile.background * (1.0 - slo.target))
    # The first hours of every month run clean: calendar budgets and a freshly started span would
    # otherwise judge a whole window by its first few events.
    background[minutes - _month_starts(minutes) < _CLEAN_MONTH_START_MINUTES] = 0.0
    event_share = np.zeros(minutes.size)
    present = np.ones(minutes.size, dtype=bool)
    for event in placed:
        if event.injection.service != slo.service:
            continue
        for name, share in event.injection.effects:
            if name != slo.name:
                continue
            lo, hi = max(event.start - base, 0), min(event.end - base, minutes.size)
            if lo >= hi:
                continue
            if event.injection.shape == "metrics_gap":
                present[lo:hi] = False
            else:
                event_share[lo:hi] = 1.0 - (1.0 - event_share[lo:hi]) * (1.0 - share)

    good = np.empty(minutes.size, dtype=np.int64)
    valid = np.empty(minutes.size, dtype=np.int64)
    time_slices = slo.sli.kind == "threshold"
    for day in range(days):
        rng = np.random.default_rng([seed, stream, first_day + day])
        day_slice = slice(day * MINUTES_PER_DAY, (day + 1) * MINUTES_PER_DAY)
        level = rng.lognormal(0.0, 0.06)  # day-to-day traffic variation
        noise = rng.uniform(0.6, 1.4)  # day-to-day variation of the background error rate
        bad_share = 1.0 - (1.0 - background[day_slice] * noise) * (1.0 - event_share[day_slice])
        if time_slices:
            # A minute is valid when there was traffic, good when its p99 met the threshold.
            has_data = expected[day_slice] > 0
            slow = rng.random(MINUTES_PER_DAY) < bad_share
            valid[day_slice] = has_data
            good[day_slice] = has_data & ~slow
        else:
            counts = rng.poisson(expected[day_slice] * level)
            valid[day_slice] = counts
            good[day_slice] = counts - rng.binomial(counts, bad_share)
    return good, valid, present


def _traffic(profile: _Profile, minutes: np.ndarray) -> np.ndarray:
    """Expected events per minute: a daily cosine between trough and peak, lower at weekends."""
    hour = (minutes % MINUTES_PER_DAY) / 60.0
    weekday = (minutes // MINUTES_PER_DAY + _EPOCH_WEEKDAY) % 7
    # 1 at the peak hour, 0 twelve hours away from it.
    wave = 0.5 * (1.0 + np.cos(2 * np.pi * (hour - profile.peak_hour) / 24))
    daily = profile.trough + (1.0 - profile.trough) * wave
    expected = profile.peak * daily * np.where(np.isin(weekday, _WEEKEND_DAYS), profile.weekend, 1.0)
    if profile.hours is not None:
        first, last = profile.hours
        expected = np.where((hour >= first) & (hour < last), expected, 0.0)
    return expected


# ---------------------------------------------------------------------------------------------------
# Events and deploys


def _place_injections(seed: int, start: datetime, end: datetime) -> list[_Placed]:
    """Every injection of every quarter the span touches, jittered per (seed, quarter, fingerprint)."""
    placed: list[_Placed] = []
    year, quarter = _quarter_of(start)
    last = _quarter_of(end - timedelta(minutes=1))
    number = year * 4 + quarter
    while divmod(number, 4) <= last:
        q_year, q_index = divmod(number, 4)
        q_start = minute_of(_quarter_start(q_year, q_index))
        for injection in INJECTIONS:
            if injection.quarters not in ("all", ("even", "odd")[number % 2]):
                continue
            # The jitter is keyed by fingerprint, so a recurrence moves together with its original.
            rng = np.random.default_rng([seed, _JITTER_STREAM, number, _stable_hash(injection.fingerprint)])
            shift = int(rng.integers(-2, 3)) * MINUTES_PER_DAY + int(rng.integers(-25, 26))
            hours, mins = (int(part) for part in injection.at.split(":"))
            begin = q_start + injection.day * MINUTES_PER_DAY + hours * 60 + mins + shift
            lead = int(rng.integers(8, 50))
            placed.append(
                _Placed(
                    injection=injection,
                    quarter=f"{q_year}-Q{q_index + 1}",
                    start=begin,
                    end=begin + injection.minutes,
                    deploy_at=begin - lead if injection.deploy else None,
                )
            )
        number += 1
    return placed


def _events(placed: list[_Placed], slos: list[Slo], end_minute: int) -> list[DemoEvent]:
    known = {slo.id for slo in slos}
    events = []
    for event in placed:
        if event.start >= end_minute:
            continue
        injection = event.injection
        slo_ids = tuple(f"{injection.service}/{name}" for name, _ in injection.effects)
        unknown = [slo_id for slo_id in slo_ids if slo_id not in known]
        if unknown:
            raise ValueError(f"demo event {injection.key} names SLOs missing from the demo specs: {unknown}")
        events.append(
            DemoEvent(
                event_id=f"{event.quarter}-{injection.key}",
                service=injection.service,
                slo_ids=slo_ids,
                start=datetime_of(event.start),
                end=datetime_of(min(event.end, end_minute)),
                shape=injection.shape,
                fingerprint=injection.fingerprint,
                description=injection.description,
            )
        )
    return sorted(events, key=lambda e: (e.start, e.event_id))


def _deploys(
    seed: int, slos: list[Slo], placed: list[_Placed], start_minute: int, end_minute: int
) -> list[Deploy]:
    """Routine weekday deploys per service, plus the deploys that set off injected events."""
    services = sorted({slo.service for slo in slos})
    at_minutes: list[tuple[int, str, str]] = []
    first_day, last_day = start_minute // MINUTES_PER_DAY, -(-end_minute // MINUTES_PER_DAY)
    for service in services:
        for day in range(first_day, last_day):
            if (day + _EPOCH_WEEKDAY) % 7 in _WEEKEND_DAYS:
                continue
            rng = np.random.default_rng([seed, _DEPLOY_STREAM, _stable_hash(service), day])
            if rng.random() < 0.35:
                minute = day * MINUTES_PER_DAY + int(rng.integers(9 * 60, 17 * 60))
                note = _RELEASE_NOTES[int(rng.integers(len(_RELEASE_NOTES)))]
                at_minutes.append((minute, service, note))
    for event in placed:
        if event.deploy_at is not None and event.injection.deploy is not None:
            at_minutes.append((event.deploy_at, event.injection.service, event.injection.deploy))
    return [
        Deploy(service=service, at=datetime_of(minute), version=_version(minute), description=note)
        for minute, service, note in sorted(at_minutes)
        if start_minute <= minute < end_minute
    ]


def _stable_hash(text: str) -> int:
    """A seed component for a name that, unlike `hash()`, is the same in every process."""
    return zlib.crc32(text.encode())


def _version(minute: int) -> str:
    """A release version derived from the deploy time, so it is the same whatever `now` is."""
    return datetime_of(minute).strftime("v%Y.%m.%d-%H%M")


# ---------------------------------------------------------------------------------------------------
# Time helpers


def _quarter_of(moment: datetime) -> tuple[int, int]:
    """(year, quarter index 0–3) of a UTC time."""
    return moment.year, (moment.month - 1) // 3


def _quarter_start(year: int, quarter_index: int) -> datetime:
    return datetime(year, 3 * quarter_index + 1, 1, tzinfo=UTC)


def _month_starts(minutes: np.ndarray) -> np.ndarray:
    """The first minute of the UTC calendar month of each absolute minute."""
    months = minutes.astype("datetime64[m]").astype("datetime64[M]")
    return months.astype("datetime64[m]").astype(np.int64)
