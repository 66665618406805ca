"""The write path: one pipeline cycle, top to bottom — the whole product in one function — and the
only module that opens the writer.

    pull metrics → store buckets → evaluate SLOs → incident stage (engine alerts → inbox → fold →
    triage/route → remediate/escalate → verify → timers → documents) → publish: the analytics
    stage (incident durations and their quarterly roll-up), then the snapshot

`run_cycle` is what every command that pulls metrics and the service's worker call; the incident stage
is passed in (`IncidentStage`, unless a caller brings its own clock or history to replay), with the
writer's `publish`: the service's stage also publishes right after a fold that opened incidents, so
they are listed before triage and the rest of the stage have run for each. Those that
continue a store (the service's worker, `slo run`) first call `republish_if_unreadable`, before
anything of theirs reads the published snapshot, so an emptied or damaged one never stops the cycle
that rebuilds it.

Every other change to DuckDB also goes through here, under the same single-writer lock
(DESIGN §1): `apply_inbox` (a CLI command applied at once when no service runs), `import_history`
(`slo import incidents`), `run_prometheus` (a pull, or on a failed one the stale marks beside the
snapshot) and `republish_if_unreadable`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb

from pipelines import engine
from pipelines.analytics import importer
from pipelines.analytics import tables as analytics
from pipelines.analytics.importer import ImportOutcome
from pipelines.buckets import Staged, stage_buckets, write_staged
from pipelines.catalog import sync_slos
from pipelines.config import Settings
from pipelines.errors import PullFailed, SourceError, StoreError, WriterBusy
from pipelines.incidents.stage import IncidentStage
from pipelines.model import Slo
from pipelines.progress import Progress
from pipelines.sources import Pull
from pipelines.staleness import SourceState, mark_stale, record_source_state, source_states
from pipelines.store import Snapshot, Writer, served_by, snapshot_problem
from pipelines.timeutil import datetime_of, utc_now

if TYPE_CHECKING:  # imported where it is used: a history load from files needs neither it nor HTTP
    from pipelines.sources import prometheus as prometheus_source


class Stage(Protocol):
    """A cycle's incident stage: runs on the writer's connection once the SLOs are evaluated up to
    `end` (the data's end, naive UTC) and before the publish. It may call `publish` (the writer's) to
    publish early, e.g. the service's stage once its fold has opened incidents, so they are listed
    before the slower steps after the fold (triage, escalation, documents) have run."""

    def __call__(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        end: dt.datetime,
        publish: Callable[[], object] | None = None,
    ) -> object: ...


@dataclass
class CycleReport:
    slos: int
    buckets_written: int
    minutes_evaluated: int
    slos_dense: int
    slos_incremental: int
    end: int


def open_writer(data_dir: Path) -> Writer:
    """The writer every door uses: each publish first runs the analytics stage."""
    return Writer(data_dir, before_publish=analytics.refresh)


def run_cycle(
    settings: Settings,
    slos: Sequence[Slo],
    pull: Pull,
    *,
    stage: Stage | None = None,
    reset: bool = False,
    progress: Progress | None = None,
) -> CycleReport:
    """Store what was pulled, evaluate every SLO up to `pull.end`, run the incident stage and the
    analytics stage, and publish a snapshot. `reset` rebuilds the store from nothing."""
    started = utc_now()
    stage = stage or IncidentStage()
    with open_writer(settings.data_dir) as writer:
        if reset:
            writer.reset()
        con = writer.db
        ids = [slo.id for slo in slos]
        staged = stage_buckets(con, pull.buckets, ids, pull.origin)  # checked before anything is written
        end = pull.end if pull.end is not None else _data_end(staged, pull.origin)
        keys = sync_slos(con, slos)
        written = write_staged(con, ids, keys)
        _write_deploys(con, pull)
        record_source_state(con, keys, pull.origin, pull.high_water)
        result = engine.evaluate(con, slos, end, progress=progress)
        stage(con, settings, datetime_of(end).replace(tzinfo=None), writer.publish)
        _record_run(con, started, pull.origin, staged.first, end, written, result.minutes_evaluated)
        writer.publish()  # the analytics stage (pipelines/analytics/tables.py), then the snapshot
    return CycleReport(
        slos=len(slos),
        buckets_written=written,
        minutes_evaluated=result.minutes_evaluated,
        slos_dense=result.slos_dense,
        slos_incremental=result.slos_incremental,
        end=end,
    )


def _data_end(staged: Staged, origin: str) -> int:
    if staged.last is None:
        raise SourceError(f"{origin}: no events in the requested range")
    return staged.last + 1


def run_prometheus(
    settings: Settings,
    slos: Sequence[Slo],
    start: int | None = None,
    end: int | None = None,
    progress: Progress | None = None,
    evaluate_progress: Progress | None = None,
    stage: Stage | None = None,
) -> tuple[CycleReport, prometheus_source.PullStats]:
    """Pull from Prometheus (only what the published high-water marks say is new) and run the cycle;
    on an incomplete pull publish nothing, mark the failed SLOs stale beside the snapshot (under the
    writer lock, which guards that side file too), and raise PullFailed."""
    from pipelines.sources import prometheus as prometheus_source

    states = published_source_states(settings.data_dir, prometheus_source.SOURCE)
    try:
        pull, stats = prometheus_source.pull_since(settings.prometheus, slos, states, start, end, progress)
    except PullFailed as exc:
        try:
            with open_writer(settings.data_dir):
                mark_stale(settings.data_dir, prometheus_source.SOURCE, exc.failures, states)
        except StoreError as lock_error:  # the writer is busy (WriterBusy) or cannot be opened
            raise PullFailed(exc.failures, exc.total, f" (not recorded: {lock_error})") from exc
        raise
    return run_cycle(settings, slos, pull, stage=stage, progress=evaluate_progress), stats


def published_source_states(data_dir: Path, source: str) -> dict[str, SourceState]:
    """A source's high-water marks in the published snapshot (none before the first publish)."""
    snapshot = Snapshot(data_dir)
    if not snapshot.exists():
        return {}
    try:
        with snapshot.connection() as con:
            return source_states(con, source)
    finally:
        snapshot.close()


def apply_inbox(settings: Settings, stage: Stage | None = None) -> bool:
    """Fold the inbox and run the incident stage now, then publish: what a CLI command does when no
    service runs. False when a service runs on the store, even between two of its cycles (its next cycle
    applies it, with the service's settings: a CLI without the PagerDuty or Slack keys must not be the one
    that resolves a page), or when another writer holds the store (it is left in the inbox)."""
    if served_by(settings.data_dir) is not None:
        return False
    stage = stage or IncidentStage()
    try:
        with open_writer(settings.data_dir) as writer:
            stage(writer.db, settings, utc_now())
            writer.publish()
    except WriterBusy:
        return False
    return True


def import_history(data_dir: Path, fmt: str, path: Path) -> ImportOutcome:
    """`slo import incidents`: the whole file parsed and made durable in the inbox first (nothing is
    stored when any part is bad), then its rows folded into the store and published — unless another
    writer holds the store: then they wait in the inbox and its fold applies them (`queued`)."""
    outcome, rows = importer.append_file(data_dir, fmt, path)
    if not rows:
        return outcome
    try:
        with open_writer(data_dir) as writer:
            outcome.applied = importer.fold_import_rows(writer.db, rows)
            writer.publish()
    except WriterBusy:
        outcome.queued = True
    return outcome


def republish_if_unreadable(data_dir: Path) -> str | None:
    """What a cycle does first, before anything reads the snapshot: when `store.snapshot_problem` finds
    one, take the writer lock and publish again from the work file. The check needs no lock, so a
    healthy snapshot costs one small read; returns the problem that was repaired (None: nothing to do)."""
    if snapshot_problem(data_dir) is None:
        return None
    with open_writer(data_dir) as writer:
        return writer.republish_if_unreadable()  # checked again: another writer may have published


def _write_deploys(con: duckdb.DuckDBPyConnection, pull: Pull) -> None:
    for service, at, version, description in pull.deploys:
        con.execute(
            "INSERT INTO deploys VALUES (?, ?, ?, ?)",
            [service, at.replace(tzinfo=None), version, description],
        )


def _record_run(
    con: duckdb.DuckDBPyConnection,
    started: dt.datetime,
    origin: str,
    first: int | None,
    end: int,
    written: int,
    evaluated: int,
) -> None:
    run_id = (con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone() or (1,))[0]
    con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, started, utc_now(), origin, first, end, written, evaluated],
    )
