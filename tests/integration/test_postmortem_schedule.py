"""The post-mortem's 48 h deadline through the incident stage, driven at chosen times (its injected
clock), with a local Slack webhook (tests/support/receivers.py `Endpoint`):

- a SEV1 resolved at 10:30 on 1 June gets `postmortem_scheduled` ("due by 2026-06-03 10:30 UTC",
  owned by its incident commander) and one Slack notice; at the deadline, with no post-mortem done,
  `postmortem_overdue` and one more notice; cycles after it add neither again;
- a SEV2 with no incident commander is owned by whoever resolved it, and closed (the post-mortem done)
  before its deadline: never overdue;
- a SEV3 gets no deadline at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Command
from tests.support.receivers import Endpoint
from tests.unit.test_incident_flow import T0, M, firing, run, settings_for

pytestmark = pytest.mark.integration

H = dt.timedelta(hours=1)


@pytest.fixture
def slack() -> Iterator[Endpoint]:
    server = Endpoint([200], b"ok")
    yield server
    server.close()


def step(iid: str, name: str, at: dt.datetime, actor: str, **args: Any) -> Entry:
    c = Command(name, iid, actor, "cli", f"{iid}:{name}:{at.isoformat()}", at=at, args=args)
    return Entry(c.dedup_key, "command", "cli", c.to_json())


def entries(con: duckdb.DuckDBPyConnection, kind: str) -> list[tuple[str, dt.datetime, str]]:
    return con.execute(
        "SELECT incident_id, occurred_at, message FROM timeline WHERE kind = ? ORDER BY incident_id, seq",
        [kind],
    ).fetchall()


def notices(slack: Endpoint) -> list[str]:
    return [body["text"] for _, body, _ in slack.received if "*Post-mortem" in body["text"]]


def test_a_resolved_sev1_is_scheduled_then_overdue_once_and_a_sev2_done_in_time_is_not(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, slack: Endpoint
) -> None:
    settings = dataclasses.replace(
        settings_for(tmp_path), slack_webhook_url=f"{slack.url}/services/T0/B0/x", notify_max_retries=0
    )
    inbox.append(
        [
            firing("Checkout down", "SEV1"),  # INC-0001
            firing("Search slow", "SEV2", service="search"),  # INC-0002
            firing("Docs typo", "SEV3", service="docs"),  # INC-0003
        ]
    )
    run(con, settings, inbox, T0 + M)
    inbox.append(
        [
            step("INC-0001", "assign", T0 + 2 * M, "bob", role="ic", person="alice"),
            step("INC-0001", "resolve", T0 + 30 * M, "bob"),
            step("INC-0002", "resolve", T0 + 20 * M, "carol"),
            step("INC-0003", "resolve", T0 + 25 * M, "carol"),
        ]
    )
    run(con, settings, inbox, T0 + 31 * M)
    assert entries(con, "postmortem_scheduled") == [
        (
            "INC-0001",
            T0 + 30 * M,  # at the resolution; 1 June 10:30 + 48 h
            "post-mortem due by 2026-06-03 10:30 UTC (SEV1: within 48 h of the resolution); owner alice",
        ),
        (
            "INC-0002",
            T0 + 20 * M,  # no incident commander: carol resolved it
            "post-mortem due by 2026-06-03 10:20 UTC (SEV2: within 48 h of the resolution); owner carol",
        ),
    ]  # and none for the SEV3
    assert notices(slack) == [
        ":spiral_calendar_pad: *Post-mortem scheduled* INC-0001 shop: Checkout down\n"
        "*Due by:* 2026-06-03 10:30 UTC (SEV1: within 48 h of the resolution)\n"
        "*Owner:* alice\n"
        "The draft is on the incident; closing it (`slo incidents close INC-0001`) marks the post-mortem "
        "done.",
        ":spiral_calendar_pad: *Post-mortem scheduled* INC-0002 search: Search slow\n"
        "*Due by:* 2026-06-03 10:20 UTC (SEV2: within 48 h of the resolution)\n"
        "*Owner:* carol\n"
        "The draft is on the incident; closing it (`slo incidents close INC-0002`) marks the post-mortem "
        "done.",
    ]

    # INC-0002's post-mortem is done a day later (closing needs the root cause first)
    day2 = T0 + 24 * H
    inbox.append(
        [
            step("INC-0002", "root_cause", day2, "carol", category="config", text="index shards too small"),
            step("INC-0002", "close", day2 + M, "carol"),
        ]
    )
    run(con, settings, inbox, day2 + 2 * M)
    run(con, settings, inbox, T0 + 30 * M + 48 * H - M)  # a minute before INC-0001's deadline: nothing
    assert entries(con, "postmortem_overdue") == []

    deadline = T0 + 30 * M + 48 * H
    for now in (deadline, deadline + M, deadline + H):  # the deadline, then later cycles: once
        run(con, settings, inbox, now)
    assert entries(con, "postmortem_overdue") == [
        (
            "INC-0001",
            deadline,
            "post-mortem overdue: none done by 2026-06-03 10:30 UTC, 48 h after the resolution (SEV1); "
            "owner alice",
        )
    ]  # INC-0002 was done in time (closed on 2 June), INC-0003 has no deadline
    assert notices(slack)[2:] == [
        ":alarm_clock: *Post-mortem overdue* INC-0001 shop: Checkout down\n"
        "*Was due by:* 2026-06-03 10:30 UTC (SEV1: within 48 h of the resolution)\n"
        "*Owner:* alice\n"
        "The draft is on the incident; closing it (`slo incidents close INC-0001`) marks the post-mortem "
        "done."
    ]
    assert len(entries(con, "postmortem_scheduled")) == 2  # not scheduled again either
    # each Slack notice is a notification of its incident, recorded at the entry's time
    assert con.execute(
        "SELECT incident_id, sent_at, channel, status FROM notifications WHERE sent_at IN (?, ?, ?) "
        "ORDER BY sent_at",
        [T0 + 20 * M, T0 + 30 * M, deadline],
    ).fetchall() == [
        ("INC-0002", T0 + 20 * M, "slack", "sent"),
        ("INC-0001", T0 + 30 * M, "slack", "sent"),
        ("INC-0001", deadline, "slack", "sent"),
    ]
