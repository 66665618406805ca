"""The DuckDB store: schema migrations, the single-writer lock, snapshot publishing and the reader.

One process writes (DESIGN §1). It takes an exclusive OS lock on `<data>/writer.lock` and works on
`<data>/work.duckdb`, which holds everything. A publish costs what changed, not the history
(`pipelines/partitions.py`): the closed hours, days and months of the big tables (buckets,
checkpoints, slo_series) that changed or closed since the last publish are written as new,
never-modified Parquet files under `<data>/parts/`, then a small new snapshot file — every other
table, the open hour's rows, and the list of files it reads — replaces `<data>/slo.duckdb` with an
atomic `os.replace`. Readers never open
the work file: `Snapshot` ATTACHes the published file READ_ONLY into an in-memory connection, gives
each big table its own name as a view over that snapshot's files and open rows, and re-attaches when
a new file has been published (new inode). A file no snapshot lists any more is deleted only after a
grace period, so a reader still querying the snapshot it attached finds its files.

A published file that cannot be read (emptied, cut short, overwritten), or one of its partition files
missing or changed, is `SnapshotUnreadable` to every reader, one line instead of a DuckDB traceback;
each cycle starts with `cycle.republish_if_unreadable`, which publishes again from the work file
(rewriting any partition file that is not as published), so the snapshot reads again after the next
cycle.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from pipelines import partitions
from pipelines.errors import SnapshotUnreadable, StoreError, WriterBusy

WORK_FILE = "work.duckdb"
SNAPSHOT_FILE = "slo.duckdb"
LOCK_FILE = "writer.lock"
# Held (shared flock) by every running `slo serve` whose worker applies the inbox, for its lifetime: a CLI
# step then leaves the step to the service, whose settings (PagerDuty, Slack, the model) its outbound
# effects need, instead of applying it between two cycles with the CLI's own environment.
SERVICE_FILE = "service.lock"
PROBE_TRIES, PROBE_PAUSE_S = 5, 0.02
# What the last publish wrote (size, modification time in ns): a snapshot that no longer matches was
# truncated or overwritten in place, or replaced by something else, and is published again. Not the
# inode: a data directory copied with its times (cp -a, rsync -a, a restore) is still the same store.
PUBLISHED_FILE = "published.json"
# The name the snapshot being written is attached under in the writer's connection.
PUBLISH_CATALOG = "publishing"
# A DuckDB file starts with its main header and two database headers, 4 KiB each; a shorter file holds
# no database at all.
HEADER_BYTES = 3 * 4096

log = logging.getLogger(__name__)

# Versioned migrations: each entry runs once, in order, inside a transaction; the version reached
# is kept in `schema_version`. Never edit a released migration: append a new one.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        -- Every SLO the specs define; slo_key is a stable integer surrogate used by the hot tables.
        CREATE TABLE slos (
            slo_key INTEGER PRIMARY KEY,
            slo_id VARCHAR NOT NULL UNIQUE,
            service VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            owner VARCHAR,
            category VARCHAR,
            sli_kind VARCHAR,
            target DOUBLE NOT NULL,
            window_text VARCHAR NOT NULL,
            window_kind VARCHAR NOT NULL,
            window_minutes INTEGER NOT NULL,
            calendar VARCHAR,
            budget_minutes DOUBLE NOT NULL,
            alerts_custom BOOLEAN NOT NULL,
            policy JSON,
            source_file VARCHAR,
            source_line INTEGER,
            active BOOLEAN NOT NULL DEFAULT TRUE
        );
        -- The burn-rate alert conditions of every SLO; bit is the condition's bit in `firing`.
        CREATE TABLE slo_alerts (
            slo_key INTEGER NOT NULL,
            bit INTEGER NOT NULL,
            severity VARCHAR NOT NULL,
            long_window INTEGER NOT NULL,
            short_window INTEGER NOT NULL,
            factor DOUBLE NOT NULL,
            PRIMARY KEY (slo_key, bit)
        );
        -- Per-minute good/valid counts as delivered by a source; a missing row is a minute with no data.
        CREATE TABLE buckets (
            slo_key INTEGER NOT NULL,
            minute INTEGER NOT NULL,      -- minutes since the Unix epoch, UTC; bucket [minute, minute+1)
            good BIGINT NOT NULL,
            valid BIGINT NOT NULL
        );
        -- Cumulative sums of every bucket before `minute` (a multiple of 60): O(1) window sums.
        CREATE TABLE checkpoints (
            slo_key INTEGER NOT NULL,
            minute INTEGER NOT NULL,
            cum_good BIGINT NOT NULL,
            cum_valid BIGINT NOT NULL
        );
        -- Per SLO: how far buckets were evaluated, and the earliest minute changed since.
        CREATE TABLE engine_state (
            slo_key INTEGER PRIMARY KEY,
            first_minute INTEGER,
            evaluated_to INTEGER,         -- evaluation instants up to and including this minute are done
            dirty_from INTEGER            -- earliest bucket minute written since; NULL when clean
        );
        -- Multiwindow burn-rate alert intervals: [start_minute, end_minute), end NULL while firing.
        CREATE TABLE alert_intervals (
            slo_key INTEGER NOT NULL,
            bit INTEGER NOT NULL,
            start_minute INTEGER NOT NULL,
            end_minute INTEGER
        );
        -- Error-budget policy state changes; from_state NULL for the first known state.
        CREATE TABLE policy_transitions (
            slo_key INTEGER NOT NULL,
            minute INTEGER NOT NULL,
            from_state VARCHAR,
            to_state VARCHAR,
            budget_remaining DOUBLE
        );
        -- A 15-minute series of the evaluation for charts (status at any minute is computed on demand).
        CREATE TABLE slo_series (
            slo_key INTEGER NOT NULL,
            minute INTEGER NOT NULL,
            sli DOUBLE,
            budget_remaining DOUBLE,
            policy_state VARCHAR,
            burn_5m DOUBLE, burn_30m DOUBLE, burn_1h DOUBLE, burn_2h DOUBLE,
            burn_6h DOUBLE, burn_1d DOUBLE, burn_3d DOUBLE,
            firing INTEGER
        );
        -- Deploy events (from the demo or a deploy feed), for triage context and correlation.
        CREATE TABLE deploys (
            service VARCHAR NOT NULL,
            deployed_at TIMESTAMP NOT NULL,
            version VARCHAR,
            description VARCHAR
        );
        -- Ground truth of the demo's injected events, kept to score alerting and incidents.
        CREATE TABLE demo_events (
            event_id VARCHAR PRIMARY KEY,
            service VARCHAR NOT NULL,
            slo_ids VARCHAR[],
            start_at TIMESTAMP NOT NULL,
            end_at TIMESTAMP NOT NULL,
            shape VARCHAR NOT NULL,
            fingerprint VARCHAR,
            description VARCHAR
        );
        -- One row per pipeline run, so readers can tell how fresh the snapshot is.
        CREATE TABLE runs (
            run_id INTEGER PRIMARY KEY,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            source VARCHAR,
            data_from INTEGER,
            data_to INTEGER,
            buckets_written BIGINT,
            minutes_evaluated BIGINT
        );
        """,
    ),
    (
        2,
        """
        -- The incident flow (issue 4), folded from the inbox. Shared by analytics, reports and the dashboard.
        -- Where the fold stands in the inbox (rows with seq <= last_seq are in DuckDB).
        CREATE TABLE inbox_cursor (last_seq BIGINT NOT NULL);
        INSERT INTO inbox_cursor VALUES (0);
        -- Every alert notification accepted (one row per inbox alert row).
        CREATE TABLE alerts (
            dedup_key VARCHAR PRIMARY KEY,
            inbox_seq BIGINT,
            source VARCHAR NOT NULL,          -- alertmanager | pagerduty | generic | engine | import
            status VARCHAR NOT NULL,          -- firing | resolved
            service VARCHAR NOT NULL,
            slo_id VARCHAR,
            fingerprint VARCHAR NOT NULL,
            severity VARCHAR,                 -- as mapped from the source, before triage
            title VARCHAR,
            description VARCHAR,
            labels JSON,
            annotations JSON,
            starts_at TIMESTAMP NOT NULL,
            ends_at TIMESTAMP,
            received_at TIMESTAMP NOT NULL,
            incident_id VARCHAR               -- the incident it opened or joined (null: none)
        );
        CREATE TABLE incidents (
            id VARCHAR PRIMARY KEY,           -- INC-0001… in creation order; imported: IMP-<source id>
            service VARCHAR NOT NULL,
            title VARCHAR NOT NULL,
            severity VARCHAR,                 -- SEV1..SEV4 (triaged, else mapped from the source)
            status VARCHAR NOT NULL,          -- triggered | acknowledged | mitigated | resolved | closed
            source VARCHAR NOT NULL,          -- source of the first alert, or statuspage | csv when imported
            fingerprint VARCHAR,
            slo_id VARCHAR,                   -- the main linked SLO, when any
            impact_start TIMESTAMP, impact_start_source VARCHAR,
            detected_at TIMESTAMP, detected_at_source VARCHAR,
            acknowledged_at TIMESTAMP, acknowledged_at_source VARCHAR,
            mitigated_at TIMESTAMP, mitigated_at_source VARCHAR,
            resolved_at TIMESTAMP, resolved_at_source VARCHAR,
            closed_at TIMESTAMP,
            postmortem_done_at TIMESTAMP,
            route VARCHAR,                    -- escalate | auto_remediate | null
            root_cause_category VARCHAR,
            root_cause VARCHAR,
            fix VARCHAR,
            budget_consumed DOUBLE,           -- share of the main SLO's budget spent in the incident
            repeat_of VARCHAR,                -- the previous incident this one repeats (DESIGN §2)
            external_id VARCHAR,              -- PagerDuty / Statuspage id
            imported BOOLEAN NOT NULL DEFAULT FALSE,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        -- SLOs linked to an incident, with the budget each consumed.
        CREATE TABLE incident_slos (
            incident_id VARCHAR NOT NULL,
            slo_id VARCHAR NOT NULL,
            budget_consumed DOUBLE,
            PRIMARY KEY (incident_id, slo_id)
        );
        -- Every step, in order: alert, triage, route, remediation, notification, human step, document.
        CREATE TABLE timeline (
            incident_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            occurred_at TIMESTAMP NOT NULL,
            kind VARCHAR NOT NULL,
            source VARCHAR NOT NULL,          -- alertmanager | pagerduty | engine | triage | router | cli …
            actor VARCHAR,
            message VARCHAR NOT NULL,
            data JSON,
            PRIMARY KEY (incident_id, seq)
        );
        CREATE TABLE triage (
            incident_id VARCHAR NOT NULL,
            attempt INTEGER NOT NULL,
            method VARCHAR NOT NULL,          -- model | rules
            model VARCHAR,
            severity VARCHAR NOT NULL,
            root_cause_hypothesis VARCHAR,
            recommended_action VARCHAR,
            confidence DOUBLE,
            rationale VARCHAR,
            latency_ms DOUBLE,
            raw VARCHAR,
            error VARCHAR,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (incident_id, attempt)
        );
        CREATE TABLE remediations (
            id VARCHAR PRIMARY KEY,
            incident_id VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            -- awaiting_approval | rejected | running | succeeded | failed | timed_out | dry_run
            status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER,
            output VARCHAR,
            verified BOOLEAN,
            approved_by VARCHAR,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE notifications (
            incident_id VARCHAR NOT NULL,
            channel VARCHAR NOT NULL,         -- pagerduty | slack
            status VARCHAR NOT NULL,          -- sent | failed | skipped
            attempts INTEGER NOT NULL,
            detail VARCHAR,
            sent_at TIMESTAMP NOT NULL
        );
        CREATE TABLE action_items (
            id VARCHAR PRIMARY KEY,
            incident_id VARCHAR NOT NULL,
            title VARCHAR NOT NULL,
            owner VARCHAR,
            priority VARCHAR,
            due_date DATE,
            status VARCHAR NOT NULL,          -- open | done
            done_at TIMESTAMP,
            created_at TIMESTAMP NOT NULL
        );
        -- Generated documents: triage_report | stakeholder_update | postmortem | runbook_suggestion.
        CREATE TABLE documents (
            incident_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            model_written BOOLEAN NOT NULL DEFAULT FALSE,
            due_at TIMESTAMP,                 -- stakeholder updates: when the next one is due
            body VARCHAR NOT NULL
        );
        """,
    ),
    (
        3,
        """
        -- Per SLO and source: up to where the source's data is complete (issue 3). A pull is
        -- incremental from high_water_minute (minus a short overlap re-read). Failed pulls are not
        -- recorded here (nothing of them is published): they are marked stale in the side file
        -- <data>/stale.json, and a mark is current while it is newer than last_success_at.
        CREATE TABLE source_state (
            slo_key INTEGER NOT NULL,
            source VARCHAR NOT NULL,          -- prometheus
            high_water_minute INTEGER NOT NULL,  -- buckets before this minute are complete
            last_success_at TIMESTAMP NOT NULL,  -- when the pull that reached it finished
            PRIMARY KEY (slo_key, source)
        );
        """,
    ),
    (
        4,
        """
        -- The incident flow's own bookkeeping (issue 4, deliverables 3, 5 and 6).
        -- Work the fold leaves for the respond stage (which does the I/O): a triage to run, an
        -- escalation to send (the reason), and when the incident was first escalated to a human.
        ALTER TABLE incidents ADD COLUMN triage_pending BOOLEAN DEFAULT FALSE;
        ALTER TABLE incidents ADD COLUMN escalation_pending VARCHAR;
        ALTER TABLE incidents ADD COLUMN escalated_at TIMESTAMP;
        ALTER TABLE incidents ADD COLUMN escalation_tier INTEGER DEFAULT 0;
        ALTER TABLE incidents ADD COLUMN root_cause_at TIMESTAMP;
        ALTER TABLE incidents ADD COLUMN impact_method VARCHAR;
        ALTER TABLE incidents ADD COLUMN documents_at TIMESTAMP;  -- updated_at as of the last documents pass
        -- Remediation verification (seed 003): the deadline, and when the SLI was seen recovered.
        ALTER TABLE remediations ADD COLUMN verify_by TIMESTAMP;
        ALTER TABLE remediations ADD COLUMN verified_at TIMESTAMP;
        ALTER TABLE remediations ADD COLUMN dry_run BOOLEAN DEFAULT FALSE;
        -- Inbox rows the fold could not apply (bad shape, unknown incident): kept with the reason,
        -- and the cursor moves past them so one bad row never blocks the inbox.
        CREATE TABLE inbox_rejects (
            seq BIGINT PRIMARY KEY,
            kind VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            dedup_key VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            rejected_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        5,
        """
        -- Hardening (issue 11). The key of the row the cursor stands on: an inbox that no longer holds
        -- it (deleted, restored from an older backup, replaced) is refolded from its start.
        ALTER TABLE inbox_cursor ADD COLUMN last_key VARCHAR;
        -- Commands folded, by inbox de-duplication key, so a refold never applies one twice (alerts
        -- have their own key in `alerts`).
        CREATE TABLE folded_commands (dedup_key VARCHAR PRIMARY KEY, folded_at TIMESTAMP NOT NULL);
        -- One step that failed on one record (an incident or a remediation): the cycle rolls that
        -- record back, keeps the failure here and on the incident's timeline, and goes on with every
        -- other record. cleared_at is set once the step succeeds for the record again.
        CREATE TABLE step_failures (
            step VARCHAR NOT NULL,            -- triage | escalation | verification | timers | ...
            record VARCHAR NOT NULL,          -- incident id (or remediation id)
            incident_id VARCHAR,
            error VARCHAR NOT NULL,
            first_at TIMESTAMP NOT NULL,
            last_at TIMESTAMP NOT NULL,
            attempts INTEGER NOT NULL,
            cleared_at TIMESTAMP,
            PRIMARY KEY (step, record)
        );
        """,
    ),
    (
        6,
        """
        -- Publishing by partitions (issue 13; pipelines/partitions.py). Per big table: the newest minute
        -- ever written, and the first hour the last publish kept in the snapshot (the hours before it
        -- are Parquet files; NULL: none yet, so the next publish writes every closed hour).
        CREATE TABLE publish_marks (
            table_name VARCHAR PRIMARY KEY,
            last_minute INTEGER,
            open_hour INTEGER
        );
        INSERT INTO publish_marks SELECT 'buckets', max(minute), NULL FROM buckets HAVING count(*) > 0;
        INSERT INTO publish_marks SELECT 'checkpoints', max(minute), NULL FROM checkpoints
            HAVING count(*) > 0;
        INSERT INTO publish_marks SELECT 'slo_series', max(minute), NULL FROM slo_series
            HAVING count(*) > 0;
        -- Hours (since the Unix epoch, UTC) whose rows were written or deleted since the last publish.
        CREATE TABLE publish_changes (
            table_name VARCHAR NOT NULL,
            hour INTEGER NOT NULL,
            PRIMARY KEY (table_name, hour)
        );
        -- The files the last publish listed: per big table, one per closed day or closed month (path
        -- under the data dir).
        CREATE TABLE publish_parts (
            table_name VARCHAR NOT NULL,
            hour INTEGER NOT NULL,            -- its first hour (hours since the Unix epoch, UTC)
            span INTEGER NOT NULL,            -- hours it holds: 1, 24, or a closed month's
            file VARCHAR NOT NULL,
            rows BIGINT NOT NULL,
            bytes BIGINT NOT NULL,
            PRIMARY KEY (table_name, hour)
        );
        -- Files no snapshot lists any more since retired_at (Unix seconds): deleted after a grace period.
        CREATE TABLE publish_retired (file VARCHAR PRIMARY KEY, retired_at DOUBLE NOT NULL);
        """,
    ),
    (
        7,
        """
        -- Buckets of closed hours are stored once, as Parquet files in the publish layout (issue 13;
        -- partitions.store_rows): a history load writes each row once instead of into this database
        -- and again as files at the publish. The table keeps the open hour's rows; the writer reads
        -- `buckets` through a temporary view over the files and this table (partitions.store_view),
        -- and this view serves a database without files (in memory). Rows already stored here move to
        -- files at the next write or publish.
        ALTER TABLE buckets RENAME TO buckets_open;
        CREATE VIEW buckets AS SELECT * FROM buckets_open;
        -- The files holding the closed hours of a sealed table (today: buckets), as publish_parts.
        CREATE TABLE store_parts (
            table_name VARCHAR NOT NULL,
            hour INTEGER NOT NULL,
            span INTEGER NOT NULL,
            file VARCHAR NOT NULL,
            rows BIGINT NOT NULL,
            bytes BIGINT NOT NULL,
            PRIMARY KEY (table_name, hour)
        );
        """,
    ),
    (
        8,
        """
        -- The deploy feed (issue 17): deploys posted to /api/deploys, added with `slo deploys add` or
        -- imported (CSV, GitHub webhooks), folded from the inbox. Each is also a row of `deploys`, which
        -- correlation, triage and the review read; this keeps who, the link, the door it came through,
        -- and its de-duplication key (a re-sent deploy is stored once).
        CREATE TABLE deploy_feed (
            dedup_key VARCHAR PRIMARY KEY,
            service VARCHAR NOT NULL,
            deployed_at TIMESTAMP NOT NULL,
            version VARCHAR NOT NULL,
            who VARCHAR NOT NULL,
            link VARCHAR,
            description VARCHAR,
            source VARCHAR NOT NULL,          -- api | cli | csv | github
            actor VARCHAR NOT NULL,           -- who sent it (a token's name, a login, github)
            inbox_seq BIGINT,
            received_at TIMESTAMP NOT NULL
        );
        -- The status page (issue 17): per incident of a service that opted in, the approval of its first
        -- post (`approve_status`), the Statuspage incident it created and the last status posted there.
        CREATE TABLE status_posts (
            incident_id VARCHAR PRIMARY KEY,
            asked_at TIMESTAMP NOT NULL,      -- when the approval was first asked for (on the timeline)
            approved_by VARCHAR,
            approved_at TIMESTAMP,
            impact VARCHAR,                   -- the approver's words for the user impact, if given
            page_incident_id VARCHAR,         -- Statuspage's incident id once created
            posted_status VARCHAR,            -- investigating | identified | monitoring | resolved
            posted_at TIMESTAMP,
            next_update_at TIMESTAMP,         -- seed 001: an update every 15 minutes until resolved
            updates INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0
        );
        """,
    ),
]


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema up to the newest migration; returns the version reached."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    ((current,),) = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?)", [version])
            con.execute("COMMIT")
        except Exception as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"migration {version} failed: {exc}") from exc
        current = version
    return current


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with UTC session time zone."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _open_work(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """The work database, migrated, with the sealed tables' views over their files."""
    con = duckdb.connect(str(data_dir / WORK_FILE))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute("SET parquet_metadata_cache = true")  # partition files are never rewritten
        migrate(con)
    except Exception:
        con.close()
        raise
    return con


@contextlib.contextmanager
def serving(data_dir: Path) -> Iterator[None]:
    """Mark `data_dir` as served for the duration (a shared lock on SERVICE_FILE: more than one service may
    hold it); released when the process ends, however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / SERVICE_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def served_by(data_dir: Path) -> str | None:
    """The pid of a running service that holds `serving(data_dir)` ("unknown" when it wrote none), or
    None when no service runs on `data_dir`. A probe: it takes and drops the lock exclusively."""
    path = data_dir / SERVICE_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        # Another probe holds the lock for an instant (two CLI steps at once): a few tries tell it from a
        # service, which holds it all along.
        for attempt in range(PROBE_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return None
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise StoreError(f"{path}: cannot probe: {exc}") from exc
                if attempt + 1 < PROBE_TRIES:
                    time.sleep(PROBE_PAUSE_S)
        return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)


class Writer:
    """The single writer: holds the OS lock, owns the work database, publishes snapshots.

    Use as a context manager. A second writer on the same data directory fails at once with
    `WriterBusy` naming the holder, instead of waiting or corrupting anything.

    `before_publish` runs on the work database before each publish: the write path
    (`pipelines/cycle.py`) passes the analytics stage, so every snapshot's analytics describe its own
    incidents while the store knows nothing of analytics.
    """

    def __init__(
        self, data_dir: Path, *, before_publish: Callable[[duckdb.DuckDBPyConnection], object] | None = None
    ):
        self.data_dir = Path(data_dir)
        self.before_publish = before_publish
        self.con: duckdb.DuckDBPyConnection | None = None
        self._lock_fd: int | None = None
        self._damaged: str | None = None  # a file of the store is missing: only `reset` may go on

    def __enter__(self) -> Writer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self.con = _open_work(self.data_dir)
        except Exception:
            self._release_lock()
            raise
        try:
            try:
                partitions.store_view(self.con, self.data_dir)
            except partitions.LostDerived as lost:  # derived from the buckets again
                self._derive_again(lost.table, str(lost))
                partitions.store_view(self.con, self.data_dir)
        except StoreError as exc:  # a file of the store is lost: only `reset` may go on
            self._damaged = str(exc)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        self._release_lock()

    def _acquire_lock(self) -> None:
        path = self.data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise WriterBusy(self.data_dir, holder) from exc
            raise StoreError(f"{path}: cannot lock: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _derive_again(self, table: str, problem: str) -> None:
        """A lost file of a table the engine derives (the series) is not lost data: forget the table and
        have the next evaluation derive every SLO's rows again from its buckets."""
        if self.con is None:
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
            partitions.forget(self.con, table)
            # every SLO evaluated from its first bucket again (the dense fold replaces all it derives)
            self.con.execute("UPDATE engine_state SET evaluated_to = NULL")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        log.warning("%s; the engine derives it again from the buckets at the next evaluation", problem)

    @property
    def db(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            raise StoreError("writer is not open")
        if self._damaged is not None:
            raise StoreError(self._damaged)
        return self.con

    def reset(self) -> None:
        """Drop everything (used by `slo demo`, which rebuilds the store from scratch). The partition
        files go too, once readers of the snapshot published before can no longer be using them."""
        if self.con is not None:
            self.con.close()
        for name in (WORK_FILE, WORK_FILE + ".wal"):
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / name).unlink()
        self.con = _open_work(self.data_dir)
        self._damaged = None
        partitions.retire_all(self.con, self.data_dir)

    def publish(self) -> Path:
        """Run the `before_publish` step (the analytics stage), write the partition files of the closed
        days that changed, and atomically replace the published snapshot with a new small file that
        holds everything else and lists those files."""
        if self.before_publish is not None:
            self.before_publish(self.db)
        target = self.data_dir / SNAPSHOT_FILE
        for stale in self.data_dir.glob(f".{SNAPSHOT_FILE}.*.tmp*"):  # of publishes that were killed
            stale.unlink(missing_ok=True)
        tmp = self.data_dir / f".{SNAPSHOT_FILE}.{os.getpid()}.tmp"
        self._seal()
        partitions.adopt_published(self.db, self.data_dir, target)
        plan = partitions.write_parts(self.db, self.data_dir)
        wrong = self._build_snapshot(tmp, plan)
        if wrong:  # rows written without mark_changed: every day of those tables again
            log.warning(
                "%s: rows changed without mark_changed; writing all their days again", ", ".join(wrong)
            )
            plan = partitions.write_parts(self.db, self.data_dir, redo_all=wrong)
            self._build_snapshot(tmp, plan)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(self.data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        _record_published(self.data_dir)
        partitions.commit(self.db, plan)
        partitions.collect_garbage(self.db, self.data_dir)
        return target

    def _seal(self) -> None:
        """Move rows of a sealed table whose hour has closed into its files (rows a writer put in
        `<table>_open` directly, or those of a store from before files): usually nothing to do."""
        self.db.execute("BEGIN TRANSACTION")
        try:
            for table in partitions.SEALED:
                partitions.store_rows(self.db, self.data_dir, table, None)
            self.db.execute("COMMIT")
        except Exception:
            self.db.execute("ROLLBACK")
            raise
        finally:
            partitions.store_view(self.db, self.data_dir)

    def _build_snapshot(self, tmp: Path, plan: partitions.Plan) -> frozenset[str]:
        """Write the snapshot of `plan` to `tmp` (a new file); returns the tables whose rows do not add
        up (see `partitions.miscounted`)."""
        for stale in (tmp, Path(str(tmp) + ".wal")):
            stale.unlink(missing_ok=True)
        self.db.execute(f"ATTACH '{_sql_path(tmp)}' AS {PUBLISH_CATALOG}")
        try:
            partitions.snapshot_tables(self.db, PUBLISH_CATALOG, plan, self.data_dir)
            wrong = partitions.miscounted(self.db, PUBLISH_CATALOG, plan)
        finally:
            self.db.execute(f"DETACH {PUBLISH_CATALOG}")
        return wrong

    def republish_if_unreadable(self) -> str | None:
        """Publish again when the published snapshot cannot be read or is no longer the file this
        store published; returns why it was republished (None: it was fine, or nothing is published).

        Runs under this writer's lock, so no other writer publishes meanwhile."""
        problem = snapshot_problem(self.data_dir)
        if problem is None:
            return None
        self.publish()
        log.warning("snapshot %s: %s; republished from the work file", self.data_dir / SNAPSHOT_FILE, problem)
        return problem


class Snapshot:
    """Read-only access to the latest published snapshot, re-attached when a new one appears.

    `with snapshot.connection() as con:` gives an in-memory connection where the snapshot is the
    catalog `snap` (and the default schema), so queries say `FROM slos`.
    """

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / SNAPSHOT_FILE
        self._con: duckdb.DuckDBPyConnection | None = None
        self._inode: tuple[int, int] | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def _current_inode(self) -> tuple[int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise StoreError(
                f"{self.path}: no published snapshot yet; run `slo demo` or `slo run` first"
            ) from exc
        return (st.st_dev, st.st_ino)

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The attached snapshot. A file that cannot be read, whether at ATTACH or in a query run in
        the `with` block, raises `SnapshotUnreadable` (and the next use attaches afresh)."""
        inode = self._current_inode()
        if self._con is None or inode != self._inode:
            self.close()
            self._con, self._inode = self._attach(), inode
        try:
            yield self._con
        except duckdb.Error as exc:
            if not _damaged(exc):
                raise
            self.close()
            raise SnapshotUnreadable(self.path, str(exc)) from exc

    def _attach(self) -> duckdb.DuckDBPyConnection:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = None  # replaced meanwhile: ATTACH says what it finds
        if size is not None and size < HEADER_BYTES:
            raise SnapshotUnreadable(
                self.path,
                "empty file (0 bytes)"
                if size == 0
                else f"{size} bytes, shorter than a DuckDB header ({HEADER_BYTES} bytes)",
            )
        con = connect()
        try:
            # The published file is never written again (a new publish replaces it), so holding it
            # attached read-only is safe; a concurrent os.replace leaves our open inode intact.
            con.execute(f"ATTACH '{_sql_path(self.path)}' AS snap (READ_ONLY)")
            con.execute("USE snap")
            # Partition files never change once written, so their footers can be cached.
            con.execute("SET parquet_metadata_cache = true")
            partitions.reader_views(con, "snap", self.path.parent)
        except duckdb.Error as exc:
            con.close()
            raise SnapshotUnreadable(self.path, str(exc)) from exc
        return con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _damaged(exc: duckdb.Error) -> bool:
    """Whether a DuckDB error is about the file rather than the query: a read past its end or a
    failed read (IOException), a block whose checksum does not match (DuckDB raises its base class
    with "Corrupt database file"), metadata it cannot deserialise."""
    return isinstance(exc, duckdb.IOException | duckdb.SerializationException) or (
        "Corrupt database file" in str(exc)
    )


# SQL: the smallest read that needs the catalog and a data block: what every reader does first.
PROBE_SQL = "SELECT max(version) FROM schema_version"


def snapshot_problem(data_dir: Path) -> str | None:
    """Why the published snapshot must be published again, or None (it is fine, or nothing is
    published yet): it cannot be attached and queried, or it is no longer the file the last publish
    wrote (cut short or overwritten in place, replaced): damage deep in a table is otherwise only
    found by the query that happens to read it."""
    data_dir = Path(data_dir)
    snapshot = Snapshot(data_dir)
    try:
        with snapshot.connection() as con:
            con.execute(PROBE_SQL).fetchall()
            missing = partitions.snapshot_part_problem(con, "snap", data_dir)
        if missing:
            return missing
    except SnapshotUnreadable as exc:
        return exc.reason
    except StoreError:  # not published yet (or removed meanwhile): nothing to repair
        return None
    finally:
        snapshot.close()
    recorded, current = _read_published(data_dir), _identity(data_dir / SNAPSHOT_FILE)
    if recorded is None or current is None or recorded == current:
        return None
    if recorded.get("size") != current["size"]:
        return f"changed since it was published ({recorded.get('size')} bytes then, {current['size']} now)"
    return "changed since it was published (written in place, or replaced by another file)"


def _identity(path: Path) -> dict[str, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record_published(data_dir: Path) -> None:
    """Keep the identity of the file just published (atomically; a lost record only costs one
    republish, so no fsync)."""
    identity = _identity(data_dir / SNAPSHOT_FILE)
    tmp = data_dir / f".{PUBLISHED_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(identity))
    os.replace(tmp, data_dir / PUBLISHED_FILE)


def _read_published(data_dir: Path) -> dict[str, int] | None:
    try:
        recorded = json.loads((data_dir / PUBLISHED_FILE).read_text())
    except (OSError, ValueError):
        return None  # published by an older version, or never: the probe decides
    return recorded if isinstance(recorded, dict) else None
