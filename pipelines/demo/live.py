"""The live demo: inside `slo serve` (SLO_DEMO_LIVE, which `slo up` and `slo demo --live` turn on), each
worker cycle appends the demo's minutes up to now to the store, through the ordinary cycle and
incident stage (one writer), so budgets move, alerts fire and clear, and incidents are opened,
triaged and routed with nobody typing anything.

    minutes     the generator's (`generate_range`: the same counts any span gives them), plus the
                rest of the present's checkout burn (`present.BURNING_NOW`, anchored at the build's end)
                and the live burn (`present.LIVE_BURN`, two minutes after live mode began)
    ground truth every event the new minutes touch, recorded (or its end moved on) as they arrive
    clock       the wall clock; SLO_DEMO_SPEED > 1 runs the demo's clock that many times faster from
                the service's start (tests), ahead of the wall clock
    catch-up    a store built earlier is brought up to now at most a day of minutes per cycle

Only a store whose metrics come from `slo demo` goes live; any other store is left to the usual cycle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.config import Settings
from pipelines.cycle import CycleReport, Stage, run_cycle
from pipelines.demo import present
from pipelines.demo.generate import DEFAULT_SEED, demo_slos, generate_range
from pipelines.demo.replay import GroundTruth, record_ground_truth
from pipelines.demo.source import deploy_rows, ground_truth
from pipelines.sources import Pull
from pipelines.store import Snapshot
from pipelines.timeutil import datetime_of, minute_of

MAX_CATCH_UP = 1440  # minutes appended per cycle at most


class LiveDemo:
    """The live demo's clock and pull: what the service's worker calls each cycle."""

    def __init__(self, speed: float = 1.0, clock: Callable[[], dt.datetime] | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed {speed!r}: expected a number above 0")
        self.speed = speed
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._started = self._clock()
        self.live_start: int | None = None  # the demo minute live mode began at (first cycle)

    def now_minute(self) -> int:
        wall = self._clock()
        return minute_of(self._started + (wall - self._started) * self.speed)

    def pull(self, anchor: int, end: int) -> tuple[Pull, list[GroundTruth]] | None:
        """The minutes [end, now) (a day at most), or None when there is no new minute yet.
        `anchor`: where `slo demo` ended (its present's burns are placed from there)."""
        now = self.now_minute()
        if self.live_start is None:
            self.live_start = max(end, now)
        to = min(now, end + MAX_CATCH_UP)
        if to <= end:
            return None
        data = generate_range(datetime_of(end), datetime_of(to), DEFAULT_SEED)
        burns = ((present.BURNING_NOW, anchor), (present.LIVE_BURN, self.live_start))
        events = list(data.events)
        for burn, at in burns:
            lo, hi = burn.span(at)
            if lo < to and hi > end:
                present.apply(data.buckets, burn, at)
                events.append(present.event_of(burn, at, to))
        pull = Pull(buckets=data.buckets, end=to, origin="demo", deploys=deploy_rows(data.deploys))
        return pull, ground_truth(events)


@dataclass
class LiveStage:
    """The service's incident stage, after recording the new minutes' ground truth."""

    events: list[GroundTruth]
    stage: Stage

    def __call__(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        end: dt.datetime,
        publish: Callable[[], object] | None = None,
    ) -> object:
        record_ground_truth(con, self.events)
        return self.stage(con, settings, end, publish)


def demo_anchor(data_dir: Path) -> tuple[int, int] | None:
    """(where `slo demo` ended, where the store's data ends) when the store's metrics come from the
    demo; None otherwise (nothing published, or another source wrote metrics since)."""
    snapshot = Snapshot(data_dir)
    if not snapshot.exists():
        return None
    try:
        with snapshot.connection() as con:
            runs = con.execute(
                "SELECT source, data_to FROM runs WHERE source <> 'idle' ORDER BY run_id"
            ).fetchall()
            row = con.execute("SELECT max(data_to) FROM runs").fetchone()
    finally:
        snapshot.close()
    if not runs or runs[0][0] != "demo" or runs[-1][0] != "demo" or not row or row[0] is None:
        return None
    return int(runs[0][1]), int(row[0])


def run_live(settings: Settings, live: LiveDemo, stage: Stage) -> CycleReport | None:
    """One live cycle: the new minutes through `run_cycle` with `stage`; None when the store is not the
    demo's or no minute is new (the caller runs its usual cycle)."""
    found = demo_anchor(settings.data_dir)
    if found is None:
        return None
    anchor, end = found
    got = live.pull(anchor, end)
    if got is None:
        return None
    pull, events = got
    # routed as `slo demo` routes (replay.demo_settings): without a model, rule-triaged SEV3/SEV4
    # incidents try their runbook action instead of escalating for want of a model
    settings = dataclasses.replace(settings, rules_route_by_severity=True)
    return run_cycle(settings, demo_slos(), pull, stage=LiveStage(events, stage))
