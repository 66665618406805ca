"""The ingest parsers on real-shaped payloads (tests/fixtures/webhooks): what each field becomes, which
deliveries are the same (de-duplication keys) and what a malformed one is told."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.errors import MalformedInput
from pipelines.incidents.contract import Alert, Command
from pipelines.ingest import parse_delivery
from pipelines.ingest.fields import parse_time
from pipelines.ingest.pagerduty import sign, signature_matches

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
RECEIVED = dt.datetime(2026, 11, 23, 12, 45, 0)


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def parse(body: Any, fmt: str | None = None, headers: dict[str, str] | None = None) -> list[Any]:
    delivery = parse_delivery(json.dumps(body).encode(), fmt, headers or {}, received_at=RECEIVED)
    return [
        Alert.from_json(e.body) if e.kind == "alert" else Command.from_json(e.body) for e in delivery.entries
    ]


def test_alertmanager_group_gives_one_alert_per_element() -> None:
    first, second = parse(load("alertmanager_firing"))
    assert (first.source, first.status, first.service, first.slo) == (
        "alertmanager",
        "firing",
        "checkout-api",
        "checkout-api/availability",
    )
    assert first.fingerprint == "5d3b8d6f2c1a9e07"
    assert first.severity == "SEV2"  # severity=page → SEV2 until triaged (DESIGN §2)
    assert first.title == "checkout-api/availability burns its error budget 14.4x too fast"
    assert first.description == "burn_1h = 21.3 and burn_5m = 30.1, both above 14.4"
    # nanoseconds cut to microseconds; Go's zero endsAt means "not set"
    assert first.starts_at == dt.datetime(2026, 11, 23, 11, 58, 30, 123456)
    assert first.ends_at is None
    assert first.labels["alertname"] == "SLOBurnRateHigh" and first.labels["long_window"] == "1h"
    assert first.url is not None and first.url.startswith("http://prometheus.example:9090/graph")
    # no `service` label: `job` names the service; +02:00 is converted to UTC; ticket → SEV3; no slo
    assert (second.service, second.severity, second.slo) == ("payments", "SEV3", None)
    assert second.starts_at == dt.datetime(2026, 11, 23, 11, 58, 30)
    assert first.dedup_key != second.dedup_key


def test_alertmanager_repeat_is_the_same_key_and_resolution_is_new() -> None:
    firing = load("alertmanager_firing")
    repeat = copy.deepcopy(firing)
    # A repeat notification: same alerts, the group re-sent (other top-level fields may differ).
    repeat["alerts"] = list(reversed(repeat["alerts"]))
    repeat["status"] = "firing"
    keys = {a.dedup_key for a in parse(firing)}
    assert {a.dedup_key for a in parse(repeat)} == keys
    (resolved,) = parse(load("alertmanager_resolved"))
    assert resolved.fingerprint == "5d3b8d6f2c1a9e07" and resolved.status == "resolved"
    assert resolved.ends_at == dt.datetime(2026, 11, 23, 12, 31, 0, 500000)
    assert resolved.dedup_key not in keys
    # The same alert firing again later (new startsAt) is a new notification too.
    again = copy.deepcopy(firing)
    again["alerts"][0]["startsAt"] = "2026-11-23T14:00:00Z"
    assert parse(again)[0].dedup_key not in keys


def test_alertmanager_without_fingerprint_derives_one_from_labels() -> None:
    body = load("alertmanager_firing")
    del body["alerts"][0]["fingerprint"]
    a = parse(body)[0]
    b = parse(body)[0]
    assert len(a.fingerprint) == 16 and a.fingerprint == b.fingerprint
    body["alerts"][0]["labels"]["instance"] = "other"
    assert parse(body)[0].fingerprint != a.fingerprint


def test_alertmanager_unknown_service_and_severity() -> None:
    body = load("alertmanager_firing")
    body["alerts"] = [body["alerts"][0]]
    body["alerts"][0]["labels"] = {"alertname": "DiskFull", "severity": "whatever"}
    body["alerts"][0]["annotations"] = {}
    (a,) = parse(body)
    assert (a.service, a.severity, a.title) == ("unknown", None, "DiskFull")


def test_pagerduty_triggered_is_an_alert() -> None:
    (a,) = parse(load("pagerduty_triggered"))
    assert isinstance(a, Alert)
    assert (a.source, a.status, a.service, a.title) == (
        "pagerduty",
        "firing",
        "checkout-api",
        "Checkout latency p99 above 400ms",
    )
    assert a.severity == "SEV1"  # priority P1
    assert a.external_id == "PGR0VU2" and a.fingerprint == "pd-PGR0VU2"
    assert a.dedup_key == "pd:01DEN4HPBQAAAG05V5QQYBRZMF"
    assert a.starts_at == dt.datetime(2026, 11, 23, 12, 2, 4)  # the incident's created_at
    assert a.url == "https://acme.pagerduty.com/incidents/PGR0VU2"


@pytest.mark.parametrize(
    ("fixture", "command", "actor", "at"),
    [
        ("pagerduty_acknowledged", "acknowledge", "Ada Lovelace", dt.datetime(2026, 11, 23, 12, 6, 40, 4000)),
        ("pagerduty_resolved", "resolve", "Ada Lovelace", dt.datetime(2026, 11, 23, 12, 41, 12)),
    ],
)
def test_pagerduty_lifecycle_events_are_commands(
    fixture: str, command: str, actor: str, at: dt.datetime
) -> None:
    (c,) = parse(load(fixture))
    assert isinstance(c, Command)
    assert (c.command, c.actor, c.source, c.at, c.external_id, c.incident_id) == (
        command,
        actor,
        "pagerduty",
        at,
        "PGR0VU2",
        None,
    )
    assert c.dedup_key == "pd:" + load(fixture)["event"]["id"]


def test_pagerduty_reopened_and_urgency_without_priority() -> None:
    body = load("pagerduty_triggered")
    body["event"]["data"]["priority"] = None
    body["event"]["data"]["urgency"] = "low"
    assert parse(body)[0].severity == "SEV3"
    body["event"]["event_type"] = "incident.reopened"
    (c,) = parse(body)
    assert isinstance(c, Command) and c.command == "reopen"


def test_pagerduty_other_event_types_are_ignored_not_stored() -> None:
    body = load("pagerduty_priority_updated")
    delivery = parse_delivery(json.dumps(body).encode(), None, {}, received_at=RECEIVED)
    assert delivery.entries == []
    assert delivery.ignored == [
        {
            "event_id": "01DEN4HSX1PAAG0C2QCV8W4RPN",
            "event_type": "incident.priority_updated",
            "reason": "event type not used by the incident flow",
        }
    ]


def test_pagerduty_signature_any_v1_value_matches() -> None:
    raw = (FIXTURES / "pagerduty_triggered.json").read_bytes()
    good = sign(raw, "s3cret")
    assert good.startswith("v1=") and len(good) == 3 + 64
    assert signature_matches(raw, good, "s3cret")
    assert signature_matches(raw, f"v1=deadbeef, {good}", "s3cret")  # rotated secrets: any one
    assert not signature_matches(raw, good, "other")
    assert not signature_matches(raw + b" ", good, "s3cret")  # over the exact raw bytes
    assert not signature_matches(raw, good.replace("v1=", "v0="), "s3cret")
    assert not signature_matches(raw, "", "s3cret")
    assert not signature_matches(raw, "v1=é", "s3cret")


def test_generic_alerts_with_defaults() -> None:
    first, second = parse(load("generic"))
    assert (first.source, first.service, first.title, first.severity, first.slo, first.fingerprint) == (
        "generic",
        "search",
        "Nightly reindex failed",
        "SEV3",
        "search/freshness",
        "reindex-nightly",
    )
    assert first.starts_at == dt.datetime(2026, 11, 23, 3, 0)
    assert first.labels == {"team": "search", "env": "prod"}
    # only service and title: firing, no severity, starts when received, fingerprint from service+title
    assert (second.status, second.severity, second.starts_at) == ("firing", None, RECEIVED)
    assert len(second.fingerprint) == 16
    # one alert on its own, and the same alert again → the same key
    single = {
        "service": "search",
        "title": "Nightly reindex failed",
        "fingerprint": "reindex-nightly",
        "starts_at": "2026-11-23T03:00:00Z",
        "status": "firing",
    }
    assert parse(single)[0].dedup_key == first.dedup_key
    assert (
        parse({**single, "dedup_key": "job-1234"})[0].dedup_key
        == parse({"dedup_key": "job-1234", "service": "x", "title": "y"})[0].dedup_key
    )


@pytest.mark.parametrize(
    ("body", "fmt", "message"),
    [
        (b"{", None, "body: not valid JSON at line 1 column 2"),
        (b"\xff\xfe", None, "body: not"),
        (b"[]", None, "body: unknown format"),
        (b'{"hello": "world"}', None, "body: unknown format"),
        (b'{"service": "x", "title": "y"}', "nagios", "format: 'nagios' is unknown"),
        (
            b'{"receiver": "r", "alerts": [], "version": "3"}',
            None,
            "version: Alertmanager webhook version '3'",
        ),
        (b'{"receiver":"r","version":"4","status":"firing","alerts":[]}', None, "alerts: the group holds no"),
        (
            b'{"receiver":"r","version":"4","status":"firing","alerts":[{"status":"firing","labels":{}}]}',
            None,
            "alerts[0].startsAt: required time is missing",
        ),
        (
            b'{"receiver":"r","version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":1},'
            b'"startsAt":"2026-11-23T00:00:00Z"}]}',
            None,
            "alerts[0].labels.a: expected a string, got a number",
        ),
        (
            b'{"receiver":"r","version":"4","status":"firing","alerts":[{"status":"firing",'
            b'"startsAt":"yesterday"}]}',
            None,
            "alerts[0].startsAt: 'yesterday' is not an RFC 3339 time",
        ),
        (
            b'{"receiver":"r","version":"4","status":"burning","alerts":[]}',
            None,
            "status: 'burning' is not one",
        ),
        (b'{"event": {"event_type": "incident.triggered"}}', None, "event.id: required field is missing"),
        (
            b'{"event": {"id": "E1", "event_type": "incident.triggered",'
            b' "occurred_at": "2026-11-23T00:00:00Z"}}',
            None,
            "event.data: expected a JSON object, got null",
        ),
        (
            b'{"event": {"id": "E1", "event_type": "incident.triggered",'
            b' "occurred_at": "2026-11-23T00:00:00Z", "data": {"id": "P1", "service": "checkout"}}}',
            None,
            "event.data.service: expected a JSON object",
        ),
        (b'{"alerts": [{"service": "x"}]}', None, "alerts[0].title: required field is missing"),
        (b'{"alerts": [{"service": " ", "title": "t"}]}', None, "alerts[0].service: must not be empty"),
        (b'{"alerts": []}', None, "alerts: expected a non-empty list"),
        (b'{"service": "x", "title": "t", "severity": "urgent"}', None, "severity: 'urgent' is unknown"),
        (b'{"service": "x", "title": "t", "status": "open"}', None, "status: 'open' is not one of"),
        (b"[" * 100_000 + b"]" * 100_000, None, "body: JSON nested too deeply"),
        (b'{"service": "a\\ud800", "title": "t"}', None, "service: not valid Unicode (a lone surrogate at"),
        (
            b'{"service": "a", "title": "t", "labels": {"\\udfff": "v"}}',
            None,
            "labels key: not valid Unicode",
        ),
    ],
)
def test_malformed_deliveries_say_what_and_where(body: bytes, fmt: str | None, message: str) -> None:
    with pytest.raises(MalformedInput) as exc:
        parse_delivery(body, fmt, {}, received_at=RECEIVED)
    assert str(exc.value).startswith(message), str(exc.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T12:00:00Z", dt.datetime(2026, 11, 23, 12)),
        ("2026-11-23T12:00:00.123456789Z", dt.datetime(2026, 11, 23, 12, 0, 0, 123456)),
        ("2026-11-23T14:00:00+02:00", dt.datetime(2026, 11, 23, 12)),
        ("2026-11-23T12:00:00", dt.datetime(2026, 11, 23, 12)),  # no offset: UTC
        ("2026-11-23T12:00:00.5-01:30", dt.datetime(2026, 11, 23, 13, 30, 0, 500000)),
        ("0001-01-01T00:00:00Z", dt.datetime(1, 1, 1)),  # Go's zero time (callers treat it as unset)
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
        ("yesterday", None),
        ("2026-13-01T00:00:00Z", None),
    ],
)
def test_parse_time(text: str, expected: dt.datetime | None) -> None:
    assert parse_time(text) == expected


def test_alert_to_json_equals_asdict_with_iso_times() -> None:
    # Alert.to_json builds its dict without asdict's deep copy (hot path); it must say the same thing.
    from dataclasses import asdict

    for alert in parse(load("alertmanager_firing")) + parse(load("alertmanager_resolved")):
        expected = asdict(alert)
        expected["starts_at"] = alert.starts_at.isoformat()
        expected["ends_at"] = alert.ends_at.isoformat() if alert.ends_at else None
        got = alert.to_json()
        assert got == expected
        got["labels"]["x"] = "changed"  # a copy, not the alert's own dict
        assert "x" not in alert.labels
        assert Alert.from_json(alert.to_json()) == alert
