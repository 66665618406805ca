"""The communications lead approves communications (issue 17): the fold takes `approve_status` (the
status page's first post) and `approve_updates` (stakeholder updates to Slack) only from the person
assigned as the incident's communications lead; with none assigned, or from anyone else, it rejects
them with the reason and changes nothing. An admin's override is taken and recorded as one."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.errors import CommandError
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.commands import validate_args
from pipelines.incidents.contract import Alert, Command
from pipelines.incidents.fold import fold_inbox
from pipelines.incidents.incident_roles import (
    CommsOffer,
    comms_awaited,
    comms_offer,
    comms_refusal,
    is_person,
)
from pipelines.store import connect, migrate

T0 = dt.datetime(2026, 6, 1, 10, 0)
M = dt.timedelta(minutes=1)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = connect()
    migrate(c)
    return c


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path, synchronous="OFF")
    yield box
    box.close()


def firing(at: dt.datetime = T0) -> Entry:
    a = Alert(
        source="alertmanager", status="firing", service="shop", fingerprint="CheckoutErrors",
        title="Checkout errors", dedup_key=f"am:CheckoutErrors:{at.isoformat()}", starts_at=at,
        severity="SEV2",
    )  # fmt: skip
    return Entry(a.dedup_key, "alert", "alertmanager", a.to_json())


def step(name: str, at: dt.datetime, actor: str, source: str = "cli", **args: Any) -> Entry:
    c = Command(
        command=name, incident_id="INC-0001", actor=actor, source=source,
        dedup_key=f"{name}:{actor}:{at.isoformat()}", at=at, args=args,
    )  # fmt: skip
    return Entry(c.dedup_key, "command", source, c.to_json())


def comms_lead(person: str, at: dt.datetime, by: str = "ivan") -> Entry:
    return step("assign", at, by, role="comms", person=person)


def fold(con: duckdb.DuckDBPyConnection, inbox: Inbox, *entries: Entry) -> None:
    inbox.append(entries)
    fold_inbox(con, inbox)


def entries(con: duckdb.DuckDBPyConnection, *kinds: str) -> list[tuple[str, str | None, str]]:
    """(kind, actor, message) of the timeline entries of these kinds, in order."""
    return [
        (k, a, m)
        for k, a, m in con.execute(
            "SELECT kind, actor, message FROM timeline WHERE incident_id = 'INC-0001' ORDER BY seq"
        ).fetchall()
        if k in kinds
    ]


def approvals(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute("SELECT approved_by, approved_at, impact FROM status_posts").fetchall()


APPROVED = ("status_page_approved", "updates_approved", "command_rejected")


def test_the_communications_lead_approves_both(con, inbox) -> None:
    fold(
        con, inbox, firing(), comms_lead("bob", T0 + M),
        step("approve_status", T0 + 2 * M, "bob", note="Checkout fails for some customers"),
        step("approve_updates", T0 + 3 * M, "bob"),
    )  # fmt: skip
    assert approvals(con) == [("bob", T0 + 2 * M, "Checkout fails for some customers")]
    assert entries(con, *APPROVED) == [
        (
            "status_page_approved", "bob",
            "status page posting approved by bob (the communications lead); impact: Checkout fails for "
            "some customers",
        ),
        ("updates_approved", "bob", "stakeholder updates to Slack approved by bob (the communications lead)"),
    ]  # fmt: skip


def test_with_no_communications_lead_both_are_rejected_saying_how_to_assign_one(con, inbox) -> None:
    fold(
        con,
        inbox,
        firing(),
        step("approve_status", T0 + M, "alice"),
        step("approve_updates", T0 + 2 * M, "alice"),
    )
    how = (
        "no communications lead is assigned; assign one first (slo incidents assign INC-0001 --role comms "
        "--person NAME) and they approve"
    )
    assert entries(con, *APPROVED) == [
        ("command_rejected", "alice", f"approve_status rejected: {how}"),
        ("command_rejected", "alice", f"approve_updates rejected: {how}"),
    ]
    assert approvals(con) == []


def test_from_anyone_else_they_are_rejected_naming_the_lead_and_nothing_changes(con, inbox) -> None:
    fold(con, inbox, firing(), comms_lead("bob", T0 + M))
    before = (
        approvals(con),
        con.execute("SELECT * EXCLUDE (updated_at) FROM incidents").fetchall(),
        con.execute("SELECT seq, kind, message FROM timeline ORDER BY seq").fetchall(),
    )
    fold(
        con, inbox, step("approve_status", T0 + 2 * M, "carol", note="nothing works"),
        step("approve_updates", T0 + 3 * M, "carol", source="api"),
    )  # fmt: skip
    after = (
        approvals(con),
        con.execute("SELECT * EXCLUDE (updated_at) FROM incidents").fetchall(),
        con.execute(
            "SELECT seq, kind, message FROM timeline WHERE kind <> 'command_rejected' ORDER BY seq"
        ).fetchall(),
    )
    assert after == before
    why = "only the communications lead, bob, approves it; carol is not the communications lead"
    assert entries(con, *APPROVED) == [
        ("command_rejected", "carol", f"approve_status rejected: {why}"),
        ("command_rejected", "carol", f"approve_updates rejected: {why}"),
    ]
    # the rejections used up nothing: the communications lead still approves, once each
    fold(con, inbox, step("approve_status", T0 + 4 * M, "bob"), step("approve_updates", T0 + 5 * M, "bob"))
    assert approvals(con) == [("bob", T0 + 4 * M, None)]
    assert [k for k, _, _ in entries(con, *APPROVED)][-2:] == ["status_page_approved", "updates_approved"]


def test_the_lead_at_the_time_of_the_approval_counts(con, inbox) -> None:
    fold(
        con, inbox, firing(), comms_lead("bob", T0 + M), comms_lead("dana", T0 + 2 * M),
        step("approve_status", T0 + 3 * M, "bob"), step("approve_status", T0 + 4 * M, "dana"),
    )  # fmt: skip
    assert entries(con, *APPROVED) == [
        (
            "command_rejected", "bob",
            "approve_status rejected: only the communications lead, dana, approves it; bob is not the "
            "communications lead",
        ),
        ("status_page_approved", "dana", "status page posting approved by dana (the communications lead)"),
    ]  # fmt: skip


def test_the_dashboard_identity_of_the_lead_is_the_lead(con, inbox) -> None:
    fold(
        con, inbox, firing(), comms_lead("Bob@Example.com", T0 + M),
        step("approve_updates", T0 + 2 * M, "bob@example.com (sub 8f3a)", source="dashboard"),
    )  # fmt: skip
    assert entries(con, *APPROVED) == [
        (
            "updates_approved", "bob@example.com (sub 8f3a)",
            "stakeholder updates to Slack approved by bob@example.com (sub 8f3a) (the communications lead)",
        )
    ]  # fmt: skip


def test_an_admin_override_is_taken_and_recorded_as_one(con, inbox) -> None:
    fold(
        con, inbox, firing(), step("approve_updates", T0 + M, "root-admin", override=True),
        comms_lead("bob", T0 + 2 * M),
        step("approve_status", T0 + 3 * M, "root-admin", note="Checkout is down", override=True),
    )  # fmt: skip
    assert entries(con, *APPROVED) == [
        (
            "updates_approved", "root-admin",
            "stakeholder updates to Slack approved by root-admin as an admin override (no communications "
            "lead assigned)",
        ),
        (
            "status_page_approved", "root-admin",
            "status page posting approved by root-admin as an admin override (communications lead bob); "
            "impact: Checkout is down",
        ),
    ]  # fmt: skip
    data = [
        json.loads(d)
        for (d,) in con.execute(
            "SELECT data FROM timeline WHERE kind IN ('updates_approved', 'status_page_approved') "
            "ORDER BY seq"
        ).fetchall()
    ]
    assert data == [
        {"communications_lead": None, "override": True},
        {"communications_lead": "bob", "override": True},
    ]
    assert approvals(con) == [("root-admin", T0 + 3 * M, "Checkout is down")]


@pytest.mark.parametrize(
    ("actor", "person", "same"),
    [
        ("bob", "bob", True),
        ("bob", "Bob", True),  # names are not case-sensitive
        ("bob", "bobby", False),
        ("bob@example.com (sub 8f3a)", "bob@example.com", True),  # the dashboard's actor: its email
        ("bob@example.com (sub 8f3a)", "8f3a", True),  # … or its subject
        ("bob@example.com (sub 8f3a)", "bob", False),
        ("local", "local", True),  # the dashboard's single local user
    ],
)
def test_who_is_the_assigned_person(actor: str, person: str, same: bool) -> None:
    assert is_person(actor, person) is same


def test_the_refusal_reasons() -> None:
    assert comms_refusal({"communications_lead": "bob"}, "bob", "INC-0007") is None
    assert comms_refusal({"incident_commander": "bob"}, "bob", "INC-0007") == (
        "no communications lead is assigned; assign one first (slo incidents assign INC-0007 --role comms "
        "--person NAME) and they approve"
    )
    assert comms_refusal({"communications_lead": "bob"}, "carol", "INC-0007") == (
        "only the communications lead, bob, approves it; carol is not the communications lead"
    )


def test_override_is_a_boolean() -> None:
    assert validate_args("approve_status", {"note": "x", "override": True}) == {"note": "x", "override": True}
    assert validate_args("approve_updates", {"override": False}) == {}
    with pytest.raises(CommandError, match="override: expected true or false, got str"):
        validate_args("approve_updates", {"override": "yes"})


@pytest.mark.parametrize(
    ("kinds", "status", "drafted", "awaited"),
    [
        ([], "triggered", 0, []),
        (["status_page_pending"], "triggered", 0, ["approve_status"]),
        (["status_page_pending", "status_page_approved"], "acknowledged", 0, []),
        (["status_page_pending"], "triggered", 1, ["approve_status", "approve_updates"]),
        (["updates_approved"], "triggered", 2, []),
        (["status_page_pending"], "resolved", 3, ["approve_status"]),  # no updates are sent once resolved
    ],
)
def test_the_approvals_an_incident_waits_for(kinds, status, drafted, awaited) -> None:
    assert comms_awaited(kinds, status, drafted) == awaited


def test_the_dashboard_offers_the_approval_to_the_lead_disabled_to_others_and_an_override_to_admins() -> None:
    lead = {"communications_lead": "bob@example.com"}
    other = "only the communications lead, bob@example.com, approves it; carol is not the communications lead"
    assert comms_offer(lead, "bob@example.com (sub 1)", "INC-1", may_override=False) == CommsOffer(
        False, False, None
    )
    assert comms_offer(lead, "carol", "INC-1", may_override=False) == CommsOffer(False, True, other)
    assert comms_offer(lead, "carol", "INC-1", may_override=True) == CommsOffer(True, False, other)
    assert comms_offer(lead, "bob@example.com", "INC-1", may_override=True) == CommsOffer(False, False, None)
