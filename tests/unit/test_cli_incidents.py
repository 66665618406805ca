"""`slo incidents list|show|ack|…`: DESIGN §3 JSON, steps through the inbox, exit codes, the busy writer."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from pipelines.config import Settings
from pipelines.cycle import open_writer as Writer
from pipelines.inbox import Inbox
from pipelines.incidents.contract import Alert
from pipelines.store import served_by, serving
from tests.support.cli import os_user, slo
from tests.support.incident_rows import publish_alert

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 6, 1, 10, 0)


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A published store with one incident: an Alertmanager SEV2 alert for `shop` (no spec, no runbook)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path / "data"))
    for name in ("ANTHROPIC_API_KEY", "PAGERDUTY_ROUTING_KEY", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load()
    alert = Alert(
        source="alertmanager",
        status="firing",
        service="shop",
        fingerprint="HighErrorRate",
        title="HighErrorRate on shop",
        dedup_key="am:1",
        starts_at=T0,
        severity="SEV2",
    )
    publish_alert(settings, alert, T0 + dt.timedelta(minutes=1))
    return tmp_path / "data"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["incidents", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_list_json_has_the_design_fields(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, rows = run_json(capsys, "list", "--json")
    assert code == 0
    (row,) = rows
    for key in (
        "id",
        "service",
        "title",
        "severity",
        "status",
        "source",
        "fingerprint",
        "impact_start",
        "detected_at",
        "acknowledged_at",
        "mitigated_at",
        "resolved_at",
        "route",
        "triage",
    ):
        assert key in row, key
    assert (row["id"], row["service"], row["status"], row["source"], row["route"]) == (
        "INC-0001",
        "shop",
        "triggered",
        "alertmanager",
        "escalate",
    )
    assert (row["detected_at"], row["detected_at_source"]) == ("2026-06-01T10:00:00Z", "alertmanager")
    assert (row["impact_start"], row["impact_start_source"]) == ("2026-06-01T10:00:00Z", "alert_start")
    assert row["triage"]["method"] == "rules"
    assert row["triage"]["severity"] == row["severity"] == "SEV2"
    assert row["triage"]["recommended_action"] == "escalate"
    assert 0 <= row["triage"]["confidence"] <= 1


def test_ack_goes_through_the_inbox_and_is_applied_at_once(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = run_json(capsys, "ack", "INC-0001", "--json")
    assert code == 0
    assert result == {
        "incident": "INC-0001",
        "command": "acknowledge",
        "stored": "accepted",
        "outcome": "acknowledged",
    }
    _, (row,) = run_json(capsys, "list", "--json")
    assert (row["status"], row["acknowledged_at_source"]) == ("acknowledged", "cli")
    _, detail = run_json(capsys, "show", "INC-0001", "--json")
    acks = [e for e in detail["timeline"] if e["kind"] == "acknowledged"]
    assert [(e["actor"], e["source"]) for e in acks] == [(os_user(), "cli")]  # the effective uid's login
    # Acknowledging again is a bad step for this state: recorded as rejected, exit 1.
    code, result = run_json(capsys, "ack", "INC-0001", "--json")
    assert code == 1
    assert result["outcome"] == "acknowledge rejected: the incident is acknowledged (allowed from: triggered)"


def test_the_cli_records_the_os_user_and_takes_no_other_name(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "dora")  # not who runs this: the CLI does not believe it
    monkeypatch.setenv("USER", "dora")
    with pytest.raises(SystemExit) as refused:  # issue 15: no free-text actor
        main(["incidents", "ack", "INC-0001", "--actor", "mallory"])
    assert refused.value.code == 2
    assert "unrecognized arguments: --actor mallory" in capsys.readouterr().err
    assert Inbox(data).count() == 1  # the alert only: nothing stored
    code, _ = run_json(capsys, "ack", "INC-0001", "--json")
    assert code == 0
    _, detail = run_json(capsys, "show", "INC-0001", "--json")
    assert [e["actor"] for e in detail["timeline"] if e["kind"] == "acknowledged"] == [os_user()]


def test_logname_and_user_do_not_change_who_the_cli_records(data: Path) -> None:
    """`LOGNAME=mallory USER=mallory slo incidents ack …` as a real process: still the effective uid's
    login name on the timeline (getpass.getuser() would have said mallory)."""
    assert os_user() != "mallory"
    done = slo(data, "incidents", "ack", "INC-0001", "--json", env={"LOGNAME": "mallory", "USER": "mallory"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["outcome"] == "acknowledged"
    shown = slo(data, "incidents", "show", "INC-0001", "--json")
    timeline = json.loads(shown.stdout)["timeline"]
    acks = [(e["actor"], e["source"]) for e in timeline if e["kind"] == "acknowledged"]
    assert acks == [(os_user(), "cli")]
    assert "mallory" not in shown.stdout


def test_bad_input_exits_1_and_stores_nothing(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = Inbox(data).count()
    assert main(["incidents", "ack", "INC-9999"]) == 1
    assert "no incident 'INC-9999'" in capsys.readouterr().err
    assert (
        main(
            [
                "incidents",
                "action-item",
                "INC-0001",
                "--title",
                "t",
                "--owner",
                "o",
                "--priority",
                "soon",
                "--due",
                "2026-07-01",
            ]
        )
        == 1
    )
    assert "priority 'SOON': expected one of P0, P1, P2, P3, P4" in capsys.readouterr().err
    assert main(["incidents", "root-cause", "INC-0001", "--category", "Bad Category!", "--text", "x"]) == 1
    assert Inbox(data).count() == before
    with pytest.raises(SystemExit) as usage:
        main(["incidents", "list", "--limit", "0"])
    assert usage.value.code == 2


def test_with_the_service_holding_the_store_the_step_is_queued(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Writer(data):  # stands in for a running `slo serve`
        code, result = run_json(capsys, "resolve", "INC-0001", "--json")
    assert code == 0
    assert result["outcome"] == "queued; the running service will apply it"
    _, (row,) = run_json(capsys, "list", "--json")
    assert row["status"] == "triggered"  # not applied yet …
    code, _ = run_json(capsys, "retriage", "INC-0001", "--json")  # … the next one-shot folds both
    assert code == 0
    _, (row,) = run_json(capsys, "list", "--json")
    assert row["status"] == "resolved"


def test_with_a_service_running_between_its_cycles_the_step_waits_for_it(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store is free (no cycle runs) but `slo serve` runs: its settings send the step's outbound
    effects (a PagerDuty resolve, a Slack notice), so the CLI leaves the step to it."""
    with serving(data):  # what `slo serve`'s lifespan holds while its worker runs
        assert served_by(data) == str(os.getpid())
        code, result = run_json(capsys, "resolve", "INC-0001", "--json")
        assert (code, result["outcome"]) == (0, "queued; the running service will apply it")
        _, (row,) = run_json(capsys, "list", "--json")
        assert row["status"] == "triggered"
    assert served_by(data) is None  # the service stopped: the next one-shot applies it
    code, _ = run_json(capsys, "retriage", "INC-0001", "--json")
    assert code == 0
    _, (row,) = run_json(capsys, "list", "--json")
    assert row["status"] == "resolved"


def test_list_filters(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, "list", "--json", "--status", "open")[1][0]["id"] == "INC-0001"
    assert run_json(capsys, "list", "--json", "--status", "closed")[1] == []
    assert run_json(capsys, "list", "--json", "--service", "other")[1] == []


def test_cli_as_a_subprocess(data: Path) -> None:
    env = {**os.environ, "SLO_DATA_DIR": str(data)}
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "incidents", "list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.splitlines()[0].split() == [
        "ID",
        "SEV",
        "STATUS",
        "ROUTE",
        "SERVICE",
        "DETECTED",
        "TRIAGE",
        "TITLE",
    ]
    assert out.splitlines()[1].split()[:5] == ["INC-0001", "SEV2", "triggered", "escalate", "shop"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"command": "acknowledge"}, None),
        ({"command": "ack"}, "command 'ack': expected one of acknowledge, mitigate"),
        ({"command": "root_cause", "args": {"category": "deploy"}}, "text: required, a non-empty text"),
        ({"command": "acknowledge", "at": "yesterday"}, "at 'yesterday': expected an ISO 8601 time"),
        ({"command": "acknowledge", "at": "2999-01-01T00:00:00Z"}, "in the future"),
        ({"command": "acknowledge", "extra": 1}, "body: unknown field(s) extra"),
        (["acknowledge"], "body: expected a JSON object"),
    ],
)
def test_api_requests_become_validated_commands(body: Any, message: str | None) -> None:
    from pipelines.errors import CommandError
    from pipelines.incidents.commands import command_from_request

    if message is None:
        cmd = command_from_request("INC-0001", body, actor="carol")
        assert (cmd.command, cmd.incident_id, cmd.actor, cmd.source) == (
            "acknowledge",
            "INC-0001",
            "carol",
            "api",
        )
        assert cmd.dedup_key.startswith("api:acknowledge:INC-0001:")
        return
    with pytest.raises(CommandError) as err:
        command_from_request("INC-0001", body, actor="carol")
    assert message in str(err.value)


def test_a_retried_api_request_is_a_duplicate(data: Path) -> None:
    from pipelines.incidents.commands import command_from_request, submit

    settings = Settings.load()
    body = {"command": "acknowledge", "request_id": "req-42"}
    first = submit(settings, command_from_request("INC-0001", body, actor="carol"))
    again = submit(settings, command_from_request("INC-0001", body, actor="carol"))
    assert (first, again) == ("accepted", "duplicate")


def test_show_prints_a_document(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["incidents", "show", "INC-0001", "--document", "triage_report"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Triage report: INC-0001 — HighErrorRate on shop")
    assert "- Route: **escalate**" in out
    assert main(["incidents", "show", "INC-0001", "--document", "postmortem"]) == 1
    assert "INC-0001 has no postmortem yet" in capsys.readouterr().err


def test_a_probe_held_for_an_instant_is_not_a_service(data: Path) -> None:
    """Two CLI steps probing at once: one holds the probe's lock for an instant, which the other must not
    take for a running service (it would leave its step queued for nobody)."""
    import fcntl
    import threading

    fd = os.open(data / "service.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(0.03, lambda: os.close(fd)).start()  # the other probe lets go 30 ms later
    assert served_by(data) is None
