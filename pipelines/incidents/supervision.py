"""What keeps remediation scripts supervised across timeouts and restarts (Linux `/proc`).

- Every run carries a unique marker in its environment (`SLO_REMEDIATION_RUN`). `setsid` leaves the
  process group, not the environment, so `kill_run` kills the group and then every process whose
  `/proc/<pid>/environ` holds the marker, until none is left.
- While a script runs, `<data>/remediations/running/<remediation id>.json` records it: pid, process
  group, the pid's start time (`/proc/<pid>/stat` field 22, so a recycled pid is never mistaken for it),
  the marker, and the process that supervises it. The runner removes the record once the outcome is in
  the inbox; a record left behind by a supervisor that is gone is what a restarted service reaps.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import signal
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER = "SLO_REMEDIATION_RUN"
KILL_ROUNDS = 20  # a forking script may spawn between two scans: scan again until none is left
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,150}$")


def new_marker() -> str:
    return uuid.uuid4().hex


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None when there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    return int(fields[19])  # field 22; fields[0] is field 3 (state)


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def marked_pids(marker: str) -> list[int]:
    """Live processes (not zombies: their environment is gone) whose environment holds the marker."""
    needle = f"\0{MARKER}={marker}\0".encode()
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read()
        except OSError:  # gone meanwhile, or not ours to read (and so not ours to kill)
            continue
        if needle in b"\0" + env + b"\0":
            found.append(int(entry.name))
    return found


def kill_run(marker: str, pgid: int | None = None) -> int:
    """SIGKILL the process group `pgid` (when given) and every process carrying `marker`; returns how
    many marked processes there were. The caller passes `pgid` only while it still names this run's
    group: its own unreaped child's pid, or a leader whose start time it checked."""
    seen = set(marked_pids(marker))
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    empty = 0
    for _ in range(KILL_ROUNDS):
        pids = marked_pids(marker)
        # a process caught in exec shows an empty environment for an instant (a script's last
        # `setsid cmd &` as it exits): only two empty scans in a row mean none is left
        empty = 0 if pids else empty + 1
        if empty == 2:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        seen.update(pids)
        time.sleep(0.02)
    return len(seen)


# --- records of running scripts -------------------------------------------------------------------


def running_dir(data_dir: Path) -> Path:
    return data_dir / "remediations" / "running"


def _record_path(data_dir: Path, remediation_id: str) -> Path:
    name = (
        remediation_id
        if SAFE_NAME.match(remediation_id)
        else uuid.uuid5(uuid.NAMESPACE_URL, remediation_id).hex
    )
    return running_dir(data_dir) / f"{name}.json"


def write_record(data_dir: Path, record: dict[str, Any]) -> None:
    """Record a started script (atomically: a reader never sees half a record)."""
    me = os.getpid()
    full = {
        **record,
        "pid_start": start_time(int(record["pid"])),
        "supervisor_pid": me,
        "supervisor_start": start_time(me),
        "boot_id": boot_id(),
        "recorded_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
    }
    path = _record_path(data_dir, str(record["remediation_id"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{me}.tmp")
    tmp.write_text(json.dumps(full))
    os.replace(tmp, path)


def remove_record(data_dir: Path, remediation_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _record_path(data_dir, remediation_id).unlink()


def records(data_dir: Path) -> list[dict[str, Any]]:
    """Every record of a running script (unreadable ones are logged and skipped)."""
    out = []
    d = running_dir(data_dir)
    if not d.is_dir():
        return []
    for path in sorted(d.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            if not isinstance(rec, dict) or not rec.get("remediation_id") or not rec.get("marker"):
                raise ValueError("not a remediation record")
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable remediation record %s: %s", path, exc)
            continue
        out.append(rec)
    return out


def _same_process(pid: Any, start: Any, boot: Any) -> bool:
    return (
        isinstance(pid, int)
        and pid > 0
        and boot == boot_id()
        and start is not None
        and start_time(pid) == start
    )


def supervisor_alive(rec: dict[str, Any]) -> bool:
    """Is the process that recorded this script still running (another service on the same data dir)?"""
    return _same_process(rec.get("supervisor_pid"), rec.get("supervisor_start"), rec.get("boot_id"))


def reap(rec: dict[str, Any]) -> int:
    """Kill what is left of a recorded script whose supervisor is gone; how many processes there were."""
    leader_alive = _same_process(rec.get("pgid"), rec.get("pid_start"), rec.get("boot_id"))
    return kill_run(str(rec["marker"]), int(rec["pgid"]) if leader_alive else None)
