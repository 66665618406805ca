"""Seed 001's escalation matrix as timers (issue 17, item 4): the incident stage, the on-call file of
test_oncall_paging (primary alice 5 min → secondary bob 10 min → leadership) and a local PagerDuty
Events v2 receiver that records every event.

- An acknowledged SEV1 not resolved in 30 min reaches the next level (bob, tier 2) once, although the
  root-cause timer falls due at the same minute; not resolved in 2 h it reaches leadership (tier 3).
- An unacknowledged SEV1 reached leadership by the acknowledgement timers already: the 30 min and 2 h
  timers are on the timeline, and nobody is paged a second time for the same level.
- A SEV2 resolved before 2 h never reaches leadership; one still open at 2 h does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipelines.inbox import Inbox
from tests.integration.test_oncall_paging import BOB_KEY, LEADERSHIP_KEY, PRIMARY_KEY, events, setup
from tests.support.receivers import Endpoint
from tests.unit.test_incident_flow import T0, M, command, firing, run

pytestmark = pytest.mark.integration
H = 60 * M


@pytest.fixture
def pd() -> Iterator[Endpoint]:
    endpoint = Endpoint([202])
    yield endpoint
    endpoint.close()


def timers(con: duckdb.DuckDBPyConnection) -> list[tuple[object, str]]:
    return con.execute(
        "SELECT occurred_at, message FROM timeline WHERE kind = 'timer' ORDER BY occurred_at, seq"
    ).fetchall()


def triggers(pd: Endpoint) -> list[tuple[str, str]]:
    return [(e[1], e[2]) for e in events(pd) if e[0] == "trigger"]


def test_an_acknowledged_sev1_reaches_the_next_level_at_30_min_and_leadership_at_2_h(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, pd: Endpoint
) -> None:
    settings = setup(tmp_path, pd)
    inbox.append([firing("Checkout down", "SEV1")])
    run(con, settings, inbox, T0)
    inbox.append([command("acknowledge", T0 + 2 * M)])
    for minutes in (2, 29):
        run(con, settings, inbox, T0 + minutes * M)
    assert triggers(pd) == [(PRIMARY_KEY, "INC-0001")]  # acknowledged: the 5-min chain stopped

    run(con, settings, inbox, T0 + 30 * M)  # root-cause and unresolved timers both due: one level
    assert triggers(pd)[1:] == [(BOB_KEY, "INC-0001-tier2")]
    assert timers(con) == [
        (T0 + 30 * M, "no root cause 30 min after detection (SEV1): escalating to schedule secondary"),
        (
            T0 + 30 * M,
            "not resolved 30 min after detection (SEV1, the escalation matrix): escalating to the "
            "next level, schedule secondary (tier 2 was paged already: not again)",
        ),
    ]

    run(con, settings, inbox, T0 + 119 * M)
    assert len(triggers(pd)) == 2
    run(con, settings, inbox, T0 + 2 * H)
    assert triggers(pd)[2:] == [(LEADERSHIP_KEY, "INC-0001-tier3")]
    assert timers(con)[2:] == [
        (
            T0 + 2 * H,
            "not resolved 2 h after detection (SEV1, the escalation matrix): escalating to "
            "leadership, routing_key_env LEADERSHIP_ROUTING_KEY",
        )
    ]
    run(con, settings, inbox, T0 + 5 * H)
    assert len(triggers(pd)) == 3 and len(timers(con)) == 3  # nothing more, ever


def test_a_level_already_paged_is_not_paged_again(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, pd: Endpoint
) -> None:
    settings = setup(tmp_path, pd)
    inbox.append([firing("Checkout down", "SEV1")])
    for minutes in (0, 5, 15, 30, 120, 180):  # nobody acknowledges, nobody resolves
        run(con, settings, inbox, T0 + minutes * M)
    assert triggers(pd) == [
        (PRIMARY_KEY, "INC-0001"),
        (BOB_KEY, "INC-0001-tier2"),  # 5 min: tier 1's timeout
        (LEADERSHIP_KEY, "INC-0001-tier3"),  # 15 min: tier 2's timeout; the last tier
    ]
    keys_paged = con.execute(
        "SELECT json_extract_string(data, '$.key'), json_extract(data, '$.paged')::BOOLEAN FROM timeline "
        "WHERE kind = 'timer' ORDER BY occurred_at, seq"
    ).fetchall()
    assert keys_paged == [
        ("ack:1", True),
        ("ack:2", True),
        ("root_cause", False),
        ("unresolved:30m", False),
        ("unresolved:2h", False),
    ]


def test_a_sev2_reaches_leadership_only_when_still_open_at_2_h(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, pd: Endpoint
) -> None:
    settings = setup(tmp_path, pd)
    inbox.append([firing("Checkout errors", "SEV2"), firing("Search slow", "SEV2", service="search")])
    run(con, settings, inbox, T0)
    inbox.append([command("acknowledge", T0 + M)])  # INC-0001 only
    run(con, settings, inbox, T0 + M)
    resolve_2 = command("resolve", T0 + 119 * M)
    resolve_2.body["incident_id"] = "INC-0002"
    inbox.append([resolve_2])
    run(con, settings, inbox, T0 + 119 * M)
    before = len(triggers(pd))
    run(con, settings, inbox, T0 + 2 * H)
    assert triggers(pd)[before:] == [(BOB_KEY, "INC-0001-tier2"), (LEADERSHIP_KEY, "INC-0001-tier3")]
    unresolved = con.execute(
        "SELECT incident_id FROM timeline WHERE kind = 'timer' AND data LIKE '%unresolved%'"
    ).fetchall()
    assert unresolved == [("INC-0001",)]
