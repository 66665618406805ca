"""The remediation runner: `runbooks/<service>/remediate.sh --action A --alert-id X`, allow-listed only.

    run_remediation(service, action, incident_id, settings, *, dry_run=False, approved_by=None) → record

Before anything runs: the action must be in the service's `actions.yaml`, a critical action must carry
the name of the human who approved it, and every argument must match a safe pattern; otherwise the
record says `refused` and no process starts. The script runs with an argument list (never a shell
string), in its own directory and process group, with a scrubbed environment (no secrets: PATH, LANG,
HOME, the SLO_ACTION/SLO_SERVICE/SLO_INCIDENT_ID/SLO_ATTEMPT it is told, any SLO_REMEDIATE_* set for
it, and the run's supervision marker SLO_REMEDIATION_RUN), a timeout per attempt (300 s), and retries
(2, 15 s apart) when it fails or times out (seed 000).

Supervised (`supervision.py`): when an attempt ends — it exited, or it timed out and was killed —
its process group and every process carrying its marker (a `setsid` grandchild too) are killed, so
nothing of a remediation outlives it. Given a `remediation_id`, the running script is recorded under
`<data>/remediations/running/` for a restarted service to reap. Output is read as it comes, keeping the
first and last 64 KiB and the byte count ("…[N bytes omitted of M]…"), so a noisy script costs no memory.

The record (a `remediations` row, minus id/created_at): service, action, incident_id, status
(succeeded | failed | timed_out | dry_run | refused), exit_code, output (bounded), attempts, started_at,
finished_at, command.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable
from typing import Any

from pipelines.config import Settings, scrub
from pipelines.incidents import supervision
from pipelines.incidents.runbooks import ACTION_NAME, load_runbook

log = logging.getLogger(__name__)
INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
HEAD_BYTES = TAIL_BYTES = 64 * 1024
KILL_WAIT_S = 5.0
# After the script exits, how long output still held open by something it left behind may arrive
# before that leftover is killed.
EXIT_GRACE_S = 0.5


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class OutputCapture:
    """The first and last bytes of a stream and its length, in bounded memory."""

    def __init__(self, head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> None:
        self._head_max, self._tail_max = head, tail
        self.head, self.tail = bytearray(), bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_max - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk[-self._tail_max :]
            del self.tail[: max(0, len(self.tail) - self._tail_max)]

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        middle = f"\n…[{omitted} bytes omitted of {self.total}]…\n" if omitted else ""
        return self.head.decode("utf-8", "replace") + middle + self.tail.decode("utf-8", "replace")


def _script_env(service: str, action: str, incident_id: str, attempt: int, marker: str) -> dict[str, str]:
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
    env[supervision.MARKER] = marker
    return env


def run_remediation(
    service: str,
    action: str,
    incident_id: str,
    settings: Settings,
    *,
    dry_run: bool = False,
    approved_by: str | None = None,
    remediation_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run one allow-listed action for an incident (see the module docstring); never raises.

    With `remediation_id`, the running script is recorded under `<data>/remediations/running/` (the
    caller removes the record once the outcome is durable: `supervision.remove_record`).

    `approved_by` is required for actions marked critical (the fold passes the approver it recorded).
    `dry_run` (or SLO_REMEDIATION_DRY_RUN) checks everything and records the command without running it.
    The allow-list is read again here, at run time: an action removed since the triage does not run.
    """
    started = _now()
    try:
        return _run_remediation(
            service, action, incident_id, settings, dry_run, approved_by, remediation_id, sleep, started
        )
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
    remediation_id: str | None,
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

    marker = supervision.new_marker()
    outputs: list[str] = []
    for attempt in range(1, settings.remediation_retries + 2):

        def started_script(pid: int, attempt: int = attempt) -> None:
            if remediation_id is None:
                return
            try:
                supervision.write_record(
                    settings.data_dir,
                    {
                        "remediation_id": remediation_id,
                        "incident_id": incident_id,
                        "service": service,
                        "action": action,
                        "attempt": attempt,
                        "pid": pid,
                        "pgid": pid,  # start_new_session: the script leads its own group
                        "marker": marker,
                        "started_at": started.isoformat(),
                    },
                )
            except OSError as exc:  # the run goes on; only a restart's clean-up would miss it
                log.warning("could not record running remediation %s: %s", remediation_id, exc)

        env = _script_env(service, action, incident_id, attempt, marker)
        status, exit_code, output, size = _run_once(
            command, script_path.parent, env, settings.remediation_timeout_s, started_script
        )
        # The byte count leads the attempt, so it survives when a later cut keeps only the head and end.
        outputs.append(
            f"--- attempt {attempt}: {status}, exit code {exit_code}, {size} bytes of output\n{output}"
        )
        record.update(status=status, exit_code=exit_code, attempts=attempt)
        if status == "succeeded" or (exit_code is None and status == "failed"):
            break  # done, or the script could not even start: another attempt would not start either
        if attempt > settings.remediation_retries:
            break
        sleep(settings.remediation_retry_delay_s)
    record.update(output=scrub("\n".join(outputs), settings), finished_at=_now())
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
    env: dict[str, str],
    timeout_s: float,
    on_start: Callable[[int], None],
) -> tuple[str, int | None, str, int]:
    """(status, exit code, output, output bytes) of one run. When it ends (exited, or timed out),
    whatever is left of it — its process group, and anything carrying its marker that escaped the
    group — is killed."""
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout can kill its children too
        )
    except OSError as exc:
        return "failed", None, f"could not start: {exc.__class__.__name__}: {exc}", 0
    assert proc.stdout is not None
    with proc.stdout:
        on_start(proc.pid)
        capture = OutputCapture()
        exited = _read_until_done(proc, capture, time.monotonic() + timeout_s)
        # The leader is at worst an unreaped zombie here, so its pid still names this run's group.
        processes = supervision.kill_run(env[supervision.MARKER], proc.pid)
        _read_until_done(proc, capture, time.monotonic() + KILL_WAIT_S, wait_for_exit=False)
    try:
        returncode = proc.wait(KILL_WAIT_S)
    except subprocess.TimeoutExpired:  # not even SIGKILL ended it (uninterruptible I/O)
        return "timed_out", None, capture.text() + "\n[could not be killed]", capture.total
    text = capture.text()
    if not exited:
        return "timed_out", None, f"{text}\n[killed after {timeout_s:g} s]", capture.total
    if processes:
        text += f"\n[the script exited and left {processes} process(es) running; they were killed]"
    return ("succeeded" if returncode == 0 else "failed"), returncode, text, capture.total


def _exited(pid: int) -> bool:
    """Has our child exited? Without reaping it (WNOWAIT), so its pid keeps naming its group."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def _read_until_done(
    proc: subprocess.Popen[bytes], capture: OutputCapture, deadline: float, *, wait_for_exit: bool = True
) -> bool:
    """Read the output until it ends and the script has exited (a short grace after the exit for output
    a leftover still holds open), or until the deadline; whether the script exited."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    eof, exited_at = False, None
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if wait_for_exit and exited_at is None and _exited(proc.pid):
                exited_at = now
            if eof and (exited_at is not None or not wait_for_exit):
                break
            if exited_at is not None and now - exited_at >= EXIT_GRACE_S:
                break
            if now >= deadline:
                break
            if eof:
                time.sleep(min(0.01, deadline - now))
                continue
            if sel.select(min(0.1, deadline - now)):
                chunk = os.read(fd, 65536)
                if chunk:
                    capture.add(chunk)
                else:
                    eof = True
    return exited_at is not None
