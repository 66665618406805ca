"""One pipeline cycle, top to bottom: the whole product in one function.

    pull metrics → store buckets → evaluate SLOs → incidents (engine alerts → inbox → fold →
    triage/route → remediate/escalate → verify → timers → documents) → publish: the analytics
    stage (incident durations and their quarterly roll-up), then the snapshot

`run_cycle` is what `slo run`, `slo demo` and the service's worker call. Those that continue a store
(the service's worker, `slo run`) first call `store.republish_if_unreadable`, before anything of theirs
reads the published snapshot, so an emptied or damaged one never stops the cycle that rebuilds it;
`slo demo` rebuilds the store from nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from pipelines import engine
from pipelines.buckets import write_buckets
from pipelines.catalog import sync_slos
from pipelines.config import Settings
from pipelines.incidents import stage as incidents
from pipelines.model import Slo
from pipelines.progress import Progress
from pipelines.staleness import record_source_state
from pipelines.store import Writer


@dataclass
class Pull:
    """What a source delivered: buckets, and the instant up to which the data is complete."""

    buckets: pd.DataFrame
    end: int  # exclusive bucket bound (epoch minute): SLOs are evaluated up to this instant
    origin: str
    deploys: list[tuple[str, dt.datetime, str, str]] = field(default_factory=list)
    events: list[tuple[object, ...]] = field(default_factory=list)
    # SLO id → minute up to which this pull is complete, for incremental sources (Prometheus).
    high_water: dict[str, int] = field(default_factory=dict)


@dataclass
class CycleReport:
    slos: int
    buckets_written: int
    minutes_evaluated: int
    slos_dense: int
    slos_incremental: int
    end: int


def run_cycle(
    settings: Settings,
    slos: Sequence[Slo],
    pull: Pull,
    *,
    reset: bool = False,
    progress: Progress | None = None,
    incident_runner: incidents.Runner | None = None,
) -> CycleReport:
    """Store what was pulled, evaluate every SLO up to `pull.end`, run the incident and analytics
    stages, and publish a snapshot."""
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with Writer(settings.data_dir) as writer:
        if reset:
            writer.reset()
        con = writer.db
        keys = sync_slos(con, slos)
        written = write_buckets(con, pull.buckets, keys, pull.origin)
        _write_context(con, pull)
        record_source_state(con, keys, pull.origin, pull.high_water)
        result = engine.evaluate(con, slos, pull.end, progress=progress)
        incidents.run_stage(con, settings, pull.origin, pull.end, demo_replay=reset, runner=incident_runner)
        _record_run(con, started, pull, written, result.minutes_evaluated)
        writer.publish()  # the analytics stage (pipelines/analytics/tables.py), then the snapshot
    return CycleReport(
        slos=len(slos),
        buckets_written=written,
        minutes_evaluated=result.minutes_evaluated,
        slos_dense=result.slos_dense,
        slos_incremental=result.slos_incremental,
        end=pull.end,
    )


def _write_context(con: duckdb.DuckDBPyConnection, pull: Pull) -> None:
    for service, at, version, description in pull.deploys:
        con.execute(
            "INSERT INTO deploys VALUES (?, ?, ?, ?)",
            [service, at.replace(tzinfo=None), version, description],
        )
    for row in pull.events:
        con.execute("INSERT OR REPLACE INTO demo_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(row))


def _record_run(
    con: duckdb.DuckDBPyConnection, started: dt.datetime, pull: Pull, written: int, evaluated: int
) -> None:
    run_id = (con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone() or (1,))[0]
    lo = int(pull.buckets["minute"].min()) if len(pull.buckets) else None
    con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            started,
            dt.datetime.now(dt.UTC).replace(tzinfo=None),
            pull.origin,
            lo,
            pull.end,
            written,
            evaluated,
        ],
    )
