"""The remediation runner against real scripts: the demo runbooks, and small scripts made by the tests.

A sentinel script records every action it is asked to run (a file per action), so "never ran" is a
file that does not exist, checked next to one that does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.incidents.routing import run_remediation
from pipelines.incidents.runners import RemediationJob, result_command

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SENTINEL_SCRIPT = """#!/usr/bin/env bash
# Deliberately naive: runs whatever action it is given, so only the runner's allow-list stands in the way.
touch "$SLO_REMEDIATE_SENTINEL_DIR/ran-$2"
echo "ran $2 for $4"
env | sort > "$SLO_REMEDIATE_SENTINEL_DIR/env-$2"
"""

HANGING_SCRIPT = """#!/usr/bin/env bash
sleep 60 &
echo $! > "$SLO_REMEDIATE_SENTINEL_DIR/child.pid"
echo "started child"
wait
"""


def settings(runbooks: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": runbooks / "data",
        "specs_dir": runbooks / "specs",
        "runbooks_dir": runbooks,
        "remediation_timeout_s": 10.0,
        "remediation_retries": 2,
        "remediation_retry_delay_s": 0.2,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def make_runbook(tmp: Path, script: str, actions: str) -> Path:
    d = tmp / "runbooks" / "svc"
    d.mkdir(parents=True)
    (d / "runbook.md").write_text("# svc\n")
    (d / "actions.yaml").write_text(actions)
    (d / "remediate.sh").write_text(script)
    (d / "remediate.sh").chmod(0o755)
    return tmp / "runbooks"


@pytest.fixture
def sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "sentinel"
    out.mkdir()
    monkeypatch.setenv("SLO_REMEDIATE_SENTINEL_DIR", str(out))
    return out


ACTIONS = """actions:
  - name: restart
    description: restart the pods
  - name: failover_db
    description: promote the replica
    critical: true
"""


@pytest.mark.parametrize(
    "action", ["wipe_disk", "escalate", "restart; touch /tmp/pwned", "../../bin/sh", "--help", "RESTART"]
)
def test_an_action_outside_the_allow_list_never_runs(tmp_path: Path, sentinel: Path, action: str) -> None:
    runbooks = make_runbook(tmp_path, SENTINEL_SCRIPT, ACTIONS)
    record = run_remediation("svc", action, "INC-0001", settings(runbooks))
    assert record["status"] == "refused"
    assert record["attempts"] == 0
    assert "nothing was run" in record["output"]
    assert list(sentinel.iterdir()) == []  # the script never started

    # The same runner and script do run an allow-listed action: the sentinel would have seen a run.
    ok = run_remediation("svc", "restart", "INC-0001", settings(runbooks))
    assert ok["status"] == "succeeded", ok["output"]
    assert sorted(p.name for p in sentinel.iterdir()) == ["env-restart", "ran-restart"]


def test_a_critical_action_needs_a_recorded_approval(tmp_path: Path, sentinel: Path) -> None:
    runbooks = make_runbook(tmp_path, SENTINEL_SCRIPT, ACTIONS)
    refused = run_remediation("svc", "failover_db", "INC-0002", settings(runbooks))
    assert refused["status"] == "refused"
    assert "critical and has no recorded human approval" in refused["output"]
    assert not (sentinel / "ran-failover_db").exists()

    approved = run_remediation("svc", "failover_db", "INC-0002", settings(runbooks), approved_by="alice")
    assert approved["status"] == "succeeded"
    assert approved["output"].endswith("ran failover_db for INC-0002\n")
    assert (sentinel / "ran-failover_db").exists()


def test_dry_run_records_the_command_and_runs_nothing(tmp_path: Path, sentinel: Path) -> None:
    runbooks = make_runbook(tmp_path, SENTINEL_SCRIPT, ACTIONS)
    script = str((runbooks / "svc" / "remediate.sh").absolute())
    for record in (
        run_remediation("svc", "restart", "INC-0003", settings(runbooks), dry_run=True),
        run_remediation("svc", "restart", "INC-0003", settings(runbooks, remediation_dry_run=True)),
    ):
        assert record["status"] == "dry_run"
        assert record["command"] == [script, "--action", "restart", "--alert-id", "INC-0003"]
        assert record["output"] == f"dry run: would run {script} --action restart --alert-id INC-0003"
    assert list(sentinel.iterdir()) == []


@pytest.mark.parametrize("incident_id", ["INC-1; rm -rf /", "--action", "$(id)", "INC 1", ""])
def test_unsafe_incident_ids_are_refused(tmp_path: Path, sentinel: Path, incident_id: str) -> None:
    runbooks = make_runbook(tmp_path, SENTINEL_SCRIPT, ACTIONS)
    record = run_remediation("svc", "restart", incident_id, settings(runbooks))
    assert record["status"] == "refused" and "is not a safe argument" in record["output"]
    assert list(sentinel.iterdir()) == []


def test_the_script_gets_no_secrets(tmp_path: Path, sentinel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "routing-key-must-not-leak")
    runbooks = make_runbook(tmp_path, SENTINEL_SCRIPT, ACTIONS)
    assert run_remediation("svc", "restart", "INC-0004", settings(runbooks))["status"] == "succeeded"
    env = dict(
        line.split("=", 1) for line in (sentinel / "env-restart").read_text().splitlines() if "=" in line
    )
    assert "ANTHROPIC_API_KEY" not in env and "PAGERDUTY_ROUTING_KEY" not in env
    assert (env["SLO_SERVICE"], env["SLO_ACTION"], env["SLO_INCIDENT_ID"], env["SLO_ATTEMPT"]) == (
        "svc",
        "restart",
        "INC-0004",
        "1",
    )


def test_demo_runbook_success_runs_once() -> None:
    record = run_remediation("checkout-api", "rollback", "INC-0005", settings(ROOT / "runbooks"))
    assert (record["status"], record["exit_code"], record["attempts"]) == ("succeeded", 0, 1)
    assert "ok: rolled back to the previous release; canary healthy" in record["output"]
    assert record["started_at"] <= record["finished_at"]


def test_demo_runbook_failure_is_retried_then_reported() -> None:
    began = time.monotonic()
    record = run_remediation("payments", "rollback", "INC-0006", settings(ROOT / "runbooks"))
    elapsed = time.monotonic() - began
    assert (record["status"], record["exit_code"], record["attempts"]) == ("failed", 1, 3)
    assert record["output"].count("ledger schema migration 0042 is not reversible") == 3
    assert [f"--- attempt {n}: failed, exit code 1" in record["output"] for n in (1, 2, 3)] == [True] * 3
    assert elapsed >= 2 * 0.2  # two pauses between three attempts


def test_a_hanging_script_is_killed_with_its_children(tmp_path: Path, sentinel: Path) -> None:
    runbooks = make_runbook(tmp_path, HANGING_SCRIPT, ACTIONS)
    began = time.monotonic()
    record = run_remediation(
        "svc", "restart", "INC-0007", settings(runbooks, remediation_timeout_s=0.5, remediation_retries=1)
    )
    elapsed = time.monotonic() - began
    assert (record["status"], record["exit_code"], record["attempts"]) == ("timed_out", None, 2)
    assert record["output"].count("[killed after 0.5 s]") == 2
    assert elapsed < 5.0
    child = int((sentinel / "child.pid").read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), f"the script's child {child} outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its new parent to reap it is dead for our purpose
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_output_keeps_its_head_and_tail_and_says_how_much_was_dropped(tmp_path: Path, sentinel: Path) -> None:
    # 1 MiB: "BEGIN" then 1,048,566 x's then "END\n" (5 + 1048566 + 4 + 1 newline from the last echo).
    noisy = "#!/usr/bin/env bash\nprintf BEGIN\nhead -c 1048566 /dev/zero | tr '\\0' 'x'\nprintf 'END\\n'\n"
    runbooks = make_runbook(tmp_path, noisy, ACTIONS)
    record = run_remediation("svc", "restart", "INC-0008", settings(runbooks))
    assert record["status"] == "succeeded", record["output"][-500:]
    out = record["output"]
    kept = 2 * 64 * 1024
    assert f"…[{1_048_575 - kept} bytes omitted of 1048575]…" in out
    head, tail = out.split(f"\n…[{1_048_575 - kept} bytes omitted of 1048575]…\n")
    assert head == "--- attempt 1: succeeded, exit code 0, 1048575 bytes of output\nBEGIN" + "x" * (65536 - 5)
    assert tail == "x" * (64 * 1024 - 4) + "END\n"

    # What reaches the inbox (and the incident) is shorter still, but keeps the byte count, the head
    # and the end.
    job = RemediationJob("INC-0008-R1", "INC-0008", "svc", "restart", False)
    now = dt.datetime(2026, 6, 1, 10, 0)
    sent = result_command(job, record, now, now, settings(runbooks)).body["args"]["output"]
    assert len(sent) <= 4000
    assert sent.startswith("--- attempt 1: succeeded, exit code 0, 1048575 bytes of output\nBEGINxxx")
    assert sent.endswith("xxxEND\n")
    assert "characters omitted]…" in sent


def test_a_setsid_grandchild_is_killed_on_timeout(tmp_path: Path, sentinel: Path) -> None:
    # One grandchild leaves the group with setsid, another double-forks out of it as well: neither
    # is in the script's process group, both still carry the run's marker in their environment.
    script = """#!/usr/bin/env bash
setsid sleep 300 &
echo $! > "$SLO_REMEDIATE_SENTINEL_DIR/setsid.pid"
( setsid bash -c 'echo $$ > "$SLO_REMEDIATE_SENTINEL_DIR/double.pid"; exec sleep 301' & ) &
echo "$SLO_REMEDIATION_RUN" > "$SLO_REMEDIATE_SENTINEL_DIR/marker"
sleep 60
"""
    runbooks = make_runbook(tmp_path, script, ACTIONS)
    record = run_remediation(
        "svc", "restart", "INC-0009", settings(runbooks, remediation_timeout_s=1.0, remediation_retries=0)
    )
    assert (record["status"], record["attempts"]) == ("timed_out", 1)
    assert "[killed after 1 s]" in record["output"]
    marker = (sentinel / "marker").read_text().strip()
    assert len(marker) == 32
    pids = [int((sentinel / name).read_text()) for name in ("setsid.pid", "double.pid")]
    assert [_alive(p) for p in pids] == [False, False]
    assert _with_marker(marker) == []


def test_what_an_exited_script_left_running_is_killed(tmp_path: Path, sentinel: Path) -> None:
    script = """#!/usr/bin/env bash
setsid sleep 300 > /dev/null 2>&1 &
echo $! > "$SLO_REMEDIATE_SENTINEL_DIR/left.pid"
echo "$SLO_REMEDIATION_RUN" > "$SLO_REMEDIATE_SENTINEL_DIR/marker"
echo restarted
"""
    runbooks = make_runbook(tmp_path, script, ACTIONS)
    began = time.monotonic()
    record = run_remediation("svc", "restart", "INC-0010", settings(runbooks))
    assert time.monotonic() - began < 5
    assert (record["status"], record["exit_code"]) == ("succeeded", 0)
    assert record["output"].endswith(
        "restarted\n\n[the script exited and left 1 process(es) running; they were killed]"
    )
    assert not _alive(int((sentinel / "left.pid").read_text()))
    assert _with_marker((sentinel / "marker").read_text().strip()) == []


def test_a_running_script_is_recorded_for_a_restart_to_reap(
    tmp_path: Path, sentinel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = """#!/usr/bin/env bash
# The runner records the script once it knows its pid, so the script may start first: wait for it.
for _ in $(seq 100); do [ -e "$SLO_REMEDIATE_RECORDS/INC-0011-R1.json" ] && break; sleep 0.05; done
cp "$SLO_REMEDIATE_RECORDS/INC-0011-R1.json" "$SLO_REMEDIATE_SENTINEL_DIR/seen.json"
echo $$ > "$SLO_REMEDIATE_SENTINEL_DIR/script.pid"
"""
    runbooks = make_runbook(tmp_path, script, ACTIONS)
    s = settings(runbooks)
    monkeypatch.setenv("SLO_REMEDIATE_RECORDS", str(s.data_dir / "remediations" / "running"))
    record = run_remediation("svc", "restart", "INC-0011", s, remediation_id="INC-0011-R1")
    assert record["status"] == "succeeded", record["output"]
    seen = json.loads((sentinel / "seen.json").read_text())
    pid = int((sentinel / "script.pid").read_text())
    assert (seen["remediation_id"], seen["incident_id"], seen["action"], seen["attempt"]) == (
        "INC-0011-R1",
        "INC-0011",
        "restart",
        1,
    )
    assert (seen["pid"], seen["pgid"], seen["supervisor_pid"]) == (pid, pid, os.getpid())
    assert isinstance(seen["pid_start"], int) and len(seen["marker"]) == 32
    # The runner leaves the record: whoever makes the outcome durable removes it.
    assert (s.data_dir / "remediations" / "running" / "INC-0011-R1.json").exists()


def _with_marker(marker: str) -> list[int]:
    from pipelines.incidents.supervision import marked_pids

    return marked_pids(marker)
