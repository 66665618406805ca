"""Incident roles (issue 17, item 4; seeds 001 and 002): the names accepted, the one validator every door
uses, who holds a role (the timeline's latest assignment) and when an incident commander is missing.
Each expected value is written out by hand from the rules in `pipelines.incidents.incident_roles`."""

from __future__ import annotations

import json

import pytest

from pipelines.auth.roles import may
from pipelines.errors import CommandError
from pipelines.incidents import incident_roles
from pipelines.incidents.commands import validate_args


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ic", "incident_commander"),
        ("IC", "incident_commander"),
        ("incident commander", "incident_commander"),
        ("incident-commander", "incident_commander"),
        ("comms", "communications_lead"),
        ("communications_lead", "communications_lead"),
        ("tech", "technical_lead"),
        ("TL", "technical_lead"),
        ("scribe", "scribe"),
        ("boss", None),
        ("", None),
        (3, None),
    ],
)
def test_role_names_short_and_long(given: object, expected: str | None) -> None:
    assert incident_roles.canonical_role(given) == expected


def test_assign_arguments_are_normalised_and_bad_ones_name_the_field() -> None:
    assert validate_args("assign", {"role": "IC", "person": " alice "}) == {
        "role": "incident_commander",
        "person": "alice",
    }
    assert validate_args("assign", {"role": "scribe", "person": "Ed", "note": "takes notes"}) == {
        "role": "scribe",
        "person": "Ed",
        "note": "takes notes",
    }
    with pytest.raises(CommandError) as bad_role:
        validate_args("assign", {"role": "boss", "person": "alice"})
    assert bad_role.value.detail == (
        "args.role: 'boss' is not one of incident_commander (ic), communications_lead (comms), "
        "technical_lead (tech), scribe (scribe)"
    )
    with pytest.raises(CommandError) as no_person:
        validate_args("assign", {"role": "ic"})
    assert no_person.value.detail == "args.person: required, a non-empty text"
    with pytest.raises(CommandError) as long_person:
        validate_args("assign", {"role": "ic", "person": "x" * 101})
    assert str(long_person.value) == "person: expected a name of 1 to 100 printable characters on one line"
    with pytest.raises(CommandError):
        validate_args("assign", {"role": "ic", "person": "two\nlines"})


def test_responders_may_assign_viewers_may_not() -> None:
    assert [r for r in ("viewer", "responder", "approver", "admin") if may(r, "assign")] == [
        "responder",
        "approver",
        "admin",
    ]


def test_the_latest_assignment_of_each_role_holds_it() -> None:
    def entry(role: str, person: str) -> dict[str, object]:
        return {"kind": "role_assigned", "data": json.dumps({"role": role, "person": person})}

    timeline = [
        {"kind": "alert", "data": None},
        entry("incident_commander", "alice"),
        entry("scribe", "ed"),
        {"kind": "command_rejected", "data": {"role": "scribe", "person": "mallory"}},
        entry("incident_commander", "bob"),  # handed over
        {"kind": "role_assigned", "data": {"role": "boss", "person": "carol"}},  # not a role: ignored
    ]
    roles = incident_roles.roles_from_timeline(timeline)
    assert roles == {"incident_commander": "bob", "scribe": "ed"}
    assert incident_roles.summary(roles) == (
        "incident commander bob · communications lead — · technical lead — · scribe ed"
    )


@pytest.mark.parametrize(
    ("severity", "status", "roles", "missing"),
    [
        ("SEV1", "triggered", {}, True),
        ("SEV2", "mitigated", {"scribe": "ed"}, True),
        ("SEV2", "acknowledged", {"incident_commander": "alice"}, False),
        ("SEV3", "triggered", {}, False),  # SEV3/SEV4 do not call for a commander
        ("SEV1", "resolved", {}, False),  # nor does an incident that is over
        (None, "triggered", {}, False),
    ],
)
def test_an_incident_commander_is_missing_on_open_sev1_and_sev2_only(
    severity: str | None, status: str, roles: dict[str, str], missing: bool
) -> None:
    assert incident_roles.ic_missing(severity, status, roles) is missing
