"""Human steps as inbox commands: one validation for the CLI, the HTTP API and the dashboard.

    command_from_request(incident_id, body, actor=…, source="api") → Command    (for the API)
    build_command(name, incident_id, args, actor=…, source=…)        → Command    (for the CLI)
    submit(settings, command) → "accepted" | "duplicate"                          (appends to the inbox)

A bad request raises `CommandError` naming the field and what is expected, before anything is stored.
What the incident's state allows is decided later, by the fold, which records a command that does not
fit as rejected on the incident's timeline.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from pipelines.config import Settings
from pipelines.errors import SloError
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Command
from pipelines.ingest.fields import EARLIEST

HUMAN_COMMANDS = (
    "acknowledge", "mitigate", "resolve", "close", "reopen", "root_cause", "action_item",
    "action_item_done", "approve_remediation", "reject_remediation", "retriage",
)  # fmt: skip
PRIORITIES = ("P0", "P1", "P2", "P3", "P4")
CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
MAX_TEXT = 4000
FUTURE_SLACK = dt.timedelta(minutes=5)  # clock skew tolerated for a step's own time


class CommandError(SloError):
    """A human step that cannot be accepted; the message names the field."""


def _text(args: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = args.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CommandError(f"{name}: required, a non-empty text")
        return None
    if not isinstance(value, str):
        raise CommandError(f"{name}: expected text, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise CommandError(f"{name}: at most {MAX_TEXT} characters, got {len(value)}")
    return value.strip()


def validate_args(command: str, args: dict[str, Any]) -> dict[str, Any]:
    """The command's arguments, normalised; raises CommandError for anything missing or malformed."""
    if command not in HUMAN_COMMANDS:
        raise CommandError(f"command {command!r}: expected one of {', '.join(HUMAN_COMMANDS)}")
    if not isinstance(args, dict):
        raise CommandError("args: expected an object")
    if command == "root_cause":
        category = (_text(args, "category") or "").lower()
        if not CATEGORY.match(category):
            raise CommandError(
                f"category {category!r}: expected a short lower-case word (letters, digits, - or _), "
                "e.g. deploy, config, capacity, dependency"
            )
        return {"category": category, "text": _text(args, "text"), "fix": _text(args, "fix", required=False)}
    if command == "action_item":
        priority = (_text(args, "priority") or "").upper()
        if priority not in PRIORITIES:
            raise CommandError(f"priority {priority!r}: expected one of {', '.join(PRIORITIES)}")
        due = _text(args, "due_date")
        try:
            dt.date.fromisoformat(str(due))
        except ValueError:
            raise CommandError(f"due_date {due!r}: expected a date YYYY-MM-DD") from None
        return {
            "title": _text(args, "title"),
            "owner": _text(args, "owner"),
            "priority": priority,
            "due_date": due,
        }
    if command == "action_item_done":
        return {"action_item_id": _text(args, "action_item_id")}
    if command in ("approve_remediation", "reject_remediation"):
        return {
            "remediation_id": _text(args, "remediation_id"),
            "reason": _text(args, "reason", required=False),
        }
    note = _text(args, "note", required=False)
    return {"note": note} if note else {}


def build_command(
    command: str,
    incident_id: str,
    args: dict[str, Any],
    *,
    actor: str,
    source: str,
    at: dt.datetime | None = None,
    request_id: str | None = None,
) -> Command:
    """A validated Command; `request_id` (e.g. an Idempotency-Key) makes a retried request a duplicate."""
    if not isinstance(incident_id, str) or not INCIDENT_ID.match(incident_id):
        raise CommandError(f"incident id {incident_id!r}: expected an id such as INC-0001")
    if not actor or len(actor) > 200:
        raise CommandError("actor: required, at most 200 characters")
    clean = validate_args(command, args)
    if at is not None and at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    if at is not None and at > dt.datetime.now(dt.UTC).replace(tzinfo=None) + FUTURE_SLACK:
        raise CommandError(f"at {at.isoformat()}Z: in the future; a step is recorded when it happened")
    if at is not None and at < EARLIEST:
        raise CommandError(f"at {at.isoformat()}Z: before {EARLIEST.date()}, the earliest time accepted")
    key = f"{source}:{command}:{incident_id}:{request_id or uuid.uuid4().hex}"
    return Command(
        command=command, incident_id=incident_id, actor=actor, source=source, dedup_key=key, at=at, args=clean
    )


def command_from_request(incident_id: str, body: object, *, actor: str, source: str = "api") -> Command:
    """An API request body `{"command": …, "args": {…}, "at"?: ISO time, "request_id"?: text}` → Command."""
    if not isinstance(body, dict):
        raise CommandError("body: expected a JSON object with command and args")
    unknown = set(body) - {"command", "args", "at", "request_id"}
    if unknown:
        raise CommandError(
            f"body: unknown field(s) {', '.join(sorted(unknown))}; expected command, args, at, request_id"
        )
    at = None
    if body.get("at") is not None:
        try:
            at = dt.datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00"))
        except ValueError:
            raise CommandError(f"at {body['at']!r}: expected an ISO 8601 time") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
    request_id = body.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 200):
        raise CommandError("request_id: expected text of at most 200 characters")
    return build_command(
        str(body.get("command")),
        incident_id,
        body.get("args") or {},
        actor=actor,
        source=source,
        at=at,
        request_id=request_id,
    )


def submit(settings: Settings, command: Command, inbox: Inbox | None = None) -> str:
    """Append to the durable inbox; "accepted", or "duplicate" when this request was already stored."""
    box = inbox or Inbox(settings.data_dir)
    result = box.append([Entry(command.dedup_key, "command", command.source, command.to_json())])
    return "accepted" if result.accepted else "duplicate"
