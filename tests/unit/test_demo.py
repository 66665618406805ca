"""The embedded demo: deterministic data whose alerts and budget states are checked by brute force.

Alerts and error-budget states are recomputed here straight from DESIGN §2 with cumulative sums over
the dense minute grid (exact integer window sums over [T−W, T)), independent of the product's engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.demo.generate import DEMO_SPECS_DIR, DemoData, demo_span, generate_demo
from pipelines.model import POLICY_STATES, Slo
from pipelines.specs import load_specs

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER_NOW = datetime(2027, 1, 10, 8, 17, tzinfo=UTC)
QUIET_SERVICES = {"notifications", "reports"}
PAGING_SHAPES = {"fast_burn", "partial_outage", "recurrence", "latency_degradation"}
ALL_SHAPES = PAGING_SHAPES | {"slow_burn", "metrics_gap"}


@dataclass
class Run:
    data: DemoData
    progress: list[tuple[int, int]]


@dataclass
class Evaluation:
    """Per SLO, indexed by k = minutes since the span start, evaluated at T = start + k (k = 0 unused)."""

    page: np.ndarray
    ticket: np.ndarray
    budget_remaining: np.ndarray  # NaN where the SLO window holds no valid events
    burn: dict[int, np.ndarray]  # window minutes -> burn rate (NaN where Σvalid = 0)


def minute_of(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


@pytest.fixture(scope="module")
def run() -> Run:
    calls: list[tuple[int, int]] = []
    data = generate_demo(NOW, progress=lambda done, total: calls.append((done, total)))
    return Run(data=data, progress=calls)


@pytest.fixture(scope="module")
def demo(run: Run) -> DemoData:
    return run.data


@dataclass
class Grid:
    """Dense (minute since the span start, SLO in `demo.slos` order) arrays; absent rows count as 0/0."""

    good: np.ndarray
    valid: np.ndarray
    present: np.ndarray


@pytest.fixture(scope="module")
def grid(demo: DemoData) -> Grid:
    start, end = minute_of(demo.start), minute_of(demo.end)
    ids = [slo.id for slo in demo.slos]
    codes = pd.Categorical(demo.buckets["slo_id"], categories=ids).codes
    rows = demo.buckets["minute"].to_numpy() - start
    shape = (end - start, len(ids))
    good, valid, present = np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, bool)
    good[rows, codes] = demo.buckets["good"].to_numpy()
    valid[rows, codes] = demo.buckets["valid"].to_numpy()
    present[rows, codes] = True
    return Grid(good=good, valid=valid, present=present)


@pytest.fixture(scope="module")
def evaluations(demo: DemoData, grid: Grid) -> dict[str, Evaluation]:
    return {
        slo.id: evaluate(slo, grid.good[:, index], grid.valid[:, index], minute_of(demo.start))
        for index, slo in enumerate(demo.slos)
    }


def evaluate(slo: Slo, good: np.ndarray, valid: np.ndarray, start_minute: int) -> Evaluation:
    """Burn rates, alert conditions and budget_remaining at every minute boundary, per DESIGN §2."""
    n = valid.size
    cum_bad = np.concatenate([[0], np.cumsum(valid - good)])
    cum_valid = np.concatenate([[0], np.cumsum(valid)])
    k = np.arange(n + 1)
    allowed_share = 1.0 - slo.target

    def bad_share(lower: np.ndarray) -> np.ndarray:
        window_valid = cum_valid[k] - cum_valid[lower]
        window_bad = cum_bad[k] - cum_bad[lower]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(window_valid > 0, window_bad / window_valid, np.nan)

    windows = {alert.long_window for alert in slo.alerts} | {alert.short_window for alert in slo.alerts}
    burn = {w: bad_share(np.maximum(k - w, 0)) / allowed_share for w in windows}
    fires = {"page": np.zeros(n + 1, dtype=bool), "ticket": np.zeros(n + 1, dtype=bool)}
    for alert in slo.alerts:
        # NaN compares False: no data never fires.
        fires[alert.severity] |= (burn[alert.long_window] > alert.factor) & (
            burn[alert.short_window] > alert.factor
        )

    if slo.window.kind == "rolling":
        lower = np.maximum(k - slo.window.minutes, 0)
    else:
        months = (start_minute + k).astype("datetime64[m]").astype("datetime64[M]").astype(np.int64)
        if slo.window.calendar == "quarter":
            months -= months % 3  # months since 1970-01, which starts a quarter
        period_start = months.astype("datetime64[M]").astype("datetime64[m]").astype(np.int64)
        lower = np.maximum(period_start - start_minute, 0)
    budget_remaining = 1.0 - bad_share(lower) / allowed_share
    return Evaluation(
        page=fires["page"], ticket=fires["ticket"], budget_remaining=budget_remaining, burn=burn
    )


def policy_states(budget_remaining: np.ndarray) -> set[str]:
    r = budget_remaining[~np.isnan(budget_remaining)]
    masks = {
        "normal": r > 0.5,
        "freeze_review": (r >= 0.25) & (r <= 0.5),
        "reliability_focus": (r > 0) & (r < 0.25),
        "exhausted": r <= 0,
    }
    return {state for state, mask in masks.items() if mask.any()}


def index_of(demo: DemoData, moment: datetime) -> int:
    return minute_of(moment) - minute_of(demo.start)


# ---------------------------------------------------------------------------------------------------
# Span


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        ("2026-11-23T12:00:30+00:00", "2026-04-01T00:00:00+00:00", "2026-11-23T12:00:00+00:00"),
        ("2027-01-15T09:30:59+00:00", "2026-07-01T00:00:00+00:00", "2027-01-15T09:30:00+00:00"),
        ("2026-04-01T00:00:00+00:00", "2025-10-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00"),
        ("2026-03-31T23:59:59.999+00:00", "2025-07-01T00:00:00+00:00", "2026-03-31T23:59:00+00:00"),
        ("2026-10-01T00:30:00+01:00", "2026-01-01T00:00:00+00:00", "2026-09-30T23:30:00+00:00"),
    ],
)
def test_span_starts_two_quarters_back_and_ends_at_now_floored(now: str, start: str, end: str) -> None:
    got_start, got_end = demo_span(datetime.fromisoformat(now))
    assert (got_start, got_end) == (datetime.fromisoformat(start), datetime.fromisoformat(end))
    assert got_start.tzinfo is not None and got_start.utcoffset() == timedelta(0)


def test_span_refuses_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        demo_span(datetime(2026, 11, 23, 12, 0))


# ---------------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_identical_data(demo: DemoData) -> None:
    again = generate_demo(NOW)
    assert again.buckets.equals(demo.buckets)
    assert again.events == demo.events
    assert again.deploys == demo.deploys


def test_later_now_keeps_every_common_minute(demo: DemoData) -> None:
    later = generate_demo(LATER_NOW)
    assert later.start == datetime(2026, 7, 1, tzinfo=UTC)
    common_from, common_to = minute_of(later.start), minute_of(demo.end)

    def common(frame: pd.DataFrame) -> pd.DataFrame:
        inside = (frame["minute"] >= common_from) & (frame["minute"] < common_to)
        return frame[inside].reset_index(drop=True)

    ours, theirs = common(demo.buckets), common(later.buckets)
    assert len(ours) > 17 * 100_000
    assert theirs.equals(ours)
    # Events and deploys in the common range are the same too (only clipping at the end may differ).
    ours_events = {(e.event_id, e.start) for e in demo.events if e.start >= later.start}
    theirs_events = {(e.event_id, e.start) for e in later.events if e.start < demo.end}
    assert ours_events == theirs_events
    assert [d for d in demo.deploys if d.at >= later.start] == [d for d in later.deploys if d.at < demo.end]


def test_another_seed_gives_other_numbers(demo: DemoData) -> None:
    other = generate_demo(datetime(2026, 4, 3, tzinfo=UTC), seed=7)
    ours = demo.buckets[demo.buckets["minute"] < minute_of(other.end)].reset_index(drop=True)
    theirs = other.buckets[other.buckets["minute"] >= minute_of(demo.start)].reset_index(drop=True)
    assert ours[["slo_id", "minute"]].equals(theirs[["slo_id", "minute"]])
    assert (ours["valid"] != theirs["valid"]).mean() > 0.5


def test_progress_is_reported_once_per_slo(run: Run) -> None:
    total = len(run.data.slos)
    assert run.progress == [(done, total) for done in range(1, total + 1)]


# ---------------------------------------------------------------------------------------------------
# Catalog


def test_specs_load_cleanly_and_cover_the_mix(demo: DemoData) -> None:
    slos, warnings = load_specs(sorted(DEMO_SPECS_DIR.glob("*.yaml")))
    assert warnings == []
    assert sorted(s.id for s in slos) == [s.id for s in demo.slos]
    services = {s.service for s in demo.slos}
    assert len(services) >= 6
    assert {"checkout-api", "payments", "search", "auth", "inventory", "notifications"} <= services
    assert 15 <= len(demo.slos) <= 20
    assert {s.sli.category for s in demo.slos} >= {"availability", "latency", "correctness"}
    assert all(s.sli.kind == "threshold" for s in demo.slos if s.sli.category == "latency")
    assert all(s.sli.kind == "ratio" for s in demo.slos if s.sli.category != "latency")
    assert {round(s.target, 4) for s in demo.slos} == {0.99, 0.995, 0.999, 0.9995}
    windows = [s.window.text for s in demo.slos]
    assert windows.count("30d") > len(windows) / 2
    assert {"28d", "month", "quarter"} <= set(windows)
    assert any(s.alerts_custom for s in demo.slos)
    assert all(set(s.policy) == set(POLICY_STATES) for s in demo.slos)


# ---------------------------------------------------------------------------------------------------
# Buckets


def test_buckets_have_the_documented_shape(demo: DemoData) -> None:
    buckets = demo.buckets
    assert list(buckets.columns) == ["slo_id", "minute", "good", "valid"]
    assert pd.api.types.is_string_dtype(buckets["slo_id"])
    assert buckets["minute"].dtype == np.int64
    assert buckets["good"].dtype == np.int64 and buckets["valid"].dtype == np.int64
    assert buckets["minute"].min() == minute_of(demo.start)
    assert buckets["minute"].max() == minute_of(demo.end) - 1
    assert set(buckets["slo_id"].unique()) == {s.id for s in demo.slos}
    assert ((buckets["good"] >= 0) & (buckets["good"] <= buckets["valid"])).all()
    # Sorted by minute, then slo_id, with one row per (minute, SLO) at most.
    keys = (
        buckets["minute"].to_numpy() * 100
        + pd.Categorical(buckets["slo_id"], categories=sorted(s.id for s in demo.slos)).codes
    )
    assert (np.diff(keys) > 0).all()
    assert 5_000_000 < len(buckets) < 7_000_000


def test_time_slice_slis_count_one_per_minute(demo: DemoData) -> None:
    latency_ids = [s.id for s in demo.slos if s.sli.kind == "threshold"]
    rows = demo.buckets[demo.buckets["slo_id"].isin(latency_ids)]
    assert set(rows["valid"].unique()) == {1}
    assert set(rows["good"].unique()) == {0, 1}


def test_traffic_follows_the_day_and_the_week(demo: DemoData) -> None:
    rows = demo.buckets[demo.buckets["slo_id"] == "checkout-api/availability"]
    minute = rows["minute"].to_numpy()
    hour = (minute % 1440) // 60
    weekend = ((minute // 1440 + 3) % 7) >= 5  # 1970-01-01 was a Thursday
    valid = rows["valid"].to_numpy()
    weekday_peak = valid[(hour == 15) & ~weekend].mean()
    weekday_night = valid[(hour == 3) & ~weekend].mean()
    weekend_peak = valid[(hour == 15) & weekend].mean()
    assert 1500 < weekday_peak < 2100  # the profile's 1800 req/min at 15:00 UTC
    assert weekday_night < 0.4 * weekday_peak
    assert weekend_peak < 0.75 * weekday_peak
    # Every request-based SLI sees between ~200 and ~2000 events a minute at its weekday peak.
    for slo in demo.slos:
        if slo.sli.kind == "ratio" and slo.sli.category == "availability":
            peak = demo.buckets.loc[demo.buckets["slo_id"] == slo.id, "valid"].quantile(0.99)
            assert 200 <= peak <= 2300, slo.id


def test_background_errors_stay_well_inside_budget(demo: DemoData, grid: Grid) -> None:
    good, valid = grid.good, grid.valid
    event_ids = {slo_id for e in demo.events for slo_id in e.slo_ids}
    for index, slo in enumerate(demo.slos):
        if slo.id in event_ids:
            continue
        bad_share = (valid[:, index] - good[:, index]).sum() / valid[:, index].sum()
        assert bad_share < 0.3 * (1 - slo.target), slo.id


def test_metrics_gap_minutes_have_no_rows(demo: DemoData, grid: Grid) -> None:
    gaps = [e for e in demo.events if e.shape == "metrics_gap"]
    assert len(gaps) == 3  # one per quarter
    column = {slo.id: index for index, slo in enumerate(demo.slos)}
    expected_missing = np.zeros_like(grid.present)
    for gap in gaps:
        (slo_id,) = gap.slo_ids
        first, last = index_of(demo, gap.start), index_of(demo, gap.end)
        assert last - first == 45
        expected_missing[first:last, column[slo_id]] = True
    # Exactly the gap minutes of the gap SLO are absent; every other (minute, SLO) has its row.
    assert np.array_equal(~grid.present, expected_missing)


def test_reports_rows_exist_with_zero_traffic_at_night(demo: DemoData) -> None:
    rows = demo.buckets[demo.buckets["slo_id"] == "reports/availability"]
    hour = (rows["minute"] % 1440) // 60
    night, day = rows[hour < 6], rows[(hour >= 9) & (hour < 18)]
    assert len(night) == 6 * 60 * (rows["minute"] // 1440).nunique()
    assert (night["valid"] == 0).all() and (night["good"] == 0).all()
    assert (day["valid"] > 0).all()
    assert (demo.buckets.loc[~demo.buckets["slo_id"].str.startswith("reports/"), "valid"] > 0).all()


# ---------------------------------------------------------------------------------------------------
# Alerts and budget states (brute force, DESIGN §2)


def test_brute_force_window_sums_match_direct_sums(
    demo: DemoData, evaluations: dict[str, Evaluation]
) -> None:
    slo = next(s for s in demo.slos if s.id == "search/availability")
    rows = demo.buckets[demo.buckets["slo_id"] == slo.id]
    for t in (datetime(2026, 4, 8, 14, 30, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC), demo.end):
        for window in (5, 60, 1440):
            inside = rows[(rows["minute"] >= minute_of(t) - window) & (rows["minute"] < minute_of(t))]
            expected = (1 - inside["good"].sum() / inside["valid"].sum()) / (1 - slo.target)
            assert evaluations[slo.id].burn[window][index_of(demo, t)] == pytest.approx(expected)


def test_every_policy_state_and_both_alert_severities_occur(evaluations: dict[str, Evaluation]) -> None:
    full_tour = [
        slo_id
        for slo_id, ev in evaluations.items()
        if policy_states(ev.budget_remaining) == set(POLICY_STATES)
    ]
    assert full_tour, "no SLO goes through normal, freeze_review, reliability_focus and exhausted"
    assert any(ev.page.any() for ev in evaluations.values())
    assert any(ev.ticket.any() for ev in evaluations.values())


def test_quiet_services_never_alert(demo: DemoData, evaluations: dict[str, Evaluation]) -> None:
    assert {e.service for e in demo.events}.isdisjoint(QUIET_SERVICES)
    for slo in demo.slos:
        if slo.service in QUIET_SERVICES:
            ev = evaluations[slo.id]
            assert not ev.page.any() and not ev.ticket.any(), slo.id
            assert np.nanmin(ev.budget_remaining) > 0.5, slo.id


def test_fast_events_page_and_slow_burns_only_ticket(
    demo: DemoData, evaluations: dict[str, Evaluation]
) -> None:
    checked = 0
    for event in demo.events:
        if event.end >= demo.end:  # clipped at the end of the span: its effect may not have built up
            continue
        first, last = index_of(demo, event.start), index_of(demo, event.end)
        if event.shape in PAGING_SHAPES:
            assert any(evaluations[s].page[first : last + 60].any() for s in event.slo_ids), event.event_id
            checked += 1
        elif event.shape == "slow_burn":
            for slo_id in event.slo_ids:
                ev = evaluations[slo_id]
                assert ev.ticket[first : last + 1440].any(), event.event_id
                assert not ev.page[first : last + 360].any(), event.event_id
            checked += 1
    assert checked >= 20


def test_no_alert_fires_without_an_event(demo: DemoData, evaluations: dict[str, Evaluation]) -> None:
    for slo in demo.slos:
        ev = evaluations[slo.id]
        alerting = ev.page | ev.ticket
        explained = np.zeros_like(alerting)
        for event in demo.events:
            if slo.id in event.slo_ids and event.shape != "metrics_gap":
                explained[index_of(demo, event.start) : index_of(demo, event.end) + 1440] = True
        assert not (alerting & ~explained).any(), slo.id


# ---------------------------------------------------------------------------------------------------
# Events and deploys


def test_events_lie_inside_the_span_and_cover_every_shape(demo: DemoData) -> None:
    slo_ids = {s.id for s in demo.slos}
    for event in demo.events:
        assert demo.start <= event.start < event.end <= demo.end, event.event_id
        assert event.start.tzinfo is not None and event.start.utcoffset() == timedelta(0)
        assert set(event.slo_ids) <= slo_ids and all(s.startswith(event.service + "/") for s in event.slo_ids)
        assert event.description
    assert {e.shape for e in demo.events} == ALL_SHAPES
    assert len({e.event_id for e in demo.events}) == len(demo.events)
    assert [e.start for e in demo.events] == sorted(e.start for e in demo.events)


def test_recurrences_share_a_fingerprint_with_an_earlier_fixed_problem(demo: DemoData) -> None:
    recurrences = [e for e in demo.events if e.shape == "recurrence"]
    assert recurrences
    for recurrence in recurrences:
        originals = [
            e
            for e in demo.events
            if e.fingerprint == recurrence.fingerprint
            and e.service == recurrence.service
            and e.end < recurrence.start
        ]
        assert originals, recurrence.event_id
        gap = recurrence.start - originals[-1].end
        assert timedelta(days=14) <= gap <= timedelta(days=23), (recurrence.event_id, gap)
    fingerprints = [e.fingerprint for e in demo.events if e.shape != "recurrence"]
    per_quarter = {e.event_id[:7] for e in demo.events}
    assert len(set(fingerprints)) < len(fingerprints)  # the same problems come back quarter after quarter
    assert len(per_quarter) == 3  # 2026-Q2, 2026-Q3, 2026-Q4


def test_deploys_lie_inside_the_span_and_several_incidents_follow_one(demo: DemoData) -> None:
    services = {s.service for s in demo.slos}
    assert all(demo.start <= d.at < demo.end and d.service in services for d in demo.deploys)
    assert [d.at for d in demo.deploys] == sorted(d.at for d in demo.deploys)
    assert len({d.service for d in demo.deploys}) == len(services)
    assert all(d.version and d.description for d in demo.deploys)
    after_deploy = [
        e
        for e in demo.events
        if any(
            d.service == e.service and timedelta(0) < e.start - d.at <= timedelta(hours=1)
            for d in demo.deploys
        )
    ]
    assert len(after_deploy) >= 5
    assert len(after_deploy) < len(demo.events)


def test_span_metadata_matches_now(demo: DemoData) -> None:
    assert (demo.start, demo.end) == demo_span(NOW)
    assert demo.start == datetime(2026, 4, 1, tzinfo=UTC)
