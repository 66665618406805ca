"""The OpenAPI document's shapes: pydantic models of what each route reads and answers, and the
entries of the POST routes (which read their raw body themselves, see app.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from pipelines.errors import HTTP_ANSWERS


class GenericAlert(BaseModel):
    """The generic alert format: for anything that is neither Alertmanager nor PagerDuty."""

    service: str = Field(description="Service the alert is about (need not have an SLO spec).")
    title: str = Field(description="One-line summary.")
    status: Literal["firing", "resolved"] = "firing"
    severity: str | None = Field(
        None, description="SEV1–SEV4, P0–P4, critical/page (SEV2), warning/ticket (SEV3)."
    )
    fingerprint: str | None = Field(
        None, description="Identifies the alert across notifications; default: hash of service and title."
    )
    starts_at: str | None = Field(None, description="RFC 3339 time; default: time of receipt.")
    ends_at: str | None = Field(None, description="RFC 3339 time, for resolved alerts.")
    slo: str | None = Field(None, description="`<service>/<slo name>` (or the slo name alone).")
    description: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    url: str | None = None
    dedup_key: str | None = Field(
        None,
        description="Idempotency key. Default: hash of service, fingerprint, status, starts_at, ends_at, "
        "so re-sending the same alert is a duplicate when starts_at is given.",
    )


class GenericDelivery(BaseModel):
    alerts: list[GenericAlert] = Field(description="1 to 1,000 alerts.")


class AlertmanagerAlert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str
    endsAt: str = Field("0001-01-01T00:00:00Z", description="Go's zero time while firing.")
    generatorURL: str | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(BaseModel):
    """Alertmanager `webhook_config` payload, version 4 (one `Alert` per element of `alerts`)."""

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int | None = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str | None = None
    alerts: list[AlertmanagerAlert]


class PagerDutyEvent(BaseModel):
    id: str
    event_type: str = Field(
        description="incident.triggered → alert; acknowledged/resolved/reopened → command; "
        "others are answered 202 and ignored."
    )
    resource_type: str | None = "incident"
    occurred_at: str
    agent: dict[str, Any] | None = None
    data: dict[str, Any] = Field(description="The incident: id, title, service.summary, urgency, priority…")


class PagerDutyWebhook(BaseModel):
    """PagerDuty V3 webhook; authenticated by `X-PagerDuty-Signature: v1=<hmac-sha256 hex>`."""

    event: PagerDutyEvent


class IngestAnswer(BaseModel):
    format: str
    accepted: list[str] = Field(description="De-duplication keys newly stored (on disk).")
    duplicates: list[str] = Field(description="Keys already in the inbox: re-deliveries, not counted again.")
    ignored: list[dict[str, str]] = Field([], description="PagerDuty events the incident flow does not use.")


class CommandBody(BaseModel):
    command: str = Field(
        description="acknowledge, mitigate, resolve, close, reopen, root_cause, action_item, "
        "action_item_done, postmortem_done, approve_remediation, reject_remediation, retriage, "
        "approve_status, approve_updates, assign, severity_trigger"
    )
    actor: str | None = Field(
        None,
        description="Leave it out: with a personal token (SLO_API_TOKENS_FILE) the actor is the token's "
        "name, and a different one is refused with 403. Only without any personal token configured is it "
        "recorded as given (default: api), and then approvals are refused.",
    )
    args: dict[str, Any] | None = Field(
        None,
        description="root_cause {category, text, fix?}; action_item {title, owner, priority? (default P2), "
        "due_date}; action_item_done {action_item_id}; approve/reject_remediation {remediation_id, reason?}; "
        "assign {role: ic|comms|tech|scribe, person, note?}; severity_trigger {trigger: data_integrity|"
        "customer_reported|scope_doubled, note?}; approve_status/approve_updates {note?, override?: bool} "
        "(taken only from the incident's communications lead; override: true, admin tokens only, approves "
        "in their stead and the timeline records the override); note.",
    )
    at: str | None = Field(None, description="RFC 3339; default: time of receipt.")
    dedup_key: str | None = Field(None, description="Idempotency key (or the Idempotency-Key header).")


class CommandAnswer(BaseModel):
    accepted: list[str]
    duplicates: list[str]
    command: dict[str, Any]


class DeployBody(BaseModel):
    """`POST /api/deploys` (issue 17): one deploy. Or, with `?format=github` or an `X-GitHub-Event`
    header, GitHub's `deployment` / `deployment_status` webhook payload."""

    service: str = Field(description="A service with an SLO spec; another is refused naming the field.")
    version: str = Field(description="What was deployed: a tag, version or commit.")
    time: str = Field(description="When, RFC 3339 (e.g. 2026-11-23T12:00:00Z).")
    who: str = Field(description="Who deployed.")
    link: str | None = Field(None, description="An http(s) link: the CI run, the release.")
    description: str | None = Field(None, description="What changed.")
    id: str | None = Field(
        None,
        description="The sender's id of the deploy: a re-sent one is a duplicate (default: the key "
        "of service, version and time).",
    )


class DeployAnswer(BaseModel):
    accepted: list[str]
    duplicates: list[str]
    deploy: dict[str, Any] | None = None
    ignored: list[str] | None = Field(None, description="A GitHub event that is not a production deploy.")


class ErrorAnswer(BaseModel):
    error: str = Field(
        description="bad_request | unauthorized | bad_signature | forbidden | too_large | not_json | …"
    )
    detail: str = Field(
        description="What was wrong and where, e.g. `alerts[0].startsAt: required time is missing`."
    )


DOC_MODELS: list[type[BaseModel]] = [
    IngestAnswer,
    CommandAnswer,
    ErrorAnswer,
    AlertmanagerWebhook,
    AlertmanagerAlert,
    PagerDutyWebhook,
    PagerDutyEvent,
    GenericDelivery,
    GenericAlert,
    CommandBody,
    DeployBody,
    DeployAnswer,
]
SCHEMA_REF = "#/components/schemas/{model}"


SNAPSHOT_503 = (
    "No published snapshot yet, or it is unreadable (`snapshot unreadable (…); the next cycle rebuilds "
    "it`): retry after the worker's next cycle."
)


def post_doc(
    summary: str, body: dict[str, Any], answer: str, codes: tuple[int, ...], parameters: list[dict[str, Any]]
) -> dict[str, Any]:
    """The OpenAPI operation of a POST route that reads its raw body (see `create_app`)."""

    def json_ref(model: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": SCHEMA_REF.format(model=model)}}}

    responses: dict[str, Any] = {"202": {"description": "Stored on disk.", "content": json_ref(answer)}}
    for code in codes:
        responses[str(code)] = {"description": HTTP_ANSWERS[code][1], "content": json_ref("ErrorAnswer")}
    return {
        "post": {
            "summary": summary,
            "operationId": answer.removesuffix("Answer").lower(),
            "parameters": parameters,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": responses,
            "security": [{"bearer": []}],
        }
    }


POST_DOCS = {
    "/api/incidents/ingest": post_doc(
        "Deliver alerts (Alertmanager v4, PagerDuty V3 or generic)",
        {
            "oneOf": [
                {"$ref": SCHEMA_REF.format(model=m.__name__)}
                for m in (AlertmanagerWebhook, PagerDutyWebhook, GenericDelivery, GenericAlert)
            ]
        },
        "IngestAnswer",
        (400, 401, 403, 408, 413, 415, 503),
        [
            {
                "name": "format",
                "in": "query",
                "required": False,
                "description": "Skip detection: the body is in this format.",
                "schema": {"type": "string", "enum": ["alertmanager", "pagerduty", "generic"]},
            },
            {
                "name": "X-PagerDuty-Signature",
                "in": "header",
                "required": False,
                "description": "PagerDuty: v1=<hex HMAC-SHA256 of the body>; replaces the bearer token.",
                "schema": {"type": "string"},
            },
        ],
    ),
    "/api/incidents/{incident_id}/commands": post_doc(
        "A human step for an incident (acknowledge, resolve, root_cause, action_item…)",
        {"$ref": SCHEMA_REF.format(model="CommandBody")},
        "CommandAnswer",
        (400, 401, 403, 408, 413, 415, 503),
        [
            {"name": "incident_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A retried request with the same key is a duplicate, not a second step.",
                "schema": {"type": "string"},
            },
        ],
    ),
}
# A command's 403 is not about signatures: the caller's role does not allow it (issue 15).
POST_DOCS["/api/deploys"] = post_doc(
    "Record a deploy (native JSON, or a GitHub deployment webhook signed with X-Hub-Signature-256)",
    {"$ref": SCHEMA_REF.format(model="DeployBody")},
    "DeployAnswer",
    (400, 401, 403, 408, 413, 415, 503),
    [
        {
            "name": "format",
            "in": "query",
            "required": False,
            "description": "github: the body is GitHub's deployment or deployment_status payload.",
            "schema": {"type": "string", "enum": ["json", "github"]},
        },
        {
            "name": "X-Hub-Signature-256",
            "in": "header",
            "required": False,
            "description": "GitHub: sha256=<hex HMAC-SHA256 of the body> with SLO_GITHUB_WEBHOOK_SECRET; "
            "replaces the personal token.",
            "schema": {"type": "string"},
        },
    ],
)
POST_DOCS["/api/incidents/{incident_id}/commands"]["post"]["responses"]["403"]["description"] = (
    "`forbidden`: the token's role does not allow this command (the detail names the role needed), an "
    "approval without a personal token, or an `actor` other than the token's. Nothing stored."
)
