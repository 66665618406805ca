"""The shapes the incident flow passes between its parts (ingest → inbox → fold → triage → route).

Pure data; no I/O. The ingest adapters (Alertmanager, PagerDuty, generic, the engine's own alerts)
produce `Alert`s and `Command`s; the inbox stores their `to_json()`; the fold reads them back with
`from_json()`. Triage gets a `TriageContext` and answers a `TriageResult`; routing answers a
`RouteDecision`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")

# DESIGN §2 severity mapping (configurable: callers may pass their own dict).
SEVERITY_ALIASES: dict[str, str] = {
    "sev1": "SEV1", "sev2": "SEV2", "sev3": "SEV3", "sev4": "SEV4",
    "p0": "SEV1", "p1": "SEV1", "p2": "SEV2", "p3": "SEV3", "p4": "SEV4",
    # Alertmanager `severity` labels, until triaged
    "critical": "SEV2", "page": "SEV2", "warning": "SEV3", "ticket": "SEV3", "info": "SEV4",
}
STATUSPAGE_IMPACT: dict[str, str | None] = {
    "critical": "SEV1", "major": "SEV2", "minor": "SEV3", "none": "SEV4", "maintenance": None,
}

INCIDENT_STATES = ("triggered", "acknowledged", "mitigated", "resolved", "closed")
ROUTES = ("escalate", "auto_remediate")
COMMANDS = (
    "acknowledge", "mitigate", "resolve", "close", "reopen",
    "root_cause", "action_item", "action_item_done", "postmortem_done",
    "approve_remediation", "reject_remediation", "retriage",
    "assign",  # an incident role (incident_roles.py)
    "severity_trigger",  # seed 002's severity triggers (severity_rules.py)
    "approve_status",  # the status page's first post (issue 17): the communications lead's approval
    "approve_updates",  # stakeholder updates to Slack (issue 17): the communications lead's approval
)


def map_severity(value: object, aliases: dict[str, str] | None = None) -> str | None:
    """`P1`, `critical`, `sev2`… → `SEV1`…`SEV4`; None when unknown or empty."""
    if value is None:
        return None
    return (aliases or SEVERITY_ALIASES).get(str(value).strip().lower())


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.replace(tzinfo=None).isoformat()


def parse_time(t: object) -> dt.datetime | None:
    if t is None or t == "":
        return None
    value = t if isinstance(t, dt.datetime) else dt.datetime.fromisoformat(str(t).replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


@dataclass
class Alert:
    """One alert notification, normalised. Times are naive UTC.

    `dedup_key` identifies this *delivery content* (a re-delivery has the same key and is dropped by the
    inbox); `fingerprint` identifies the alert across notifications (incidents group by service +
    fingerprint while open).
    """

    source: Literal["alertmanager", "pagerduty", "generic", "engine"] | str
    status: Literal["firing", "resolved"] | str
    service: str
    fingerprint: str
    title: str
    dedup_key: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None = None
    severity: str | None = None  # SEV1..SEV4 as mapped from the source, before triage
    slo: str | None = None  # "<service>/<slo name>" when the alert names one
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    external_id: str | None = None  # e.g. the PagerDuty incident id
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        # What asdict() gives (labels/annotations copied), without its recursive deep copy: this runs
        # once per ingested alert, and asdict was 0.8 ms of a ~2 ms request in the ingest benchmark.
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["labels"] = dict(self.labels)
        d["annotations"] = dict(self.annotations)
        d["starts_at"] = _iso(self.starts_at)
        d["ends_at"] = _iso(self.ends_at)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Alert:
        d = dict(d)
        d["starts_at"] = parse_time(d["starts_at"])
        d["ends_at"] = parse_time(d.get("ends_at"))
        return cls(**d)


@dataclass
class Command:
    """A human step (or a PagerDuty lifecycle event) for one incident.

    `args` by command: root_cause {category, text, fix?}; action_item {title, owner, priority, due_date};
    action_item_done {action_item_id}; approve_remediation / reject_remediation {remediation_id, reason?};
    retriage {}; assign {role, person, note?}; severity_trigger {trigger, note?}; others {note?}. `at` is
    when it happened (default: when received).
    """

    command: str
    incident_id: str | None
    actor: str
    source: str  # cli | api | dashboard | pagerduty
    dedup_key: str
    at: dt.datetime | None = None
    args: dict[str, Any] = field(default_factory=dict)
    # PagerDuty lifecycle events name their incident by external id and fingerprint, not ours:
    external_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = _iso(self.at)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Command:
        d = dict(d)
        d["at"] = parse_time(d.get("at"))
        return cls(**d)


@dataclass
class TriageContext:
    """Everything triage may look at. `alert_text` is untrusted and must be quoted as data."""

    incident_id: str
    service: str
    title: str
    alert_text: str
    source_severity: str | None
    slo_status: list[dict[str, Any]]  # `slo status --json` objects for the service's SLOs
    recent_deploys: list[dict[str, Any]]
    runbook_text: str
    allowed_actions: list[str]
    similar_incidents: list[dict[str, Any]]


@dataclass
class TriageResult:
    method: Literal["model", "rules"] | str
    severity: str
    root_cause_hypothesis: str
    recommended_action: str  # one of allowed_actions, or "escalate"
    confidence: float  # 0..1
    rationale: str
    model: str | None = None
    latency_ms: float | None = None
    raw: str | None = None  # the model's raw answer (or the error that sent us to rules)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RouteDecision:
    route: Literal["escalate", "auto_remediate"] | str
    action: str | None  # the allow-listed action when auto-remediating
    reason: str
    needs_approval: bool = False
