"""A human step posted to `POST /api/incidents/{id}/commands` → a `Command` for the inbox.

    {"command": "root_cause", "actor": "alice", "args": {"category": "deploy", "text": "bad config"},
     "at": "2026-11-23T12:30:00Z"}

`command` and `args` are checked by `pipelines.incidents.commands.validate_args`, the one validator the
CLI, the dashboard and the fold use too, so a typo is a 400, not a silent no-op in the fold, and what is
answered 202 is what the fold applies (an action item's priority defaults to P2). This module reads the
HTTP envelope around them: the path's incident id, `actor`, `at` and the de-duplication key (the
service then records the personal token's actor instead of the body's, or refuses a different one:
`pipelines.service.app._authorized`, issue 15). An
`Idempotency-Key` header (or `dedup_key` in the body) makes a retried request a duplicate instead of a
second step.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pipelines.errors import CommandError, MalformedInput
from pipelines.incidents.commands import valid_incident_id, validate_args
from pipelines.incidents.contract import Command
from pipelines.ingest.fields import digest, identifier, obj, text, timestamp


def parse_command(
    incident_id: str, body: Any, received_at: dt.datetime, idempotency_key: str | None = None
) -> Command:
    if not valid_incident_id(incident_id):
        raise MalformedInput(f"path: incident id {incident_id[:70]!r} is not valid; expected e.g. INC-0001")
    root = obj(body, "body")
    name = text(root, "command", "")
    actor = text(root, "actor", "", required=False).strip() or "api"
    try:
        args = validate_args(name, root.get("args") or {})
    except CommandError as exc:
        raise MalformedInput(exc.detail) from None
    at = timestamp(root, "at", "", required=False, now=received_at) or received_at
    own_key = idempotency_key or identifier(root, "dedup_key", "", required=False)
    key = digest("command", incident_id, own_key) if own_key else uuid.uuid4().hex
    return Command(
        command=name,
        incident_id=incident_id,
        actor=actor[:200],
        source="api",
        dedup_key=f"cmd:{key}",
        at=at,
        args=args,
    )
