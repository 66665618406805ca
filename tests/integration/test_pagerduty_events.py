"""Escalation against local stand-ins for the PagerDuty Events API v2 and a Slack incoming webhook.

Each server (tests/support/receivers.py: stdlib http.server on 127.0.0.1, a free port) answers with
scripted statuses and records every body, so the tests check the exact v2 event, the retry policy
(429/5xx retried with backoff, 400 not) and what lands in the notification records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from pipelines.incidents.contract import TriageResult
from pipelines.incidents.outbound import resolve_page
from pipelines.incidents.routing import escalate
from tests.support.realparts import free_port
from tests.support.receivers import Endpoint

ROUTING_KEY = "R0UT1NG-KEY-0123456789abcdef"

pytestmark = pytest.mark.integration


@pytest.fixture
def endpoints() -> Iterator[list[Endpoint]]:
    made: list[Endpoint] = []
    yield made
    for e in made:
        e.close()


def serve(endpoints: list[Endpoint], statuses: list[int], *, echo: bool = False) -> Endpoint:
    e = Endpoint(statuses, echo=echo)
    endpoints.append(e)
    return e


INCIDENT = {
    "id": "INC-0042",
    "service": "checkout-api",
    "title": "SLOBurnRateHigh checkout-api/availability <!channel>",
    "severity": "SEV2",
    "slo_id": "checkout-api/availability",
}
TRIAGE = TriageResult(
    method="rules",
    severity="SEV2",
    root_cause_hypothesis="recent deploy v2026.05.12-1605",
    recommended_action="rollback",
    confidence=0.7,
    rationale="page-level burn",
)


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "specs_dir": tmp_path / "specs",
        "notify_timeout_s": 2.0,
        "notify_max_retries": 3,
        "notify_backoff_s": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


def test_the_exact_v2_trigger_event(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    pd = serve(endpoints, [202])
    s = settings(tmp_path, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=f"{pd.url}/v2/enqueue")
    records = escalate(INCIDENT, TRIAGE, s)

    assert len(pd.received) == 1
    path, body, _ = pd.received[0]
    assert path == "/v2/enqueue"
    assert body == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "INC-0042",
        "payload": {
            "summary": "[SEV2] checkout-api: SLOBurnRateHigh checkout-api/availability <!channel>",
            "source": "checkout-api",
            "severity": "error",
            "custom_details": {
                "incident_id": "INC-0042",
                "severity": "SEV2",
                "slo": "checkout-api/availability",
                "root_cause_hypothesis": "recent deploy v2026.05.12-1605",
                "recommended_action": "rollback",
                "triage_method": "rules",
                "confidence": 0.7,
                "escalation_reason": None,
            },
        },
    }
    pagerduty, slack = records
    assert {k: pagerduty[k] for k in ("incident_id", "channel", "status", "attempts", "detail")} == {
        "incident_id": "INC-0042",
        "channel": "pagerduty",
        "status": "sent",
        "attempts": 1,
        "detail": "HTTP 202 after 1 attempt(s)",
    }
    assert (slack["channel"], slack["status"], slack["attempts"], slack["detail"]) == (
        "slack",
        "skipped",
        0,
        "SLACK_WEBHOOK_URL is not set",
    )


@pytest.mark.parametrize(
    ("severity", "expected"), [("SEV1", "critical"), ("SEV3", "warning"), ("SEV4", "info")]
)
def test_severity_mapping(tmp_path: Path, endpoints: list[Endpoint], severity: str, expected: str) -> None:
    pd = serve(endpoints, [202])
    s = settings(tmp_path, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=pd.url)
    escalate({**INCIDENT, "severity": severity}, TRIAGE, s)
    assert pd.received[0][1]["payload"]["severity"] == expected


def test_500_and_429_are_retried_with_backoff_then_sent(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    pd = serve(endpoints, [500, 429, 503, 202])
    s = settings(tmp_path, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=pd.url)
    [record, _] = escalate(INCIDENT, TRIAGE, s)
    assert (record["status"], record["attempts"], record["detail"]) == (
        "sent",
        4,
        "HTTP 202 after 4 attempt(s)",
    )
    bodies = [body for _, body, _ in pd.received]
    assert len(bodies) == 4 and all(b == bodies[0] for b in bodies)  # the same event, same dedup_key
    gaps = [b[2] - a[2] for a, b in zip(pd.received, pd.received[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2  # exponential backoff: 0.05, 0.1, 0.2 s


def test_retries_are_bounded(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    pd = serve(endpoints, [500])
    s = settings(
        tmp_path, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=pd.url, notify_max_retries=2
    )
    [record, _] = escalate(INCIDENT, TRIAGE, s)
    assert len(pd.received) == 3
    assert record["status"] == "failed"
    assert record["detail"].endswith("; gave up after 3 attempt(s)") and record["detail"].startswith(
        "HTTP 500"
    )


def test_400_is_not_retried(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    pd = serve(endpoints, [400, 202])
    s = settings(tmp_path, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=pd.url)
    [record, _] = escalate(INCIDENT, TRIAGE, s)
    assert len(pd.received) == 1
    assert (record["status"], record["attempts"]) == ("failed", 1)
    assert record["detail"] == 'HTTP 400: {"status":"invalid event","errors":["bad"]} (not retried)'


def test_an_unreachable_endpoint_fails_after_bounded_retries(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v2/enqueue"  # nothing listens there
    s = settings(tmp_path, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=url, notify_max_retries=1)
    [record, _] = escalate(INCIDENT, TRIAGE, s)
    assert (record["status"], record["attempts"]) == ("failed", 2)
    assert record["detail"].startswith("network error: ConnectionRefusedError")


def test_slack_message_escapes_alert_text_and_keeps_the_webhook_secret(
    tmp_path: Path, endpoints: list[Endpoint]
) -> None:
    slack = serve(endpoints, [500, 200])
    hook = f"{slack.url}/services/T000/B000/SECRETTOKEN"
    s = settings(tmp_path, slack_webhook_url=hook)
    pagerduty, record = escalate(INCIDENT, TRIAGE, s)
    assert pagerduty["status"] == "skipped" and pagerduty["detail"] == "PAGERDUTY_ROUTING_KEY is not set"
    assert (record["channel"], record["status"], record["attempts"]) == ("slack", "sent", 2)
    path, body, _ = slack.received[-1]
    assert path == "/services/T000/B000/SECRETTOKEN"
    assert body == {
        "text": (
            ":rotating_light: *SEV2 INC-0042* checkout-api: "
            "SLOBurnRateHigh checkout-api/availability &lt;!channel&gt;\n"
            "*Hypothesis:* recent deploy v2026.05.12-1605\n"
            "*Recommended:* rollback (triage by rules, confidence 0.70)"
        )
    }


def test_secrets_never_reach_a_record(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    # Both endpoints answer 4xx quoting the request (path and body) back: the records must not.
    server = serve(endpoints, [404], echo=True)
    hook = f"{server.url}/services/T000/B000/SECRETTOKEN"
    s = settings(
        tmp_path, slack_webhook_url=hook, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=server.url
    )
    records = escalate(INCIDENT, TRIAGE, s)
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert ROUTING_KEY in json.dumps(server.received[0][1])  # it was sent, and quoted back
    text = json.dumps(records, default=str)
    assert ROUTING_KEY not in text and "SECRETTOKEN" not in text
    assert "***" in records[0]["detail"] and "***" in records[1]["detail"]


def test_both_unconfigured_are_recorded_as_skipped(tmp_path: Path) -> None:
    records = escalate(INCIDENT, TRIAGE, settings(tmp_path))
    assert [(r["channel"], r["status"], r["attempts"]) for r in records] == [
        ("pagerduty", "skipped", 0),
        ("slack", "skipped", 0),
    ]


def test_the_reason_for_escalating_travels_with_the_page(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    pd = serve(endpoints, [202])
    slack = serve(endpoints, [200])
    s = settings(
        tmp_path,
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=pd.url,
        slack_webhook_url=f"{slack.url}/hook/abcdefghij",
    )
    reason = "remediation rollback failed after 3 attempt(s)"
    escalate({**INCIDENT, "severity": "SEV3", "escalation_reason": reason}, TRIAGE, s)
    assert pd.received[0][1]["payload"]["custom_details"]["escalation_reason"] == reason
    assert slack.received[0][1]["text"].endswith(f"\n*Why a human:* {reason}")


def test_resolving_the_page_uses_the_same_dedup_key(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    pd = serve(endpoints, [202])
    s = settings(tmp_path, pagerduty_routing_key=ROUTING_KEY, pagerduty_events_url=pd.url)
    record = resolve_page("INC-0042", s)
    assert pd.received[0][1] == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "INC-0042",
    }
    assert (record["channel"], record["status"], record["attempts"]) == ("pagerduty", "sent", 1)
    skipped = resolve_page("INC-0042", settings(tmp_path))
    assert (skipped["status"], skipped["detail"]) == ("skipped", "PAGERDUTY_ROUTING_KEY is not set")
