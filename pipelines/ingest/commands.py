"""A human step posted to `POST /api/incidents/{id}/commands` → a `Command` for the inbox.

    {"command": "root_cause", "actor": "alice", "args": {"category": "deploy", "text": "bad config"},
     "at": "2026-11-23T12:30:00Z"}

`args` by command are those of `pipelines.incidents.contract.Command`; required ones are checked here
so a typo is a 400, not a silent no-op in the fold. An `Idempotency-Key` header (or `dedup_key` in the
body) makes a retried request a duplicate instead of a second step.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from pipelines.errors import MalformedInput
from pipelines.incidents.contract import COMMANDS, Command
from pipelines.ingest.fields import digest, identifier, obj, text, timestamp

INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # whole id (fullmatch): `$` let a "\n" through
# Required string args per command (others are optional and passed through when strings).
REQUIRED_ARGS: dict[str, tuple[str, ...]] = {
    "root_cause": ("category", "text"),
    "action_item": ("title", "owner"),
    "action_item_done": ("action_item_id",),
    "approve_remediation": ("remediation_id",),
    "reject_remediation": ("remediation_id",),
}
OPTIONAL_ARGS: dict[str, tuple[str, ...]] = {
    "root_cause": ("fix",),
    "action_item": ("priority", "due_date"),
    "approve_remediation": ("reason",),
    "reject_remediation": ("reason",),
}


def parse_command(
    incident_id: str, body: Any, received_at: dt.datetime, idempotency_key: str | None = None
) -> Command:
    if not INCIDENT_ID.fullmatch(incident_id):
        raise MalformedInput(f"path: incident id {incident_id[:70]!r} is not valid; expected e.g. INC-0001")
    root = obj(body, "body")
    name = text(root, "command", "")
    if name not in COMMANDS:
        raise MalformedInput(f"command: {name[:40]!r} is unknown; expected one of {', '.join(COMMANDS)}")
    actor = text(root, "actor", "", required=False).strip() or "api"
    raw_args = root.get("args") or {}
    args_in = obj(raw_args, "args")
    args: dict[str, Any] = {}
    for key in REQUIRED_ARGS.get(name, ()):
        args[key] = text(args_in, key, "args")
    for key in (*OPTIONAL_ARGS.get(name, ()), "note"):
        if args_in.get(key) is not None:
            args[key] = text(args_in, key, "args", required=False)
    if "due_date" in args:
        try:
            dt.date.fromisoformat(args["due_date"])
        except ValueError:
            raise MalformedInput(
                f"args.due_date: {args['due_date'][:40]!r} is not a date; expected YYYY-MM-DD"
            ) from None
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
