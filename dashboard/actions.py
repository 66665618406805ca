"""Dashboard actions: every button appends a Command (or an Alert) to the durable inbox (DESIGN §1).

The dashboard never writes DuckDB. A sent command is *pending* until the published snapshot shows it
applied (on the incident's timeline); meanwhile the page says whether the service that applies it is
running at all.

Every action is checked here against the role of the identity sending it (issue 15), whatever the page
showed: a forged widget event, or a page that offered a button it should not have, is refused, logged,
and nothing is appended. The actor recorded is that identity's (email and subject), never typed text.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.auth import Identity
from pipelines.auth.roles import COMMS_OVERRIDE, may
from pipelines.errors import CommandError
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.commands import validate_args
from pipelines.incidents.contract import Alert, Command, map_severity
from pipelines.store import LOCK_FILE

DEFAULT_SERVICE_URL = "http://127.0.0.1:8080"  # `slo serve`'s default
HEALTH_TIMEOUT_S = 0.5
# Starting an incident from an alert starts its triage: the responder's "trigger triage" (roles.py).
START_INCIDENT_ACTION = "retriage"

log = logging.getLogger("dashboard.actions")


class Refused(PermissionError):
    """The identity's role does not allow the action; nothing was sent."""


def check(who: Identity, action: str, target: str | None) -> None:
    """Raise Refused (and log it) unless `who`'s role allows `action`."""
    if may(who.role, action):
        return
    log.warning(
        "refused: %s on %s by %s (role %s): the role does not allow it; nothing was sent",
        action, target or "a new incident", who.actor, who.role or "none",
    )  # fmt: skip
    raise Refused(f"{action.replace('_', ' ')}: your role ({who.role or 'none'}) does not allow it")


def service_url() -> str:
    """Where `slo serve` listens (`SLO_SERVICE_URL`; `slo up` sets it for the dashboard)."""
    return os.environ.get("SLO_SERVICE_URL", DEFAULT_SERVICE_URL).rstrip("/")


@dataclass
class Sent:
    """A command the dashboard appended to the inbox, as remembered by the session."""

    dedup_key: str
    command: str
    incident_id: str | None
    actor: str
    sent_at: dt.datetime
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.command.replace("_", " ")


def send_command(
    data_dir: Path, command: str, incident_id: str, who: Identity, args: dict[str, Any] | None = None
) -> Sent:
    """Append one Command for `incident_id` as `who`; returns what to track until it shows up applied.

    Refused (logged, nothing appended) when `who`'s role does not allow `command`.

    The arguments go through the validator the API, the CLI and the fold use: a bad one raises
    ValueError (the API's wording, e.g. `args.owner: required, a non-empty text`) and nothing is
    appended; the stored arguments are the normalised ones (an action item's default priority filled in).
    """
    try:
        clean = validate_args(command, dict(args or {}))
    except CommandError as exc:
        raise ValueError(exc.detail) from exc
    check(who, command, incident_id)
    if clean.get("override"):  # an approval over the communications lead's head: admins only
        check(who, COMMS_OVERRIDE, incident_id)
    actor = who.actor
    key = f"dashboard-{uuid.uuid4()}"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    body = Command(
        command=command,
        incident_id=incident_id,
        actor=actor,
        source="dashboard",
        dedup_key=key,
        at=now,
        args=clean,
    ).to_json()
    inbox = Inbox(data_dir)
    try:
        inbox.append([Entry(dedup_key=key, kind="command", source="dashboard", body=body)])
    finally:
        inbox.close()
    return Sent(key, command, incident_id, actor, now, dict(args or {}))


def send_alert(data_dir: Path, alert: dict[str, Any], who: Identity) -> Sent:
    """Ask for an incident from an alert that has none (e.g. an engine burn-rate interval): the alert
    goes through the same door as external ones, so the incident flow opens and triages it."""
    check(who, START_INCIDENT_ACTION, None)
    actor = who.actor
    key = f"dashboard-{uuid.uuid4()}"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    body = Alert(
        source=str(alert.get("source") or "engine"),
        status="firing",
        service=str(alert["service"]),
        fingerprint=str(alert["fingerprint"]),
        title=str(alert["title"]),
        dedup_key=key,
        starts_at=alert["starts_at"],
        severity=map_severity(alert.get("severity")),
        slo=alert.get("slo"),
        description=f"incident requested from the dashboard by {actor}",
        labels={"requested_by": actor, "requested_from": "dashboard"},
    ).to_json()
    inbox = Inbox(data_dir)
    try:
        inbox.append([Entry(dedup_key=key, kind="alert", source="dashboard", body=body)])
    finally:
        inbox.close()
    return Sent(key, "start_incident", None, actor, now, {"fingerprint": alert["fingerprint"]})


@dataclass(frozen=True)
class ServiceState:
    running: bool
    detail: str


def service_state(data_dir: Path, url: str | None = None) -> ServiceState:
    """Is the service that folds the inbox running? Its health endpoint first (short timeout), else
    a live pipeline writer named in the store's lock file."""
    url = url or service_url()
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=HEALTH_TIMEOUT_S) as resp:
            if resp.status == 200:
                return ServiceState(True, f"the service at {url} is running")
    except (urllib.error.URLError, OSError, ValueError):
        pass
    pid = _writer_pid(data_dir)
    if pid is not None:
        return ServiceState(True, f"a pipeline writer (pid {pid}) is running")
    return ServiceState(
        False,
        f"the service is not running (no answer from {url}/api/health, no pipeline writer): the command "
        "is safe in the inbox and will be applied when `slo serve` (or `slo up`) starts",
    )


def _writer_pid(data_dir: Path) -> int | None:
    """The pid in the writer lock file, when that process is alive and is this product's pipeline.
    Only reads the file: taking the lock, even briefly, could turn a starting writer away."""
    try:
        text = (data_dir / LOCK_FILE).read_text().strip()
        pid = int(text)
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if "pipelines" in cmdline or "slo" in cmdline else None


def describe(sent: Sent) -> str:
    extra = f" {json.dumps(sent.args)}" if sent.args else ""
    target = sent.incident_id or "new incident"
    return f"{sent.label} → {target}{extra} (sent {sent.sent_at:%H:%M:%S} UTC)"
