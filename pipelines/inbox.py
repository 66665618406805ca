"""The durable inbox (DESIGN §1): every input that is not a metric, on disk before anyone hears "accepted".

SQLite in WAL mode from the standard library: many processes append concurrently, a UNIQUE
de-duplication key recognises re-deliveries, and a committed row survives `kill -9`. The pipeline
writer folds rows into DuckDB in `seq` order and keeps its own cursor there, so DuckDB stays derivable
from metrics + inbox.

Row kinds (the `body` is JSON):
- `alert`: one normalised alert (`pipelines.incidents.contract.Alert.to_json()`), from Alertmanager,
  PagerDuty, the generic format or the engine's own burn-rate alerts;
- `command`: a human step (`pipelines.incidents.contract.Command.to_json()`) from the CLI, the API or the
  dashboard, or an outcome reported back by a worker (e.g. a remediation's result);
- `import`: one historical incident from `slo import incidents` (Statuspage or CSV), folded by analytics.

The file may be deleted or replaced (restored from a backup) under a running process. Every connection
remembers the file (device, inode) it opened and reopens when the path names another file, so nothing
is appended to a deleted file that no reader will ever see. A WAL or shared-memory file left without
its database is set aside before a new database is created, never replayed into it. The fold detects
that the inbox no longer holds the row its cursor points at and refolds from the start
(`pipelines.incidents.fold`), which de-duplication keys make idempotent.

Urgent rows (issue 13): a firing alert of severity SEV1 or SEV2 (a `page`, `critical`, `P1`… label as
mapped at the door) is indexed by a partial index over the stored body, so the fold can take it ahead
of a storm's backlog without reading the backlog. The index is derived from the rows themselves: it is
built for an existing file on open, and a row is in it the moment its commit returns.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INBOX_FILE = "inbox.sqlite3"
_REOPEN = threading.Lock()  # one thread at a time sets orphans aside and creates a new file
KINDS = ("alert", "command", "import")
URGENT_SEVERITIES = ("SEV1", "SEV2")
# An urgent row: a firing SEV1/SEV2 alert (the same test as `is_urgent`, in SQL over the stored body).
_URGENT = (
    "kind = 'alert' AND json_extract(body, '$.status') = 'firing'"
    " AND json_extract(body, '$.severity') IN ('SEV1', 'SEV2')"
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('alert', 'command', 'import')),
    source TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_urgent ON inbox (seq) WHERE {_URGENT};
"""


@dataclass(frozen=True)
class Entry:
    """What a caller hands to `Inbox.append`."""

    dedup_key: str
    kind: str
    source: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Row:
    """A stored inbox row."""

    seq: int
    dedup_key: str
    kind: str
    source: str
    received_at: dt.datetime
    body: dict[str, Any]


@dataclass(frozen=True)
class Head:
    """What the fold's ordering needs of a row, read without decoding its body: the alert's service,
    fingerprint and SLO, or the incident a command names."""

    seq: int
    dedup_key: str
    kind: str
    urgent: bool
    service: str | None
    fingerprint: str | None
    slo: str | None
    incident_id: str | None  # commands: ours
    external_id: str | None  # commands (PagerDuty) and alerts: theirs


def is_urgent(entry: Entry) -> bool:
    """A firing SEV1/SEV2 alert: the fold takes it before a backlog, and the service wakes its worker."""
    return (
        entry.kind == "alert"
        and entry.body.get("status") == "firing"
        and entry.body.get("severity") in URGENT_SEVERITIES
    )


@dataclass(frozen=True)
class AppendResult:
    accepted: list[str]  # dedup keys newly stored
    duplicates: list[str]  # dedup keys already there (re-deliveries)


class Inbox:
    """One SQLite file; safe to share across threads of one process and across processes."""

    def __init__(self, data_dir: Path, *, synchronous: str = "FULL") -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / INBOX_FILE
        self._local = threading.local()
        self._synchronous = synchronous
        self._con()

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None and _file_id(self.path) != self._local.file_id:
            log.warning("%s was deleted or replaced under this process: reopening it", self.path)
            con.close()
            con = None
        if con is None:
            with _REOPEN:
                if not self.path.exists():
                    _set_orphans_aside(self.path)
                con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                con.execute("PRAGMA journal_mode=WAL")
                # FULL: a commit is fsynced before it returns, so "202 Accepted" means on disk.
                con.execute(f"PRAGMA synchronous={self._synchronous}")
                con.execute("PRAGMA busy_timeout=30000")
                con.executescript(_SCHEMA)
                self._local.file_id = _file_id(self.path)
            self._local.con = con
        return con

    def append(self, entries: Iterable[Entry]) -> AppendResult:
        """Store entries in one transaction; those whose dedup key exists are reported as duplicates."""
        return self.append_groups([list(entries)])[0]

    def append_groups(self, groups: Sequence[Sequence[Entry]]) -> list[AppendResult]:
        """Store several callers' entries in one transaction (one fsync); one result per group.

        A key repeated in a later group (or later in the same group) is a duplicate, exactly as if the
        groups had been appended one after the other.
        """
        # INSERT OR IGNORE would also ignore a CHECK violation and report it as a duplicate: refuse first.
        for entries in groups:
            for e in entries:
                if e.kind not in KINDS or not e.dedup_key:
                    raise ValueError(f"inbox entry {e.dedup_key!r}: kind {e.kind!r} is not one of {KINDS}")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
        results = [AppendResult([], []) for _ in groups]
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            for entries, result in zip(groups, results, strict=True):
                for e in entries:
                    cur = con.execute(
                        "INSERT OR IGNORE INTO inbox (dedup_key, kind, source, received_at, body)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (e.dedup_key, e.kind, e.source, now, json.dumps(e.body, sort_keys=True, default=str)),
                    )
                    (result.accepted if cur.rowcount == 1 else result.duplicates).append(e.dedup_key)
            con.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (a full disk during COMMIT does): a second ROLLBACK
            # would fail with "no transaction is active" and hide the real error.
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return results

    def read_since(self, seq: int, limit: int = 10_000) -> list[Row]:
        """Rows with seq > `seq`, oldest first."""
        rows = (
            self._con()
            .execute(
                "SELECT seq, dedup_key, kind, source, received_at, body FROM inbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            )
            .fetchall()
        )
        return [Row(r[0], r[1], r[2], r[3], dt.datetime.fromisoformat(r[4]), json.loads(r[5])) for r in rows]

    def urgent_since(self, seq: int, limit: int = 1000) -> list[int]:
        """The seqs of urgent rows (firing SEV1/SEV2 alerts) after `seq`, oldest first (the partial index)."""
        rows = (
            self._con()
            .execute(f"SELECT seq FROM inbox WHERE seq > ? AND {_URGENT} ORDER BY seq LIMIT ?", (seq, limit))
            .fetchall()
        )
        return [int(r[0]) for r in rows]

    def heads(self, after: int, upto: int) -> list[Head]:
        """`Head`s of the rows with after < seq <= upto, oldest first."""
        rows = (
            self._con()
            .execute(
                f"""SELECT seq, dedup_key, kind, {_URGENT}, json_extract(body, '$.service'),
                           json_extract(body, '$.fingerprint'), json_extract(body, '$.slo'),
                           json_extract(body, '$.incident_id'), json_extract(body, '$.external_id')
                    FROM inbox WHERE seq > ? AND seq <= ? ORDER BY seq""",
                (after, upto),
            )
            .fetchall()
        )
        return [
            Head(r[0], r[1], r[2], bool(r[3]), *(None if v is None else str(v) for v in r[4:])) for r in rows
        ]

    def read_seqs(self, seqs: Sequence[int]) -> list[Row]:
        """The rows with these seqs, oldest first."""
        out: list[Row] = []
        for i in range(0, len(seqs), 500):
            chunk = list(seqs[i : i + 500])
            out += [
                Row(r[0], r[1], r[2], r[3], dt.datetime.fromisoformat(r[4]), json.loads(r[5]))
                for r in self._con()
                .execute(
                    "SELECT seq, dedup_key, kind, source, received_at, body FROM inbox"
                    f" WHERE seq IN ({','.join('?' * len(chunk))}) ORDER BY seq",
                    chunk,
                )
                .fetchall()
            ]
        return sorted(out, key=lambda r: r.seq)

    def iter_since(self, seq: int, batch: int = 10_000) -> Iterator[Row]:
        while True:
            rows = self.read_since(seq, batch)
            if not rows:
                return
            yield from rows
            seq = rows[-1].seq

    def key_at(self, seq: int) -> str | None:
        """The de-duplication key of row `seq` (None when there is no such row)."""
        row = self._con().execute("SELECT dedup_key FROM inbox WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def count(self) -> int:
        return int(self._con().execute("SELECT count(*) FROM inbox").fetchone()[0])

    def last_seq(self) -> int:
        return int(self._con().execute("SELECT coalesce(max(seq), 0) FROM inbox").fetchone()[0])

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk (or file system) is full: ENOSPC/EDQUOT, or SQLite's SQLITE_FULL."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return False


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _set_orphans_aside(path: Path) -> None:
    """A -wal/-shm file without its database belongs to a deleted one: renamed, so SQLite never
    replays its pages into the new file."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    for suffix in ("-wal", "-shm", "-journal"):
        orphan = path.with_name(path.name + suffix)
        if orphan.exists():
            aside = orphan.with_name(f"{orphan.name}.orphaned-{stamp}")
            orphan.rename(aside)
            log.warning("%s had no database beside it: set aside as %s", orphan, aside.name)


class GroupCommit:
    """Group commit for concurrent appends: whoever arrives while a commit is on disk waits for the next
    one, and all of them share its transaction and its fsync.

    One thread owns the writes. A caller's future resolves only after the COMMIT (synchronous=FULL)
    that holds its rows returned, so "202 after `append` returned" still means on disk; a failed
    commit fails every caller in it, and none of them is told "accepted". With one caller at a time it
    is one transaction per call, as `Inbox.append`; under load, one fsync serves a whole batch.
    """

    def __init__(self, inbox: Inbox, *, max_entries: int = 5000) -> None:
        self.inbox = inbox
        self._max_entries = max_entries
        self._queue: queue.SimpleQueue[tuple[list[Entry], Future[AppendResult]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inbox-group-commit", daemon=True)
        self._closed = False
        self.commits = 0
        self.thread_started = False

    def start(self) -> GroupCommit:
        self._thread.start()
        self.thread_started = True
        return self

    def submit(self, entries: Iterable[Entry]) -> Future[AppendResult]:
        future: Future[AppendResult] = Future()
        if self._closed:
            future.set_exception(RuntimeError("the inbox is closing; nothing was stored"))
            return future
        self._queue.put((list(entries), future))
        return future

    def append(self, entries: Iterable[Entry]) -> AppendResult:
        return self.submit(entries).result()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            size = len(item[0])
            stop = False
            while size < self._max_entries:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
                size += len(more[0])
            self._commit(batch)
            if stop:
                break
        self.inbox.close()

    def _commit(self, batch: list[tuple[list[Entry], Future[AppendResult]]]) -> None:
        try:
            results = self.inbox.append_groups([entries for entries, _ in batch])
        except BaseException as exc:  # the disk said no: nobody in this batch is told "accepted"
            for _, future in batch:
                future.set_exception(exc)
            return
        self.commits += 1
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        self._closed = True
        if self.thread_started:
            self._queue.put(None)
            self._thread.join(timeout)
        # Anything submitted while closing, after the thread's last batch, is refused, not left waiting.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].set_exception(RuntimeError("the inbox closed before this was stored; nothing was"))
