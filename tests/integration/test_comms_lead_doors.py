"""Who approves communications, through a real `slo serve` with personal tokens (issue 17).

Carol (responder) is the communications lead, bob (responder) is not, root is an admin. Over HTTP:
bob's `approve_status` is accepted at the door (202: a responder may send it) and rejected by the fold,
naming carol; bob's `override` is refused at the door (403, nothing stored); carol's approval is taken;
root's override of the updates is taken and the timeline says it was an override of carol.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_api_actors import send, show_until
from tests.support.service import running_service

pytestmark = pytest.mark.integration

BOB, CAROL, ROOT = "bob-token-abcdefghijkl", "carol-token-0123456789", "root-token-zyxwvutsrq99"
TOKENS = f"""tokens:
  "{BOB}": {{name: bob, role: responder}}
  "{CAROL}": {{name: carol, role: responder}}
  "{ROOT}": {{name: root, role: admin}}
"""
QUIET = {"ANTHROPIC_API_KEY": "", "SLACK_WEBHOOK_URL": "", "PAGERDUTY_ROUTING_KEY": ""}


def comms_entries(detail: dict) -> list[tuple[str, str, str]]:
    kinds = ("command_rejected", "status_page_approved", "updates_approved")
    return [(e["kind"], e["actor"], e["message"]) for e in detail["timeline"] if e["kind"] in kinds]


def test_the_api_takes_the_comms_leads_approval_and_an_admins_override_only(tmp_path: Path) -> None:
    (tmp_path / "tokens.yaml").write_text(TOKENS)
    env = {**QUIET, "SLO_API_TOKENS_FILE": str(tmp_path / "tokens.yaml"), "SLO_CYCLE_SECONDS": "0.5"}
    with running_service(tmp_path, token="ingest-token-for-machines-0001", env=env) as svc:
        alert = {"service": "shop", "title": "Checkout failing", "severity": "SEV2"}
        assert svc.post("/api/incidents/ingest", json.dumps(alert).encode())[0] == 202
        show_until(svc, lambda d: d.get("id") == "INC-0001")
        assign = {"command": "assign", "args": {"role": "comms", "person": "carol"}}
        assert send(svc, assign, BOB)[0] == 202
        show_until(svc, lambda d: d.get("roles", {}).get("communications_lead") == "carol")

        stored = svc.health()["inbox"]["count"]
        status, answer = send(svc, {"command": "approve_updates", "args": {"override": True}}, BOB)
        assert (status, answer["detail"]) == (
            403,
            "approve_updates: overriding the communications lead needs the admin role; the token of bob "
            "has the role responder (leave `override` out: the communications lead approves)",
        )
        assert svc.health()["inbox"]["count"] == stored  # nothing stored

        assert send(svc, {"command": "approve_status"}, BOB)[0] == 202  # a responder may send it …
        detail = show_until(svc, lambda d: len(comms_entries(d)) == 1)
        assert comms_entries(detail) == [  # … and the fold takes it from the comms lead only
            (
                "command_rejected", "bob",
                "approve_status rejected: only the communications lead, carol, approves it; bob is not the "
                "communications lead",
            )
        ]  # fmt: skip
        assert send(svc, {"command": "approve_status", "args": {"note": "Checkout errors"}}, CAROL)[0] == 202
        assert send(svc, {"command": "approve_updates", "args": {"override": True}}, ROOT)[0] == 202
        detail = show_until(svc, lambda d: len(comms_entries(d)) == 3)
    assert comms_entries(detail)[1:] == [
        (
            "status_page_approved", "carol",
            "status page posting approved by carol (the communications lead); impact: Checkout errors",
        ),
        (
            "updates_approved", "root",
            "stakeholder updates to Slack approved by root as an admin override (communications lead carol)",
        ),
    ]  # fmt: skip
