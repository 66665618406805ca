"""Remediation runners: where a queued remediation's script runs, outside DuckDB and the fold.

A runner takes a `RemediationJob` and reports its outcome as a `remediation_result` command in the
inbox (`result_command`), so the next fold records it like any other input. `SyncRunner` runs each job
at once (the CLI and the demo); `ThreadRunner` runs them on a small pool (the service's worker), so the
writer never waits for a script. `reap_interrupted_remediations` settles, at service start, the scripts
a killed service left running.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from pipelines.config import Settings
from pipelines.inbox import Entry, Inbox
from pipelines.incidents import supervision
from pipelines.incidents.contract import Command
from pipelines.incidents.routing import run_remediation

log = logging.getLogger(__name__)
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


def result_command(
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
        self.inbox.append([result_command(job, result, now, finished, self.settings)])
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
            self.inbox.append([result_command(job, result, started, finished, self.settings)])
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
        inbox.append([result_command(job, result, started, now, settings)])
        supervision.remove_record(settings.data_dir, rid)
        log.warning("remediation %s of %s: %s", rid, job.incident_id, note)
        reaped.append(rid)
    return reaped
