"""The ingest API's answers, through the real ASGI app (FastAPI routes, lifespan, inbox on disk):
every documented refusal changes nothing; accepted input is in the inbox once."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from pipelines.cycle import open_writer as Writer
from pipelines.errors import SloError
from pipelines.inbox import Inbox
from pipelines.ingest.pagerduty import sign
from pipelines.service.app import create_app
from pipelines.service.settings import ServiceSettings, is_loopback
from pipelines.service.worker import Worker, idle_cycle
from pipelines.store import Snapshot
from tests.support.asgi import AsgiClient

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
TOKEN = "t0ken-for-tests"
SECRET = "pd-secret-for-tests"
INGEST = "/api/incidents/ingest"


def raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", specs_dir=tmp_path / "no-specs")


@pytest.fixture
def client(settings: Settings) -> Iterator[AsgiClient]:
    service = ServiceSettings(token=TOKEN, pagerduty_secret=SECRET, max_body_bytes=4096, cycle_seconds=0)
    with AsgiClient(create_app(settings, service)) as c:
        yield c


def auth(**extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}", "content-type": "application/json", **extra}


def count(settings: Settings) -> int:
    return Inbox(settings.data_dir).count()


def test_alertmanager_delivery_is_accepted_then_recognised(client: AsgiClient, settings: Settings) -> None:
    first = client.request("POST", INGEST, raw("alertmanager_firing"), auth())
    assert first.status == 202, first.body
    answer = first.json()
    assert answer["format"] == "alertmanager" and len(answer["accepted"]) == 2 and answer["duplicates"] == []
    assert count(settings) == 2
    again = client.request("POST", INGEST, raw("alertmanager_firing"), auth())
    assert again.status == 202
    assert again.json()["accepted"] == [] and sorted(again.json()["duplicates"]) == sorted(answer["accepted"])
    assert count(settings) == 2
    rows = Inbox(settings.data_dir).read_since(0)
    assert {r.body["service"] for r in rows} == {"checkout-api", "payments"}
    assert {r.kind for r in rows} == {"alert"}


def test_pagerduty_authenticates_by_signature(client: AsgiClient, settings: Settings) -> None:
    body = raw("pagerduty_triggered")
    headers = {"content-type": "application/json; charset=utf-8", "x-pagerduty-signature": sign(body, SECRET)}
    r = client.request("POST", INGEST, body, headers)
    assert r.status == 202, r.body
    assert r.json()["accepted"] == ["pd:01DEN4HPBQAAAG05V5QQYBRZMF"]
    ack = raw("pagerduty_acknowledged")
    r = client.request(
        "POST",
        INGEST,
        ack,
        {"content-type": "application/json", "x-pagerduty-signature": f"v1=00, {sign(ack, SECRET)}"},
    )
    assert r.status == 202 and r.json()["accepted"] == ["pd:01DEN4HQ2RTAAG06ZT4Q6VB3KX"]
    ignored = raw("pagerduty_priority_updated")
    r = client.request(
        "POST",
        INGEST,
        ignored,
        {"content-type": "application/json", "x-pagerduty-signature": sign(ignored, SECRET)},
    )
    assert (
        r.status == 202
        and r.json()["accepted"] == []
        and r.json()["ignored"][0]["event_type"] == ("incident.priority_updated")
    )
    assert [row.kind for row in Inbox(settings.data_dir).read_since(0)] == ["alert", "command"]


def test_a_pagerduty_step_needs_pagerdutys_signature_not_the_ingest_token(
    client: AsgiClient, settings: Settings
) -> None:
    """An acknowledge from PagerDuty names its actor in the body (`event.agent`): the ingest token vouches
    for nobody (issue 15), so sent with it the step is listed as ignored and nothing is stored; the same
    body signed by PagerDuty is taken. A triggered event (an alert, no actor) is taken either way."""
    ack = raw("pagerduty_acknowledged")
    r = client.request("POST", INGEST + "?format=pagerduty", ack, auth())
    assert r.status == 202, r.body
    assert r.json()["accepted"] == []
    assert [i["dedup_key"] for i in r.json()["ignored"]] == ["pd:01DEN4HQ2RTAAG06ZT4Q6VB3KX"]
    assert "X-PagerDuty-Signature" in r.json()["ignored"][0]["reason"]
    assert count(settings) == 0
    triggered = raw("pagerduty_triggered")
    r = client.request("POST", INGEST + "?format=pagerduty", triggered, auth())
    assert r.status == 202 and r.json()["accepted"] == ["pd:01DEN4HPBQAAAG05V5QQYBRZMF"]
    signed = {"content-type": "application/json", "x-pagerduty-signature": sign(ack, SECRET)}
    r = client.request("POST", INGEST, ack, signed)
    assert r.status == 202 and r.json()["accepted"] == ["pd:01DEN4HQ2RTAAG06ZT4Q6VB3KX"]
    assert [row.kind for row in Inbox(settings.data_dir).read_since(0)] == ["alert", "command"]


BIG = json.dumps({"service": "x", "title": "y" * 5000}).encode()
GOOD = json.dumps({"service": "x", "title": "y"}).encode()
PD = (FIXTURES / "pagerduty_triggered.json").read_bytes()


@pytest.mark.parametrize(
    ("case", "path", "body", "headers", "status", "detail"),
    [
        (
            "no token",
            INGEST,
            GOOD,
            {"content-type": "application/json"},
            401,
            "Authorization: missing bearer",
        ),
        (
            "wrong token",
            INGEST,
            GOOD,
            {"authorization": "Bearer nope", "content-type": "application/json"},
            401,
            "Authorization: wrong bearer",
        ),
        (
            "basic auth",
            INGEST,
            GOOD,
            {"authorization": f"Basic {TOKEN}", "content-type": "application/json"},
            401,
            "Authorization: wrong bearer",
        ),
        (
            "bad signature",
            INGEST,
            PD,
            {"content-type": "application/json", "x-pagerduty-signature": "v1=abc"},
            403,
            "X-PagerDuty-Signature: no v1= value matches",
        ),
        (
            "signature of other body",
            INGEST,
            PD,
            {"content-type": "application/json", "x-pagerduty-signature": sign(GOOD, SECRET)},
            403,
            "X-PagerDuty",
        ),
        (
            "pagerduty unsigned",
            INGEST,
            PD,
            {"content-type": "application/json"},
            401,
            "Authorization: missing",
        ),
        ("declared too large", INGEST, BIG, auth(), 413, "body: 5029 bytes declared; the limit is 4096"),
        (
            "text/plain",
            INGEST,
            GOOD,
            auth(**{"content-type": "text/plain"}),
            415,
            "Content-Type: 'text/plain'",
        ),
        ("no content type", INGEST, GOOD, {"authorization": f"Bearer {TOKEN}"}, 415, "Content-Type: ''"),
        (
            "form",
            INGEST,
            b"a=b",
            auth(**{"content-type": "application/x-www-form-urlencoded"}),
            415,
            "Content",
        ),
        ("not json", INGEST, b"{not json", auth(), 400, "body: not valid JSON at line 1 column 2"),
        ("unknown format", INGEST, b'{"a": 1}', auth(), 400, "body: unknown format"),
        ("format param", INGEST + "?format=nagios", GOOD, auth(), 400, "format: 'nagios' is unknown"),
        ("wrong format named", INGEST + "?format=alertmanager", GOOD, auth(), 400, "version: Alertmanager"),
        ("bad length", INGEST, GOOD, auth(**{"content-length": "ten"}), 400, "Content-Length: 'ten'"),
        (
            "command no token",
            "/api/incidents/INC-0001/commands",
            b'{"command": "acknowledge"}',
            {"content-type": "application/json"},
            401,
            "Authorization: missing",
        ),
        (
            "unknown command",
            "/api/incidents/INC-0001/commands",
            b'{"command": "reboot"}',
            auth(),
            400,
            "command: 'reboot' is unknown",
        ),
        (
            "bad incident id",
            "/api/incidents/..%20x/commands",
            b'{"command": "acknowledge"}',
            auth(),
            400,
            "path: incident id",
        ),
        (
            "root cause without text",
            "/api/incidents/INC-0001/commands",
            b'{"command": "root_cause", "args": {"category": "deploy"}}',
            auth(),
            400,
            "args.text: required",
        ),
        (
            "bad due date",
            "/api/incidents/INC-0001/commands",
            b'{"command": "action_item", "args": {"title": "t", "owner": "o", "due_date": "soon"}}',
            auth(),
            400,
            "args.due_date: 'soon' is not a date",
        ),
    ],
)
def test_refusals_have_their_status_and_change_nothing(
    client: AsgiClient,
    settings: Settings,
    case: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    detail: str,
) -> None:
    r = client.request("POST", path, body, headers)
    assert r.status == status, (case, r.body)
    assert r.json()["detail"].startswith(detail), (case, r.json())
    assert count(settings) == 0


def test_streamed_body_over_the_limit_is_413(client: AsgiClient, settings: Settings) -> None:
    # No Content-Length: the limit is enforced on the bytes as they arrive.
    chunks = [b'{"service": "x", "title": "', *([b"y" * 1000] * 5), b'"}']
    r = client.request("POST", INGEST, chunks, auth(), content_length=False)
    assert r.status == 413 and r.json()["detail"] == "body: over 4096 bytes (SLO_INGEST_MAX_BYTES)"
    ok = client.request(
        "POST", INGEST, [b'{"service": "x", ', b'"title": "y"}'], auth(), content_length=False
    )
    assert ok.status == 202
    assert count(settings) == 1


ALICE = "alice-personal-token-0123456789"  # personal tokens (issue 15): alice and bob, responders
BOB = "bob-personal-token-0123456789abc"


def test_commands_go_to_the_inbox_once_per_idempotency_key(settings: Settings) -> None:
    tokens = (
        f'tokens:\n  "{ALICE}": {{name: alice, role: responder}}\n'
        f'  "{BOB}": {{name: bob, role: responder}}\n'
    )
    settings = dataclasses.replace(settings, api_tokens=tokens)
    service = ServiceSettings(token=TOKEN, pagerduty_secret=SECRET, max_body_bytes=4096, cycle_seconds=0)
    alice = {"authorization": f"Bearer {ALICE}", "content-type": "application/json"}
    body = {
        "command": "root_cause",
        "at": "2026-11-23T12:30:00Z",
        "args": {"category": "deploy", "text": "bad config push", "fix": "rolled back", "ignored": "x"},
    }
    with AsgiClient(create_app(settings, service)) as client:
        r = client.post_json("/api/incidents/INC-0007/commands", body, {**alice, "idempotency-key": "k1"})
        assert r.status == 202, r.body
        assert r.json()["command"] == {
            "command": "root_cause",
            "incident_id": "INC-0007",
            "actor": "alice",  # the token's actor
            "source": "api",
            "dedup_key": r.json()["accepted"][0],
            "at": "2026-11-23T12:30:00",
            "args": {"category": "deploy", "text": "bad config push", "fix": "rolled back"},
            "external_id": None,
        }
        again = client.post_json("/api/incidents/INC-0007/commands", body, {**alice, "idempotency-key": "k1"})
        assert again.json()["duplicates"] == r.json()["accepted"]
        other = client.post_json("/api/incidents/INC-0007/commands", {"command": "acknowledge"}, alice)
        assert other.status == 202 and other.json()["command"]["actor"] == "alice"
        # the same key for another command, or from another sender, is not a retry of alice's
        reopen = client.post_json(
            "/api/incidents/INC-0007/commands", {"command": "reopen"}, {**alice, "idempotency-key": "k1"}
        )
        assert reopen.status == 202 and reopen.json()["accepted"] and not reopen.json()["duplicates"]
        bob = {"authorization": f"Bearer {BOB}", "content-type": "application/json", "idempotency-key": "k1"}
        by_bob = client.post_json("/api/incidents/INC-0007/commands", body, bob)
        assert by_bob.status == 202 and by_bob.json()["accepted"] and not by_bob.json()["duplicates"]
        assert by_bob.json()["command"]["actor"] == "bob"
        # the ingest token names nobody: it delivers alerts, not commands
        refused = client.post_json("/api/incidents/INC-0007/commands", {"command": "acknowledge"}, auth())
        assert refused.status == 403 and refused.json()["error"] == "forbidden"
    rows = Inbox(settings.data_dir).read_since(0)
    assert [(row.kind, row.body["command"]) for row in rows] == [
        ("command", "root_cause"),
        ("command", "acknowledge"),
        ("command", "reopen"),
        ("command", "root_cause"),
    ]


def test_health_and_openapi(client: AsgiClient) -> None:
    client.request("POST", INGEST, raw("generic"), auth())
    client.request("POST", INGEST, b"{", auth())
    health = client.request("GET", "/api/health").json()
    assert health["inbox"]["count"] == 2 and health["inbox"]["last_seq"] == 2
    assert health["ingest"] == {"accepted": 2, "duplicates": 0, "202": 1, "400": 1}
    assert health["auth"] == "token" and health["worker"] == {"running": False}
    assert health["snapshot"] == {"published_at": None, "age_seconds": None, "readable": None, "error": None}
    doc = client.request("GET", "/openapi.json").json()
    post = doc["paths"]["/api/incidents/ingest"]["post"]
    assert set(post["responses"]) == {"202", "400", "401", "403", "408", "413", "415", "503"}
    one_of = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert [s["$ref"].rsplit("/", 1)[1] for s in one_of] == [
        "AlertmanagerWebhook",
        "PagerDutyWebhook",
        "GenericDelivery",
        "GenericAlert",
    ]
    generic = doc["components"]["schemas"]["GenericAlert"]
    assert generic["required"] == ["service", "title"] and "dedup_key" in generic["properties"]
    assert "/api/incidents/{incident_id}/commands" in doc["paths"] and "/api/health" in doc["paths"]
    assert client.request("GET", "/docs").status == 200


def test_incidents_come_from_the_published_snapshot(client: AsgiClient, settings: Settings) -> None:
    assert client.request("GET", "/api/incidents").status == 401  # incident data needs the token
    r = client.request("GET", "/api/incidents", headers=auth())
    assert r.status == 503 and r.json()["detail"].startswith("no published snapshot yet")
    with Writer(settings.data_dir) as w:
        w.db.execute(
            "INSERT INTO incidents (id, service, title, severity, status, source, fingerprint, detected_at,"
            " route, created_at, updated_at) VALUES"
            " ('INC-0001', 'checkout-api', 'Errors', 'SEV2', 'triggered',"
            " 'alertmanager', 'fp1', '2026-11-23 12:00:00', 'escalate', now(), now()),"
            " ('INC-0002', 'search', 'Slow', 'SEV3', 'resolved', 'generic', 'fp2', '2026-11-23 13:00:00',"
            " NULL, now(), now())"
        )
        w.db.execute(
            "INSERT INTO triage (incident_id, attempt, method, severity, recommended_action, confidence,"
            " created_at) VALUES ('INC-0001', 1, 'model', 'SEV1', 'escalate', 0.4, now()),"
            " ('INC-0001', 2, 'rules', 'SEV2', 'escalate', 0.9, now())"
        )
        w.publish()
    rows = client.request("GET", "/api/incidents", headers=auth()).json()
    assert [r["id"] for r in rows] == ["INC-0002", "INC-0001"]  # newest detected first
    assert rows[1]["detected_at"] == "2026-11-23T12:00:00Z" and rows[1]["route"] == "escalate"
    assert rows[1]["triage"] == {
        "method": "rules",
        "severity": "SEV2",
        "recommended_action": "escalate",
        "confidence": 0.9,
    }  # the latest attempt
    assert rows[0]["triage"] is None
    assert [
        r["id"] for r in client.request("GET", "/api/incidents?status=triggered", headers=auth()).json()
    ] == ["INC-0001"]
    assert len(client.request("GET", "/api/incidents?limit=1", headers=auth()).json()) == 1
    assert client.request("GET", "/api/incidents?limit=0", headers=auth()).status == 400


def test_without_token_anything_local_may_post(settings: Settings) -> None:
    with AsgiClient(create_app(settings, ServiceSettings(cycle_seconds=0))) as c:
        r = c.request("POST", INGEST, GOOD, {"content-type": "application/json"})
        assert r.status == 202
        health = c.request("GET", "/api/health").json()
    assert health["auth"] == "none (loopback only)"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
        ("::", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_worker_logs_a_failed_cycle_and_goes_on() -> None:
    calls: list[float] = []

    def cycle() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise ZeroDivisionError("boom")

    worker = Worker(cycle, every=0.02)
    worker.start()
    deadline = time.monotonic() + 10
    while len(calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    status = worker.status()
    assert len(calls) >= 4 and status["failures"] == 1 and status["last_error"] is None
    assert status["running"] is False and status["cycles"] == len(calls)


def test_worker_cycle_waits_for_another_writer(settings: Settings, caplog: Any) -> None:
    cycle = idle_cycle(settings)
    worker = Worker(cycle, every=60)
    with Writer(settings.data_dir):  # another writer (e.g. `slo run`) holds the store
        worker.run_once()
    status = worker.status()
    assert status["failures"] == 1 and "another writer holds the store" in status["last_error"]
    assert "pipeline cycle skipped" in caplog.text
    worker.run_once()  # the lock is free now: the cycle runs and publishes a snapshot
    assert worker.status()["last_error"] is None
    snapshot = Snapshot(settings.data_dir)
    with snapshot.connection() as con:
        assert con.execute("SELECT count(*), max(source) FROM runs").fetchone() == (1, "idle")
    snapshot.close()


def test_idle_cycle_keeps_the_evaluated_minute(settings: Settings) -> None:
    with Writer(settings.data_dir) as w:
        w.db.execute("INSERT INTO runs VALUES (1, now(), now(), 'demo', 100, 29000000, 0, 0)")
        w.publish()
    idle_cycle(settings)()
    snapshot = Snapshot(settings.data_dir)
    with snapshot.connection() as con:
        assert con.execute("SELECT data_to FROM runs ORDER BY run_id").fetchall() == [
            (29000000,),
            (29000000,),
        ]
    snapshot.close()


def test_idle_cycle_keeps_the_stored_slos_and_their_evaluation(settings: Settings) -> None:
    # A store built by `slo run` from some specs; the service's specs dir does not even exist.
    import pandas as pd

    from pipelines.cycle import run_cycle
    from pipelines.sources import Pull
    from pipelines.specs import load_specs

    slos, _ = load_specs([Path(__file__).resolve().parent.parent.parent / "slo_specs"])
    start = 29_000_000
    buckets = pd.DataFrame(
        [(s.id, m, 99, 100) for s in slos for m in range(start, start + 120)],
        columns=["slo_id", "minute", "good", "valid"],
    )
    run_cycle(settings, slos, Pull(buckets=buckets, end=start + 120, origin="test"))
    query = "SELECT slo_id, active, evaluated_to FROM slos JOIN engine_state USING (slo_key) ORDER BY slo_id"
    snapshot = Snapshot(settings.data_dir)
    with snapshot.connection() as con:
        before = con.execute(query).fetchall()
    assert before and all(active for _, active, _ in before)
    idle_cycle(settings)()
    with snapshot.connection() as con:
        assert con.execute(query).fetchall() == before
        assert con.execute("SELECT source, data_to FROM runs ORDER BY run_id").fetchall() == [
            ("test", start + 120),
            ("idle", start + 120),
        ]
    snapshot.close()


def test_signed_delivery_without_a_configured_secret_needs_the_token(settings: Settings) -> None:
    with AsgiClient(create_app(settings, ServiceSettings(token=TOKEN, cycle_seconds=0))) as c:
        r = c.request(
            "POST", INGEST, PD, {"content-type": "application/json", "x-pagerduty-signature": "v1=00"}
        )
        assert r.status == 401
        assert "PAGERDUTY_WEBHOOK_SECRET is not set" in r.json()["detail"]
        assert c.request("POST", INGEST, PD, {**auth(), "x-pagerduty-signature": "v1=00"}).status == 202


def test_service_settings_from_the_environment() -> None:
    s = ServiceSettings.load(
        {"SLO_INGEST_TOKEN": "t", "SLO_CYCLE_SECONDS": "2.5", "SLO_INGEST_MAX_BYTES": "100"}
    )
    assert (s.token, s.pagerduty_secret, s.cycle_seconds, s.max_body_bytes, s.group_commit) == (
        "t",
        None,
        2.5,
        100,
        True,
    )
    assert ServiceSettings.load({"SLO_INGEST_GROUP_COMMIT": "0"}).group_commit is False
    assert ServiceSettings.load({}).token is None and ServiceSettings.load({}).cycle_seconds == 5.0
    with pytest.raises(SloError, match="SLO_CYCLE_SECONDS='soon' is not a number"):
        ServiceSettings.load({"SLO_CYCLE_SECONDS": "soon"})
    with pytest.raises(SloError, match="must not be negative"):
        ServiceSettings.load({"SLO_INGEST_MAX_BYTES": "-1"})
