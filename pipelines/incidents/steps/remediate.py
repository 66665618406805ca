"""Remediation step: start each queued remediation on the runner, and time out the ones whose worker
vanished. The script runs outside DuckDB; its outcome comes back through the inbox.
"""

from __future__ import annotations

import datetime as dt
import logging

import duckdb

from pipelines.config import Settings
from pipelines.inbox import Inbox
from pipelines.incidents.fold import add_timeline
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.runners import RemediationJob, Runner, result_command

log = logging.getLogger(__name__)


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
        inbox.append([result_command(job, result, started, now, settings)])
