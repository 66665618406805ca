"""Incident roles (issue 17, item 4; seeds 001 and 002) through the real doors.

- The incident stage with a local Slack webhook: a SEV1 incident escalated with no incident commander
  gets one `ic_requested` entry and one Slack notice asking for one, never a second; a SEV3 is not
  asked; once an IC is assigned the incident shows who holds each role.
- A real `slo serve` with personal tokens, and the `slo incidents` CLI: a responder assigns the
  incident commander over HTTP, a viewer is refused (403 naming the role needed), a bad role is refused
  (400 naming the field) and nothing is stored; the CLI assigns the communications lead; both land on
  the timeline with who assigned them, and `slo incidents show` prints the roles.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipelines.inbox import Inbox
from tests.integration.test_api_actors import send, show_until
from tests.support.cli import os_user, slo
from tests.support.receivers import Endpoint
from tests.support.service import running_service
from tests.unit.test_incident_flow import T0, M, command, firing, kinds, run, settings_for

pytestmark = pytest.mark.integration

BOB, DAVE = "bob-token-abcdefghijkl", "dave-token-9876543210zz"
INGEST = "ingest-token-for-machines-0001"
TOKENS = f"""tokens:
  "{BOB}": {{name: bob, role: responder}}
  "{DAVE}": {{name: dave, role: viewer}}
"""
QUIET = {"ANTHROPIC_API_KEY": "", "SLACK_WEBHOOK_URL": "", "PAGERDUTY_ROUTING_KEY": ""}
PATH = "/api/incidents/INC-0001/commands"


@pytest.fixture
def slack() -> Iterator[Endpoint]:
    endpoint = Endpoint([200])
    yield endpoint
    endpoint.close()


def test_a_sev1_escalated_without_an_ic_asks_for_one_once(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, slack: Endpoint
) -> None:
    settings = dataclasses.replace(
        settings_for(tmp_path), slack_webhook_url=f"{slack.url}/services/T0/B0/x", notify_max_retries=0
    )
    inbox.append([firing("Checkout down", "SEV1"), firing("Search typo", "SEV3", service="search")])
    run(con, settings, inbox, T0 + M)
    asked = con.execute(
        "SELECT incident_id, occurred_at, message FROM timeline WHERE kind = 'ic_requested'"
    ).fetchall()
    assert asked == [
        (
            "INC-0001",
            T0 + M,
            "SEV1 escalated with no incident commander: assign one (slo incidents assign INC-0001 --role ic "
            "--person NAME, or the incident page)",
        )
    ]
    texts = [body["text"] for _, body, _ in slack.received]
    notices = [t for t in texts if "has no incident commander" in t]
    assert notices == [
        ":warning: *SEV1 INC-0001 has no incident commander* shop: Checkout down\n"
        "Assign one before diving into troubleshooting: `slo incidents assign INC-0001 --role ic "
        "--person NAME` (or the incident page).\n"
        "Also wanted: a communications lead, a technical lead and a scribe."
    ]
    assert kinds(con).index("ic_requested") > kinds(con).index("escalated")

    run(con, settings, inbox, T0 + 2 * M)  # still no IC: asked once, not every cycle
    inbox.append([command("assign", T0 + 3 * M, role="ic", person="alice")])
    run(con, settings, inbox, T0 + 3 * M)
    inbox.append([command("assign", T0 + 4 * M, role="ic", person="alice")])  # the same again: rejected
    run(con, settings, inbox, T0 + 4 * M)
    # asked once; then, with alice as commander, declared once (the rejected re-assignment changes nothing)
    assert [t.splitlines()[0] for _, b, _ in slack.received if "incident commander" in (t := b["text"])] == [
        ":warning: *SEV1 INC-0001 has no incident commander* shop: Checkout down",
        ":mega: INC-0001 declared SEV1: Checkout down; incident commander: alice",
    ]
    assert con.execute("SELECT count(*) FROM timeline WHERE kind = 'ic_requested'").fetchone() == (1,)
    assert con.execute(
        "SELECT kind, actor, message FROM timeline WHERE kind IN ('role_assigned', 'command_rejected') "
        "ORDER BY seq"
    ).fetchall() == [
        ("role_assigned", "alice", "incident commander: alice"),
        ("command_rejected", "alice", "assign rejected: alice already is the incident commander"),
    ]


def test_roles_are_assigned_over_the_api_and_the_cli_and_land_on_the_timeline(tmp_path: Path) -> None:
    (tmp_path / "tokens.yaml").write_text(TOKENS)
    env = {**QUIET, "SLO_API_TOKENS_FILE": str(tmp_path / "tokens.yaml"), "SLO_CYCLE_SECONDS": "0.5"}
    with running_service(tmp_path, token=INGEST, env=env) as svc:
        alert = {"service": "shop", "title": "Checkout errors", "severity": "SEV2"}
        assert svc.post("/api/incidents/ingest", json.dumps(alert).encode())[0] == 202
        show_until(svc, lambda d: "ic_requested" in [e["kind"] for e in d["timeline"]])
        stored = svc.health()["inbox"]["count"]

        viewer = send(svc, {"command": "assign", "args": {"role": "ic", "person": "dave"}}, DAVE, PATH)
        assert viewer[0] == 403
        assert viewer[1]["detail"] == (
            "assign: needs the responder role (or higher); the token of dave has the role viewer"
        )
        bad = send(svc, {"command": "assign", "args": {"role": "boss", "person": "bob"}}, BOB, PATH)
        assert bad[0] == 400
        assert "args.role: 'boss' is not one of incident_commander (ic)" in json.dumps(bad[1])
        assert svc.health()["inbox"]["count"] == stored  # neither refusal stored anything

        ok = send(svc, {"command": "assign", "args": {"role": "IC", "person": "bob"}}, BOB, PATH)
        assert ok[0] == 202, ok
        cli = slo(svc.data_dir, "incidents", "assign", "INC-0001", "--role", "comms", "--person", "carol")
        assert cli.returncode == 0, cli.stderr
        # left to the running service, even between two of its cycles (store.served_by)
        assert cli.stdout == "INC-0001: queued; the running service will apply it\n"

        detail = show_until(svc, lambda d: len(d["roles"]) == 2)
        assert detail["roles"] == {"incident_commander": "bob", "communications_lead": "carol"}
        assigned = [
            (e["source"], e["actor"], e["message"], e["data"])
            for e in detail["timeline"]
            if e["kind"] == "role_assigned"
        ]
        assert assigned == [
            (
                "api",
                "bob",
                "incident commander: bob",
                {"role": "incident_commander", "person": "bob", "previous": None},
            ),
            (
                "cli",
                os_user(),
                "communications lead: carol",
                {"role": "communications_lead", "person": "carol", "previous": None},
            ),
        ]
        human = slo(svc.data_dir, "incidents", "show", "INC-0001")
        assert (
            "  roles: incident commander bob · communications lead carol · technical lead — · scribe —\n"
            in human.stdout
        )
        assert "needs an incident commander" not in human.stdout
