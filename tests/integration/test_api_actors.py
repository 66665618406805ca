"""Commands through a real `slo serve` are sent by named actors (issue 15, deliverable 3 for the API).

The service runs with a personal tokens file (SLO_API_TOKENS_FILE): alice approver, bob responder,
dave viewer. A SEV3 alert whose runbook action is critical waits for approval; then, over real HTTP:
no token / an unknown token → 401; the ingest token (names nobody) and bob's responder token → 403
naming the role needed, and nothing is stored; alice's token with another `actor` in the body → 403;
alice's token → 202, the remediation runs, and the timeline names alice as the approver (and bob as who
acknowledged). Without any personal token configured (loopback, no ingest token either), an approval
is refused with 403 whatever the body says, while acknowledging works as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import slo
from tests.support.realparts import free_port
from tests.support.service import ROOT, Service, running_service
from tests.unit.test_incident_flow import SCRIPT

pytestmark = pytest.mark.integration

ALICE, BOB, DAVE = "alice-token-0123456789", "bob-token-abcdefghijkl", "dave-token-9876543210zz"
INGEST = "ingest-token-for-machines-0001"
TOKENS = f"""tokens:
  "{ALICE}": {{name: alice, email: alice@example.com, role: approver}}
  "{BOB}": {{name: bob, role: responder}}
  "{DAVE}": {{name: dave, role: viewer}}
"""
QUIET = {"ANTHROPIC_API_KEY": "", "SLACK_WEBHOOK_URL": "", "PAGERDUTY_ROUTING_KEY": ""}  # rules, no sends
PATH = "/api/incidents/INC-0001/commands"
APPROVE = {"command": "approve_remediation", "args": {"remediation_id": "INC-0001-R1"}}


def runbooks(tmp_path: Path) -> Path:
    book = tmp_path / "runbooks" / "shop"
    book.mkdir(parents=True)
    (book / "runbook.md").write_text("# shop\nRestart the workers when they crash.\n")
    (book / "actions.yaml").write_text(
        "actions:\n  - name: restart\n    description: restart workers\n    critical: true\n"
    )
    (book / "remediate.sh").write_text(SCRIPT + f'echo "$@" >> {tmp_path / "ran.txt"}\n')
    (book / "remediate.sh").chmod(0o755)
    return tmp_path / "runbooks"


def send(svc: Service, body: dict[str, Any], token: str | None, path: str = PATH) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return svc.request("POST", path, json.dumps(body).encode(), headers)


def show_until(svc: Service, done: Any, timeout: float = 30.0) -> dict[str, Any]:
    """`slo incidents show INC-0001 --json` from the published snapshot, until `done(detail)`."""
    deadline = time.monotonic() + timeout
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = slo(svc.data_dir, "incidents", "show", "INC-0001", "--json")
        if out.returncode == 0:
            detail = json.loads(out.stdout)
            if done(detail):
                return detail
        time.sleep(0.3)
    raise AssertionError(f"not reached in {timeout}s; last: {json.dumps(detail)[:2000]}")


def remediation_status(detail: dict[str, Any]) -> str | None:
    return detail["remediations"][0]["status"] if detail.get("remediations") else None


def test_only_a_named_approver_approves_through_the_api(tmp_path: Path) -> None:
    (tmp_path / "tokens.yaml").write_text(TOKENS)
    env = {
        **QUIET,
        "SLO_API_TOKENS_FILE": str(tmp_path / "tokens.yaml"),
        "SLO_RUNBOOKS_DIR": str(runbooks(tmp_path)),
        "SLO_RULES_ROUTE_BY_SEVERITY": "true",
        "SLO_CYCLE_SECONDS": "0.5",
    }
    with running_service(tmp_path, token=INGEST, env=env) as svc:
        assert svc.health()["commands"] == "personal tokens (3)"
        alert = {"service": "shop", "title": "Workers crash looping", "severity": "SEV3"}
        status, _ = svc.post("/api/incidents/ingest", json.dumps(alert).encode())
        assert status == 202
        show_until(svc, lambda d: remediation_status(d) == "awaiting_approval")
        stored = svc.health()["inbox"]["count"]

        refused = [
            (None, APPROVE),
            ("not-a-known-token-at-all", APPROVE),
            (INGEST, APPROVE),
            (BOB, APPROVE),
            (ALICE, {**APPROVE, "actor": "mallory"}),
            (DAVE, {"command": "acknowledge"}),
        ]
        answers = [send(svc, body, token) for token, body in refused]
        assert [(status, answer["error"]) for status, answer in answers] == [
            (401, "unauthorized"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (403, "forbidden"),
            (403, "forbidden"),
            (403, "forbidden"),
        ]
        details = [answer["detail"] for _, answer in answers]
        assert details[0].startswith("Authorization: missing bearer token; commands need")
        assert details[1].startswith("Authorization: unknown bearer token; commands need")
        assert details[2].startswith("Authorization: the ingest token names nobody;")
        assert details[3] == (
            "approve_remediation: needs the approver role (or higher); the token of bob has the role "
            "responder"
        )
        assert details[4].startswith("actor: 'mallory' is not the token's actor 'alice'")
        assert details[5] == (
            "acknowledge: needs the responder role (or higher); the token of dave has the role viewer"
        )
        assert svc.health()["inbox"]["count"] == stored  # nothing appended
        assert remediation_status(show_until(svc, lambda d: True)) == "awaiting_approval"
        assert not (tmp_path / "ran.txt").exists()

        # A viewer reads; a responder acknowledges; the approver approves: each recorded by name.
        status, listed = svc.request("GET", "/api/incidents", headers={"authorization": f"Bearer {DAVE}"})
        assert status == 200 and [i["id"] for i in listed] == ["INC-0001"]
        status, ack = send(svc, {"command": "acknowledge", "actor": "bob"}, BOB)  # its own name: fine
        assert (status, ack["command"]["actor"]) == (202, "bob")
        status, approved = send(svc, APPROVE, ALICE)
        assert (status, approved["command"]["actor"], approved["command"]["source"]) == (202, "alice", "api")

        detail = show_until(svc, lambda d: remediation_status(d) == "succeeded")
        assert detail["remediations"][0]["approved_by"] == "alice"
        by_kind = {e["kind"]: e for e in detail["timeline"]}
        assert (by_kind["remediation_approved"]["actor"], by_kind["remediation_approved"]["message"]) == (
            "alice",
            "remediation INC-0001-R1 (restart) approved",
        )
        assert by_kind["acknowledged"]["actor"] == "bob"
        assert (tmp_path / "ran.txt").read_text() == "--action restart --alert-id INC-0001\n"


def test_without_personal_tokens_no_command_is_anonymous(tmp_path: Path) -> None:
    # loopback, no ingest token, no personal tokens: the most open configuration there is
    with running_service(tmp_path, env=QUIET) as svc:
        commands = svc.health()["commands"]
        assert commands == "refused: no personal tokens configured (SLO_API_TOKENS_FILE)"
        for body in (APPROVE, {**APPROVE, "actor": "alice"}, {**APPROVE, "command": "reject_remediation"}):
            status, answer = send(svc, body, None)
            assert (status, answer["error"]) == (403, "forbidden"), answer
            assert "needs a named approver" in answer["detail"]
        # an acknowledge from a typed name is no more a named person's than an approval
        status, ack = send(svc, {"command": "acknowledge", "actor": "alice"}, None)
        assert (status, ack["error"]) == (403, "forbidden"), ack
        assert "acknowledge: needs a named responder" in ack["detail"]
        assert svc.health()["inbox"]["count"] == 0


def test_a_tokens_file_that_cannot_be_used_stops_the_service(tmp_path: Path) -> None:
    (tmp_path / "tokens.yaml").write_text(f'tokens:\n  "{ALICE}": {{name: alice, role: boss}}\n')
    env = {
        **os.environ,
        **QUIET,
        "SLO_DATA_DIR": str(tmp_path / "data"),
        "SLO_API_TOKENS_FILE": str(tmp_path / "tokens.yaml"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"{tmp_path / 'tokens.yaml'}: tokens entry 1 (alice): role: 'boss' is not a role" in done.stderr
    assert ALICE not in done.stdout + done.stderr
