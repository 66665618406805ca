"""PagerDuty V3 webhooks → an `Alert` (incident.triggered) or a `Command` (acknowledged, resolved,
reopened), and the `X-PagerDuty-Signature` check (DESIGN §3).

A V3 delivery is `{"event": {id, event_type, resource_type, occurred_at, agent, data}}` where `data` is
the incident (id, title, service.summary, urgency, priority, html_url…). PagerDuty retries a delivery
until it gets a 2xx, so `event.id` is the de-duplication key. Event types the incident flow does not use
(escalated, priority_updated, annotated, pagey.ping…) are answered 202 and listed as ignored; nothing is
stored for them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import MalformedInput
from pipelines.incidents.contract import Alert, Command, map_severity
from pipelines.ingest.fields import identifier, obj, text, timestamp

SOURCE = "pagerduty"
SIGNATURE_HEADER = "x-pagerduty-signature"
COMMAND_OF = {
    "incident.acknowledged": "acknowledge",
    "incident.resolved": "resolve",
    "incident.reopened": "reopen",
}
# A page we triggered carries our incident id as its dedup key (`incident_key`): tier 1 `INC-0042`,
# a later tier `INC-0042-tier2` (oncall.dedup_key), a page again after an acknowledgement `…-re2`
# (steps/notify._fresh_key). Acknowledging any of them acknowledges our incident.
OUR_DEDUP_KEY = re.compile(r"^(INC-\d+)(?:-tier\d+)?(?:-re\d+)?$")
# Without a priority PagerDuty still has an urgency; high pages someone, low does not.
URGENCY_SEVERITY = {"high": "SEV2", "low": "SEV3"}


@dataclass
class Parsed:
    alerts: list[Alert] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)


def looks_like(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("event"), dict) and "event_type" in body["event"]


def signature_matches(raw_body: bytes, header: str, secret: str) -> bool:
    """True when any `v1=<hex>` value in the header is HMAC-SHA256(secret, raw body), compared in
    constant time. The header may carry several values (PagerDuty sends one per active secret)."""
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest().encode()
    found = False
    for part in header.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == "v1" and hmac.compare_digest(value.strip().encode(errors="replace"), expected):
            found = True  # keep going: every value costs the same time
    return found


def sign(raw_body: bytes, secret: str) -> str:
    """The header value PagerDuty would send (tests and the local tools use it)."""
    return "v1=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def parse(
    body: Any, severity_aliases: dict[str, str] | None = None, received_at: dt.datetime | None = None
) -> Parsed:
    event = obj(obj(body, "body").get("event"), "event")
    event_id = identifier(event, "id", "event")
    event_type = text(event, "event_type", "event")
    out = Parsed()
    if event_type != "incident.triggered" and event_type not in COMMAND_OF:
        out.ignored.append(
            {
                "event_id": event_id,
                "event_type": event_type[:80],
                "reason": "event type not used by the incident flow",
            }
        )
        return out
    occurred_at = timestamp(event, "occurred_at", "event", now=received_at)
    if occurred_at is None:
        raise MalformedInput("event.occurred_at: Go's zero time is not a time an event occurred")
    data = obj(event.get("data"), "event.data")
    incident_id = identifier(data, "id", "event.data")
    dedup_key = f"pd:{event_id}"
    agent = event.get("agent")
    actor = text(agent, "summary", "event.agent", required=False) if isinstance(agent, dict) else ""
    actor = actor or SOURCE
    if event_type in COMMAND_OF:
        ours = OUR_DEDUP_KEY.match(str(data.get("incident_key") or ""))
        out.commands.append(
            Command(
                command=COMMAND_OF[event_type],
                incident_id=ours.group(1) if ours else None,
                actor=actor,
                source=SOURCE,
                dedup_key=dedup_key,
                at=occurred_at,
                args={"event_type": event_type},
                external_id=incident_id,
            )
        )
        return out
    service_ref = data.get("service")
    service = (
        text(obj(service_ref, "event.data.service"), "summary", "event.data.service", required=False)
        if service_ref is not None
        else ""
    ) or "unknown"
    priority = data.get("priority")
    priority_name = (
        text(obj(priority, "event.data.priority"), "summary", "event.data.priority", required=False)
        if priority is not None
        else ""
    )
    urgency = text(data, "urgency", "event.data", required=False)
    severity = map_severity(priority_name, severity_aliases) or URGENCY_SEVERITY.get(urgency)
    created_at = timestamp(data, "created_at", "event.data", required=False, now=received_at)
    out.alerts.append(
        Alert(
            source=SOURCE,
            status="firing",
            service=service,
            fingerprint=f"pd-{incident_id}",
            title=text(data, "title", "event.data", required=False) or f"PagerDuty incident {incident_id}",
            dedup_key=dedup_key,
            starts_at=created_at or occurred_at,
            severity=severity,
            description=text(data, "description", "event.data", required=False),
            labels={"pagerduty_service": service, "urgency": urgency, "priority": priority_name},
            external_id=incident_id,
            url=text(data, "html_url", "event.data", required=False) or None,
        )
    )
    return out
