"""Human steps as inbox commands: ONE validation for the HTTP API, the CLI, the dashboard and the fold.

    validate_args(name, args) → the arguments, normalised               (every door, and the fold again)
    command_from_request(incident_id, body, actor=…, source="api") → Command
    build_command(name, incident_id, args, actor=…, source=…)        → Command    (for the CLI)
    submit(settings, command) → "accepted" | "duplicate"                          (appends to the inbox)

`validate_args` is the contract: the HTTP API (`pipelines.ingest.commands`), the CLI, the dashboard and
the fold all call it, so a command a door accepts is one the fold can apply (an API `202` for an action
item the fold then rejected was the bug this module ended). An action item's priority is optional and
defaults to `DEFAULT_PRIORITY` (P2: the dashboard form's preselected choice, and the priority of the
runbook and automation follow-ups in the seed post-mortem template); its due date is required, as the
fold has always required it ("clear owners and deadlines", and the on-time metric needs one).

A bad request raises `CommandError` naming the field and what is expected, before anything is stored.
Its message is said two ways, from the same check: `str(error)` for the CLI and the fold's timeline
(`priority 'URGENT': expected one of P0, …`), and `error.detail` in the JSON-path form every 400 of
the HTTP API uses (`args.priority: 'URGENT' is not one of P0, …`), which the dashboard raises too.
What the incident's state allows is decided later, by the fold, which records a command that does not
fit as rejected on the incident's timeline.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from pipelines.config import Settings
from pipelines.errors import CommandError
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import COMMANDS, Command
from pipelines.incidents.incident_roles import COMMS_APPROVALS, PERSON, canonical_role, role_choices
from pipelines.incidents.severity_rules import TRIGGERS, canonical_trigger
from pipelines.timeutil import EARLIEST

# Every command a person (API, CLI, dashboard) may send; the worker's own `remediation_result` is not one.
HUMAN_COMMANDS = COMMANDS
PRIORITIES = ("P0", "P1", "P2", "P3", "P4")
DEFAULT_PRIORITY = "P2"
CATEGORY = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
# A whole id (fullmatch: `$` would let a trailing "\n" through).
INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
WORD = "word (letters, digits, - or _)"
MAX_TEXT = 4000
FUTURE_SLACK = dt.timedelta(minutes=5)  # clock skew tolerated for a step's own time


def valid_incident_id(value: object) -> bool:
    return isinstance(value, str) and INCIDENT_ID.fullmatch(value) is not None


def _text(args: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = args.get(name)
    path = f"args.{name}"
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CommandError(f"{name}: required, a non-empty text", path, "required, a non-empty text")
        return None
    if not isinstance(value, str):
        kind = type(value).__name__
        raise CommandError(f"{name}: expected text, got {kind}", path, f"expected text, got {kind}")
    if len(value) > MAX_TEXT:
        too_long = f"at most {MAX_TEXT} characters, got {len(value)}"
        raise CommandError(f"{name}: {too_long}", path, too_long)
    try:  # JSON's \ud800 escapes (and argv's undecodable bytes) can carry lone surrogates no file holds
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = f"not valid Unicode (a lone surrogate at character {exc.start})"
        raise CommandError(f"{name}: {bad}", path, bad) from None
    return value.strip()


def _choice(name: str, value: str, expected: str, problem: str) -> CommandError:
    value = value[:40]
    return CommandError(f"{name} {value!r}: expected {expected}", f"args.{name}", f"{value!r} {problem}")


def validate_args(command: str, args: object) -> dict[str, Any]:
    """The command's arguments, normalised (optional ones left out when absent, defaults filled in);
    raises CommandError for an unknown command or anything missing or malformed."""
    if command not in HUMAN_COMMANDS:
        known, shown = ", ".join(HUMAN_COMMANDS), command[:40]
        raise CommandError(
            f"command {shown!r}: expected one of {known}",
            "command",
            f"{shown!r} is unknown, not one of {known}",
        )
    if not isinstance(args, dict):
        raise CommandError(
            "args: expected an object", "args", f"expected a JSON object, got {type(args).__name__}"
        )
    if command == "root_cause":
        category = (_text(args, "category") or "").lower()
        if not CATEGORY.fullmatch(category):
            raise _choice(
                "category",
                category,
                f"a short lower-case {WORD}, e.g. deploy, config, capacity, dependency",
                f"is not a short lower-case {WORD}, e.g. deploy, config, capacity, dependency",
            )
        out: dict[str, Any] = {
            "category": category,
            "text": _text(args, "text"),
            "fix": _text(args, "fix", required=False),
        }
    elif command == "action_item":
        title, owner = _text(args, "title"), _text(args, "owner")
        priority = (_text(args, "priority", required=False) or DEFAULT_PRIORITY).upper()
        if priority not in PRIORITIES:
            raise _choice(
                "priority",
                priority,
                f"one of {', '.join(PRIORITIES)}",
                f"is not one of {', '.join(PRIORITIES)}",
            )
        due = _text(args, "due_date")
        try:
            dt.date.fromisoformat(str(due))
        except ValueError:
            raise _choice(
                "due_date", str(due), "a date YYYY-MM-DD", "is not a date; expected YYYY-MM-DD"
            ) from None
        out = {"title": title, "owner": owner, "priority": priority, "due_date": due}
    elif command == "action_item_done":
        out = {"action_item_id": _text(args, "action_item_id")}
    elif command in ("approve_remediation", "reject_remediation"):
        out = {
            "remediation_id": _text(args, "remediation_id"),
            "reason": _text(args, "reason", required=False),
        }
    elif command == "assign":
        out = _assignment(args)
    elif command == "severity_trigger":
        given = _text(args, "trigger") or ""
        trigger = canonical_trigger(given)
        if trigger is None:
            known = ", ".join(TRIGGERS)
            raise _choice("trigger", given, f"one of {known}", f"is not one of {known}")
        out = {"trigger": trigger, "note": _text(args, "note", required=False)}
    elif command in COMMS_APPROVALS:
        override = args.get("override", False)
        if not isinstance(override, bool):
            kind = type(override).__name__
            raise CommandError(
                f"override: expected true or false, got {kind}",
                "args.override",
                f"expected a boolean, got {kind}",
            )
        out = {"note": _text(args, "note", required=False)}
        if override:
            out["override"] = True
    else:
        out = {"note": _text(args, "note", required=False)}
    return {k: v for k, v in out.items() if v is not None}


def _assignment(args: dict[str, Any]) -> dict[str, Any]:
    """`assign`'s arguments: a known role (short names accepted, stored canonical) and one person."""
    given = _text(args, "role") or ""
    role = canonical_role(given)
    if role is None:
        raise _choice("role", given, f"one of {role_choices()}", f"is not one of {role_choices()}")
    person = _text(args, "person") or ""
    if not PERSON.fullmatch(person):
        bad = "a name of 1 to 100 printable characters on one line"
        raise CommandError(f"person: expected {bad}", "args.person", f"expected {bad}")
    return {"role": role, "person": person, "note": _text(args, "note", required=False)}


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
    if not valid_incident_id(incident_id):
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
