"""Incident roles (seeds 001 and 002): incident commander, communications lead, technical lead, scribe.

Pure. A role is assigned by the `assign` command (`slo incidents assign ID --role ic --person alice`,
`POST /api/incidents/{id}/commands` with `{"command": "assign", "args": {"role": "ic", "person":
"alice"}}`, or the dashboard's incident page); the fold writes each assignment on the timeline as a
`role_assigned` entry whose data is `{"role": <canonical name>, "person": …, "previous": … | null}`.
The timeline is the record: an incident's roles are its latest `role_assigned` entry per role, so
nothing beyond the timeline stores them.

Who may assign: the identity roles of `pipelines.auth.roles` (a responder or higher; the CLI, an
operator's tool on the machine, checks no role, as for every other step).

The communications lead approves communications: the status page's first post (`approve_status`) and
the stakeholder updates to Slack (`approve_updates`) are accepted only from the person assigned as the
communications lead when the approval is folded (`comms_refusal`). With none assigned, or from anyone
else, the approval is rejected and nothing changes. An admin may override (`override: true`, CLI
`--override`): the approval is then taken from them and the timeline records it as an override, naming
the communications lead it overrode (or that none was assigned). The API and the dashboard take an
override only from the admin role; the CLI, as for every step, checks no role and records its OS user.

SEV1 and SEV2 need an incident commander ("always assign explicit roles before diving into
troubleshooting"): once such an incident is escalated with none assigned, the stage writes one
`ic_requested` entry and tells Slack (`steps/roles.py`); the CLI and the dashboard show the
request until someone is assigned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# canonical name → what people read
ROLES: dict[str, str] = {
    "incident_commander": "incident commander",
    "communications_lead": "communications lead",
    "technical_lead": "technical lead",
    "scribe": "scribe",
}
ALIASES: dict[str, str] = {
    "ic": "incident_commander",
    "commander": "incident_commander",
    "comms": "communications_lead",
    "communications": "communications_lead",
    "cl": "communications_lead",
    "tech": "technical_lead",
    "technical": "technical_lead",
    "tl": "technical_lead",
}
# The short names the CLI help and error messages offer.
_SHORT = {
    "ic": "incident_commander",
    "comms": "communications_lead",
    "tech": "technical_lead",
    "scribe": "scribe",
}
# The approvals only the communications lead gives (an admin may override, recorded as such).
COMMS_APPROVALS = ("approve_status", "approve_updates")
# The severities whose escalation asks for an incident commander.
NEEDS_IC = ("SEV1", "SEV2")
# A person is named as the on-call file and the identity provider name them: printable, one line.
PERSON = re.compile(r"[^\x00-\x1f\x7f]{1,100}")


def canonical_role(value: object) -> str | None:
    """`ic`, `IC`, `incident-commander`, `incident commander` → `incident_commander`; None when unknown."""
    if not isinstance(value, str):
        return None
    key = re.sub(r"[\s-]+", "_", value.strip().lower())
    return key if key in ROLES else ALIASES.get(key)


def role_choices() -> str:
    """The accepted role names, for error messages and help."""
    return ", ".join(f"{name} ({short})" for short, name in _SHORT.items())


def roles_from_timeline(entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Role → person from timeline entries (dicts with `kind` and `data`, in timeline order; `data` a
    dict or its JSON text): the latest assignment of each role wins. Roles never assigned are absent."""
    out: dict[str, str] = {}
    for entry in entries:
        if entry.get("kind") != "role_assigned":
            continue
        data = entry.get("data")
        if isinstance(data, str):
            data = json.loads(data)
        if isinstance(data, dict) and data.get("role") in ROLES and data.get("person"):
            out[str(data["role"])] = str(data["person"])
    return out


def ic_missing(severity: object, status: object, roles: Mapping[str, str]) -> bool:
    """Whether an incident must be asked for an incident commander: SEV1/SEV2, still open, none assigned."""
    return (
        severity in NEEDS_IC
        and status in ("triggered", "acknowledged", "mitigated")
        and "incident_commander" not in roles
    )


def summary(roles: Mapping[str, str]) -> str:
    """`incident commander alice · communications lead bob · technical lead — · scribe —`."""
    return " · ".join(f"{label} {roles.get(name) or '—'}" for name, label in ROLES.items())


def is_person(actor: str, person: str) -> bool:
    """Whether a command's `actor` is the assigned `person`, ignoring case: the CLI's login name or an API
    token's name as such, the dashboard's `email (sub subject)` by its email or its subject."""
    want = person.strip().casefold()
    names = {actor.strip()}
    email, sep, rest = actor.partition(" (sub ")
    if sep and rest.endswith(")"):
        names |= {email.strip(), rest[:-1].strip()}
    return want in {n.casefold() for n in names}


def comms_refusal(roles: Mapping[str, str], actor: str, incident_id: str) -> str | None:
    """Why `actor` may not give a communications approval on this incident (None: they may). Only the
    communications lead approves; the reason says how to assign one, or names who holds the role."""
    lead = roles.get("communications_lead")
    if lead is None:
        return (
            "no communications lead is assigned; assign one first "
            f"(slo incidents assign {incident_id} --role comms --person NAME) and they approve"
        )
    if not is_person(actor, lead):
        return f"only the communications lead, {lead}, approves it; {actor} is not the communications lead"
    return None


def comms_awaited(kinds: Iterable[str], status: str, drafted_updates: int) -> list[str]:
    """The communications approvals an incident waits for, from its timeline's kinds: `approve_status`
    once the status page asked for one and none was given; `approve_updates` while it is open, an update
    is drafted and none was approved."""
    seen = set(kinds)
    out = []
    if "status_page_pending" in seen and "status_page_approved" not in seen:
        out.append("approve_status")
    if drafted_updates and "updates_approved" not in seen and status not in ("resolved", "closed"):
        out.append("approve_updates")
    return out


@dataclass(frozen=True)
class CommsOffer:
    """How a page offers a communications approval to one person."""

    override: bool  # the button sends an admin override (they are not the communications lead)
    disabled: bool  # they may not approve at all
    reason: str | None  # why they are not the one to approve; None: they are the communications lead


def comms_offer(roles: Mapping[str, str], actor: str, incident_id: str, may_override: bool) -> CommsOffer:
    """The approve buttons for `actor`: enabled for the communications lead; for anyone else disabled
    with the reason, or, for an admin (`may_override`), an override."""
    reason = comms_refusal(roles, actor, incident_id)
    return CommsOffer(reason is not None and may_override, reason is not None and not may_override, reason)
