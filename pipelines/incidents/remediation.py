"""The remediation runner: `runbooks/<service>/remediate.sh --action A --alert-id X`, allow-listed only.

    run_remediation(service, action, incident_id, settings, *, dry_run=False, approved_by=None) → record

Before anything runs: the action must be in the service's `actions.yaml`, a critical action must carry
the name of the human who approved it, and every argument must match a safe pattern; otherwise the
record says `refused` and no process starts. The script runs with an argument list (never a shell
string), in its own directory and process group, with a scrubbed environment (no secrets: PATH, LANG,
HOME, the SLO_ACTION/SLO_SERVICE/SLO_INCIDENT_ID/SLO_ATTEMPT it is told, and any SLO_REMEDIATE_* set
for it), a timeout per attempt (300 s), and retries (2, 15 s apart) when it fails or times out (seed 000).

The record (a `remediations` row, minus id/created_at): service, action, incident_id, status
(succeeded | failed | timed_out | dry_run | refused), exit_code, output (bounded), attempts, started_at,
finished_at, command.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from pipelines.config import Settings, scrub
from pipelines.incidents.runbooks import ACTION_NAME, load_runbook

INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
MAX_OUTPUT_CHARS = 8_000
KILL_WAIT_S = 5.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _bounded(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return f"…[{len(text) - MAX_OUTPUT_CHARS} earlier characters dropped]\n" + text[-MAX_OUTPUT_CHARS:]


def _script_env(service: str, action: str, incident_id: str, attempt: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("SLO_REMEDIATE_")}
    env.update(
        PATH=os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        LANG="C.UTF-8",
        HOME=os.environ.get("HOME", "/tmp"),
        SLO_SERVICE=service,
        SLO_ACTION=action,
        SLO_INCIDENT_ID=incident_id,
        SLO_ATTEMPT=str(attempt),
    )
    return env


def run_remediation(
    service: str,
    action: str,
    incident_id: str,
    settings: Settings,
    *,
    dry_run: bool = False,
    approved_by: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run one allow-listed action for an incident (see the module docstring); never raises.

    `approved_by` is required for actions marked critical (the fold passes the approver it recorded).
    `dry_run` (or SLO_REMEDIATION_DRY_RUN) checks everything and records the command without running it.
    The allow-list is read again here, at run time: an action removed since the triage does not run.
    """
    started = _now()
    try:
        return _run_remediation(service, action, incident_id, settings, dry_run, approved_by, sleep, started)
    except Exception as exc:  # the worker must get a record whatever happened
        return {
            "service": service,
            "action": action,
            "incident_id": incident_id,
            "status": "failed",
            "exit_code": None,
            "output": f"runner error: {exc.__class__.__name__}: {exc}",
            "attempts": 0,
            "started_at": started,
            "finished_at": _now(),
            "command": [],
        }


def _run_remediation(
    service: str,
    action: str,
    incident_id: str,
    settings: Settings,
    dry_run: bool,
    approved_by: str | None,
    sleep: Callable[[float], None],
    started: dt.datetime,
) -> dict[str, Any]:
    runbook = load_runbook(settings.runbooks_dir, service)
    # An absolute path: the script runs in its own directory, whatever the caller's working directory.
    script_path = (runbook.script or settings.runbooks_dir / service / "remediate.sh").absolute()
    command = [str(script_path), "--action", action, "--alert-id", incident_id]
    record: dict[str, Any] = {
        "service": service,
        "action": action,
        "incident_id": incident_id,
        "status": "refused",
        "exit_code": None,
        "output": "",
        "attempts": 0,
        "started_at": started,
        "finished_at": started,
        "command": command,
    }
    script = runbook.script
    refusal = _refusal(runbook.allowed_actions, runbook.critical_actions, action, incident_id, approved_by)
    if refusal is not None or script is None:
        reason = "; ".join(x for x in (refusal, *runbook.problems) if x) or "no remediate.sh for this service"
        record["output"] = f"refused: {reason}; nothing was run"
        return record
    if dry_run or settings.remediation_dry_run:
        record.update(status="dry_run", output=f"dry run: would run {' '.join(command)}")
        return record

    outputs: list[str] = []
    for attempt in range(1, settings.remediation_retries + 2):
        status, exit_code, output = _run_once(
            command, script_path.parent, settings, service, action, incident_id, attempt
        )
        outputs.append(f"--- attempt {attempt}: {status}, exit code {exit_code}\n{output}")
        record.update(status=status, exit_code=exit_code, attempts=attempt)
        if status == "succeeded" or (exit_code is None and status == "failed"):
            break  # done, or the script could not even start: another attempt would not start either
        if attempt > settings.remediation_retries:
            break
        sleep(settings.remediation_retry_delay_s)
    record.update(output=scrub(_bounded("\n".join(outputs)), settings), finished_at=_now())
    return record


def _refusal(
    allowed: list[str], critical: set[str], action: str, incident_id: str, approved_by: str | None
) -> str | None:
    if not isinstance(action, str) or not ACTION_NAME.match(action):
        return f"action {action!r} is not an action name"
    if action not in allowed:
        return f"action {action!r} is not on the service's allow-list ({', '.join(allowed) or 'empty'})"
    if action in critical and not (approved_by and approved_by.strip()):
        return f"action {action!r} is critical and has no recorded human approval"
    if not isinstance(incident_id, str) or not INCIDENT_ID.match(incident_id):
        return f"incident id {incident_id!r} is not a safe argument"
    return None


def _run_once(
    command: list[str],
    cwd: os.PathLike[str],
    settings: Settings,
    service: str,
    action: str,
    incident_id: str,
    attempt: int,
) -> tuple[str, int | None, str]:
    """(status, exit code, output) of one run; a timeout kills the script's whole process group."""
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=_script_env(service, action, incident_id, attempt),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout can kill its children too
        )
    except OSError as exc:
        return "failed", None, f"could not start: {exc.__class__.__name__}: {exc}"
    try:
        out, _ = proc.communicate(timeout=settings.remediation_timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            out, _ = proc.communicate(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:  # a grandchild escaped the group and holds the pipe
            proc.kill()
            out = b""
        text = out.decode("utf-8", "replace")
        return "timed_out", None, _bounded(f"{text}\n[killed after {settings.remediation_timeout_s:g} s]")
    text = _bounded(out.decode("utf-8", "replace"))
    return ("succeeded" if proc.returncode == 0 else "failed"), proc.returncode, text
