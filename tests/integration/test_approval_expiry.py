"""Approvals are announced and expire (issue 15, deliverable 5), on the incident stage's own clock.

A critical remediation waiting for approval is announced once in Slack (a loopback webhook receiver)
and on the timeline, naming who may approve (the role, and the names of the personal tokens that hold
it); after SLO_APPROVAL_TIMEOUT (15 min by default) it is withdrawn and the incident paged (a loopback
PagerDuty receiver). The stage is run at chosen times, so nothing waits 15 real minutes, and run again
(later, and on a reopened store) to show nothing is announced or escalated twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.config import Settings
from pipelines.inbox import Inbox
from pipelines.store import migrate
from tests.integration.test_api_actors import QUIET, remediation_status, show_until
from tests.integration.test_api_actors import runbooks as api_runbooks
from tests.integration.test_pagerduty_events import Endpoint
from tests.support.service import running_service
from tests.unit.test_incident_flow import SCRIPT, T0, M, command, firing, kinds, one, run, settings_for

pytestmark = pytest.mark.integration

TOKENS = """tokens:
  "alice-token-0123456789": {name: alice, email: alice@example.com, role: approver}
  "bob-token-abcdefghijkl": {name: bob, role: responder}
  "carol-token-ZYXWVUTSRQ": {name: carol, role: admin}
"""


@pytest.fixture
def receivers() -> Iterator[tuple[Endpoint, Endpoint]]:
    slack, pagerduty = Endpoint([200], b"ok"), Endpoint([202])
    yield slack, pagerduty
    slack.close()
    pagerduty.close()


def setup(tmp_path: Path, slack: Endpoint, pagerduty: Endpoint, **changes: Any) -> tuple[Settings, Path]:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(TOKENS)
    settings = settings_for(
        tmp_path,
        critical=True,
        rules_route_by_severity=True,
        slack_webhook_url=f"{slack.url}/services/T0/B0/secret",
        pagerduty_routing_key="R0UT1NG-KEY-0123456789abcdef",
        pagerduty_events_url=f"{pagerduty.url}/v2/enqueue",
        notify_max_retries=0,
        api_tokens_file=tokens,
    )
    ran = tmp_path / "ran.txt"
    (tmp_path / "runbooks" / "shop" / "remediate.sh").write_text(SCRIPT + f'echo "$@" >> {ran}\n')
    return dataclasses.replace(settings, **changes), ran


def texts(endpoint: Endpoint) -> list[str]:
    return [body.get("text") or body["payload"]["summary"] for _, body, _ in endpoint.received]


def test_a_waiting_approval_is_announced_once_then_withdrawn_and_escalated(
    tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    slack, pagerduty = receivers
    settings, ran = setup(tmp_path, slack, pagerduty)
    db = tmp_path / "store.duckdb"
    con = duckdb.connect(str(db))
    migrate(con)
    inbox = Inbox(tmp_path / "data")
    inbox.append([firing("Workers crash looping")])  # SEV3, critical action: waits for approval
    run(con, settings, inbox, T0 + M)
    assert one(con, "SELECT id, status, created_at FROM remediations") == (
        "INC-0001-R1",
        "awaiting_approval",
        T0 + M,
    )

    # Announced once: in Slack, naming the role and the approvers by name, and on the timeline.
    assert texts(slack) == [
        ":raised_hand: *INC-0001* shop: Workers crash looping\n"
        "*Approval needed:* remediation INC-0001-R1 (restart) is critical and waits for a human approval "
        "until 2026-06-01 10:16 UTC.\n"
        "*Who may approve:* the approver or admin role: alice, carol.\n"
        "*How:* the dashboard, `slo incidents approve INC-0001 --remediation INC-0001-R1` on the service's "
        "machine, or `POST /api/incidents/INC-0001/commands` with a personal token.\n"
        "Without a decision by then the remediation is withdrawn and the incident escalated."
    ]
    assert pagerduty.received == []  # an announcement is not a page
    requested = con.execute(
        "SELECT occurred_at, message, data FROM timeline WHERE kind = 'approval_requested'"
    ).fetchall()
    assert [(at, message) for at, message, _ in requested] == [
        (
            T0 + M,
            "remediation INC-0001-R1 (restart) waits for an approval until 2026-06-01 10:16 UTC; who may "
            "approve: the approver or admin role (alice, carol); without one it is withdrawn and the "
            "incident escalated",
        )
    ]
    assert json.loads(requested[0][2])["approvers"] == ["alice", "carol"]
    assert one(con, "SELECT channel, status FROM notifications WHERE channel = 'slack'") == ("slack", "sent")

    # Later cycles inside the timeout: nothing new, nothing withdrawn.
    run(con, settings, inbox, T0 + 5 * M)
    run(con, settings, inbox, T0 + 16 * M - dt.timedelta(seconds=1))
    assert len(slack.received) == 1 and pagerduty.received == []
    assert one(con, "SELECT status FROM remediations") == "awaiting_approval"

    # At the deadline (15 min after it was queued): withdrawn, on the timeline at the deadline, paged.
    run(con, settings, inbox, T0 + 17 * M)
    assert one(con, "SELECT status, finished_at FROM remediations") == ("withdrawn", T0 + 16 * M)
    assert con.execute(
        "SELECT occurred_at, message FROM timeline WHERE kind = 'approval_expired'"
    ).fetchall() == [
        (
            T0 + 16 * M,
            "remediation INC-0001-R1 (restart): no approval within 15 min; the approval request is "
            "withdrawn and the incident escalated",
        )
    ]
    assert one(con, "SELECT message FROM timeline WHERE kind = 'escalated'") == (
        "escalated to on-call-primary: remediation INC-0001-R1 (restart) had no approval within 15 min: "
        "withdrawn"
    )
    assert one(con, "SELECT route FROM incidents") == "escalate"
    assert [body["event_action"] for _, body, _ in pagerduty.received] == ["trigger"]
    assert pagerduty.received[0][1]["dedup_key"] == "INC-0001"
    assert len(slack.received) == 2  # the escalation's Slack message
    assert "had no approval within 15 min" in slack.received[1][1]["text"]

    # Later cycles, and the store reopened as after a restart: nothing announced or escalated again.
    run(con, settings, inbox, T0 + 30 * M)
    con.close()
    con = duckdb.connect(str(db))
    run(con, settings, inbox, T0 + 31 * M)
    assert len(slack.received) == 2 and len(pagerduty.received) == 1
    assert kinds(con).count("approval_requested") == 1
    assert kinds(con).count("approval_expired") == 1
    assert kinds(con).count("escalated") == 1

    # An approval arriving after the withdrawal is refused by the fold, and nothing runs.
    inbox.append([command("approve_remediation", T0 + 32 * M, remediation_id="INC-0001-R1")])
    run(con, settings, inbox, T0 + 32 * M)
    assert one(con, "SELECT message FROM timeline WHERE kind = 'command_rejected'") == (
        "approve_remediation rejected: remediation INC-0001-R1 is withdrawn, not awaiting approval"
    )
    assert not ran.exists()
    con.close()
    inbox.close()


def test_an_approval_within_the_timeout_runs_and_nothing_is_withdrawn(
    tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    slack, pagerduty = receivers
    settings, ran = setup(tmp_path, slack, pagerduty, approval_timeout_s=300.0)  # SLO_APPROVAL_TIMEOUT
    con = duckdb.connect()
    migrate(con)
    inbox = Inbox(tmp_path / "data")
    inbox.append([firing("Workers crash looping")])
    run(con, settings, inbox, T0 + M)
    assert "until 2026-06-01 10:06 UTC" in slack.received[0][1]["text"]  # 5 min after it was queued
    inbox.append([command("approve_remediation", T0 + 4 * M, remediation_id="INC-0001-R1")])
    run(con, settings, inbox, T0 + 4 * M)
    run(con, settings, inbox, T0 + 10 * M)  # past the 5 min (and inside the SLI verification window)
    assert one(con, "SELECT status, approved_by FROM remediations") == ("succeeded", "alice")
    assert ran.read_text() == "--action restart --alert-id INC-0001\n"
    assert "approval_expired" not in kinds(con)
    assert pagerduty.received == [] and len(slack.received) == 1
    con.close()
    inbox.close()


def test_a_request_left_on_a_resolved_incident_is_withdrawn_without_a_page(
    tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    slack, pagerduty = receivers
    settings, ran = setup(tmp_path, slack, pagerduty)
    con = duckdb.connect()
    migrate(con)
    inbox = Inbox(tmp_path / "data")
    inbox.append([firing("Workers crash looping")])
    run(con, settings, inbox, T0 + M)
    inbox.append([command("resolve", T0 + 5 * M)])  # it went away by itself
    run(con, settings, inbox, T0 + 5 * M)
    run(con, settings, inbox, T0 + 17 * M)
    assert one(con, "SELECT status FROM remediations") == "withdrawn"
    assert one(con, "SELECT message FROM timeline WHERE kind = 'approval_expired'") == (
        "remediation INC-0001-R1 (restart): no approval within 15 min; the approval request is withdrawn "
        "(the incident is no longer open: nobody is paged)"
    )
    assert "escalated" not in kinds(con)
    # no page; Slack has the announcement and (issue 17, item 7) the notice that the incident resolved
    assert pagerduty.received == [] and len(slack.received) == 2
    assert texts(slack)[0].startswith(":raised_hand: *INC-0001*")
    assert texts(slack)[1].startswith(":large_green_circle: *[RESOLVED] INC-0001*")
    assert not ran.exists()
    con.close()
    inbox.close()


def test_slo_serve_withdraws_a_waiting_approval_and_a_restart_does_not_repeat_it(
    tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    """The same through a real `slo serve` on the wall clock, with a 3-second SLO_APPROVAL_TIMEOUT, then
    the service restarted on the same data directory."""
    slack, pagerduty = receivers
    (tmp_path / "tokens.yaml").write_text(TOKENS)
    env = {
        **QUIET,
        "SLO_API_TOKENS_FILE": str(tmp_path / "tokens.yaml"),
        "SLO_RUNBOOKS_DIR": str(api_runbooks(tmp_path)),
        "SLO_RULES_ROUTE_BY_SEVERITY": "true",
        "SLO_CYCLE_SECONDS": "0.5",
        "SLO_APPROVAL_TIMEOUT": "3",
        "SLACK_WEBHOOK_URL": f"{slack.url}/services/T0/B0/secret",
        "PAGERDUTY_ROUTING_KEY": "R0UT1NG-KEY-0123456789abcdef",
        "PAGERDUTY_EVENTS_URL": f"{pagerduty.url}/v2/enqueue",
        "SLO_NOTIFY_RETRIES": "0",
    }
    with running_service(tmp_path, env=env) as svc:
        alert = {"service": "shop", "title": "Workers crash looping", "severity": "SEV3"}
        assert svc.post("/api/incidents/ingest", json.dumps(alert).encode())[0] == 202
        detail = show_until(svc, lambda d: remediation_status(d) == "withdrawn")
        data_dir = svc.data_dir
    entries = [(e["kind"], e["message"]) for e in detail["timeline"]]
    assert [k for k, _ in entries].count("approval_requested") == 1
    assert (
        "approval_expired",
        "remediation INC-0001-R1 (restart): no approval within 3 s; the approval request is withdrawn and "
        "the incident escalated",
    ) in entries
    assert (
        "escalated",
        "escalated to on-call-primary: remediation INC-0001-R1 (restart) had no approval within 3 s: "
        "withdrawn",
    ) in entries
    assert "*Who may approve:* the approver or admin role: alice, carol." in slack.received[0][1]["text"]
    assert len(slack.received) == 2 and len(pagerduty.received) == 1  # the announcement; the escalation

    with running_service(tmp_path, env=env, data_dir=data_dir, name="restarted") as again:
        time.sleep(3)  # six cycles
        detail = show_until(again, lambda d: True)
    assert [e["kind"] for e in detail["timeline"]].count("approval_requested") == 1
    assert [e["kind"] for e in detail["timeline"]].count("escalated") == 1
    assert len(slack.received) == 2 and len(pagerduty.received) == 1


def test_an_approval_waiting_in_the_inbox_backlog_holds_the_deadline(
    tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    """Review finding: the service folds a backlog a few seconds per cycle, so an approval accepted
    (202) before the deadline may still be unfolded when the deadline passes. The deadline is applied
    only once every row received before it is folded: not while the oldest unfolded row is older."""
    from pipelines.incidents.isolation import Isolation, ProcessReport
    from pipelines.incidents.steps.timers import run_approvals

    slack, pagerduty = receivers
    settings, _ = setup(tmp_path, slack, pagerduty)
    con = duckdb.connect()
    migrate(con)
    inbox = Inbox(tmp_path / "data")
    inbox.append([firing("Workers crash looping")])
    run(con, settings, inbox, T0 + M)  # queued at T0+M: deadline T0+16M
    now = T0 + 17 * M

    def approvals(unfolded_since: dt.datetime | None) -> int:
        return run_approvals(con, settings, now, Isolation(con, ProcessReport(), now), unfolded_since)

    assert approvals(T0 + 15 * M) == 0  # a row received before the deadline is still unfolded
    assert one(con, "SELECT status FROM remediations") == "awaiting_approval"
    assert kinds(con).count("approval_expired") == 0
    assert approvals(T0 + 16 * M + dt.timedelta(seconds=1)) == 1  # only rows received after it wait
    assert one(con, "SELECT status, finished_at FROM remediations") == ("withdrawn", T0 + 16 * M)
    con.close()
    inbox.close()
