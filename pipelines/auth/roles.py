"""Roles and the actions they allow, and the mapping from an identity's claims to a role.

Four roles, each including the one before it:

- `viewer`: every page and report, no action;
- `responder`: acknowledge, mitigate, resolve, close and reopen incidents, write root causes and action
  items and mark them done, mark the post-mortem done, ask for a new triage, approve posting an
  incident to the status page and sending its stakeholder updates (taken only from the incident's
  communications lead), assign the incident roles (commander, communications lead, technical lead,
  scribe), raise the severity by a trigger;
- `approver`: a responder who may also approve or reject remediations that wait for approval;
- `admin`: every action, and overriding the communications lead's approvals (`comms_override`: an
  approve_status/approve_updates with `override`, recorded as an override on the timeline).

An action is named like the incident command it sends (`pipelines.incidents.contract.COMMANDS`), so a
dashboard button, an API call and a CLI command are checked against the same table.

The role of a signed-in person comes from one claim of their ID token (`groups` by default, or
`roles`: a list of names, or one name) mapped by a small YAML file:

    claim: groups          # optional, default "groups"
    default: viewer        # optional: the role of a signed-in person matching no entry (default: none)
    roles:
      sre-oncall: responder
      sre-leads: approver
      platform-admins: admin
      leadership: viewer

A person in several mapped groups gets the highest of their roles; with no match and no `default`
they get no role at all (None) and may not use the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROLES = ("viewer", "responder", "approver", "admin")  # lowest to highest; each includes the one before

RESPONDER_ACTIONS = frozenset(
    {
        "acknowledge",
        "mitigate",
        "resolve",
        "close",
        "reopen",
        "root_cause",
        "action_item",
        "action_item_done",
        "postmortem_done",
        "retriage",
        "assign",  # an incident role: commander, communications lead, technical lead, scribe
        "severity_trigger",  # raise the severity by one of seed 002's triggers
        # The status page's first post and the stakeholder updates to Slack (issue 17): a responder may
        # send them, and the fold takes them only from the incident's communications lead
        # (incident_roles.comms_refusal).
        "approve_status",
        "approve_updates",
    }
)
APPROVER_ACTIONS = frozenset({"approve_remediation", "reject_remediation"})
# Not a command: an approve_status/approve_updates with `override: true`, taken from an admin who is not
# the communications lead (the timeline records it as an override).
COMMS_OVERRIDE = "comms_override"
ADMIN_ACTIONS = frozenset({COMMS_OVERRIDE})
ACTIONS = RESPONDER_ACTIONS | APPROVER_ACTIONS | ADMIN_ACTIONS

_ALLOWED: dict[str, frozenset[str]] = {
    "viewer": frozenset(),
    "responder": RESPONDER_ACTIONS,
    "approver": RESPONDER_ACTIONS | APPROVER_ACTIONS,
    "admin": ACTIONS,
}


class RoleMapError(ValueError):
    """A role mapping file that cannot be used; the message says where and what."""


def may(role: str | None, action: str) -> bool:
    """Whether `role` allows `action` (an incident command name). Unknown roles and actions: no."""
    return role in _ALLOWED and action in _ALLOWED[role]


def highest(roles: Iterable[str]) -> str | None:
    """The highest of `roles` (None for none)."""
    ranked = [ROLES.index(r) for r in roles if r in ROLES]
    return ROLES[max(ranked)] if ranked else None


@dataclass(frozen=True)
class RoleMap:
    """Claim values → roles (see the module docstring)."""

    roles: Mapping[str, str] = field(default_factory=dict)
    claim: str = "groups"
    default: str | None = None

    def role_for(self, claims: Mapping[str, Any]) -> str | None:
        """The role of an identity with these ID-token claims."""
        value = claims.get(self.claim)
        names = [value] if isinstance(value, str) else list(value) if isinstance(value, list | tuple) else []
        found = highest(self.roles[str(n)] for n in names if str(n) in self.roles)
        return found if found is not None else self.default


def parse_role_map(text: str, origin: str = "role map") -> RoleMap:
    """A RoleMap from the YAML text of a mapping file; RoleMapError names the field that is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoleMapError(f"{origin}: not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RoleMapError(f"{origin}: expected a mapping with `roles:` (claim value → role)")
    unknown = sorted(set(data) - {"claim", "default", "roles"})
    if unknown:
        raise RoleMapError(f"{origin}: {unknown[0]}: unknown field; expected claim, default, roles")
    claim = data.get("claim", "groups")
    if not isinstance(claim, str) or not claim:
        raise RoleMapError(f"{origin}: claim: expected a claim name such as groups or roles")
    default = data.get("default")
    if default is not None and default not in ROLES:
        raise RoleMapError(
            f"{origin}: default: {default!r} is not a role; expected one of {', '.join(ROLES)}"
        )
    roles = data.get("roles") or {}
    if not isinstance(roles, dict):
        raise RoleMapError(f"{origin}: roles: expected a mapping of claim values to roles")
    for name, role in roles.items():
        if role not in ROLES:
            raise RoleMapError(
                f"{origin}: roles.{name}: {role!r} is not a role; expected one of {', '.join(ROLES)}"
            )
    return RoleMap(roles={str(k): str(v) for k, v in roles.items()}, claim=claim, default=default)


def load_role_map(path: Path) -> RoleMap:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoleMapError(f"{path}: cannot read the role mapping: {exc.strerror or exc}") from exc
    return parse_role_map(text, str(path))
