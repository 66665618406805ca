"""Stakeholder updates sent to Slack (issue 17, item 6) against a local Slack webhook
(tests/support/receivers.py `Endpoint`), the incident stage driven at chosen times (its injected clock):
nothing before the communications lead (assigned first, in each test) approves; then the latest
drafted update, one more each time seed 002's cadence drafts one (SEV2: every 30 min), the resolved one,
and nothing after it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.incidents import documents
from tests.support.cli import os_user, slo
from tests.support.receivers import Endpoint
from tests.support.service import running_service
from tests.unit.test_incident_flow import T0, M, command, firing, run, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def slack() -> Iterator[Endpoint]:
    server = Endpoint([200], b"ok")
    yield server
    server.close()


def updates(slack: Endpoint) -> list[str]:
    return [body["text"] for _, body, _ in slack.received if body["text"].startswith(":memo:")]


def test_updates_go_out_after_the_approval_at_their_cadence_and_stop_at_resolve(con, inbox, tmp_path, slack):
    settings = settings_for(tmp_path, slack_webhook_url=f"{slack.url}/services/T0/B0/x")
    inbox.append([firing("Checkout errors", "SEV2")])
    run(con, settings, inbox, T0)
    run(con, settings, inbox, T0 + 31 * M)  # the initial update was due again at 10:30: a second draft
    drafted = con.execute("SELECT count(*) FROM documents WHERE kind = 'stakeholder_update'").fetchone()
    assert drafted == (2,) and updates(slack) == []  # drafted, never sent: nobody approved

    inbox.append(
        [
            command("assign", T0 + 33 * M, role="comms", person="alice"),
            command("approve_updates", T0 + 33 * M),
        ]
    )
    run(con, settings, inbox, T0 + 34 * M)
    sent = updates(slack)
    assert len(sent) == 1 and "Subject: [SEV2] shop — Checkout errors" in sent[0]
    assert "Next Update: by 2026-06-01 11:01 UTC" in sent[0]  # the 10:31 draft, SEV2: 30 min

    run(con, settings, inbox, T0 + 50 * M)
    assert len(updates(slack)) == 1  # not due before 11:01
    run(con, settings, inbox, T0 + 62 * M)
    assert len(updates(slack)) == 2 and "Next Update: by 2026-06-01 11:32 UTC" in updates(slack)[1]

    inbox.append([command("resolve", T0 + 70 * M)])
    run(con, settings, inbox, T0 + 71 * M)
    assert len(updates(slack)) == 3 and "Subject: [RESOLVED] shop — Checkout errors" in updates(slack)[2]
    run(con, settings, inbox, T0 + 200 * M)
    assert len(updates(slack)) == 3  # nothing after the resolved update

    rows = con.execute(
        "SELECT occurred_at, actor, message FROM timeline WHERE kind IN ('updates_approved', "
        "'stakeholder_update_sent') ORDER BY seq"
    ).fetchall()
    assert [(at, actor) for at, actor, _ in rows] == [
        (T0 + 33 * M, "alice"),
        (T0 + 33 * M, None),  # the 10:31 draft goes out at the approval
        (T0 + 62 * M, None),
        (T0 + 70 * M, None),
    ]
    assert all(": slack sent" in m for _, _, m in rows[1:]), rows


def test_a_second_approval_and_an_approval_after_resolve_are_refused(con, inbox, tmp_path, slack):
    settings = settings_for(tmp_path, slack_webhook_url=f"{slack.url}/hook")
    inbox.append(
        [
            firing("Checkout errors", "SEV2"),
            command("assign", T0 + M, role="comms", person="alice"),
            command("approve_updates", T0 + M),
        ]
    )
    run(con, settings, inbox, T0 + M)
    inbox.append([command("approve_updates", T0 + 2 * M)])
    run(con, settings, inbox, T0 + 2 * M)
    messages = [m for (m,) in con.execute("SELECT message FROM timeline ORDER BY seq").fetchall()]
    assert any("already approved by alice" in m for m in messages), messages
    assert len(updates(slack)) == 1


def test_a_closed_incident_shows_no_update_due() -> None:
    ups = [{"created_at": T0, "due_at": T0 + 30 * M}, {"created_at": T0 + 40 * M, "due_at": None}]
    assert documents.update_due("resolved", ups) is None
    assert documents.update_due("closed", ups[:1]) is None  # even if its last update had a due time
    assert documents.update_due("acknowledged", ups[:1]) == T0 + 30 * M
    assert documents.update_due("triggered", []) is None


def test_slo_serve_sends_the_update_once_a_person_approves_with_the_cli(
    tmp_path: Path, slack: Endpoint
) -> None:
    env = {
        "ANTHROPIC_API_KEY": "",
        "SLACK_WEBHOOK_URL": f"{slack.url}/hook",
        "PAGERDUTY_ROUTING_KEY": "",
        "SLO_CYCLE_SECONDS": "0.5",
    }
    alert = {"service": "shop", "title": "Checkout failing", "severity": "SEV2"}
    with running_service(tmp_path, token="ingest-token-0123456789", env=env) as svc:
        assert svc.post("/api/incidents/ingest", json.dumps(alert).encode())[0] == 202
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = slo(svc.data_dir, "incidents", "show", "INC-0001", "--document", "stakeholder_update")
            if shown.returncode == 0 and "Subject:" in shown.stdout:
                break
            time.sleep(0.3)
        time.sleep(1.5)  # three more cycles: drafted, still not sent
        assert updates(slack) == []
        assigned = slo(
            svc.data_dir, "incidents", "assign", "INC-0001", "--role", "comms", "--person", os_user()
        )
        assert assigned.returncode == 0, assigned.stderr  # only the communications lead approves
        approved = slo(svc.data_dir, "incidents", "approve-updates", "INC-0001")
        assert approved.returncode == 0, approved.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not updates(slack):
            time.sleep(0.2)
        time.sleep(1.5)  # three more cycles: sent once
    sent = updates(slack)
    assert len(sent) == 1 and "Subject: [SEV2] shop — Checkout failing" in sent[0]
    shown = json.loads(slo(svc.data_dir, "incidents", "show", "INC-0001", "--json").stdout)
    approvals = [(e["kind"], e["actor"]) for e in shown["timeline"] if e["kind"] == "updates_approved"]
    assert approvals == [("updates_approved", os_user())]
