"""PagerDuty both ways (issue 17, item 2): an incident born from a PagerDuty webhook is never paged back
to PagerDuty as a new alert, and resolving it here resolves the PagerDuty incident through PagerDuty's
REST API (`PUT /incidents/{id}`, `Authorization: Token token=…`, `From:`), against local stand-ins
(tests/support/receivers.py) for the Events API v2 and the REST API.

The first test runs the real `slo serve` and the real CLI; the others drive the incident stage directly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.config import Settings
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Command
from pipelines.ingest import pagerduty
from tests.support.cli import slo
from tests.support.receivers import Endpoint, PagerDutyRest
from tests.support.service import ROOT, running_service
from tests.unit.test_incident_flow import command, firing, one, run, settings_for

pytestmark = pytest.mark.integration

API_TOKEN = "y_NbAkKc66ryYTWUXYEu"  # the shape of a PagerDuty REST API key
ROUTING_KEY = "R0UT1NG-KEY-0123456789abcdef"
INGEST = "ingest-token-for-machines-0001"
FROM = "slo-bot@example.com"
SECRET = "webhook-signing-secret-0123"  # PagerDuty's steps (acknowledge, resolve) come signed
WEBHOOKS = ROOT / "tests" / "fixtures" / "webhooks"
PD_INCIDENT = "PGR0VU2"  # the fixture's PagerDuty incident


def wait(condition: Any, seconds: float, what: str, data_dir: Path | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    last = json.dumps(show(data_dir), default=str)[-3000:] if data_dir else ""
    raise AssertionError(f"{what}: not within {seconds}s; last: {last}")


def show(data_dir: Path) -> dict[str, Any]:
    out = slo(data_dir, "incidents", "show", "INC-0001", "--json")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def test_slo_serve_never_pages_back_and_resolves_the_pagerduty_incident(tmp_path: Path) -> None:
    events = Endpoint([202])
    rest = PagerDutyRest(API_TOKEN, {PD_INCIDENT: "triggered"})
    env = {
        "ANTHROPIC_API_KEY": "",
        "SLACK_WEBHOOK_URL": "",
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": f"{events.url}/v2/enqueue",
        "PAGERDUTY_API_URL": rest.url,
        "PAGERDUTY_API_TOKEN": API_TOKEN,
        "PAGERDUTY_FROM": FROM,
        "PAGERDUTY_WEBHOOK_SECRET": SECRET,
        "SLO_CYCLE_SECONDS": "0.5",
    }
    try:
        with running_service(tmp_path, token=INGEST, env=env) as svc:
            status, _ = svc.post(
                "/api/incidents/ingest", (WEBHOOKS / "pagerduty_triggered.json").read_bytes()
            )
            assert status == 202
            detail = wait(
                lambda: (d := show(svc.data_dir)) and d.get("route") == "escalate" and d, 30, "escalated"
            )
            assert (detail["source"], detail["external_id"], detail["severity"]) == (
                "pagerduty",
                PD_INCIDENT,
                "SEV1",
            )
            pages = [n for n in detail["notifications"] if n["channel"] == "pagerduty"]
            # the escalation, and the timers of a two-week-old SEV1 (no root cause after 30 min): none
            # of them reaches PagerDuty
            assert pages and {(n["status"], n["detail"]) for n in pages} == {
                (
                    "skipped",
                    f"the incident came from PagerDuty ({PD_INCIDENT}); it is not paged back as a new alert",
                )
            }
            resolved = slo(svc.data_dir, "incidents", "resolve", "INC-0001", "--note", "rolled back")
            assert resolved.returncode == 0, resolved.stderr
            wait(lambda: rest.requests, 30, "the REST call")
            detail = wait(
                lambda: (
                    (d := show(svc.data_dir))
                    and any(e["kind"] == "pagerduty_incident_resolved" for e in d["timeline"])
                    and d
                ),
                30,
                "the resolution on the timeline",
            )
            # PagerDuty's webhook for the resolution we made: an echo, not a rejected step
            echo = (WEBHOOKS / "pagerduty_resolved.json").read_bytes()
            status, answer = svc.post(
                "/api/incidents/ingest", echo, {"X-PagerDuty-Signature": pagerduty.sign(echo, SECRET)}
            )
            assert (status, answer["accepted"]) == (202, ["pd:01DEN4HRC7NAAG0A8XWBZ5TF3M"]), answer
            echoed = wait(
                lambda: (
                    (d := show(svc.data_dir))
                    and any(e["kind"] == "pagerduty_confirmed" for e in d["timeline"])
                    and d
                ),
                30,
                "the echo",
                svc.data_dir,
            )
    finally:
        events.close()
        rest.close()
    assert events.received == []  # never paged back, neither triggered nor resolved
    [(method, path, headers, body)] = rest.requests
    assert (method, path) == ("PUT", f"/incidents/{PD_INCIDENT}")
    assert headers["authorization"] == f"Token token={API_TOKEN}"
    assert headers["from"] == FROM
    assert headers["accept"] == "application/vnd.pagerduty+json;version=2"
    assert body == {
        "incident": {
            "type": "incident_reference",
            "status": "resolved",
            "resolution": "resolved in the SLO service as INC-0001 (cli)",
        }
    }
    assert rest.incidents[PD_INCIDENT] == "resolved"
    [entry] = [e for e in detail["timeline"] if e["kind"] == "pagerduty_incident_resolved"]
    assert entry["message"] == (
        f"PagerDuty incident {PD_INCIDENT} resolved through the REST API: sent — HTTP 200 after 1 attempt(s)"
    )
    assert [e["kind"] for e in echoed["timeline"]].count("command_rejected") == 0
    assert echoed["status"] == "resolved" and echoed["resolved_at_source"] == "cli"
    assert API_TOKEN not in json.dumps(echoed)


# --- the stage alone: what a failure or a missing setting leaves on the timeline ----------------------


def webhook_entries(name: str) -> list[Entry]:
    parsed = pagerduty.parse(json.loads((WEBHOOKS / name).read_text()))
    return [Entry(a.dedup_key, "alert", "pagerduty", a.to_json()) for a in parsed.alerts] + [
        Entry(c.dedup_key, "command", "pagerduty", c.to_json()) for c in parsed.commands
    ]


def resolve_here(at: dt.datetime) -> Entry:
    c = Command(command="resolve", incident_id="INC-0001", actor="alice", source="cli", dedup_key="r1", at=at)
    return Entry(c.dedup_key, "command", "cli", c.to_json())


def stage_settings(tmp_path: Path, rest: PagerDutyRest, events: Endpoint, **changes: Any) -> Settings:
    base = settings_for(tmp_path)
    values: dict[str, Any] = {
        "pagerduty_routing_key": ROUTING_KEY,
        "pagerduty_events_url": f"{events.url}/v2/enqueue",
        "pagerduty_api_url": rest.url,
        "pagerduty_api_token": API_TOKEN,
        "pagerduty_from": FROM,
        "notify_max_retries": 1,
        "notify_backoff_s": 0.01,
        **changes,
    }
    return dataclasses.replace(base, **values)


@pytest.mark.parametrize(
    ("changes", "status", "detail"),
    [
        (
            {"pagerduty_api_token": "wrong-token-0000000000"},
            "failed",
            'HTTP 401: {"error": {"message": "Authentication Failed", "code": 2006}} (not retried)',
        ),
        ({"pagerduty_from": None}, "skipped", "PAGERDUTY_FROM not set"),
        (
            {"pagerduty_api_token": None, "pagerduty_from": None},
            "skipped",
            "PAGERDUTY_API_TOKEN and PAGERDUTY_FROM not set",
        ),
    ],
)
def test_a_resolution_pagerduty_did_not_take_is_on_the_timeline(
    con: duckdb.DuckDBPyConnection,
    inbox: Inbox,
    tmp_path: Path,
    changes: dict[str, Any],
    status: str,
    detail: str,
) -> None:
    rest = PagerDutyRest(API_TOKEN, {PD_INCIDENT: "triggered"})
    events = Endpoint([202])
    try:
        settings = stage_settings(tmp_path, rest, events, **changes)
        inbox.append(webhook_entries("pagerduty_triggered.json"))
        t0 = dt.datetime(2026, 11, 23, 12, 3)
        run(con, settings, inbox, t0)
        inbox.append([resolve_here(t0.replace(minute=30))])
        run(con, settings, inbox, t0.replace(minute=31))
        run(con, settings, inbox, t0.replace(minute=40))  # once: not tried again every cycle
    finally:
        rest.close()
        events.close()
    assert events.received == []  # a PagerDuty incident is resolved there, never through the Events API
    assert rest.incidents[PD_INCIDENT] == "triggered"
    assert con.execute(
        "SELECT message FROM timeline WHERE kind = 'pagerduty_incident_resolved'"
    ).fetchall() == [
        (f"PagerDuty incident {PD_INCIDENT} resolved through the REST API: {status} — {detail}",)
    ]
    assert API_TOKEN not in json.dumps(con.execute("SELECT * FROM notifications").fetchall(), default=str)


def test_pagerdutys_own_resolution_is_not_sent_back(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path
) -> None:
    rest = PagerDutyRest(API_TOKEN, {PD_INCIDENT: "triggered"})
    events = Endpoint([202])
    try:
        settings = stage_settings(tmp_path, rest, events)
        inbox.append(webhook_entries("pagerduty_triggered.json"))
        run(con, settings, inbox, dt.datetime(2026, 11, 23, 12, 3))
        inbox.append(webhook_entries("pagerduty_resolved.json"))  # resolved in PagerDuty itself
        run(con, settings, inbox, dt.datetime(2026, 11, 23, 12, 45))
    finally:
        rest.close()
        events.close()
    assert one(con, "SELECT status, resolved_at_source FROM incidents") == ("resolved", "pagerduty")
    assert (
        one(
            con,
            "SELECT count(*) FROM timeline WHERE kind IN ('page_resolved', 'pagerduty_incident_resolved')",
        )
        == 0
    )
    assert rest.requests == [] and events.received == []


def test_a_reopened_incident_paged_again_is_resolved_in_pagerduty_again(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path
) -> None:
    """Resolved (its page resolved), reopened, paged again under the same key (PagerDuty opens a new alert
    for it), resolved again: that alert is resolved too, not left open because the first resolve is on
    the timeline."""
    events = Endpoint([202])
    rest = PagerDutyRest(API_TOKEN, {})
    try:
        settings = stage_settings(tmp_path, rest, events)
        t0 = dt.datetime(2026, 11, 23, 12, 0)
        inbox.append([firing("Checkout errors", "SEV1", at=t0)])
        run(con, settings, inbox, t0)
        inbox.append([command("resolve", t0 + dt.timedelta(minutes=2))])
        run(con, settings, inbox, t0 + dt.timedelta(minutes=3))
        inbox.append([command("reopen", t0 + dt.timedelta(minutes=4))])
        run(con, settings, inbox, t0 + dt.timedelta(minutes=10))  # unacknowledged for 5 min: paged again
        inbox.append([command("resolve", t0 + dt.timedelta(minutes=11))])
        run(con, settings, inbox, t0 + dt.timedelta(minutes=12))
        run(con, settings, inbox, t0 + dt.timedelta(minutes=13))  # nothing more to resolve
    finally:
        events.close()
        rest.close()
    sent = [(b["event_action"], b["dedup_key"]) for _, b, _ in events.received]
    triggers = [k for a, k in sent if a == "trigger"]
    assert len(triggers) >= 2, sent  # the first page and at least one after the reopen
    last_trigger = max(i for i, (a, _) in enumerate(sent) if a == "trigger")
    after = [k for a, k in sent[last_trigger:] if a == "resolve"]
    assert set(after) == set(triggers), sent  # every key paged is resolved after its last page
    assert one(con, "SELECT count(*) FROM timeline WHERE kind = 'page_resolved'") == 2


@pytest.mark.parametrize(
    ("key", "ours"),
    [
        ("INC-0001", "INC-0001"),
        ("INC-0001-tier2", "INC-0001"),
        ("INC-0001-re2", "INC-0001"),  # a page again after an acknowledgement (steps/notify._fresh_key)
        ("INC-0001-tier3-re4", "INC-0001"),
        ("INC-0001-retry", None),  # not a key we send
        ("checkout-INC-0001", None),
    ],
)
def test_pagerdutys_steps_on_our_pages_name_our_incident(key: str, ours: str | None) -> None:
    ack = json.loads((WEBHOOKS / "pagerduty_acknowledged.json").read_text())
    ack["event"]["data"]["incident_key"] = key
    [command] = pagerduty.parse(ack).commands
    assert (command.command, command.incident_id) == ("acknowledge", ours)


def test_acknowledging_a_tier_2_page_in_pagerduty_acknowledges_our_incident(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path
) -> None:
    events = Endpoint([202])
    rest = PagerDutyRest(API_TOKEN, {})
    try:
        settings = stage_settings(tmp_path, rest, events)
        t0 = dt.datetime(2026, 11, 23, 12, 0)
        inbox.append([firing("Checkout errors", "SEV1", at=t0)])
        run(con, settings, inbox, t0)
        run(con, settings, inbox, t0 + dt.timedelta(minutes=5))  # no ack in 5 min (SEV1): tier 2
        assert [b["dedup_key"] for _, b, _ in events.received] == ["INC-0001", "INC-0001-tier2"]
        ack = json.loads((WEBHOOKS / "pagerduty_acknowledged.json").read_text())
        ack["event"]["occurred_at"] = "2026-11-23T12:06:00Z"
        ack["event"]["data"]["incident_key"] = "INC-0001-tier2"  # PagerDuty's incident for that page
        ack["event"]["data"]["id"] = "PNEW123"
        parsed = pagerduty.parse(ack)
        inbox.append([Entry(c.dedup_key, "command", "pagerduty", c.to_json()) for c in parsed.commands])
        for minute in (7, 15, 29):  # tier 3 was due at 15 min without the acknowledgement
            run(con, settings, inbox, t0 + dt.timedelta(minutes=minute))
    finally:
        events.close()
        rest.close()
    assert one(con, "SELECT status, acknowledged_at, acknowledged_at_source FROM incidents") == (
        "acknowledged",
        dt.datetime(2026, 11, 23, 12, 6),
        "pagerduty",
    )
    assert len(events.received) == 2  # the chain stopped at tier 2
