"""Roles (issue 15): the known-answer table of who may do what, and claims → role."""

from __future__ import annotations

import pytest

from pipelines.auth.roles import ACTIONS, COMMS_OVERRIDE, ROLES, RoleMap, RoleMapError, may, parse_role_map
from pipelines.incidents.contract import COMMANDS

# role → the actions it allows, written out by hand (the list)
TABLE = {
    "viewer": set(),
    "responder": {
        "acknowledge", "mitigate", "resolve", "close", "reopen",
        "root_cause", "action_item", "action_item_done", "postmortem_done", "retriage",
        "assign", "severity_trigger",  # issue 17: incident roles, seed 002's severity triggers
        "approve_status",  # issue 17: the status page's first post (the fold: from the comms lead only)
        "approve_updates",  # issue 17: stakeholder updates to Slack (likewise)
    },
    "approver": {
        "acknowledge", "mitigate", "resolve", "close", "reopen",
        "root_cause", "action_item", "action_item_done", "postmortem_done", "retriage",
        "assign", "severity_trigger", "approve_remediation", "reject_remediation", "approve_status",
        "approve_updates",
    },
    "admin": {*COMMANDS, COMMS_OVERRIDE},  # an admin may override the communications lead's approvals
}  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", [*COMMANDS, COMMS_OVERRIDE])
def test_who_may_do_what(role: str, action: str) -> None:
    assert may(role, action) == (action in TABLE[role])


def test_every_command_is_an_action_and_strangers_may_nothing() -> None:
    assert {*COMMANDS, COMMS_OVERRIDE} == ACTIONS
    assert not any(may(None, a) or may("mallory", a) or may("Approver", a) for a in COMMANDS)
    assert not may("admin", "rm -rf /")


MAP = """\
claim: groups
default: viewer
roles:
  sre-oncall: responder
  sre-leads: approver
  platform-admins: admin
"""


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({"groups": ["sre-oncall"]}, "responder"),
        ({"groups": ["sre-oncall", "sre-leads"]}, "approver"),  # the highest of several
        ({"groups": "platform-admins"}, "admin"),  # one name, not a list
        ({"groups": ["marketing"]}, "viewer"),  # signed in, no match: the default
        ({}, "viewer"),
        ({"roles": ["sre-leads"]}, "viewer"),  # another claim is not read
    ],
)
def test_claims_to_role(claims: dict[str, object], role: str) -> None:
    assert parse_role_map(MAP).role_for(claims) == role


def test_without_a_default_an_unmapped_person_has_no_role() -> None:
    assert RoleMap(roles={"sre-leads": "approver"}).role_for({"groups": ["marketing"]}) is None
    assert RoleMap(roles={"x": "approver"}, claim="roles").role_for({"roles": ["x"]}) == "approver"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roles: {sre: superuser}", "roles.sre: 'superuser' is not a role"),
        ("default: root\nroles: {}", "default: 'root' is not a role"),
        ("clam: groups", "clam: unknown field"),
        ("- a\n- b", "expected a mapping"),
        ("roles: [a, b]", "roles: expected a mapping"),
    ],
)
def test_a_broken_mapping_says_what_and_where(text: str, message: str) -> None:
    with pytest.raises(RoleMapError) as info:
        parse_role_map(text, "roles.yaml")
    assert str(info.value).startswith("roles.yaml: ")
    assert message in str(info.value)
