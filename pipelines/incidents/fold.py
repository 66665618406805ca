"""The inbox fold: inbox rows, in `seq` order, become alerts, incidents and timeline entries in DuckDB.
(The service's worker folds urgent rows, and only what they depend on, ahead of a backlog first:
`fold_inbox` and `fold_order`.)

No I/O but the DuckDB connection: triage, notifications and remediations run in the respond stage
(`stage.py`), which reads what the fold left for it (`triage_pending`, `escalation_pending`, queued
remediations). The cursor `inbox_cursor.last_seq` advances in the same transaction as the effects, so a
process that dies mid-way re-folds nothing twice and skips nothing. The cursor also keeps the key of the
row it stands on: an inbox that no longer holds that row (deleted, restored from an older backup,
replaced) is refolded from its first row, which the de-duplication keys make idempotent (alerts by
`alerts.dedup_key`, commands by `folded_commands`), so nothing accepted into it is skipped.

- `alert` rows: stored in `alerts` (the dedup key is the primary key: a re-delivery changes nothing).
  A firing alert joins the open incident with the same service and fingerprint, else the open incident
  of the same service linked to the alert's SLO (a page and a ticket on one SLO are one problem), else a
  re-notification of an alert already seen (same service, fingerprint and start) stays with its
  incident; otherwise it opens `INC-0001`, `INC-0002`, … A resolved alert lands on its incident's
  timeline.
- `command` rows: the state machine triggered → acknowledged → mitigated → resolved → closed (closed =
  post-mortem done, which needs a root cause), plus root cause, action items, approvals, re-triage and
  remediation results. A command that does not fit the incident's state is recorded on the timeline as
  rejected; a command naming no known incident is kept in `inbox_rejects`. Nothing here raises on bad
  input.
- `command` rows `deploy` (the deploy feed, issue 17) name no incident: stored in `deploy_feed` and
  `deploys` (`deploy_feed.fold_deploy`).
- `import` rows: handed to `pipelines.analytics.importer.fold_import_rows`.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from pipelines.analytics import importer
from pipelines.errors import CommandError, MalformedInput
from pipelines.inbox import Head, Inbox, Row
from pipelines.incidents import deploy_feed, fold_order, impact, incident_roles, severity_rules
from pipelines.incidents.commands import validate_args
from pipelines.incidents.contract import SEVERITIES, Alert, Command, parse_time
from pipelines.ingest.deploys import DEPLOY_COMMAND
from pipelines.ingest.fields import plausible
from pipelines.timeutil import minute_of

log = logging.getLogger(__name__)

OPEN_STATES = ("triggered", "acknowledged", "mitigated")
REPEAT_DAYS = 30
BATCH = 200
# With a time budget (the service): smaller batches, so a batch ends soon after the budget does.
BUDGET_BATCH = 25
URGENT_PER_CYCLE = 1000  # urgent rows looked at per cycle (the rest next cycle)
AHEAD_LIMIT = 2000  # rows folded ahead of the cursor per cycle, urgent ones and what they depend on

# command → (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "acknowledge": (("triggered",), "acknowledged"),
    "mitigate": (("triggered", "acknowledged"), "mitigated"),
    "resolve": (("triggered", "acknowledged", "mitigated"), "resolved"),
    "close": (("resolved",), "closed"),
    "postmortem_done": (("resolved",), "closed"),
    "reopen": (("acknowledged", "mitigated", "resolved"), "triggered"),
}
# Reported back by the remediation runner, not typed by people.
WORKER_COMMANDS = ("remediation_result",)


class Rejected(Exception):
    """A row that cannot be applied; the message says why. Raised before anything is written."""


@dataclass
class FoldReport:
    rows: int = 0
    alerts: int = 0
    duplicates: int = 0
    opened: list[str] = field(default_factory=list)
    commands: int = 0
    rejected: int = 0
    imports: int = 0
    refolds: int = 0  # cursors given up because the inbox no longer held their row
    ahead: int = 0  # rows folded ahead of the cursor (urgent ones and what they depend on)


def _now_naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


# --- timeline -------------------------------------------------------------------------------------


def add_timeline(
    con: duckdb.DuckDBPyConnection,
    incident_id: str,
    at: dt.datetime,
    kind: str,
    source: str,
    message: str,
    *,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
    seq: int | None = None,
) -> None:
    """Append one step to an incident's timeline (seq is the order it was recorded in). `seq` is given
    only by whoever knows it: the incident being opened, whose timeline has no row yet (this saves a
    scan of the timeline per step, which a storm of new incidents pays thousands of times)."""
    values = [
        _now_naive(at),
        kind,
        source,
        actor,
        message,
        json.dumps(data, default=str, sort_keys=True) if data is not None else None,
    ]
    if seq is not None:
        con.execute("INSERT INTO timeline VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [incident_id, seq, *values])
        return
    con.execute(
        """INSERT INTO timeline
           SELECT ?, coalesce(max(seq), 0) + 1, ?, ?, ?, ?, ?, ? FROM timeline WHERE incident_id = ?""",
        [incident_id, *values, incident_id],
    )


def incident(con: duckdb.DuckDBPyConnection, incident_id: str) -> dict[str, Any] | None:
    rel = con.execute("SELECT * FROM incidents WHERE id = ?", [incident_id])
    row = rel.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in rel.description], row, strict=True))


def _touch(con: duckdb.DuckDBPyConnection, incident_id: str, at: dt.datetime) -> None:
    con.execute("UPDATE incidents SET updated_at = greatest(updated_at, ?) WHERE id = ?", [at, incident_id])


# --- the fold -------------------------------------------------------------------------------------


def fold_inbox(
    con: duckdb.DuckDBPyConnection,
    inbox: Inbox,
    *,
    max_rows: int | None = None,
    budget_s: float | None = None,
) -> FoldReport:
    """Fold the inbox rows after the cursor; batches commit with the cursor.

    Without `budget_s` (every command, `slo run`, `slo demo`): every row, in `seq` order. With it (the
    service's worker, issue 13): first the urgent rows and the earlier rows they depend on
    (`fold_order`), then the backlog in `seq` order until `budget_s` seconds are spent, at least one
    batch of it; an urgent row that comes in meanwhile is folded at once. Once urgent rows were
    folded the backlog stops (this cycle publishes them soon); the next cycle goes on where this one
    stopped.

    Rows folded ahead of the cursor commit their effects without moving it. The backlog pass then
    recognises them (`_folded_ahead`: the alert stored under that seq and key, the command's key in
    `folded_commands`, the row's seq and key in `inbox_rejects`) and only moves the cursor past them,
    so a crash at any point neither loses a row nor folds one twice.
    """
    report = FoldReport()
    stored = stored_seq(con)
    cursor = _cursor(con, inbox, report)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    seen = _fold_urgent_first(con, inbox, cursor, stored, report, deadline) if deadline is not None else 0
    size = BATCH if deadline is None else BUDGET_BATCH
    first = True
    while max_rows is None or report.rows < max_rows:
        if deadline is not None and not first:
            if inbox.urgent_since(max(cursor, seen), 1):  # a page came in while the backlog folds
                seen = _fold_urgent_first(con, inbox, cursor, stored, report, deadline)
            if report.ahead or time.monotonic() > deadline:
                break
        rows = inbox.read_since(cursor, size if max_rows is None else min(size, max_rows - report.rows))
        if not rows:
            break
        _fold_batch(con, rows, report, ahead=_folded_ahead(con, rows, stored))
        cursor = rows[-1].seq
        first = False
    return report


def stored_seq(con: duckdb.DuckDBPyConnection) -> int:
    """The cursor as stored: rows after it may have been folded ahead of it."""
    row = con.execute("SELECT last_seq FROM inbox_cursor").fetchone()
    return int(row[0]) if row and row[0] else 0


def _fold_urgent_first(
    con: duckdb.DuckDBPyConnection,
    inbox: Inbox,
    cursor: int,
    stored: int,
    report: FoldReport,
    deadline: float,
) -> int:
    """Fold the urgent rows after the cursor, with what they depend on, in `seq` order, without moving
    the cursor (stops at the deadline after at least one batch; a `seq`-prefix of the set is closed).
    Returns the last urgent seq it looked at (the cursor when there was none)."""
    urgent = inbox.urgent_since(cursor, URGENT_PER_CYCLE)
    if not urgent:
        return cursor
    heads = inbox.heads(cursor, urgent[-1])
    done = _folded_ahead(con, heads, stored)
    # A command naming no incident at all (a deploy) changes no incident: nothing depends on it.
    heads = [
        h
        for h in heads
        if h.seq not in done and not (h.kind == "command" and not h.incident_id and not h.external_id)
    ]
    services = _command_services(con, [h for h in heads if h.kind == "command"])

    def service_of(h: Head) -> str | None:
        if h.kind == "alert":
            return h.service
        return services.get(h.seq) if h.kind == "command" else None

    seqs = fold_order.ahead_of_backlog(heads, service_of, AHEAD_LIMIT)
    for i in range(0, len(seqs), BUDGET_BATCH):
        if i and time.monotonic() > deadline:
            break
        rows = inbox.read_seqs(seqs[i : i + BUDGET_BATCH])
        if rows:
            _fold_batch(con, rows, report, advance=False)
            report.ahead += len(rows)
    return urgent[-1]


def _command_services(con: duckdb.DuckDBPyConnection, commands: Sequence[Head]) -> dict[int, str]:
    """The service of the incident each command names (by our id, else by external id); a command whose
    incident is not there yet is left out (its service is unknown)."""
    out: dict[int, str] = {}
    for h in commands:
        row = None
        if h.incident_id:
            row = con.execute("SELECT service FROM incidents WHERE id = ?", [h.incident_id]).fetchone()
        if row is None and h.external_id:
            row = con.execute(
                "SELECT service FROM incidents WHERE external_id = ? OR id = ?"
                " ORDER BY created_at DESC LIMIT 1",
                [h.external_id, h.external_id],
            ).fetchone()
        if row is not None:
            out[h.seq] = str(row[0])
    return out


def _folded_ahead(con: duckdb.DuckDBPyConnection, rows: Sequence[Row | Head], stored: int) -> set[int]:
    """The seqs among `rows` (all after the stored cursor) that an earlier cycle folded ahead of it."""
    later = [r for r in rows if r.seq > stored]
    if not later:
        return set()
    seqs = [r.seq for r in later]
    keys = [r.dedup_key for r in later]
    # Alerts stored, and rows rejected, under this very seq and key; commands by their key.
    pairs = set(
        con.execute(
            """SELECT inbox_seq, dedup_key FROM alerts WHERE list_contains(?, dedup_key)
               UNION ALL SELECT seq, dedup_key FROM inbox_rejects WHERE list_contains(?, seq)""",
            [keys, seqs],
        ).fetchall()
    )
    commands = [r.dedup_key for r in later if r.kind == "command"]
    folded = (
        {
            str(k[0])
            for k in con.execute(
                "SELECT dedup_key FROM folded_commands WHERE list_contains(?, dedup_key)", [commands]
            ).fetchall()
        }
        if commands
        else set()
    )
    return {r.seq for r in later if (r.seq, r.dedup_key) in pairs or r.dedup_key in folded}


def _cursor(con: duckdb.DuckDBPyConnection, inbox: Inbox, report: FoldReport) -> int:
    """Where to fold from: the stored cursor, while the inbox still holds the row it stands on;
    otherwise 0 (the whole inbox again, de-duplicated)."""
    seq, key = con.execute("SELECT last_seq, last_key FROM inbox_cursor").fetchone() or (0, None)
    if not seq:
        return 0
    found = inbox.key_at(int(seq))
    if found is not None and key is None:  # a store from before keys were kept: adopt this inbox
        con.execute("UPDATE inbox_cursor SET last_key = ?", [found])
        return int(seq)
    if found is not None and found == key:
        return int(seq)
    log.warning(
        "the inbox does not hold row %d (%s) the store folded last: it was deleted, replaced or restored "
        "from an older backup; refolding it from its first row (duplicates are recognised)",
        seq,
        "missing" if found is None else "another key",
    )
    report.refolds += 1
    return 0


def _advance(con: duckdb.DuckDBPyConnection, row: Row) -> None:
    con.execute("UPDATE inbox_cursor SET last_seq = ?, last_key = ?", [row.seq, row.dedup_key])


@dataclass
class _Cache:
    """What one batch looks up again and again, read once: dedup keys already stored and the open
    incidents by (service, fingerprint) and by (service, linked SLO). Commands may change states, so
    they drop the incident maps (re-read on the next alert)."""

    known_keys: set[str]
    by_fingerprint: dict[tuple[str, str], str] | None = None
    by_slo: dict[tuple[str, str], str] | None = None
    # impact_start estimates of the batch's firing alerts that name an SLO, in one set-based query
    impacts: dict[tuple[str, dt.datetime], impact.ImpactEstimate] = field(default_factory=dict)
    next_number: int | None = None  # of the next INC-NNNN (read once, then counted)

    def next_incident_id(self, con: duckdb.DuckDBPyConnection) -> str:
        if self.next_number is None:
            self.next_number = int(next_incident_id(con)[4:])
        self.next_number += 1
        return f"INC-{self.next_number - 1:04d}"

    @classmethod
    def for_rows(cls, con: duckdb.DuckDBPyConnection, rows: Sequence[Row]) -> _Cache:
        keys = [r.dedup_key for r in rows if r.kind == "alert"]
        known = (
            {
                str(k[0])
                for k in con.execute(
                    "SELECT dedup_key FROM alerts WHERE list_contains(?, dedup_key)", [keys]
                ).fetchall()
            }
            if keys
            else set()
        )
        return cls(known, impacts=_impacts_of(con, rows, known))

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.by_fingerprint is not None:
            return
        # The newest open incident wins, as in the per-row queries.
        self.by_fingerprint, self.by_slo = {}, {}
        for iid, service, fingerprint in con.execute(
            """SELECT id, service, fingerprint FROM incidents WHERE status IN ('triggered', 'acknowledged',
               'mitigated') AND NOT imported ORDER BY created_at, id"""
        ).fetchall():
            self.by_fingerprint[(service, fingerprint)] = iid
        for iid, service, slo in con.execute(
            """SELECT i.id, i.service, s.slo_id FROM incidents i JOIN incident_slos s ON s.incident_id = i.id
               WHERE i.status IN ('triggered', 'acknowledged', 'mitigated') AND NOT i.imported
               ORDER BY i.created_at, i.id"""
        ).fetchall():
            self.by_slo[(service, slo)] = iid

    def opened(self, con: duckdb.DuckDBPyConnection, incident_id: str, alert: Alert) -> None:
        if self.by_fingerprint is None or self.by_slo is None:
            return
        self.by_fingerprint[(alert.service, alert.fingerprint)] = incident_id
        for (slo,) in con.execute(
            "SELECT slo_id FROM incident_slos WHERE incident_id = ?", [incident_id]
        ).fetchall():
            self.by_slo[(alert.service, slo)] = incident_id

    def drop(self) -> None:
        self.by_fingerprint = self.by_slo = None


def _impacts_of(
    con: duckdb.DuckDBPyConnection, rows: Sequence[Row], known: set[str]
) -> dict[tuple[str, dt.datetime], impact.ImpactEstimate]:
    """The impact estimates a batch may need (its new firing alerts that name an SLO), all at once;
    they depend only on the buckets, which the fold does not change."""
    wanted: set[tuple[str, dt.datetime]] = set()
    for row in rows:
        if row.kind != "alert" or row.dedup_key in known:
            continue
        try:
            alert = Alert.from_json(row.body)
        except (TypeError, ValueError, KeyError):
            continue  # the fold rejects it with the reason
        if alert.status == "firing" and alert.slo:
            wanted.add((alert.slo, alert.starts_at))
    pairs = sorted(wanted)
    return dict(zip(pairs, impact.impact_starts(con, pairs), strict=True)) if pairs else {}


def _fold_batch(
    con: duckdb.DuckDBPyConnection,
    rows: Sequence[Row],
    report: FoldReport,
    *,
    ahead: set[int] | frozenset[int] = frozenset(),
    advance: bool = True,
) -> None:
    """One transaction for the batch; if anything unexpected fails, redo it row by row. Rows in
    `ahead` were folded already (ahead of the cursor): the cursor only moves past them. With
    `advance=False` (rows folded ahead) the cursor stays where it is."""
    snapshot = copy.deepcopy(report)
    todo = [row for row in rows if row.seq not in ahead]
    con.execute("BEGIN TRANSACTION")
    try:
        cache = _Cache.for_rows(con, todo)
        for row in todo:
            _fold_row(con, row, report, cache)
        if advance:
            _advance(con, rows[-1])
        con.execute("COMMIT")
        return
    except Exception:
        con.execute("ROLLBACK")
    vars(report).update(vars(snapshot))
    for row in rows:
        con.execute("BEGIN TRANSACTION")
        try:
            if row.seq not in ahead:
                _fold_row(con, row, report)
            if advance:
                _advance(con, row)
            con.execute("COMMIT")
        except Exception as exc:  # an unforeseen failure: keep the row's reason, move on
            con.execute("ROLLBACK")
            con.execute("BEGIN TRANSACTION")
            _reject(con, row, f"could not be applied: {exc.__class__.__name__}: {exc}", report)
            if advance:
                _advance(con, row)
            con.execute("COMMIT")


def _reject(con: duckdb.DuckDBPyConnection, row: Row, reason: str, report: FoldReport) -> None:
    report.rejected += 1
    con.execute(
        "INSERT OR REPLACE INTO inbox_rejects VALUES (?, ?, ?, ?, ?, ?)",
        [row.seq, row.kind, row.source, row.dedup_key, reason[:2000], row.received_at],
    )


def _fold_row(
    con: duckdb.DuckDBPyConnection, row: Row, report: FoldReport, cache: _Cache | None = None
) -> None:
    report.rows += 1
    try:
        if row.kind == "alert":
            fold_alert(con, row, report, cache)
        elif row.kind == "command":
            if cache is not None:
                cache.drop()
            fold_command(con, row, report)
        elif row.kind == "import":
            _fold_import(con, row, report)
        else:
            raise Rejected(f"unknown inbox row kind {row.kind!r}")
    except Rejected as exc:
        _reject(con, row, str(exc), report)


def _fold_import(con: duckdb.DuckDBPyConnection, row: Row, report: FoldReport) -> None:
    importer.fold_import_rows(con, [row])
    report.imports += 1


# --- alerts ---------------------------------------------------------------------------------------


def fold_alert(
    con: duckdb.DuckDBPyConnection, row: Row, report: FoldReport, cache: _Cache | None = None
) -> None:
    try:
        alert = Alert.from_json(row.body)
    except (TypeError, ValueError, KeyError) as exc:
        raise Rejected(f"alert body does not match the Alert contract: {exc}") from exc
    if not alert.service or not alert.fingerprint or alert.status not in ("firing", "resolved"):
        raise Rejected("alert needs a service, a fingerprint and status firing|resolved")
    _check_times(row, starts_at=alert.starts_at, ends_at=alert.ends_at)
    if (
        (alert.dedup_key in cache.known_keys)
        if cache is not None
        else con.execute("SELECT 1 FROM alerts WHERE dedup_key = ?", [alert.dedup_key]).fetchone()
    ):
        report.duplicates += 1
        return
    received = row.received_at
    if alert.status == "firing":
        incident_id = _incident_for_firing(con, alert, cache)
        if incident_id is None:
            incident_id = open_incident(
                con,
                alert,
                received,
                incident_id=cache.next_incident_id(con) if cache is not None else None,
                impacts=cache.impacts if cache is not None else None,
            )
            report.opened.append(incident_id)
            if cache is not None:
                cache.opened(con, incident_id, alert)
        else:
            _join(con, incident_id, alert)
            if cache is not None and cache.by_slo is not None and alert.slo:
                cache.by_slo.setdefault((alert.service, alert.slo), incident_id)
    else:
        incident_id = _incident_for_resolved(con, alert)
        if incident_id is not None:
            ended = alert.ends_at or received
            add_timeline(
                con,
                incident_id,
                ended,
                "alert_resolved",
                alert.source,
                f"alert resolved: {alert.title}",
                data={
                    "fingerprint": alert.fingerprint,
                    "starts_at": alert.starts_at,
                    "ends_at": alert.ends_at,
                },
            )
            _touch(con, incident_id, ended)
    con.execute(
        "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            alert.dedup_key,
            row.seq,
            alert.source,
            alert.status,
            alert.service,
            alert.slo,
            alert.fingerprint,
            alert.severity,
            alert.title,
            alert.description,
            json.dumps(alert.labels),
            json.dumps(alert.annotations),
            alert.starts_at,
            alert.ends_at,
            received,
            incident_id,
        ],
    )
    report.alerts += 1
    if cache is not None:
        cache.known_keys.add(alert.dedup_key)


def _incident_for_firing(
    con: duckdb.DuckDBPyConnection, alert: Alert, cache: _Cache | None = None
) -> str | None:
    if cache is not None:
        cache.load(con)
        assert cache.by_fingerprint is not None and cache.by_slo is not None
        found = cache.by_fingerprint.get((alert.service, alert.fingerprint))
        if found is None and alert.slo:
            found = cache.by_slo.get((alert.service, alert.slo))
        if found is not None:
            return found
        return _renotified(con, alert)
    # The open incident with this service and fingerprint.
    row = con.execute(
        """SELECT id FROM incidents WHERE service = ? AND fingerprint = ? AND status IN ('triggered',
           'acknowledged', 'mitigated') AND NOT imported ORDER BY created_at DESC, id DESC LIMIT 1""",
        [alert.service, alert.fingerprint],
    ).fetchone()
    if row is None and alert.slo:
        # The open incident of this service already linked to the alert's SLO.
        row = con.execute(
            """SELECT i.id FROM incidents i JOIN incident_slos s ON s.incident_id = i.id
               WHERE i.service = ? AND s.slo_id = ? AND i.status IN ('triggered', 'acknowledged', 'mitigated')
               AND NOT i.imported ORDER BY i.created_at DESC, i.id DESC LIMIT 1""",
            [alert.service, alert.slo],
        ).fetchone()
    if row is None:
        return _renotified(con, alert)
    return str(row[0])


def _renotified(con: duckdb.DuckDBPyConnection, alert: Alert) -> str | None:
    """A re-notification of an alert already seen (same start) stays with its incident."""
    row = con.execute(
        """SELECT incident_id FROM alerts WHERE service = ? AND fingerprint = ? AND starts_at = ?
           AND status = 'firing' AND incident_id IS NOT NULL LIMIT 1""",
        [alert.service, alert.fingerprint, alert.starts_at],
    ).fetchone()
    return None if row is None else str(row[0])


def _incident_for_resolved(con: duckdb.DuckDBPyConnection, alert: Alert) -> str | None:
    # The incident the matching firing alert went to (the latest one starting no later than this).
    row = con.execute(
        """SELECT incident_id FROM alerts WHERE service = ? AND fingerprint = ? AND status = 'firing'
           AND incident_id IS NOT NULL AND starts_at <= ? ORDER BY starts_at DESC LIMIT 1""",
        [alert.service, alert.fingerprint, alert.starts_at],
    ).fetchone()
    return None if row is None else str(row[0])


def _join(con: duckdb.DuckDBPyConnection, incident_id: str, alert: Alert) -> None:
    seen = con.execute(
        "SELECT 1 FROM alerts WHERE incident_id = ? AND fingerprint = ? AND starts_at = ? LIMIT 1",
        [incident_id, alert.fingerprint, alert.starts_at],
    ).fetchone()
    if seen:
        return  # the same alert notified again: nothing new happened
    add_timeline(
        con,
        incident_id,
        alert.starts_at,
        "alert_joined",
        alert.source,
        f"alert joined: {alert.title}" + (f" ({alert.severity})" if alert.severity else ""),
        data={"fingerprint": alert.fingerprint, "slo": alert.slo, "dedup_key": alert.dedup_key},
    )
    if alert.slo:
        con.execute("INSERT OR IGNORE INTO incident_slos VALUES (?, ?, NULL)", [incident_id, alert.slo])
    if alert.severity:  # a page joining a ticket's incident makes it SEV2 before triage (DESIGN §2)
        con.execute(
            "UPDATE incidents SET severity = ? WHERE id = ? AND triage_pending"
            " AND (severity IS NULL OR severity > ?)",
            [alert.severity, incident_id, alert.severity],
        )
    if alert.external_id:
        con.execute(
            "UPDATE incidents SET external_id = coalesce(external_id, ?) WHERE id = ?",
            [alert.external_id, incident_id],
        )
    _touch(con, incident_id, alert.starts_at)


def next_incident_id(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute(
        "SELECT coalesce(max(CAST(substr(id, 5) AS INTEGER)), 0) FROM incidents WHERE "
        "regexp_matches(id, '^INC-[0-9]+$')"
    ).fetchone()
    return f"INC-{(int(row[0]) if row else 0) + 1:04d}"


def linked_slos(con: duckdb.DuckDBPyConnection, alert: Alert) -> list[str]:
    """The alert's own SLO; else the service's SLOs with a burn-rate alert firing within 30 min of it."""
    if alert.slo:
        return [alert.slo]
    m0 = minute_of(alert.starts_at)
    rows = con.execute(
        """SELECT DISTINCT s.slo_id FROM alert_intervals a JOIN slos s USING (slo_key)
           WHERE s.service = ? AND a.start_minute <= ? AND coalesce(a.end_minute, ?) >= ? ORDER BY 1""",
        [alert.service, m0 + 30, m0 + 31, m0 - 30],
    ).fetchall()
    return [str(r[0]) for r in rows]


def open_incident(
    con: duckdb.DuckDBPyConnection,
    alert: Alert,
    received: dt.datetime,
    *,
    incident_id: str | None = None,
    impacts: dict[tuple[str, dt.datetime], impact.ImpactEstimate] | None = None,
) -> str:
    """Open a new incident for a firing alert (`incident_id`: the next free one, when the caller knows
    it; `impacts`: impact estimates the caller already made). Its timeline starts here, so its steps
    are numbered here."""
    incident_id = incident_id or next_incident_id(con)
    slos = linked_slos(con, alert)
    known = impacts or {}
    estimates = [
        known.get((slo, alert.starts_at)) or impact.impact_start_for(con, slo, alert.starts_at)
        for slo in slos
    ] or [impact.impact_start_for(con, None, alert.starts_at)]
    best = min(estimates, key=lambda e: e.start)
    repeat_of = _previous_with(con, alert.service, "fingerprint", alert.fingerprint, best.start, incident_id)
    severity = alert.severity if alert.severity in SEVERITIES else None
    con.execute(
        """INSERT INTO incidents (id, service, title, severity, status, source, fingerprint, slo_id,
               impact_start, impact_start_source, detected_at, detected_at_source, repeat_of, external_id,
               imported, created_at, updated_at, triage_pending, impact_method)
           VALUES (?, ?, ?, ?, 'triggered', ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?, ?, TRUE, ?)""",
        [
            incident_id,
            alert.service,
            alert.title or alert.fingerprint,
            severity,
            alert.source,
            alert.fingerprint,
            slos[0] if slos else None,
            best.start,
            best.source,
            alert.starts_at,
            alert.source,
            repeat_of,
            alert.external_id,
            received,
            alert.starts_at,
            best.method,
        ],
    )
    for slo in slos:
        con.execute("INSERT OR IGNORE INTO incident_slos VALUES (?, ?, NULL)", [incident_id, slo])
    add_timeline(
        con,
        incident_id,
        best.start,
        "impact_start",
        best.source,
        f"impact started (estimated: {best.method})",
        data={"slos": slos},
        seq=1,
    )
    add_timeline(
        con,
        incident_id,
        alert.starts_at,
        "alert",
        alert.source,
        f"alert fired: {alert.title}" + (f" ({alert.severity})" if alert.severity else ""),
        data={
            "fingerprint": alert.fingerprint,
            "slo": alert.slo,
            "dedup_key": alert.dedup_key,
            "labels": alert.labels,
            "external_id": alert.external_id,
        },
        seq=2,
    )
    if repeat_of:
        add_timeline(
            con,
            incident_id,
            alert.starts_at,
            "repeat",
            "fold",
            f"repeat of {repeat_of} (same fingerprint within {REPEAT_DAYS} days of its resolution)",
            data={"repeat_of": repeat_of},
            seq=3,
        )
    return incident_id


def _previous_with(
    con: duckdb.DuckDBPyConnection,
    service: str,
    column: str,
    value: str | None,
    start: dt.datetime,
    exclude: str,
) -> str | None:
    """DESIGN §2 repeat: the latest incident of the service with the same fingerprint or root-cause
    category, resolved no more than REPEAT_DAYS before `start`."""
    if value is None or column not in ("fingerprint", "root_cause_category"):
        return None
    row = con.execute(
        f"""SELECT id FROM incidents WHERE service = ? AND {column} = ? AND id <> ?
            AND resolved_at IS NOT NULL AND resolved_at <= ? AND resolved_at >= ? - INTERVAL {REPEAT_DAYS} DAY
            ORDER BY resolved_at DESC LIMIT 1""",
        [service, value, exclude, start, start],
    ).fetchone()
    return None if row is None else str(row[0])


# --- commands -------------------------------------------------------------------------------------


def fold_command(con: duckdb.DuckDBPyConnection, row: Row, report: FoldReport) -> None:
    try:
        cmd = Command.from_json(row.body)
    except (TypeError, ValueError, KeyError) as exc:
        raise Rejected(f"command body does not match the Command contract: {exc}") from exc
    if con.execute("SELECT 1 FROM folded_commands WHERE dedup_key = ?", [row.dedup_key]).fetchone():
        report.duplicates += 1  # a refolded inbox: applied the first time
        return
    con.execute("INSERT INTO folded_commands VALUES (?, ?)", [row.dedup_key, row.received_at])
    _check_times(row, at=cmd.at)
    if cmd.command == DEPLOY_COMMAND:  # the deploy feed (issue 17): names no incident
        try:
            deploy_feed.fold_deploy(con, cmd, row.seq, row.received_at)
        except MalformedInput as exc:
            raise Rejected(f"deploy: {exc}") from None
        report.commands += 1
        return
    incident_id = _resolve_incident(con, cmd)
    at = _now_naive(cmd.at) if cmd.at else row.received_at
    report.commands += 1
    apply_command(con, incident_id, cmd, at)


def _check_times(row: Row, **times: dt.datetime | None) -> None:
    """Rows stored before the door checked times: one outside the accepted range is rejected here."""
    for name, t in times.items():
        if t is None:
            continue
        try:
            plausible(_now_naive(t), name, row.received_at)
        except MalformedInput as exc:
            raise Rejected(str(exc)) from None


def _resolve_incident(con: duckdb.DuckDBPyConnection, cmd: Command) -> str:
    """Our incident id; PagerDuty lifecycle events name theirs (or our id as their dedup key)."""
    if cmd.incident_id and con.execute("SELECT 1 FROM incidents WHERE id = ?", [cmd.incident_id]).fetchone():
        return cmd.incident_id
    if cmd.external_id:
        row = con.execute(
            "SELECT id FROM incidents WHERE external_id = ? OR id = ? ORDER BY created_at DESC LIMIT 1",
            [cmd.external_id, cmd.external_id],
        ).fetchone()
        if row:
            return str(row[0])
    named = cmd.incident_id or cmd.external_id
    raise Rejected(f"{cmd.command}: no incident {named!r} (by id or external id)")


def apply_command(con: duckdb.DuckDBPyConnection, incident_id: str, cmd: Command, at: dt.datetime) -> None:
    inc = incident(con, incident_id)
    assert inc is not None
    name = cmd.command
    try:
        if name in TRANSITIONS:
            _transition(con, inc, cmd, at)
        elif name == "root_cause":
            _root_cause(con, inc, cmd, at)
        elif name == "action_item":
            _action_item(con, inc, cmd, at)
        elif name == "action_item_done":
            _action_item_done(con, inc, cmd, at)
        elif name in ("approve_remediation", "reject_remediation"):
            _approval(con, inc, cmd, at)
        elif name == "retriage":
            if inc["status"] == "closed":
                raise Rejected("retriage: the incident is closed")
            con.execute("UPDATE incidents SET triage_pending = TRUE WHERE id = ?", [incident_id])
            add_timeline(
                con, incident_id, at, "retriage_requested", cmd.source, "re-triage requested", actor=cmd.actor
            )
        elif name == "remediation_result":
            _remediation_result(con, inc, cmd, at)
        elif name == "assign":
            _assign(con, inc, cmd, at)
        elif name == "severity_trigger":
            _severity_trigger(con, inc, cmd, at)
        elif name == "approve_status":
            _approve_status(con, inc, cmd, at)
        elif name == "approve_updates":
            _approve_updates(con, inc, cmd, at)
        else:
            raise Rejected(f"unknown command {name!r}")
    except Rejected as exc:
        add_timeline(
            con,
            incident_id,
            at,
            "command_rejected",
            cmd.source,
            f"{name} rejected: {exc}",
            actor=cmd.actor,
            data={"command": name, "args": cmd.args},
        )
    _touch(con, incident_id, at)


def _transition(con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime) -> None:
    allowed, target = TRANSITIONS[cmd.command]
    status = inc["status"]
    if cmd.source == "pagerduty" and (status == target or (target == "resolved" and status == "closed")):
        # PagerDuty echoing a step made here (we resolved its incident, or the page we sent): no news
        add_timeline(
            con, inc["id"], at, "pagerduty_confirmed", "pagerduty",
            f"PagerDuty reports the incident {target} too (it already is: {status})", actor=cmd.actor,
        )  # fmt: skip
        return
    if status not in allowed:
        raise Rejected(f"the incident is {status} (allowed from: {', '.join(allowed)})")
    iid, src = inc["id"], cmd.source
    if target in ("acknowledged", "mitigated", "resolved") and at < inc["detected_at"]:
        raise Rejected(f"{at:%Y-%m-%d %H:%M:%S} is before the incident was detected ({inc['detected_at']})")
    if target == "acknowledged":
        con.execute(
            "UPDATE incidents SET status = ?, acknowledged_at = ?, acknowledged_at_source = ? WHERE id = ?",
            [target, at, src, iid],
        )
    elif target == "mitigated":
        con.execute(
            "UPDATE incidents SET status = ?, mitigated_at = ?, mitigated_at_source = ? WHERE id = ?",
            [target, at, src, iid],
        )
    elif target == "resolved":
        # Resolving implies the impact was mitigated by then; an acknowledgement is never invented.
        con.execute(
            """UPDATE incidents SET status = ?, resolved_at = ?, resolved_at_source = ?,
                   mitigated_at = coalesce(mitigated_at, ?),
                   mitigated_at_source = coalesce(mitigated_at_source, ?) WHERE id = ?""",
            [target, at, src, at, f"{src} (implied by resolve)", iid],
        )
    elif target == "closed":
        if not inc["root_cause"]:
            raise Rejected("record the root cause first (slo incidents root-cause ID --category C --text T)")
        con.execute(
            "UPDATE incidents SET status = ?, closed_at = ?, postmortem_done_at = ? WHERE id = ?",
            [target, at, at, iid],
        )
    elif target == "triggered":  # reopen: the impact is back; earlier times stay on the timeline
        con.execute(
            """UPDATE incidents SET status = 'triggered', mitigated_at = NULL, mitigated_at_source = NULL,
                   resolved_at = NULL, resolved_at_source = NULL WHERE id = ?""",
            [iid],
        )
    if target in ("resolved", "triggered"):  # the span changed: budgets are recomputed for the new end
        con.execute("UPDATE incident_slos SET budget_consumed = NULL WHERE incident_id = ?", [iid])
    note = cmd.args.get("note")
    words = {
        "acknowledged": "acknowledged",
        "mitigated": "mitigated",
        "resolved": "resolved",
        "closed": "closed (post-mortem done)",
        "triggered": "reopened",
    }
    add_timeline(
        con,
        iid,
        at,
        target if cmd.command != "reopen" else "reopened",
        src,
        words[target] + (f": {note}" if note else ""),
        actor=cmd.actor,
        data={"from": status},
    )


def _args(cmd: Command) -> dict[str, Any]:
    """The command's arguments through the one validator every door uses (a command stored before a
    rule changed, or appended by hand, is still checked here), with its defaults filled in."""
    try:
        return validate_args(cmd.command, cmd.args)
    except CommandError as exc:
        raise Rejected(str(exc)) from exc


def _root_cause(con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime) -> None:
    if inc["status"] == "closed":
        raise Rejected("the incident is closed")
    a = _args(cmd)
    category, text, fix = a["category"], a["text"], a.get("fix")
    con.execute(
        """UPDATE incidents SET root_cause_category = ?, root_cause = ?, fix = coalesce(?, fix),
               root_cause_at = coalesce(root_cause_at, ?) WHERE id = ?""",
        [category, text, str(fix).strip() if fix else None, at, inc["id"]],
    )
    add_timeline(
        con,
        inc["id"],
        at,
        "root_cause",
        cmd.source,
        f"root cause ({category}): {text}" + (f"; fix: {fix}" if fix else ""),
        actor=cmd.actor,
        data={"category": category},
    )
    if not inc["repeat_of"]:
        start = inc["impact_start"] or inc["detected_at"]
        prev = _previous_with(con, inc["service"], "root_cause_category", category, start, inc["id"])
        if prev:
            con.execute("UPDATE incidents SET repeat_of = ? WHERE id = ?", [prev, inc["id"]])
            add_timeline(
                con,
                inc["id"],
                at,
                "repeat",
                "fold",
                f"repeat of {prev} (same root-cause category within {REPEAT_DAYS} days of its resolution)",
                data={"repeat_of": prev},
            )


def _action_item(con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime) -> None:
    a = _args(cmd)
    title, owner, priority = a["title"], a["owner"], a["priority"]
    due = dt.date.fromisoformat(a["due_date"])
    n = int(
        (
            con.execute("SELECT count(*) FROM action_items WHERE incident_id = ?", [inc["id"]]).fetchone()
            or (0,)
        )[0]
    )
    item_id = f"{inc['id']}-A{n + 1}"
    con.execute(
        "INSERT INTO action_items VALUES (?, ?, ?, ?, ?, ?, 'open', NULL, ?)",
        [item_id, inc["id"], title, owner, priority, due, at],
    )
    add_timeline(
        con,
        inc["id"],
        at,
        "action_item",
        cmd.source,
        f"action item {item_id}: {title} → {owner} ({priority}, due {due})",
        actor=cmd.actor,
        data={"action_item_id": item_id},
    )


def _action_item_done(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime
) -> None:
    item_id = str(cmd.args.get("action_item_id") or "")
    row = con.execute(
        "SELECT status FROM action_items WHERE id = ? AND incident_id = ?", [item_id, inc["id"]]
    ).fetchone()
    if row is None:
        raise Rejected(f"no action item {item_id!r} on this incident")
    if row[0] == "done":
        raise Rejected(f"action item {item_id} is already done")
    con.execute("UPDATE action_items SET status = 'done', done_at = ? WHERE id = ?", [at, item_id])
    add_timeline(
        con, inc["id"], at, "action_item_done", cmd.source, f"action item {item_id} done", actor=cmd.actor
    )


def _approval(con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime) -> None:
    rid = str(cmd.args.get("remediation_id") or "")
    row = con.execute(
        "SELECT status, action FROM remediations WHERE id = ? AND incident_id = ?", [rid, inc["id"]]
    ).fetchone()
    if row is None:
        raise Rejected(f"no remediation {rid!r} on this incident")
    if row[0] != "awaiting_approval":
        raise Rejected(f"remediation {rid} is {row[0]}, not awaiting approval")
    reason = cmd.args.get("reason")
    if cmd.command == "approve_remediation":
        con.execute(
            "UPDATE remediations SET status = 'queued', approved_by = ? WHERE id = ?", [cmd.actor, rid]
        )
        add_timeline(
            con,
            inc["id"],
            at,
            "remediation_approved",
            cmd.source,
            f"remediation {rid} ({row[1]}) approved",
            actor=cmd.actor,
        )
    else:
        con.execute(
            "UPDATE remediations SET status = 'rejected', approved_by = ?, finished_at = ? WHERE id = ?",
            [cmd.actor, at, rid],
        )
        con.execute(
            "UPDATE incidents SET escalation_pending = ? WHERE id = ?",
            [f"remediation {rid} ({row[1]}) rejected by {cmd.actor}", inc["id"]],
        )
        add_timeline(
            con,
            inc["id"],
            at,
            "remediation_rejected",
            cmd.source,
            f"remediation {rid} ({row[1]}) rejected" + (f": {reason}" if reason else ""),
            actor=cmd.actor,
        )


def _assign(con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime) -> None:
    """An incident role (incident_roles.py), on the timeline as `role_assigned`: the record of who holds
    each role. Assigning the person who already holds it is rejected (nothing changes)."""
    if inc["status"] == "closed":
        raise Rejected("the incident is closed")
    a = _args(cmd)
    role, person, note = a["role"], a["person"], a.get("note")
    held = con.execute(
        "SELECT kind, data FROM timeline WHERE incident_id = ? AND kind = 'role_assigned' ORDER BY seq",
        [inc["id"]],
    ).fetchall()
    previous = incident_roles.roles_from_timeline({"kind": k, "data": d} for k, d in held).get(role)
    label = incident_roles.ROLES[role]
    if previous == person:
        raise Rejected(f"{person} already is the {label}")
    add_timeline(
        con,
        inc["id"],
        at,
        "role_assigned",
        cmd.source,
        f"{label}: {person}" + (f" (was {previous})" if previous else "") + (f"; {note}" if note else ""),
        actor=cmd.actor,
        data={"role": role, "person": person, "previous": previous},
    )


def _severity_trigger(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime
) -> None:
    """A person applies one of seed 002's severity triggers (severity_rules.py). An upgrade is on the
    timeline with its reason; one that makes an open incident SEV1/SEV2 before anyone was paged marks
    it for escalation. A trigger that raises nothing is rejected (the severity stays)."""
    if inc["status"] in ("resolved", "closed"):
        raise Rejected(f"the incident is {inc['status']}")
    a = _args(cmd)
    trigger, note = a["trigger"], a.get("note")
    asked = f"asked by {cmd.actor} via {cmd.source}" + (f": {note}" if note else "")
    severity, upgrades = severity_rules.apply(inc["severity"], {trigger: asked})
    if not upgrades:
        raise Rejected(f"{trigger}: no upgrade, the incident already is {inc['severity']}")
    up = upgrades[0]
    con.execute("UPDATE incidents SET severity = ? WHERE id = ?", [severity, inc["id"]])
    add_timeline(
        con,
        inc["id"],
        at,
        "severity_upgraded",
        cmd.source,
        up.message(),
        actor=cmd.actor,
        data={"trigger": trigger, "from": up.before, "to": up.after, "by": "command"},
    )
    if (
        severity in ("SEV1", "SEV2")
        and inc["status"] in ("triggered", "acknowledged")
        and inc["escalated_at"] is None
        and not inc["triage_pending"]
    ):
        con.execute(
            "UPDATE incidents SET escalation_pending = ? WHERE id = ?",
            [f"severity raised to {severity}: {up.reason}", inc["id"]],
        )


def _comms_approval(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, a: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Whether `cmd` may give a communications approval (incident_roles.comms_refusal): Rejected unless
    its actor is the communications lead, or it is an admin override. Returns what the timeline adds
    after "approved by <actor>" and the entry's data (the override, and whom it overrode)."""
    held = con.execute(
        "SELECT kind, data FROM timeline WHERE incident_id = ? AND kind = 'role_assigned' ORDER BY seq",
        [inc["id"]],
    ).fetchall()
    roles = incident_roles.roles_from_timeline({"kind": k, "data": d} for k, d in held)
    lead = roles.get("communications_lead")
    refusal = incident_roles.comms_refusal(roles, cmd.actor, inc["id"])
    if refusal is None:
        return " (the communications lead)", {"communications_lead": lead, "override": False}
    if not a.get("override"):
        raise Rejected(refusal)
    overrode = f"communications lead {lead}" if lead else "no communications lead assigned"
    return f" as an admin override ({overrode})", {"communications_lead": lead, "override": True}


def _approve_status(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime
) -> None:
    """The status page's first post approved (issue 17) by the communications lead, or by an admin's
    override: the stage's status-page step posts from now on (only for a service that opted in); the
    note, when given, is the user impact the post says."""
    row = con.execute("SELECT approved_by FROM status_posts WHERE incident_id = ?", [inc["id"]]).fetchone()
    if row is not None and row[0] is not None:
        raise Rejected(f"the status page was already approved by {row[0]}")
    a = _args(cmd)
    who, data = _comms_approval(con, inc, cmd, a)
    impact = a.get("note")
    con.execute(
        """INSERT INTO status_posts (incident_id, asked_at, approved_by, approved_at, impact)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (incident_id) DO UPDATE SET approved_by = excluded.approved_by,
               approved_at = excluded.approved_at, impact = excluded.impact""",
        [inc["id"], at, cmd.actor, at, impact],
    )
    add_timeline(
        con, inc["id"], at, "status_page_approved", cmd.source,
        f"status page posting approved by {cmd.actor}{who}" + (f"; impact: {impact}" if impact else ""),
        actor=cmd.actor, data=data,
    )  # fmt: skip


def _approve_updates(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime
) -> None:
    """Stakeholder updates approved (issue 17) by the communications lead, or by an admin's override: the
    stage sends the latest drafted update to Slack, then each one drafted at its cadence, until the
    resolved one (`steps/updates.py`). Once per incident."""
    row = con.execute(
        "SELECT actor FROM timeline WHERE incident_id = ? AND kind = 'updates_approved'", [inc["id"]]
    ).fetchone()
    if row is not None:
        raise Rejected(f"stakeholder updates were already approved by {row[0]}")
    if inc["status"] in ("resolved", "closed"):
        raise Rejected(f"the incident is {inc['status']}: no stakeholder updates are sent any more")
    who, data = _comms_approval(con, inc, cmd, _args(cmd))
    add_timeline(
        con, inc["id"], at, "updates_approved", cmd.source,
        f"stakeholder updates to Slack approved by {cmd.actor}{who}", actor=cmd.actor, data=data,
    )  # fmt: skip


# interrupted: the service restarted while the script ran (runners.reap_interrupted_remediations)
REMEDIATION_OUTCOMES = ("succeeded", "failed", "timed_out", "interrupted", "dry_run", "refused")


def _remediation_result(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], cmd: Command, at: dt.datetime
) -> None:
    a = cmd.args
    rid = str(a.get("remediation_id") or "")
    row = con.execute(
        "SELECT status, action FROM remediations WHERE id = ? AND incident_id = ?", [rid, inc["id"]]
    ).fetchone()
    if row is None:
        raise Rejected(f"no remediation {rid!r} on this incident")
    if row[0] not in ("queued", "running"):
        raise Rejected(f"remediation {rid} already ended ({row[0]})")
    status = str(a.get("status"))
    if status not in REMEDIATION_OUTCOMES:
        status = "failed"
    started = parse_time(a.get("started_at")) or at
    finished = parse_time(a.get("finished_at")) or at
    dry = status == "dry_run"
    verify_by = None
    if status == "succeeded":
        minutes = int(a.get("verify_within_minutes") or 15)
        verify_by = finished + dt.timedelta(minutes=minutes)
    con.execute(
        """UPDATE remediations SET status = ?, attempts = ?, exit_code = ?, output = ?, started_at = ?,
               finished_at = ?, verify_by = ?, dry_run = ? WHERE id = ?""",
        [
            status,
            int(a.get("attempts") or 0),
            a.get("exit_code"),
            str(a.get("output") or "")[-4000:],
            started,
            finished,
            verify_by,
            dry,
            rid,
        ],
    )
    add_timeline(
        con,
        inc["id"],
        finished,
        "remediation_result",
        cmd.source,
        f"remediation {rid} ({row[1]}) {status}"
        + (
            f" after {a.get('attempts')} attempt(s), exit code {a.get('exit_code')}"
            if not dry
            else " (dry run: nothing ran)"
        )
        + (f"; verifying the SLI until {verify_by:%H:%M}" if verify_by else "")
        + (f": {str(a['note'])[:500]}" if a.get("note") else ""),
        actor=cmd.actor,
        data={k: a.get(k) for k in ("exit_code", "attempts", "status")},
    )
    if status != "succeeded":
        con.execute(
            "UPDATE incidents SET escalation_pending = ? WHERE id = ?",
            [f"remediation {rid} ({row[1]}) {status}", inc["id"]],
        )
