"""Seed 002's severity triggers applied by triage, by people and by the scope step (issue 17, item 4).

- A real `slo serve` (rules triage, no model): an incident titled as a data-integrity problem, sent as
  SEV3, becomes SEV1 (it stayed SEV3 before), with the upgrade and its reason on the timeline, and is
  escalated as a SEV1 (asking for an incident commander); the triage's own answer stays SEV3.
- Over the same service's command route and the CLI: a person marks another SEV3 customer-reported
  (→ SEV2), then its scope doubled (→ SEV1); each upgrade on the timeline with who asked; a trigger
  that raises nothing, and an unknown trigger, are refused.
- The incident stage: alerts joining one incident through its SLO double its scope from 1 to 2
  (SEV3 → SEV2), then from 2 to 4 (→ SEV1), each at the start of the alert that doubled it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Alert
from tests.integration.test_api_actors import send
from tests.support.cli import os_user, slo
from tests.support.service import Service, running_service
from tests.unit.test_incident_flow import T0, M, run, settings_for

pytestmark = pytest.mark.integration

BOB = "bob-token-abcdefghijkl"
INGEST = "ingest-token-for-machines-0001"
QUIET = {"ANTHROPIC_API_KEY": "", "SLACK_WEBHOOK_URL": "", "PAGERDUTY_ROUTING_KEY": ""}


def show_until(
    svc: Service, iid: str, done: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    """`slo incidents show IID --json` from the published snapshot, until `done(detail)`."""
    deadline = time.monotonic() + timeout
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = slo(svc.data_dir, "incidents", "show", iid, "--json")
        if out.returncode == 0:
            detail = json.loads(out.stdout)
            if done(detail):
                return detail
        time.sleep(0.3)
    raise AssertionError(f"not reached in {timeout}s; last: {json.dumps(detail)[:2000]}")


def upgrades(detail: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [
        (e["source"], e["actor"], e["message"])
        for e in detail["timeline"]
        if e["kind"] == "severity_upgraded"
    ]


def test_triage_and_people_raise_the_severity_by_seed_002s_triggers(tmp_path: Path) -> None:
    (tmp_path / "tokens.yaml").write_text(f'tokens:\n  "{BOB}": {{name: bob, role: responder}}\n')
    env = {**QUIET, "SLO_API_TOKENS_FILE": str(tmp_path / "tokens.yaml"), "SLO_CYCLE_SECONDS": "0.5"}
    with running_service(tmp_path, token=INGEST, env=env) as svc:
        bad_data = {"service": "orders", "title": "Data integrity: orders table checksum mismatch",
                    "severity": "SEV3"}  # fmt: skip
        assert svc.post("/api/incidents/ingest", json.dumps(bad_data).encode())[0] == 202
        one = show_until(svc, "INC-0001", lambda d: d["triage"] is not None)
        assert (one["severity"], one["triage"]["severity"], one["route"]) == ("SEV1", "SEV3", "escalate")
        assert upgrades(one) == [
            (
                "triage",
                None,
                "severity SEV3 → SEV1: any data integrity concern → SEV1 ('Data integrity' in the alert)",
            )
        ]
        kinds = [e["kind"] for e in one["timeline"]]
        assert kinds.index("triage") < kinds.index("severity_upgraded") < kinds.index("escalated")
        show_until(svc, "INC-0001", lambda d: "ic_requested" in [e["kind"] for e in d["timeline"]])

        stale = {"service": "search", "title": "Search results stale", "severity": "SEV3"}
        assert svc.post("/api/incidents/ingest", json.dumps(stale).encode())[0] == 202
        two = show_until(svc, "INC-0002", lambda d: d["triage"] is not None)
        assert two["severity"] == "SEV3" and upgrades(two) == []

        path = "/api/incidents/INC-0002/commands"
        unknown = send(svc, {"command": "severity_trigger", "args": {"trigger": "outage"}}, BOB, path)
        assert unknown[0] == 400
        assert "args.trigger: 'outage' is not one of data_integrity, customer_reported, scope_doubled" in (
            json.dumps(unknown[1])
        )
        body = {"command": "severity_trigger", "args": {"trigger": "customer-reported", "note": "3 tickets"}}
        assert send(svc, body, BOB, path)[0] == 202
        show_until(svc, "INC-0002", lambda d: d["severity"] == "SEV2")
        cli = slo(svc.data_dir, "incidents", "severity-trigger", "INC-0002", "--trigger", "scope-doubled")
        assert cli.returncode == 0, cli.stderr
        two = show_until(svc, "INC-0002", lambda d: d["severity"] == "SEV1")
        again = send(svc, {"command": "severity_trigger", "args": {"trigger": "data_integrity"}}, BOB, path)
        assert again[0] == 202  # accepted at the door; the fold judges it against the incident's state
        two = show_until(svc, "INC-0002", lambda d: "command_rejected" in [e["kind"] for e in d["timeline"]])
        assert upgrades(two) == [
            ("api", "bob", "severity SEV3 → SEV2: customer-reported → at least SEV2 (asked by bob via api: "
             "3 tickets)"),
            ("cli", os_user(), f"severity SEV2 → SEV1: impact scope doubled → one level up (asked by "
             f"{os_user()} via cli)"),
        ]  # fmt: skip
        assert [e["message"] for e in two["timeline"] if e["kind"] == "command_rejected"] == [
            "severity_trigger rejected: data_integrity: no upgrade, the incident already is SEV1"
        ]
        assert two["severity"] == "SEV1"


def on_slo(name: str, minute: int) -> Entry:
    """A SEV3 alert on the shop's availability SLO: every one joins the incident open on that SLO."""
    at = T0 + minute * M
    a = Alert(
        source="alertmanager", status="firing", service="shop", fingerprint=name, title=name,
        dedup_key=f"am:{name}", starts_at=at, severity="SEV3", slo="shop/availability",
    )  # fmt: skip
    return Entry(a.dedup_key, "alert", "alertmanager", a.to_json())


def test_the_scope_doubling_raises_the_severity_one_level_each_time(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    inbox.append([on_slo("eu-west errors", 0)])
    run(con, settings, inbox, T0 + M)
    assert con.execute("SELECT severity FROM incidents").fetchall() == [("SEV3",)]
    for name, minute in (("us-east errors", 2), ("ap-south errors", 3)):
        inbox.append([on_slo(name, minute)])
        run(con, settings, inbox, T0 + minute * M)
    inbox.append([on_slo("eu-north errors", 4)])
    run(con, settings, inbox, T0 + 4 * M)
    run(con, settings, inbox, T0 + 5 * M)  # nothing doubled again
    assert con.execute("SELECT count(*), min(severity) FROM incidents").fetchall() == [(1, "SEV1")]
    assert con.execute(
        "SELECT occurred_at, message FROM timeline WHERE kind = 'severity_upgraded' ORDER BY seq"
    ).fetchall() == [
        (
            T0 + 2 * M,
            "severity SEV3 → SEV2: impact scope doubled → one level up (2 distinct alerts firing, 1 when "
            "triaged)",
        ),
        (
            T0 + 4 * M,
            "severity SEV2 → SEV1: impact scope doubled → one level up (4 distinct alerts firing, 2 when "
            "last raised)",
        ),
    ]
    assert con.execute("SELECT count(*) FROM timeline WHERE kind = 'ic_requested'").fetchone() == (1,)
