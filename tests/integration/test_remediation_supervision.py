"""`kill -9` of `slo serve` while a remediation runs: the restarted service kills what the script left
running (a `setsid` grandchild included) and the incident says what happened, then escalates.

The script records its pid, its grandchild's pid and its supervision marker in a sentinel directory,
so "nothing is left running" is checked against /proc for exactly those processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.incidents.supervision import kill_run, marked_pids
from tests.support.service import ROOT, Service, start_service, stop_service

pytestmark = pytest.mark.integration

TOKEN = "t-supervision"

SCRIPT = """#!/usr/bin/env bash
setsid sleep 300 > /dev/null 2>&1 &
echo $! > "$SLO_REMEDIATE_SENTINEL_DIR/grandchild.pid"
echo "$SLO_REMEDIATION_RUN" > "$SLO_REMEDIATE_SENTINEL_DIR/marker"
echo "restarting the workers"
echo $$ > "$SLO_REMEDIATE_SENTINEL_DIR/script.pid.tmp"
mv "$SLO_REMEDIATE_SENTINEL_DIR/script.pid.tmp" "$SLO_REMEDIATE_SENTINEL_DIR/script.pid"
sleep 300
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie waiting for its new parent to reap it is dead for our purpose


def _wait_for(what: str, check: Callable[[], Any], timeout: float, svc: Service | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    log = f"\n--- slo serve log ---\n{svc.log()}" if svc else ""
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{log}")


def _show(env: dict[str, str], incident_id: str) -> dict[str, Any] | None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "incidents", "show", incident_id, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def test_kill_9_of_the_service_during_a_remediation(tmp_path: Path) -> None:
    book = tmp_path / "runbooks" / "svc"
    book.mkdir(parents=True)
    (book / "runbook.md").write_text("# svc\nRestart the workers when they crash.\n")
    (book / "actions.yaml").write_text("actions:\n  - name: restart\n    description: restart workers\n")
    (book / "remediate.sh").write_text(SCRIPT)
    (book / "remediate.sh").chmod(0o755)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    env = {
        "SLO_CYCLE_SECONDS": "1",
        "SLO_RUNBOOKS_DIR": str(tmp_path / "runbooks"),
        "SLO_RULES_ROUTE_BY_SEVERITY": "true",  # no model: the rules route a SEV3 to its remediation
        "SLO_REMEDIATION_TIMEOUT": "600",  # far longer than the test: only the restart ends it
        "SLO_REMEDIATE_SENTINEL_DIR": str(sentinel),
        "ANTHROPIC_API_KEY": "",
        "SLACK_WEBHOOK_URL": "",
        "PAGERDUTY_ROUTING_KEY": "",
    }
    first = start_service(tmp_path, token=TOKEN, env=env, name="first")
    second: Service | None = None
    try:
        alert = {"service": "svc", "title": "Workers crash looping", "severity": "P3"}
        status, body = first.post("/api/incidents/ingest?format=generic", json.dumps(alert).encode())
        assert status == 202, body
        script_pid = int(
            _wait_for("the remediation to start", lambda: _read(sentinel / "script.pid"), 60, first)
        )
        grandchild_pid = int((sentinel / "grandchild.pid").read_text())
        marker = (sentinel / "marker").read_text().strip()
        records = list((first.data_dir / "remediations" / "running").glob("*.json"))
        assert [json.loads(p.read_text())["pid"] for p in records] == [script_pid]

        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        # What the issue is about: a killed service leaves its script and the script's children behind.
        assert [_alive(script_pid), _alive(grandchild_pid)] == [True, True]

        second = start_service(tmp_path, token=TOKEN, env=env, name="second", data_dir=first.data_dir)
        # The start-up reaps before the service answers: nothing of the script is left.
        assert [_alive(script_pid), _alive(grandchild_pid)] == [False, False]
        assert marked_pids(marker) == []
        assert list((first.data_dir / "remediations" / "running").glob("*.json")) == []

        show_env = {**second.env}

        def interrupted() -> dict[str, Any] | None:
            shown = _show(show_env, "INC-0001")
            ended = shown and shown["remediations"] and shown["remediations"][0]["status"] != "running"
            return shown if ended and shown["route"] == "escalate" else None

        shown = _wait_for("the incident to record the interruption", interrupted, 60, second)
        rem = shown["remediations"][0]
        assert (rem["action"], rem["status"], rem["exit_code"]) == ("restart", "interrupted", None)
        results = [e for e in shown["timeline"] if e["kind"] == "remediation_result"]
        assert len(results) == 1
        message = results[0]["message"]
        assert message.startswith(f"remediation {rem['id']} (restart) interrupted")
        assert (
            f"the service restarted while this remediation was running (attempt 1, pid {script_pid}); "
            "its 3 process(es) were killed" in message  # bash, its sleep, the setsid sleep
        )
        assert shown["route"] == "escalate"
        escalations = [e for e in shown["timeline"] if e["kind"] == "escalated"]
        assert escalations and f"remediation {rem['id']} (restart) interrupted" in escalations[-1]["message"]
    except BaseException:
        for svc in (first, second):
            if svc is not None:
                print(f"--- {svc.log_path} ---\n{svc.log()}", file=sys.stderr)
        raise
    finally:
        for svc in (first, second):
            if svc is not None:
                stop_service(svc)
        marker_file = sentinel / "marker"
        if marker_file.exists():  # never leave a sleeping script behind, whatever failed
            kill_run(marker_file.read_text().strip())


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def test_a_record_whose_supervisor_still_runs_is_left_alone(tmp_path: Path) -> None:
    """Two services on one data dir: the second one's start must not kill the first one's script."""
    from pipelines.config import Settings
    from pipelines.inbox import Inbox
    from pipelines.incidents import supervision
    from pipelines.incidents.runners import reap_interrupted_remediations

    marker = supervision.new_marker()
    proc = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, supervision.MARKER: marker}, start_new_session=True
    )
    settings = Settings.load({"SLO_DATA_DIR": str(tmp_path / "data")})
    inbox = Inbox(settings.data_dir, synchronous="OFF")
    try:
        record = {
            "remediation_id": "INC-0001-R1",
            "incident_id": "INC-0001",
            "service": "svc",
            "action": "restart",
            "attempt": 1,
            "pid": proc.pid,
            "pgid": proc.pid,
            "marker": marker,
            "started_at": "2026-06-01T10:00:00",
        }
        supervision.write_record(settings.data_dir, record)  # supervised by this (live) process
        assert reap_interrupted_remediations(inbox, settings) == []
        assert _alive(proc.pid) and inbox.count() == 0

        # The same record from a supervisor that is gone is reaped and reported.
        path = supervision.running_dir(settings.data_dir) / "INC-0001-R1.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "supervisor_start": -1}))
        assert reap_interrupted_remediations(inbox, settings) == ["INC-0001-R1"]
        assert proc.wait(5) == -signal.SIGKILL
        assert inbox.count() == 1
        assert not path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        inbox.close()
