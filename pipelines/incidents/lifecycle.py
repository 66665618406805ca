"""The incident stage of a pipeline cycle: `process(con, settings, now)`, top to bottom.

    engine alerts → inbox → fold (alerts, incidents, commands) → triage → route → escalate | queue a
    remediation (run outside DuckDB; its outcome comes back through the inbox) → verify → timers →
    budgets → documents

Only the writer calls this. Everything slow or external (the model, PagerDuty/Slack, remediation
scripts) happens here or in a runner, never inside the fold's transactions, and every outcome is
recorded on the incident's timeline. Nothing in this stage raises for one bad incident: every step
runs each record (an incident, a remediation) through `Isolation.run`, which rolls that record back,
keeps the failure in `step_failures` and on the incident's timeline, and goes on with the next record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb

from pipelines import engine
from pipelines.config import Settings
from pipelines.inbox import Entry, Inbox
from pipelines.incidents import documents, engine_alerts, impact, supervision, timers
from pipelines.incidents.contract import Command, TriageContext, TriageResult
from pipelines.incidents.fold import FoldReport, add_timeline, fold_inbox, incident

log = logging.getLogger(__name__)
SIMILAR_LIMIT = 5
# Seconds of triage per cycle (one model call may take its whole 30 s timeout): new incidents past it
# are published untriaged and triaged in the next cycle, so a slow model never hides them.
TRIAGE_BUDGET_S = 20.0
DEPLOY_LOOKBACK = dt.timedelta(hours=24)
INBOX_OUTPUT_CHARS = 4000  # the fold keeps the last 4,000 characters of a remediation's output


@dataclass(frozen=True)
class RemediationJob:
    remediation_id: str
    incident_id: str
    service: str
    action: str
    dry_run: bool
    approved_by: str | None = None  # the recorded approval, for actions marked critical


class Runner(Protocol):
    """Runs remediation jobs outside the fold and reports each outcome as a `remediation_result`
    command in the inbox."""

    synchronous: bool

    def submit(self, job: RemediationJob, now: dt.datetime) -> None: ...

    def in_flight(self) -> set[str]: ...


def _result_command(
    job: RemediationJob,
    result: dict[str, Any],
    started: dt.datetime,
    finished: dt.datetime,
    settings: Settings,
) -> Entry:
    status = str(result.get("status") or "failed")
    output = str(result.get("output") or "")
    if len(output) > INBOX_OUTPUT_CHARS:  # the head (and the byte count near it) and the end survive
        head, tail = INBOX_OUTPUT_CHARS // 2, INBOX_OUTPUT_CHARS // 2 - 100
        output = f"{output[:head]}\n…[{len(output) - head - tail} characters omitted]…\n{output[-tail:]}"
    cmd = Command(
        command="remediation_result",
        incident_id=job.incident_id,
        actor="remediation-runner",
        source="remediation",
        dedup_key=f"remediation_result:{job.remediation_id}",
        at=finished,
        args={
            "remediation_id": job.remediation_id,
            "status": status,
            "exit_code": result.get("exit_code"),
            "attempts": result.get("attempts"),
            "output": output,
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat(),
            "verify_within_minutes": settings.verify_within_minutes,
            **({"note": str(result["note"])} if result.get("note") else {}),
        },
    )
    return Entry(cmd.dedup_key, "command", "remediation", cmd.to_json())


def _run(job: RemediationJob, settings: Settings) -> dict[str, Any]:
    try:
        from pipelines.incidents.routing import run_remediation
    except ImportError as exc:
        return {
            "status": "refused",
            "exit_code": None,
            "attempts": 0,
            "output": f"routing module missing: {exc}",
        }
    try:
        return run_remediation(
            job.service,
            job.action,
            job.incident_id,
            settings,
            dry_run=job.dry_run,
            approved_by=job.approved_by,
            remediation_id=job.remediation_id,
        )
    except Exception as exc:  # the runner never takes the worker down
        return {
            "status": "failed",
            "exit_code": None,
            "attempts": 0,
            "output": f"{exc.__class__.__name__}: {exc}",
        }


class SyncRunner:
    """Runs each job at once (one-shot CLI and demo runs); times are `now` plus the measured duration."""

    synchronous = True

    def __init__(self, inbox: Inbox, settings: Settings, duration: dt.timedelta | None = None) -> None:
        self.inbox, self.settings = inbox, settings
        self.duration = duration  # a fixed duration to record (the demo's replay), else the measured one

    def submit(self, job: RemediationJob, now: dt.datetime) -> None:
        t0 = time.monotonic()
        result = _run(job, self.settings)
        took = self.duration or dt.timedelta(seconds=max(1, round(time.monotonic() - t0)))
        finished = now + took
        self.inbox.append([_result_command(job, result, now, finished, self.settings)])
        supervision.remove_record(self.settings.data_dir, job.remediation_id)  # the outcome is durable

    def in_flight(self) -> set[str]:
        return set()


class ThreadRunner:
    """Runs jobs on a small thread pool (the service's worker), so the DuckDB writer never waits."""

    synchronous = False

    def __init__(self, inbox: Inbox, settings: Settings, workers: int = 2) -> None:
        self.inbox, self.settings = inbox, settings
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remediation")
        self._futures: dict[str, Future[None]] = {}

    def submit(self, job: RemediationJob, now: dt.datetime) -> None:
        def work() -> None:
            started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            result = _run(job, self.settings)
            finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            self.inbox.append([_result_command(job, result, started, finished, self.settings)])
            supervision.remove_record(self.settings.data_dir, job.remediation_id)  # the outcome is durable

        self._futures[job.remediation_id] = self._pool.submit(work)

    def in_flight(self) -> set[str]:
        return {rid for rid, f in self._futures.items() if not f.done()}

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def reap_interrupted_remediations(inbox: Inbox, settings: Settings) -> list[str]:
    """At service start, before any cycle: a script recorded as running whose supervisor is gone (the
    service was killed) is killed with everything it started, and its outcome goes to the inbox as
    `interrupted`, saying so, under the key a real result would have used (so only one of them counts).
    The incident escalates like after any remediation that did not succeed. Returns the ids reaped."""
    reaped = []
    for rec in supervision.records(settings.data_dir):
        if supervision.supervisor_alive(rec):
            continue  # another process on this data dir still runs it
        rid, pid = str(rec["remediation_id"]), rec.get("pid")
        try:
            processes = supervision.reap(rec)
        except (TypeError, ValueError) as exc:  # a damaged record must not keep the service down
            log.warning("remediation %s: cannot reap its record %r: %s", rid, rec, exc)
            continue
        note = (
            "the service restarted while this remediation was running "
            f"(attempt {rec.get('attempt')}, pid {pid}); "
            + (
                f"its {processes} process(es) were killed"
                if processes
                else "it had already exited and its result was lost"
            )
        )
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            started = dt.datetime.fromisoformat(str(rec.get("started_at")))
        except ValueError:
            started = now
        job = RemediationJob(
            rid, str(rec.get("incident_id")), str(rec.get("service")), str(rec.get("action")), False
        )
        result = {
            "status": "interrupted",
            "exit_code": None,
            "attempts": rec.get("attempt"),
            "output": note,
            "note": note,
        }
        inbox.append([_result_command(job, result, started, now, settings)])
        supervision.remove_record(settings.data_dir, rid)
        log.warning("remediation %s of %s: %s", rid, job.incident_id, note)
        reaped.append(rid)
    return reaped


@dataclass
class ProcessReport:
    engine_alerts: int = 0
    fold: FoldReport = field(default_factory=FoldReport)
    triaged: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    remediations: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    timers: int = 0
    documents: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IncidentStage:
    """The cycle's incident stage in production: the inbox processed once, at the wall clock (or at
    the data's end when a source's data runs ahead of it). The service passes its thread runner."""

    runner: Runner | None = None

    def __call__(self, con: duckdb.DuckDBPyConnection, settings: Settings, end: dt.datetime) -> ProcessReport:
        wall = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return process(con, settings, max(wall, end), runner=self.runner)


def process(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    *,
    inbox: Inbox | None = None,
    runner: Runner | None = None,
    emit_engine_alerts: bool = True,
) -> ProcessReport:
    """Run the incident stage once at `now` (naive or aware UTC)."""
    now = now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now
    inbox = inbox or Inbox(settings.data_dir)
    runner = runner or SyncRunner(inbox, settings)
    report = ProcessReport()
    iso = Isolation(con, report, now)
    if emit_engine_alerts:
        report.engine_alerts = _guard(report, "engine alerts", engine_alerts.emit, con, inbox, now) or 0
    for _ in range(3):  # a synchronous runner's results come back through the inbox: fold them too
        _merge(report.fold, fold_inbox(con, inbox))
        todo = _agenda(con)
        if todo["triage"]:
            _guard(report, "triage", triage_pending, con, settings, now, iso)
        queued = (
            _guard(report, "remediation", queue_remediations, con, settings, now, runner, iso) or 0
            if todo["queued"] or todo["triage"]
            else 0
        )
        if todo["escalate"] or todo["triage"]:
            _guard(report, "escalation", send_escalations, con, settings, now, iso)
        if not (runner.synchronous and queued):
            break
    todo = _agenda(con)
    if todo["verify"]:
        _guard(report, "verification", verify_remediations, con, now, iso)
        _guard(report, "escalation", send_escalations, con, settings, now, iso)
    if todo["running"]:
        _guard(report, "lost remediations", expire_lost_remediations, con, inbox, settings, now, runner)
    report.timers = _guard(report, "timers", run_timers, con, settings, now, iso) or 0
    _guard(report, "PagerDuty resolve", resolve_pages, con, settings, now, iso)
    _guard(report, "budgets", update_budgets, con, now, iso)
    report.documents = _guard(report, "documents", write_documents, con, settings, now, iso) or 0
    for error in report.errors:
        log.warning("incident stage: %s", error)
    return report


def _guard(report: ProcessReport, step: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one housekeeping step; a failure is reported (and logged) instead of stopping the cycle,
    whose metrics and alerts must still be published."""
    try:
        return fn(*args)
    except Exception as exc:
        report.errors.append(f"{step}: {exc.__class__.__name__}: {exc}")
        return None


class Isolation:
    """Runs one step for one record so that its failure stays with that record.

    `run` wraps the record's work in a transaction (or lets a step that manages its own run bare); on
    an exception it rolls the record back, records the failure in `step_failures` (attempts, first
    and last time) and, when it is new or its error changed, on the incident's timeline and in the
    log, then returns None: the step goes on with its next record, and the record is tried again next
    cycle. A record that succeeds again has its failure cleared.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, report: ProcessReport, now: dt.datetime) -> None:
        self.con, self.report, self.now = con, report, now
        self.open: set[tuple[str, str]] = {
            (str(step), str(record))
            for step, record in con.execute(
                "SELECT step, record FROM step_failures WHERE cleared_at IS NULL"
            ).fetchall()
        }

    def run(
        self,
        step: str,
        record: str,
        incident_id: str | None,
        fn: Callable[..., Any],
        *args: Any,
        transaction: bool = True,
        on_failure: Callable[[str], None] | None = None,
    ) -> Any:
        con = self.con
        try:
            if transaction:
                con.execute("BEGIN TRANSACTION")
            result = fn(*args)
            if transaction:
                con.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(duckdb.Error):  # "no transaction is active" when fn had none open
                con.execute("ROLLBACK")
            error = f"{type(exc).__name__}: {exc}"[:2000]
            self.report.errors.append(f"{record}: {step}: {error}")
            try:
                self._failed(step, record, incident_id, error)
                if on_failure is not None:
                    on_failure(error)
            except Exception:  # recording the failure failed too: the log keeps it, the cycle goes on
                log.exception("%s: %s failed (%s) and could not be recorded", record, step, error)
            return None
        if (step, record) in self.open:
            self.open.discard((step, record))
            con.execute(
                "UPDATE step_failures SET cleared_at = ?"
                " WHERE step = ? AND record = ? AND cleared_at IS NULL",
                [self.now, step, record],
            )
            if incident_id is not None:
                add_timeline(con, incident_id, self.now, "step_recovered", step, f"{step} succeeded again")
        return result

    def _failed(self, step: str, record: str, incident_id: str | None, error: str) -> None:
        con, now = self.con, self.now
        before = con.execute(
            "SELECT error FROM step_failures WHERE step = ? AND record = ? AND cleared_at IS NULL",
            [step, record],
        ).fetchone()
        if before is None:
            con.execute("DELETE FROM step_failures WHERE step = ? AND record = ?", [step, record])
            con.execute(
                "INSERT INTO step_failures VALUES (?, ?, ?, ?, ?, ?, 1, NULL)",
                [step, record, incident_id, error, now, now],
            )
        else:
            con.execute(
                "UPDATE step_failures SET error = ?, last_at = ?, attempts = attempts + 1"
                " WHERE step = ? AND record = ?",
                [error, now, step, record],
            )
        self.open.add((step, record))
        if before is not None and before[0] == error:
            return  # the same failure again: counted, not repeated on the timeline or in the log
        log.warning("%s: %s failed, isolated (the cycle goes on): %s", record, step, error)
        if incident_id is not None:
            add_timeline(
                con,
                incident_id,
                now,
                "step_failed",
                step,
                f"{step} failed: {error}; every other incident went on, this one is retried each cycle",
                data={"step": step, "record": record, "error": error},
            )


def _agenda(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """What the respond steps have to do (one query, so an idle cycle costs little)."""
    row = con.execute(
        """SELECT (SELECT count(*) FROM incidents WHERE triage_pending AND status <> 'closed'),
                  (SELECT count(*) FROM incidents WHERE escalation_pending IS NOT NULL),
                  (SELECT count(*) FROM remediations WHERE status = 'queued'),
                  (SELECT count(*) FROM remediations WHERE status = 'succeeded' AND verified IS NULL),
                  (SELECT count(*) FROM remediations WHERE status = 'running')"""
    ).fetchone() or (0, 0, 0, 0, 0)
    return dict(zip(("triage", "escalate", "queued", "verify", "running"), map(int, row), strict=True))


def incidents_where(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """Incident rows as dicts, in one query (`where` is a constant SQL condition, never user input)."""
    rel = con.execute(f"SELECT * FROM incidents WHERE {where} ORDER BY created_at, id", params)
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def _merge(total: FoldReport, part: FoldReport) -> None:
    for k, v in vars(part).items():
        cur = getattr(total, k)
        setattr(total, k, cur + v if not isinstance(v, list) else [*cur, *v])


def _evaluated_to(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    row = con.execute("SELECT max(evaluated_to) FROM engine_state").fetchone()
    return None if not row or row[0] is None else engine.datetime_of(int(row[0])).replace(tzinfo=None)


# --- triage and route -----------------------------------------------------------------------------


def build_context(
    con: duckdb.DuckDBPyConnection, settings: Settings, inc: dict[str, Any], now: dt.datetime
) -> TriageContext:
    """What the triage may look at; the alert text is passed as data (the triage quotes it)."""
    from pipelines.incidents.runbooks import load_runbook

    alerts = con.execute(
        """SELECT source, title, description, labels, annotations, starts_at, severity FROM alerts
           WHERE incident_id = ? AND status = 'firing' ORDER BY starts_at, inbox_seq LIMIT 5""",
        [inc["id"]],
    ).fetchall()
    alert_text = "\n\n".join(
        json.dumps(
            {
                "source": a[0],
                "title": a[1],
                "description": a[2],
                "labels": json.loads(a[3] or "{}"),
                "annotations": json.loads(a[4] or "{}"),
                "starts_at": str(a[5]),
                "severity": a[6],
            },
            ensure_ascii=False,
        )
        for a in alerts
    )
    runbook = load_runbook(settings.runbooks_dir, inc["service"])
    return TriageContext(
        incident_id=inc["id"],
        service=inc["service"],
        title=inc["title"],
        alert_text=alert_text,
        source_severity=inc.get("severity"),
        slo_status=slo_status(con, inc["service"], now),
        recent_deploys=recent_deploys(con, inc["service"], inc["detected_at"]),
        runbook_text=runbook.text,
        allowed_actions=runbook.allowed_actions,
        similar_incidents=similar_incidents(con, inc),
    )


def slo_status(con: duckdb.DuckDBPyConnection, service: str, now: dt.datetime) -> list[dict[str, Any]]:
    from pipelines.errors import SloError
    from pipelines.status import StatusQuery, status

    latest = _evaluated_to(con)
    if latest is None:
        return []
    try:
        return status(con, StatusQuery(at=min(now, latest).replace(tzinfo=dt.UTC), service=service))
    except SloError:
        return []


def recent_deploys(con: duckdb.DuckDBPyConnection, service: str, at: dt.datetime) -> list[dict[str, Any]]:
    rows = con.execute(
        """SELECT deployed_at, version, description FROM deploys WHERE service = ? AND deployed_at <= ?
           AND deployed_at >= ? ORDER BY deployed_at DESC LIMIT 5""",
        [service, at, at - DEPLOY_LOOKBACK],
    ).fetchall()
    return [
        {
            "deployed_at": r[0].isoformat(),
            "version": r[1],
            "description": r[2],
            "minutes_before_detection": round((at - r[0]).total_seconds() / 60),
        }
        for r in rows
    ]


def similar_incidents(con: duckdb.DuckDBPyConnection, inc: dict[str, Any]) -> list[dict[str, Any]]:
    """Past incidents of the service, same fingerprint first, with how they ended: root cause, fix, time
    to resolve, and the last remediation (`remediation_status` is `succeeded` only when verified)."""
    rows = con.execute(
        """SELECT i.id, i.title, i.severity, i.status, i.route, i.root_cause_category, i.root_cause, i.fix,
                  i.fingerprint = ? AS same_fingerprint, i.detected_at, i.resolved_at,
                  date_diff('minute', i.impact_start, i.resolved_at) AS ttr_minutes,
                  r.action AS remediation_action,
                  CASE WHEN r.verified THEN 'succeeded' WHEN r.verified = FALSE THEN 'not_verified'
                       ELSE r.status END AS remediation_status
           FROM incidents i
           LEFT JOIN (SELECT incident_id, action, status, verified,
                             row_number() OVER (PARTITION BY incident_id ORDER BY created_at DESC,
                                 id DESC) AS n
                      FROM remediations) r ON r.incident_id = i.id AND r.n = 1
           WHERE i.service = ? AND i.id <> ? AND i.detected_at < ?
           ORDER BY same_fingerprint DESC, i.detected_at DESC LIMIT ?""",
        [inc.get("fingerprint"), inc["service"], inc["id"], inc["detected_at"], SIMILAR_LIMIT],
    )
    cols = [d[0] for d in rows.description]
    out = []
    for r in rows.fetchall():
        d = dict(zip(cols, r, strict=True))
        for k in ("detected_at", "resolved_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        out.append(d)
    return out


def _store_triage(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], result: TriageResult, now: dt.datetime
) -> int:
    attempt = int(
        (
            con.execute(
                "SELECT coalesce(max(attempt), 0) + 1 FROM triage WHERE incident_id = ?", [inc["id"]]
            ).fetchone()
            or (1,)
        )[0]
    )
    con.execute(
        "INSERT INTO triage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            inc["id"],
            attempt,
            result.method,
            result.model,
            result.severity,
            result.root_cause_hypothesis,
            result.recommended_action,
            result.confidence,
            result.rationale,
            result.latency_ms,
            result.raw,
            result.error,
            now,
        ],
    )
    add_timeline(
        con,
        inc["id"],
        now,
        "triage",
        "triage",
        f"triage ({result.method}{', ' + result.model if result.model else ''}): {result.severity}, "
        f"action {result.recommended_action}, confidence {result.confidence:.2f}"
        + (f"; fell back to rules: {result.error}" if result.error else ""),
        data={
            "attempt": attempt,
            "method": result.method,
            "model": result.model,
            "latency_ms": result.latency_ms,
            "raw": result.raw,
            "hypothesis": result.root_cause_hypothesis,
        },
    )
    return attempt


def triage_pending(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> None:
    ids = [
        r[0]
        for r in con.execute(
            "SELECT id FROM incidents WHERE triage_pending AND status <> 'closed' ORDER BY created_at, id"
        ).fetchall()
    ]
    started = time.monotonic()
    for n, incident_id in enumerate(ids):
        if n and time.monotonic() - started > TRIAGE_BUDGET_S:  # at least one per cycle
            # The writer must publish: the rest wait for the next cycle, visible but not yet triaged.
            iso.report.errors.append(
                f"triage budget used up; {len(ids) - n} incident(s) wait for the next cycle"
            )
            break

        def untriaged(error: str, incident_id: str = incident_id) -> None:
            # Seed 000's fallback edge: a triage that cannot run escalates to a human.
            con.execute(
                """UPDATE incidents SET triage_pending = FALSE,
                       escalation_pending = CASE WHEN status IN ('triggered', 'acknowledged')
                                            THEN ? ELSE escalation_pending END
                   WHERE id = ?""",
                [f"triage failed ({error[:200]})", incident_id],
            )

        if iso.run(
            "triage",
            incident_id,
            incident_id,
            _triage_one,
            con,
            settings,
            now,
            incident_id,
            transaction=False,
            on_failure=untriaged,
        ):
            iso.report.triaged.append(incident_id)


def _triage_one(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, incident_id: str
) -> bool:
    """Triage and route one incident; True when it was triaged."""
    from pipelines.incidents.routing import decide_route
    from pipelines.incidents.runbooks import load_runbook
    from pipelines.incidents.triage import run_triage

    inc = incident(con, incident_id)
    if inc is None:
        return False
    at = max(now, inc["detected_at"])
    ctx = build_context(con, settings, inc, at)
    result = run_triage(ctx, settings, at=inc["detected_at"])
    runbook = load_runbook(settings.runbooks_dir, inc["service"])
    decision = decide_route(result.severity, result, runbook.allowed_actions, runbook.critical_actions)
    con.execute("BEGIN TRANSACTION")
    try:
        attempt = _store_triage(con, inc, result, at)
        if inc["status"] not in ("triggered", "acknowledged"):
            # Re-triaged after mitigation: the assessment is kept, nobody is paged about it.
            con.execute("UPDATE incidents SET triage_pending = FALSE WHERE id = ?", [incident_id])
            add_timeline(
                con, incident_id, at, "route", "router", f"route unchanged: the incident is {inc['status']}"
            )
        else:
            con.execute(
                "UPDATE incidents SET severity = ?, triage_pending = FALSE, updated_at = "
                "greatest(updated_at, ?) WHERE id = ?",
                [result.severity, at, incident_id],
            )
            _apply_route(con, inc, decision, at, attempt, result)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return True


def _apply_route(
    con: duckdb.DuckDBPyConnection,
    inc: dict[str, Any],
    decision: Any,
    at: dt.datetime,
    attempt: int,
    result: TriageResult,
) -> None:
    iid = inc["id"]
    existing = con.execute("SELECT count(*) FROM remediations WHERE incident_id = ?", [iid]).fetchone()
    n_rem = int(existing[0]) if existing else 0
    route = decision.route
    reason = decision.reason
    if route == "auto_remediate" and n_rem and attempt > 1:
        route, reason = "escalate", f"re-triage after a remediation was already tried: {reason}"
    if route == "auto_remediate" and inc["route"] == "escalate":
        route, reason = "escalate", f"already escalated to a human; triage suggested {decision.action}"
    add_timeline(
        con,
        iid,
        at,
        "route",
        "router",
        f"route: {route} — {reason}",
        data={"route": route, "action": decision.action, "needs_approval": decision.needs_approval},
    )
    con.execute("UPDATE incidents SET route = ? WHERE id = ?", [route, iid])
    triage_doc = documents.render_triage_report(
        {**inc, "severity": result.severity},
        {"attempt": attempt, **result.to_json()},
        {"route": route, "reason": reason},
    )
    con.execute("INSERT INTO documents VALUES (?, 'triage_report', ?, FALSE, NULL, ?)", [iid, at, triage_doc])
    if route == "escalate":
        if inc.get("escalated_at") is None or attempt > 1:
            con.execute("UPDATE incidents SET escalation_pending = ? WHERE id = ?", [reason, iid])
        return
    rid = f"{iid}-R{n_rem + 1}"
    status = "awaiting_approval" if decision.needs_approval else "queued"
    con.execute(
        "INSERT INTO remediations (id, incident_id, action, status, attempts, created_at) VALUES "
        "(?, ?, ?, ?, 0, ?)",
        [rid, iid, decision.action, status, at],
    )
    add_timeline(
        con,
        iid,
        at,
        "remediation_queued",
        "router",
        f"remediation {rid}: {decision.action}"
        + (
            " — critical action: waiting for a recorded approval (slo incidents approve|reject)"
            if decision.needs_approval
            else ""
        ),
        data={"remediation_id": rid, "action": decision.action, "status": status},
    )


def queue_remediations(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    runner: Runner,
    iso: Isolation,
) -> int:
    rows = con.execute(
        """SELECT r.id, r.incident_id, i.service, r.action, r.created_at, r.approved_by FROM remediations r
           JOIN incidents i ON i.id = r.incident_id WHERE r.status = 'queued' ORDER BY r.created_at, r.id"""
    ).fetchall()
    for rid, iid, service, action, created, approved_by in rows:
        at = max(now, created)
        job = RemediationJob(rid, iid, service, action, settings.remediation_dry_run, approved_by)
        if iso.run("remediation start", rid, iid, _start_remediation, con, settings, runner, job, at):
            iso.report.remediations.append(rid)
    return len(rows)


def _start_remediation(
    con: duckdb.DuckDBPyConnection, settings: Settings, runner: Runner, job: RemediationJob, at: dt.datetime
) -> bool:
    con.execute(
        "UPDATE remediations SET status = 'running', started_at = ? WHERE id = ?", [at, job.remediation_id]
    )
    add_timeline(
        con,
        job.incident_id,
        at,
        "remediation_started",
        "remediation",
        f"running runbooks/{job.service}/remediate.sh --action {job.action} --alert-id {job.incident_id}"
        + (" (dry run)" if job.dry_run else ""),
    )
    try:
        runner.submit(job, at)
    except Exception as exc:  # e.g. the pool is shutting down: it times out later and escalates
        log.warning("%s: could not start: %s: %s", job.remediation_id, exc.__class__.__name__, exc)
        return False
    return True


def expire_lost_remediations(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, settings: Settings, now: dt.datetime, runner: Runner
) -> None:
    """A remediation 'running' far past its whole retry budget with no runner holding it lost its worker
    (the process stopped): report it timed out through the inbox, so the incident escalates."""
    budget = (
        settings.remediation_timeout_s * (settings.remediation_retries + 1)
        + settings.remediation_retry_delay_s * settings.remediation_retries
        + 60
    )
    rows = con.execute(
        "SELECT id, incident_id, action, started_at FROM remediations WHERE status = 'running' AND "
        "started_at < ?",
        [now - dt.timedelta(seconds=budget)],
    ).fetchall()
    busy = runner.in_flight()
    for rid, iid, action, started in rows:
        if rid in busy:
            continue
        job = RemediationJob(rid, iid, "", action, False)
        result = {
            "status": "timed_out",
            "attempts": None,
            "exit_code": None,
            "output": "no result was reported (the worker stopped before the script ended)",
        }
        inbox.append([_result_command(job, result, started, now, settings)])


def _latest_triage(con: duckdb.DuckDBPyConnection, iid: str) -> TriageResult:
    rel = con.execute(
        """SELECT method, severity, root_cause_hypothesis, recommended_action, confidence, rationale, model,
                  latency_ms, raw, error FROM triage WHERE incident_id = ? ORDER BY attempt DESC LIMIT 1""",
        [iid],
    )
    row = rel.fetchone()
    if row is None:
        return TriageResult("rules", "SEV2", "not triaged", "escalate", 0.0, "escalated before any triage")
    return TriageResult(*row)


def _notify(
    con: duckdb.DuckDBPyConnection, settings: Settings, inc: dict[str, Any], at: dt.datetime, reason: str
) -> list[dict[str, Any]]:
    try:
        from pipelines.incidents.routing import escalate
    except ImportError as exc:
        records: list[dict[str, Any]] = [
            {"channel": "none", "status": "skipped", "attempts": 0, "detail": f"routing not available: {exc}"}
        ]
    else:
        try:
            records = escalate({**inc, "escalation_reason": reason}, _latest_triage(con, inc["id"]), settings)
        except Exception as exc:
            records = [
                {
                    "channel": "none",
                    "status": "failed",
                    "attempts": 0,
                    "detail": f"{exc.__class__.__name__}: {exc}",
                }
            ]
    for rec in records:
        sent = at  # the cycle's clock (a replayed demo records its simulated time)
        con.execute(
            "INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?)",
            [
                inc["id"],
                str(rec.get("channel")),
                str(rec.get("status")),
                int(rec.get("attempts") or 0),
                str(rec.get("detail") or "")[:2000],
                sent,
            ],
        )
        add_timeline(
            con,
            inc["id"],
            sent,
            "notification",
            str(rec.get("channel")),
            f"{rec.get('channel')}: {rec.get('status')}"
            + (f" — {rec.get('detail')}" if rec.get("detail") else ""),
        )
    return records


def send_escalations(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> None:
    for (iid,) in con.execute(
        "SELECT id FROM incidents WHERE escalation_pending IS NOT NULL ORDER BY created_at, id"
    ).fetchall():
        if iso.run("escalation", iid, iid, _escalate_one, con, settings, now, iid):
            iso.report.escalated.append(iid)


def _escalate_one(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iid: str) -> bool:
    inc = incident(con, iid)
    if inc is None:
        return False
    at = max(now, inc["updated_at"])
    reason = str(inc["escalation_pending"])
    add_timeline(
        con,
        iid,
        at,
        "escalated",
        "router",
        f"escalated to {timers.TIERS[int(inc['escalation_tier'] or 0)]}: {reason}",
    )
    _notify(con, settings, inc, at, reason)
    con.execute(
        """UPDATE incidents SET route = 'escalate', escalation_pending = NULL,
               escalated_at = coalesce(escalated_at, ?), updated_at = greatest(updated_at, ?) WHERE id = ?""",
        [at, at, iid],
    )
    return True


def resolve_pages(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> None:
    """Resolve the PagerDuty alert we triggered once the incident is resolved here (same dedup key),
    unless PagerDuty itself told us; recorded once (timeline `page_resolved`)."""
    rows = con.execute(
        """SELECT i.id, i.resolved_at FROM incidents i
           WHERE i.status IN ('resolved', 'closed') AND coalesce(i.resolved_at_source, '') <> 'pagerduty'
             AND EXISTS (SELECT 1 FROM notifications n WHERE n.incident_id = i.id AND n.channel = 'pagerduty'
                         AND n.status = 'sent')
             AND NOT EXISTS (SELECT 1 FROM timeline t WHERE t.incident_id = i.id
                             AND t.kind = 'page_resolved')"""
    ).fetchall()
    if not rows:
        return
    from pipelines.incidents.outbound import resolve_page

    def resolve(iid: str, resolved_at: dt.datetime) -> None:
        rec = resolve_page(iid, settings)
        at = max(now, resolved_at)
        con.execute(
            "INSERT INTO notifications VALUES (?, 'pagerduty', ?, ?, ?, ?)",
            [
                iid,
                str(rec.get("status")),
                int(rec.get("attempts") or 0),
                f"resolve: {rec.get('detail') or ''}",
                at,
            ],
        )
        add_timeline(
            con, iid, at, "page_resolved", "pagerduty", f"PagerDuty alert resolved: {rec.get('status')}"
        )

    for iid, resolved_at in rows:
        iso.run("PagerDuty resolve", iid, iid, resolve, iid, resolved_at)


# --- verification (seed 003) ----------------------------------------------------------------------


def recovery_minute(
    buckets: list[tuple[int, int, int]], start: int, end: int, short: int, target: float, factor: float
) -> int | None:
    """The first instant m in [start + short, end] where the burn rate over [m − short, m) is below
    `factor` (pure; buckets before `start` are ignored: only post-remediation data counts)."""
    by_minute = {m: (g, v) for m, g, v in buckets if m >= start}
    for m in range(start + short, end + 1):
        good = valid = 0
        for k in range(m - short, m):
            g, v = by_minute.get(k, (0, 0))
            good, valid = good + g, valid + v
        if valid and ((valid - good) / valid) / (1.0 - target) < factor:
            return m
    return None


def verify_remediations(con: duckdb.DuckDBPyConnection, now: dt.datetime, iso: Isolation) -> None:
    """Verified when the SLO's shortest alert window burns below its lowest alert factor (under every
    alert threshold) within the set time after the remediation; else the incident escalates."""
    rows = con.execute(
        """SELECT r.id, r.incident_id, r.action, r.finished_at, r.verify_by, i.slo_id
           FROM remediations r JOIN incidents i ON i.id = r.incident_id
           WHERE r.status = 'succeeded' AND r.verified IS NULL ORDER BY r.finished_at"""
    ).fetchall()
    latest = _evaluated_to(con)
    for row in rows:
        if iso.run("verification", row[0], row[1], _verify_one, con, now, latest, *row):
            iso.report.verified.append(row[0])


def _verify_one(
    con: duckdb.DuckDBPyConnection,
    now: dt.datetime,
    latest: dt.datetime | None,
    rid: str,
    iid: str,
    action: str,
    finished: dt.datetime,
    verify_by: dt.datetime,
    slo_id: str | None,
) -> bool:
    """Verify one remediation; True when it was verified now."""
    horizon = min(now, verify_by)
    recovered: dt.datetime | None = None
    how = ""
    if slo_id:
        params = con.execute(
            """SELECT s.slo_key, s.target, min(a.short_window), min(a.factor) FROM slos s
               JOIN slo_alerts a USING (slo_key) WHERE s.slo_id = ? GROUP BY ALL""",
            [slo_id],
        ).fetchone()
        if params is not None:
            key, target, short, factor = params
            start = engine.minute_of(finished) + 1
            end = engine.minute_of(horizon)
            if latest is not None:
                end = min(end, engine.minute_of(latest))
            buckets = con.execute(
                "SELECT minute, good, valid FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ?",
                [key, start, end],
            ).fetchall()
            m = recovery_minute(
                [(int(a), int(b), int(c)) for a, b, c in buckets],
                start,
                end,
                int(short),
                float(target),
                float(factor),
            )
            how = f"{slo_id} burn rate over {short} min below {factor:g}"
            if m is not None:
                recovered = engine.datetime_of(m).replace(tzinfo=None)
    else:
        # No SLO: every alert of the incident resolved by the deadline.
        row = con.execute(
            """SELECT count(*) FILTER (WHERE status = 'firing'), count(*) FILTER (WHERE status
                = 'resolved'),
                      max(ends_at) FROM alerts WHERE incident_id = ?""",
            [iid],
        ).fetchone()
        how = "all of the incident's alerts resolved"
        if row and row[1] >= row[0] and row[2] is not None and finished <= row[2] <= horizon:
            recovered = row[2]
        elif row and row[1] >= row[0] and row[2] is not None and row[2] < finished:
            recovered = finished
    if recovered is not None:
        con.execute("UPDATE remediations SET verified = TRUE, verified_at = ? WHERE id = ?", [recovered, rid])
        add_timeline(
            con,
            iid,
            recovered,
            "verified",
            "verification",
            f"remediation {rid} ({action}) verified: {how}",
        )
        inc = incident(con, iid)
        if inc and inc["status"] in ("triggered", "acknowledged"):
            con.execute(
                """UPDATE incidents SET status = 'mitigated', mitigated_at = ?,
                    mitigated_at_source = 'verification',
                       updated_at = greatest(updated_at, ?) WHERE id = ?""",
                [recovered, recovered, iid],
            )
            add_timeline(
                con, iid, recovered, "mitigated", "verification", f"mitigated by {action} (verified)"
            )
        return True
    elif now >= verify_by:
        con.execute("UPDATE remediations SET verified = FALSE WHERE id = ?", [rid])
        add_timeline(
            con,
            iid,
            verify_by,
            "verification_failed",
            "verification",
            f"remediation {rid} ({action}) not verified by {verify_by:%H:%M}: {how} did not happen",
        )
        con.execute(
            "UPDATE incidents SET escalation_pending = ?, updated_at = greatest(updated_at, ?) WHERE id = ?",
            [f"verification failed after {action}", verify_by, iid],
        )
    return False


# --- timers, budgets, documents -------------------------------------------------------------------


def run_timers(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Record (and notify) every timer that fell due; incidents resolved over a day ago are done."""
    candidates = incidents_where(
        con,
        "NOT imported AND severity IS NOT NULL AND (resolved_at IS NULL OR resolved_at >= ?)"
        " AND status <> 'closed' OR (status = 'closed' AND closed_at >= ?)",
        [now - dt.timedelta(days=1), now - dt.timedelta(days=1)],
    )
    return sum(
        iso.run("timers", inc["id"], inc["id"], _timers_of, con, settings, now, inc) or 0
        for inc in candidates
    )


def _timers_of(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, inc: dict[str, Any]
) -> int:
    """Record the timers of one incident that fell due; how many."""
    fired = 0
    due = timers.due_timers(inc, now)
    if due:
        iid = inc["id"]
        done = {
            json.loads(r[0]).get("key")
            for r in con.execute(
                "SELECT data FROM timeline WHERE incident_id = ? AND kind = 'timer'", [iid]
            ).fetchall()
        }
        for event in due:
            if event.key in done:
                continue
            add_timeline(
                con,
                iid,
                event.at,
                "timer",
                "timer",
                event.message,
                data={"key": event.key, "tier": event.tier},
            )
            con.execute(
                "UPDATE incidents SET escalation_tier = greatest(coalesce(escalation_tier, 0), ?) "
                "WHERE id = ?",
                [event.tier, iid],
            )
            if inc["status"] in ("triggered", "acknowledged", "mitigated"):  # nobody is paged after the fact
                _notify(con, settings, {**inc, "escalation_tier": event.tier}, event.at, event.message)
            fired += 1
    return fired


def update_budgets(con: duckdb.DuckDBPyConnection, now: dt.datetime, iso: Isolation) -> None:
    """Budget consumed per linked SLO: recomputed while open, computed once after resolution."""
    rows = con.execute(
        """SELECT s.incident_id, s.slo_id, i.impact_start, i.resolved_at, i.slo_id FROM incident_slos s
           JOIN incidents i ON i.id = s.incident_id
           WHERE i.impact_start IS NOT NULL AND (i.resolved_at IS NULL OR s.budget_consumed IS NULL)"""
    ).fetchall()

    def update(
        iid: str, slo: str, start: dt.datetime, resolved: dt.datetime | None, main: str | None
    ) -> None:
        share = impact.budget_consumed_for(con, slo, start, min(resolved or now, now))
        con.execute(
            "UPDATE incident_slos SET budget_consumed = ? WHERE incident_id = ? AND slo_id = ?",
            [share, iid, slo],
        )
        if slo == main:
            con.execute("UPDATE incidents SET budget_consumed = ? WHERE id = ?", [share, iid])

    for iid, slo, start, resolved, main in rows:
        iso.run("budgets", f"{iid} {slo}", iid, update, iid, slo, start, resolved, main)


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    rel = con.execute(sql, params)
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def write_documents(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> int:
    """Draft the documents each incident needs now (`documents.documents_due`)."""
    # Incidents changed since their last document, with a stakeholder update due, or closed without
    # their runbook suggestion yet.
    candidates = incidents_where(
        con,
        """NOT imported AND (
             documents_at IS NULL OR updated_at > documents_at
             OR (status NOT IN ('resolved', 'closed') AND coalesce((SELECT max(due_at) FROM documents d
                 WHERE d.incident_id = incidents.id AND d.kind = 'stakeholder_update'), ?) <= ?)
             OR (status = 'closed' AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.incident_id =
                 incidents.id
                 AND d.kind = 'runbook_suggestion')))""",
        [now, now],
    )
    return sum(
        iso.run("documents", inc["id"], inc["id"], _documents_of, con, settings, now, inc) or 0
        for inc in candidates
    )


def _documents_of(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, inc: dict[str, Any]
) -> int:
    """Draft one incident's due documents; how many."""
    written = 0
    iid = inc["id"]
    docs = _records(
        con,
        "SELECT kind, created_at, due_at, body FROM documents WHERE incident_id = ? ORDER BY created_at",
        [iid],
    )
    for due in documents.documents_due(inc, docs, now):
        slos = _records(
            con,
            "SELECT slo_id, budget_consumed FROM incident_slos WHERE incident_id = ? ORDER BY 1",
            [iid],
        )
        due_at: dt.datetime | None = None
        model_written = False
        if due.kind == "stakeholder_update":
            body, due_at = documents.render_stakeholder_update(inc, slos, due.at)
        elif due.kind == "postmortem":
            timeline = _records(
                con,
                "SELECT occurred_at, message FROM timeline WHERE incident_id = ? ORDER BY occurred_at, seq",
                [iid],
            )
            items = _records(
                con, "SELECT * FROM action_items WHERE incident_id = ? ORDER BY created_at, id", [iid]
            )
            start, end = inc["impact_start"], inc["resolved_at"] or now
            for slo in slos:
                counts = impact.span_counts(con, slo["slo_id"], start, end) if start else None
                slo["bad"], slo["valid"] = counts if counts else (None, None)
            narrative = _narrative(settings, inc, timeline) if due.final else None
            model_written = narrative is not None
            body = documents.render_postmortem(
                inc, timeline, slos, items, final=due.final, narrative=narrative
            )
        else:
            items = _records(con, "SELECT * FROM action_items WHERE incident_id = ?", [iid])
            rems = _records(con, "SELECT * FROM remediations WHERE incident_id = ?", [iid])
            body = documents.render_runbook_suggestion(inc, items, rems)
        con.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
            [iid, due.kind, due.at, model_written, due_at, body],
        )
        add_timeline(
            con,
            iid,
            due.at,
            "document",
            "documents",
            f"{due.kind.replace('_', ' ')} drafted ({due.reason})",
        )
        docs.append({"kind": due.kind, "created_at": due.at, "body": body, "due_at": due_at})
        written += 1
    con.execute("UPDATE incidents SET documents_at = updated_at WHERE id = ?", [iid])
    return written


def _narrative(settings: Settings, inc: dict[str, Any], timeline: list[dict[str, Any]]) -> str | None:
    """A model-written narrative only when a key is set and the triage module offers one."""
    if not settings.anthropic_api_key:
        return None
    try:
        from pipelines.incidents import triage
    except ImportError:
        return None
    write = getattr(triage, "write_postmortem_narrative", None)
    if write is None:
        return None
    try:
        text = write(inc, timeline, settings)
    except Exception:
        return None
    return str(text) if text else None
