"""The post-mortem's deadline (SEV1/SEV2: due 48 h after the resolution) as pure functions, and a
severity change drafting a stakeholder update (`documents.documents_due`). Each row is a case to check
by hand: resolved at 10:00 on 1 June → due 10:00 on 3 June."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pipelines.incidents import documents, timers

RESOLVED = dt.datetime(2026, 6, 1, 10, 0)
DUE = dt.datetime(2026, 6, 3, 10, 0)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def resolved(**kw: Any) -> dict[str, Any]:
    return {
        "id": "INC-0001",
        "severity": "SEV1",
        "status": "resolved",
        "imported": False,
        "route": "escalate",
        "resolved_at": RESOLVED,
        "postmortem_done_at": None,
        **kw,
    }


SCHEDULED = (
    "postmortem_scheduled",
    RESOLVED,
    "post-mortem due by 2026-06-03 10:00 UTC (SEV1: within 48 h of the resolution); owner alice",
)
OVERDUE = (
    "postmortem_overdue",
    DUE,
    "post-mortem overdue: none done by 2026-06-03 10:00 UTC, 48 h after the resolution (SEV1); owner alice",
)
CLOSED = "closed"


@pytest.mark.parametrize(
    ("incident", "now", "expected"),
    [
        # scheduled at the resolution, nothing else before the deadline
        (resolved(), RESOLVED, [SCHEDULED]),
        (resolved(), DUE - M, [SCHEDULED]),
        # at the deadline with none done: overdue, dated at the deadline however late it is noticed
        (resolved(), DUE, [SCHEDULED, OVERDUE]),
        (resolved(), DUE + 30 * H, [SCHEDULED, OVERDUE]),
        # done (closed) before or exactly at the deadline: never overdue
        (resolved(status=CLOSED, postmortem_done_at=DUE - H), DUE + H, [SCHEDULED]),
        (resolved(status=CLOSED, postmortem_done_at=DUE), DUE + H, [SCHEDULED]),
        # done an hour late: it was overdue at the deadline all the same
        (resolved(status=CLOSED, postmortem_done_at=DUE + H), DUE + H, [SCHEDULED, OVERDUE]),
        # no deadline: SEV3/SEV4, unclassified, open, imported, never routed (a history load's);
        # nothing before the resolution
        (resolved(severity="SEV3"), DUE + H, []),
        (resolved(severity="SEV4"), DUE + H, []),
        (resolved(severity=None), DUE + H, []),
        (resolved(status="acknowledged", resolved_at=None), DUE + H, []),
        (resolved(imported=True), DUE + H, []),
        (resolved(route=None), DUE + H, []),
        (resolved(), RESOLVED - M, []),
    ],
)
def test_postmortem_timers(incident: dict[str, Any], now: dt.datetime, expected: list[Any]) -> None:
    events = timers.postmortem_timers(incident, now, "alice")
    assert [(e.kind, e.at, e.message) for e in events] == expected
    assert all(e.due == DUE and e.key == f"{e.kind}:2026-06-03T10:00:00" for e in events)


def test_a_sev2_without_an_owner_says_so() -> None:
    [event] = timers.postmortem_timers(resolved(severity="SEV2"), RESOLVED, None)
    assert event.message == (
        "post-mortem due by 2026-06-03 10:00 UTC (SEV2: within 48 h of the resolution); "
        "no owner named (assign an incident commander)"
    )


def role(person: str) -> dict[str, Any]:
    return {"kind": "role_assigned", "actor": "bob", "data": {"role": "incident_commander", "person": person}}


@pytest.mark.parametrize(
    ("entries", "owner"),
    [
        ([{"kind": "resolved", "actor": "carol", "data": None}], "carol"),  # no IC: the resolver
        ([role("alice"), {"kind": "resolved", "actor": "carol", "data": None}], "alice"),  # the IC
        ([{"kind": "resolved", "actor": "carol", "data": None}, role("alice")], "alice"),  # assigned after
        ([role("alice"), role("dave")], "dave"),  # the latest IC
        (  # resolved twice (reopened in between): the last resolver
            [{"kind": "resolved", "actor": "carol", "data": None},
             {"kind": "reopened", "actor": "x", "data": None},
             {"kind": "resolved", "actor": "erin", "data": None}],
            "erin",
        ),
        ([{"kind": "resolved", "actor": None, "data": None}], None),  # resolved by its alerts, no IC
    ],
)  # fmt: skip
def test_the_owner_is_the_incident_commander_else_the_resolver(
    entries: list[dict[str, Any]], owner: str | None
) -> None:
    assert timers.postmortem_owner(entries) == owner


@pytest.mark.parametrize(
    ("incident", "now", "shown"),
    [
        (resolved(), DUE - H, "Post-mortem due by 2026-06-03 10:00 UTC; owner alice."),
        (resolved(), DUE, "Post-mortem overdue since 2026-06-03 10:00 UTC: none done yet; owner alice."),
        (
            resolved(status="closed", postmortem_done_at=RESOLVED + 20 * H),
            DUE + H,
            "Post-mortem done 2026-06-02 06:00 UTC, within its 48 h (due by 2026-06-03 10:00 UTC).",
        ),
        (
            resolved(status="closed", postmortem_done_at=DUE + 2 * H),
            DUE + 3 * H,
            "Post-mortem done 2026-06-03 12:00 UTC, after its deadline (2026-06-03 10:00 UTC).",
        ),
        (resolved(severity="SEV3"), DUE, "No post-mortem deadline (SEV3: only SEV1/SEV2 have one, 48 h)."),
        (resolved(status="mitigated", resolved_at=None), DUE, None),
    ],
)
def test_what_the_incident_page_shows(incident: dict[str, Any], now: dt.datetime, shown: str | None) -> None:
    assert timers.postmortem_state(incident, now, "alice") == shown


# --- a severity change drafts a stakeholder update ----------------------------------------------

T10 = dt.datetime(2026, 6, 1, 10, 0)


def sev3_at_ten(**kw: Any) -> dict[str, Any]:
    return {
        "id": "INC-0001",
        "service": "shop",
        "title": "Checkout errors for some cards",
        "severity": "SEV3",
        "status": "triggered",
        "detected_at": T10,
        "acknowledged_at": None,
        "resolved_at": None,
        "root_cause": None,
        "updated_at": T10,
        **kw,
    }


def drafted(inc: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
    body, due = documents.render_stakeholder_update(inc, [], at)
    return {"kind": "stakeholder_update", "created_at": at, "due_at": due, "body": body}


def test_raised_from_sev3_to_sev2_an_update_at_the_raise_and_the_next_at_sev2s_cadence() -> None:
    """SEV3 at 10:00 (its first update due again at 12:00), raised to SEV2 at 10:20: an update at 10:20
    and the next one due 30 min later, at 10:50, not at 12:00."""
    first = drafted(sev3_at_ten(), T10)
    assert first["due_at"] == dt.datetime(2026, 6, 1, 12, 0)
    raised = sev3_at_ten(severity="SEV2", updated_at=T10 + 20 * M)
    set_at = [(T10, "SEV3"), (T10 + 20 * M, "SEV2")]  # the triage's answer, then the upgrade
    assert documents.documents_due(raised, [first], T10 + 21 * M, None, set_at) == [
        documents.DocumentDue("stakeholder_update", T10 + 20 * M, "severity is now SEV2")
    ]
    second = drafted(raised, T10 + 20 * M)
    assert second["body"].splitlines()[0] == "Subject: [SEV2] shop — Checkout errors for some cards"
    assert second["due_at"] == dt.datetime(2026, 6, 1, 10, 50)
    assert "Next Update: by 2026-06-01 10:50 UTC" in second["body"]
    # nothing more until 10:50; then the SEV2 cadence's
    assert documents.documents_due(raised, [first, second], T10 + 49 * M, None, set_at) == []
    assert documents.documents_due(raised, [first, second], T10 + 50 * M, None, set_at) == [
        documents.DocumentDue("stakeholder_update", T10 + 50 * M, "update due since 2026-06-01 10:50 UTC")
    ]


def test_a_raise_with_no_time_recorded_is_dated_at_the_incidents_last_change() -> None:
    ack = {"status": "acknowledged", "acknowledged_at": T10 + M}
    first = drafted(sev3_at_ten(**ack), T10 + M)
    raised = sev3_at_ten(severity="SEV1", updated_at=T10 + 7 * M, **ack)
    [due] = documents.documents_due(raised, [first], T10 + 8 * M, None, [(T10, "SEV3")])
    assert (due.at, due.reason) == (T10 + 7 * M, "severity is now SEV1")
    body, next_due = documents.render_stakeholder_update(raised, [], due.at)
    assert body.splitlines()[0] == "Subject: [SEV1 UPDATE] shop — Investigating"
    assert next_due == T10 + 22 * M  # SEV1: 15 min


def test_the_resolved_update_names_the_postmortem_deadline_for_sev1_sev2_only() -> None:
    done = {"status": "resolved", "resolved_at": RESOLVED, "impact_start": RESOLVED - H, "route": "escalate"}
    sev2, _ = documents.render_stakeholder_update(sev3_at_ten(severity="SEV2", **done), [], RESOLVED)
    sev3, _ = documents.render_stakeholder_update(sev3_at_ten(**done), [], RESOLVED)
    assert "Follow-up: Post-mortem scheduled, due by 2026-06-03 10:00 UTC; action items" in sev2
    assert "Follow-up: Post-mortem draft on the incident; action items" in sev3
