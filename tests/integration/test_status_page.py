"""The status page (issue 17, item 5) against a local server speaking Atlassian Statuspage's incidents API
(tests/support/receivers.py `Statuspage`): nothing is posted before a human approves the first post;
then the incident is created, updated (on each status change and every 15 minutes, seed 001) and
resolved, each post in seed 001's template; a service that did not opt in never posts.

Only the incident's communications lead approves, so each test assigns one first. The first tests drive
the incident stage directly at chosen times; the last runs the real `slo serve` and the real CLI
(`slo incidents assign … --role comms`, `slo incidents approve-status`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.config import Settings
from pipelines.inbox import Inbox
from tests.support.cli import os_user, slo
from tests.support.receivers import Endpoint, Statuspage
from tests.support.service import running_service
from tests.unit.test_incident_flow import T0, M, command, firing, kinds, run, settings_for

pytestmark = pytest.mark.integration

KEY = "statuspage-api-key-0123456789"
PAGE = "kctbh9vrtdwd"


@pytest.fixture
def page() -> Any:
    server = Statuspage(KEY, PAGE)
    yield server
    server.close()


def opted_in(tmp_path: Path, page: Statuspage, **changes: Any) -> Settings:
    return settings_for(
        tmp_path,
        statuspage_api_key=KEY,
        statuspage_api_url=f"{page.url}/v1",
        statuspage_page_id=PAGE,
        statuspage_services=(("shop", "cmp_shop"),),
        notify_backoff_s=0.0,
        **changes,
    )


def requests(page: Statuspage) -> list[tuple[str, str, str | None]]:
    return [(m, p, (b or {}).get("incident", {}).get("status")) for m, p, _, b in page.requests]


IDENTIFIED = "We have identified the issue and are working on a fix."


def template(at: str, status: str, impact: str, action: str, nxt: str) -> str:
    """Seed 001's status-page update, as a person would fill it in."""
    lines = [f"{at} UTC — shop Incident", f"Status: {status}", f"Impact: {impact}"]
    return "\n".join([*lines, f"Current action: {action}", f"Next update: {nxt}"])


@pytest.fixture
def slack() -> Any:
    server = Endpoint([200], b"ok")
    yield server
    server.close()


def test_created_updated_and_resolved_only_after_the_approval(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, page: Statuspage, slack: Endpoint
) -> None:
    settings = opted_in(tmp_path, page, slack_webhook_url=f"{slack.url}/services/T0/B0/x")
    inbox.append([firing("Checkout <!channel> failing", "SEV2")])
    run(con, settings, inbox, T0 + M)
    run(con, settings, inbox, T0 + 2 * M)
    assert page.requests == []  # nothing before the approval, however many cycles
    assert kinds(con).count("status_page_pending") == 1
    asks = [body["text"] for _, body, _ in slack.received if "Status page" in body["text"]]
    assert asks == [  # the communications lead hears it once; the alert's text cannot ping the channel
        ":loudspeaker: *INC-0001* shop: Checkout &lt;!channel&gt; failing\n*Status page:* the first post "
        "waits for the communications lead's approval: `slo incidents approve-status INC-0001 [--note "
        "IMPACT]`, or the `approve_status` command through the API."
    ]

    inbox.append(
        [
            command("assign", T0 + 3 * M, role="comms", person="alice"),  # only the comms lead approves
            command("approve_status", T0 + 3 * M, note="Payments fail for some customers"),
        ]
    )
    run(con, settings, inbox, T0 + 3 * M)
    run(con, settings, inbox, T0 + 10 * M)  # nothing changed and no update due: nothing sent
    inbox.append([command("acknowledge", T0 + 12 * M)])
    run(con, settings, inbox, T0 + 12 * M)
    run(con, settings, inbox, T0 + 26 * M)  # 14 minutes after the last update: not due yet
    run(con, settings, inbox, T0 + 27 * M)  # 15 minutes: the periodic update
    inbox.append([command("resolve", T0 + 30 * M)])
    run(con, settings, inbox, T0 + 30 * M)
    run(con, settings, inbox, T0 + 60 * M)  # resolved: nothing more

    incidents = f"/v1/pages/{PAGE}/incidents"
    assert requests(page) == [
        ("POST", incidents, "investigating"),
        ("PATCH", f"{incidents}/sp0001", "identified"),
        ("PATCH", f"{incidents}/sp0001", "identified"),
        ("PATCH", f"{incidents}/sp0001", "resolved"),
    ]
    assert {h["authorization"] for _, _, h, _ in page.requests} == {f"OAuth {KEY}"}
    created = page.requests[0][3]["incident"]
    assert (created["name"], created["impact_override"], created["component_ids"], created["components"]) == (
        "shop: degraded service",
        "major",
        ["cmp_shop"],
        {"cmp_shop": "partial_outage"},
    )
    held = page.incidents["sp0001"]
    assert (held["status"], held["components"]) == ("resolved", {"cmp_shop": "operational"})
    impact = "Payments fail for some customers"
    assert held["updates"] == [
        template(
            "2026-06-01 10:03", "Investigating", impact, "We are investigating the cause.",
            "by 2026-06-01 10:18 UTC",
        ),
        template(
            "2026-06-01 10:12", "Identified", impact, IDENTIFIED,
            "by 2026-06-01 10:27 UTC",
        ),
        template(
            "2026-06-01 10:27", "Identified", impact, IDENTIFIED,
            "by 2026-06-01 10:42 UTC",
        ),
        template(
            "2026-06-01 10:30", "Resolved", impact,
            "The issue is resolved and the service is operating normally.", "none: this incident is resolved",
        ),
    ]  # fmt: skip
    steps = [
        (k, m)
        for k, m in con.execute(
            "SELECT kind, message FROM timeline WHERE kind LIKE 'status_page%' ORDER BY seq"
        ).fetchall()
    ]
    assert steps == [
        (
            "status_page_pending",
            "status page: the first post waits for the communications lead's approval "
            "(slo incidents approve-status INC-0001 [--note IMPACT])",
        ),
        (
            "status_page_approved",
            "status page posting approved by alice (the communications lead); impact: Payments fail for "
            "some customers",
        ),
        ("status_page_posted", "status page incident sp0001 created: investigating"),
        ("status_page_updated", "status page incident sp0001 updated: identified"),
        (
            "status_page_updated",
            "status page incident sp0001 updated: identified (no change; the 15-minute update)",
        ),
        ("status_page_resolved", "status page incident sp0001 resolved"),
    ]
    assert con.execute(
        "SELECT status, count(*) FROM notifications WHERE channel = 'statuspage' GROUP BY ALL"
    ).fetchall() == [("sent", 4)]


def test_a_service_that_did_not_opt_in_never_posts(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, page: Statuspage
) -> None:
    settings = opted_in(tmp_path, page)
    inbox.append([firing("Search is slow", "SEV2", service="search")])
    run(con, settings, inbox, T0 + M)
    inbox.append([command("assign", T0 + 2 * M, role="comms", person="alice")])
    inbox.append([command("approve_status", T0 + 2 * M)])
    inbox.append([command("resolve", T0 + 3 * M)])
    run(con, settings, inbox, T0 + 3 * M)
    assert page.requests == []
    assert [k for k in kinds(con) if k.startswith("status_page")] == ["status_page_approved"]
    # and with no service opted in at all, nothing either
    unset = dataclasses.replace(settings, statuspage_services=())
    run(con, unset, inbox, T0 + 4 * M)
    assert page.requests == []


def test_a_failed_post_is_on_the_timeline_and_sent_next_cycle(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path
) -> None:
    page = Statuspage(KEY, PAGE, statuses=[503])
    try:
        settings = opted_in(tmp_path, page, notify_max_retries=0)
        inbox.append(
            [
                firing("Checkout failing", "SEV1"),
                command("assign", T0 + M, role="comms", person="alice"),
                command("approve_status", T0 + M),
            ]
        )
        run(con, settings, inbox, T0 + M)
        run(con, settings, inbox, T0 + 2 * M)
    finally:
        page.close()
    assert requests(page) == [("POST", f"/v1/pages/{PAGE}/incidents", "investigating")] * 2
    failed = con.execute("SELECT message FROM timeline WHERE kind = 'status_page_failed'").fetchall()
    assert failed == [
        (
            'status page: investigating not posted (HTTP 503: {"error": "Service Unavailable"}; '
            "gave up after 1 attempt(s)); retried next cycle",
        )
    ]
    assert (page.incidents["sp0001"]["status"], page.incidents["sp0001"]["impact"]) == (
        "investigating",
        "critical",
    )
    assert KEY not in json.dumps(con.execute("SELECT * FROM notifications").fetchall(), default=str)


def test_slo_serve_posts_once_a_person_approves_with_the_cli(tmp_path: Path, page: Statuspage) -> None:
    env = {
        "ANTHROPIC_API_KEY": "",
        "SLACK_WEBHOOK_URL": "",
        "PAGERDUTY_ROUTING_KEY": "",
        "STATUSPAGE_API_KEY": KEY,
        "STATUSPAGE_API_URL": f"{page.url}/v1",
        "STATUSPAGE_PAGE_ID": PAGE,
        "SLO_STATUSPAGE_SERVICES": "shop=cmp_shop",
        "SLO_CYCLE_SECONDS": "0.5",
    }
    alert = {"service": "shop", "title": "Checkout failing", "severity": "SEV2"}
    with running_service(tmp_path, token="ingest-token-0123456789", env=env) as svc:
        assert svc.post("/api/incidents/ingest", json.dumps(alert).encode())[0] == 202
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = slo(svc.data_dir, "incidents", "show", "INC-0001", "--json")
            if shown.returncode == 0 and "status_page_pending" in shown.stdout:
                break
            time.sleep(0.3)
        time.sleep(1.5)  # three more cycles: still nothing posted
        assert page.requests == []
        # only the communications lead approves: before one is assigned the approval is rejected
        refused = slo(svc.data_dir, "incidents", "approve-status", "INC-0001")
        assert refused.returncode == 0, refused.stderr  # stored and queued: the service rejects it
        assigned = slo(
            svc.data_dir, "incidents", "assign", "INC-0001", "--role", "comms", "--person", os_user()
        )
        assert assigned.returncode == 0, assigned.stderr
        approved = slo(svc.data_dir, "incidents", "approve-status", "INC-0001", "--note", "Checkout errors")
        assert approved.returncode == 0, approved.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not page.incidents:
            time.sleep(0.2)
    assert requests(page) == [("POST", f"/v1/pages/{PAGE}/incidents", "investigating")]
    body = page.incidents["sp0001"]["updates"][0]
    assert body.splitlines()[1:4] == [
        "Status: Investigating",
        "Impact: Checkout errors",
        "Current action: We are investigating the cause.",
    ]
    shown = json.loads(slo(svc.data_dir, "incidents", "show", "INC-0001", "--json").stdout)
    approvals = [e for e in shown["timeline"] if e["kind"] == "status_page_approved"]
    # the CLI's approval is attributed to the OS user running it, as every CLI step
    assert [(e["actor"], e["message"]) for e in approvals] == [
        (
            os_user(),
            f"status page posting approved by {os_user()} (the communications lead); impact: Checkout errors",
        )
    ]
    rejected = [e["message"] for e in shown["timeline"] if e["kind"] == "command_rejected"]
    assert rejected == [
        "approve_status rejected: no communications lead is assigned; assign one first (slo incidents assign "
        "INC-0001 --role comms --person NAME) and they approve"
    ]
