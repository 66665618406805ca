"""The demo's present (pipelines/demo/present.py) on the generator's data at two different ends: every
policy state held at the end, by budgets recomputed here with plain sums over each SLO's window; the
history before the present's first burn unchanged, minute for minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.demo import present
from pipelines.demo.generate import DemoData, demo_slos, generate_demo, generate_range
from pipelines.demo.live import LiveDemo
from pipelines.timeutil import datetime_of

# Mid-quarter (the known-answer tests' end) and a few hours into a quarter.
ENDS = [datetime(2026, 11, 23, 12, 0, tzinfo=UTC), datetime(2027, 1, 1, 3, 30, tzinfo=UTC)]


def minute_of(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


@pytest.fixture(scope="module", params=ENDS, ids=lambda end: end.strftime("%Y-%m-%dT%H%M"))
def shaped(request: pytest.FixtureRequest) -> tuple[DemoData, DemoData, present.Present]:
    original = generate_demo(request.param)
    data = generate_demo(request.param)
    return original, data, present.shape(data)


def remaining(data: DemoData, slo_id: str) -> float:
    """budget_remaining at the end over the SLO's rolling window: 1 − bad / ((1 − target) · valid)."""
    slo = next(s for s in data.slos if s.id == slo_id)
    end = minute_of(data.end)
    rows = data.buckets[
        (data.buckets["slo_id"] == slo_id)
        & (data.buckets["minute"] >= end - slo.window.minutes)
        & (data.buckets["minute"] < end)
    ]
    valid, good = int(rows["valid"].sum()), int(rows["good"].sum())
    return 1 - (valid - good) / ((1 - slo.target) * valid)


def test_each_shaped_state_is_held_at_the_end(shaped) -> None:
    _, data, result = shaped
    assert set(result.states) == {"exhausted", "reliability_focus", "freeze_review"}
    assert len(set(result.states.values())) == 3
    r = {state: remaining(data, slo_id) for state, slo_id in result.states.items()}
    assert r["exhausted"] <= 0
    assert 0 < r["reliability_focus"] < 0.25
    assert 0.25 <= r["freeze_review"] <= 0.5
    for state, level in (("exhausted", -0.2), ("reliability_focus", 0.12), ("freeze_review", 0.4)):
        if any(e.event_id.endswith(f"present-{state}") for e in result.events):
            assert r[state] == pytest.approx(level, abs=0.01)  # what the burn was sized for


def test_the_history_before_the_present_is_the_generators(shaped) -> None:
    original, data, result = shaped
    first = min(minute_of(e.start) for e in result.events)
    assert minute_of(data.end) - first <= 20 * 60  # the present is the last 20 hours at most
    before = data.buckets["minute"] < first
    assert data.buckets[before].equals(original.buckets[before])
    assert data.buckets[["slo_id", "minute", "valid"]].equals(original.buckets[["slo_id", "minute", "valid"]])
    assert (data.buckets["good"] <= original.buckets["good"]).all()  # only good events turned bad
    changed = set(data.buckets.loc[data.buckets["good"] != original.buckets["good"], "slo_id"])
    assert changed == {slo_id for e in result.events for slo_id in e.slo_ids}
    assert [e for e in data.events if e not in result.events] == original.events


def test_checkout_burns_now_at_eight_percent(shaped) -> None:
    original, data, result = shaped
    end = minute_of(data.end)
    rows = (data.buckets["slo_id"] == "checkout-api/availability") & (data.buckets["minute"] >= end - 20)
    assert rows.sum() == 20
    bad_before = (original.buckets.loc[rows, "valid"] - original.buckets.loc[rows, "good"]).sum()
    bad_now = (data.buckets.loc[rows, "valid"] - data.buckets.loc[rows, "good"]).sum()
    assert (bad_now - bad_before) / original.buckets.loc[rows, "good"].sum() == pytest.approx(0.08, abs=0.001)
    event = next(e for e in result.events if e.slo_ids == ("checkout-api/availability",))
    assert (event.start, event.end) == (data.end - timedelta(minutes=20), data.end)  # still running
    deploy = next(d for d in data.deploys if d.description == "payment provider SDK upgrade")
    assert (deploy.service, deploy.at) == ("checkout-api", data.end - timedelta(minutes=35))


def test_the_approval_alert_has_no_auth_deploy_to_blame(shaped) -> None:
    original, data, result = shaped
    (alert,) = result.alerts
    assert (alert.service, alert.starts, alert.resolves_after) == (
        "auth",
        (data.end - timedelta(minutes=3)).replace(tzinfo=None),
        None,
    )
    recent = [d for d in data.deploys if d.service == "auth" and d.at >= data.end - timedelta(hours=2)]
    assert recent == []
    assert result.hands_off == (data.end - timedelta(minutes=20)).replace(tzinfo=None)
    others = [d for d in original.deploys if d.service != "auth" or d.at < data.end - timedelta(hours=2)]
    added = [d for d in data.deploys if d not in original.deploys]
    assert sorted(others + added, key=lambda d: d.at) == sorted(data.deploys, key=lambda d: d.at)


def test_a_calendar_window_or_an_slo_without_rows_has_no_budget_here() -> None:
    frame = pd.DataFrame(
        {"slo_id": ["a/b"], "minute": np.array([10], dtype=np.int64), "good": [1], "valid": [1]}
    )
    slos = demo_slos()
    monthly = next(s for s in slos if s.window.kind != "rolling")
    rolling = next(s for s in slos if s.window.kind == "rolling")
    assert present.budget_remaining(frame, monthly, 11) is None
    assert present.budget_remaining(frame, rolling, 11) is None


def test_a_range_has_the_same_minutes_as_the_whole_span(shaped) -> None:
    original, _, _ = shaped
    start = original.end - timedelta(days=2, minutes=7)
    part = generate_range(start, original.end)
    inside = original.buckets["minute"] >= minute_of(start)
    assert part.buckets.equals(original.buckets[inside].reset_index(drop=True))
    assert part.deploys == [d for d in original.deploys if d.at >= start]
    assert {e.event_id for e in part.events} == {e.event_id for e in original.events if e.end > start}


def test_the_live_pull_goes_on_from_the_store_and_starts_its_burn_two_minutes_in() -> None:
    anchor = minute_of(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    wall = [datetime(2026, 11, 23, 12, 10, 30, tzinfo=UTC)]
    live = LiveDemo(speed=1.0, clock=lambda: wall[0])
    got = live.pull(anchor, anchor + 10)
    assert got is None and live.live_start == anchor + 10  # nothing new yet: the store is at 12:10
    wall[0] += timedelta(minutes=5)
    got = live.pull(anchor, anchor + 10)
    assert got is not None
    pull, events = got
    assert (pull.end, pull.origin) == (anchor + 15, "demo")
    plain = generate_range(datetime_of(anchor + 10), datetime_of(anchor + 15))
    frame, base = pull.buckets, plain.buckets
    assert isinstance(frame, pd.DataFrame) and frame["minute"].tolist() == base["minute"].tolist()

    def bad_share(slo_id: str, minutes: range) -> float:
        rows = (frame["slo_id"] == slo_id) & frame["minute"].isin([anchor + m for m in minutes])
        return (base.loc[rows, "good"] - frame.loc[rows, "good"]).sum() / base.loc[rows, "good"].sum()

    assert bad_share("checkout-api/availability", range(10, 15)) == pytest.approx(0.08, abs=0.002)
    assert bad_share("payments/availability", range(10, 12)) == 0  # the live burn starts at +2
    assert bad_share("payments/availability", range(12, 15)) == pytest.approx(0.12, abs=0.002)
    ids = {e[0]: e for e in events}
    live_event = ids["20261123T1210-live-payments-card-network"]
    assert (live_event[3], live_event[4]) == (datetime(2026, 11, 23, 12, 12), datetime(2026, 11, 23, 12, 15))
    assert ids["20261123T1200-present-checkout-provider"][4] == datetime(2026, 11, 23, 12, 15)  # runs on
    untouched = ~frame["slo_id"].isin(["checkout-api/availability", "payments/availability"])
    assert frame[untouched].equals(base[untouched])


def test_the_live_clock_runs_faster_with_a_speed() -> None:
    wall = [datetime(2026, 11, 23, 12, 0, tzinfo=UTC)]
    live = LiveDemo(speed=30.0, clock=lambda: wall[0])
    wall[0] += timedelta(seconds=20)
    assert live.now_minute() == minute_of(datetime(2026, 11, 23, 12, 10, tzinfo=UTC))
    with pytest.raises(ValueError, match="above 0"):
        LiveDemo(speed=0)
