"""Stakeholder updates sent to Slack (issue 17, item 6) against a local Slack webhook
(tests/support/receivers.py `Endpoint`), the incident stage driven at chosen times (its injected clock):
nothing before the communications lead approves; then the latest drafted update, one more each time
seed 002's cadence drafts one (SEV2: every 30 min), the resolved one, and nothing after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipelines.inbox import Inbox
from pipelines.incidents import documents
from pipelines.store import connect, migrate
from tests.support.receivers import Endpoint
from tests.unit.test_incident_flow import T0, M, command, firing, run, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    db = connect()
    migrate(db)
    return db


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "data", synchronous="OFF")
    yield box
    box.close()


@pytest.fixture
def slack() -> Iterator[Endpoint]:
    server = Endpoint([200], b"ok")
    yield server
    server.close()


def updates(slack: Endpoint) -> list[str]:
    return [body["text"] for _, body, _ in slack.received if body["text"].startswith(":memo:")]


def test_updates_go_out_after_the_approval_at_their_cadence_and_stop_at_resolve(con, inbox, tmp_path, slack):
    settings = settings_for(tmp_path, slack_webhook_url=f"{slack.url}/services/T0/B0/x")
    inbox.append([firing("Checkout errors", "SEV2")])
    run(con, settings, inbox, T0)
    run(con, settings, inbox, T0 + 31 * M)  # the initial update was due again at 10:30: a second draft
    drafted = con.execute("SELECT count(*) FROM documents WHERE kind = 'stakeholder_update'").fetchone()
    assert drafted == (2,) and updates(slack) == []  # drafted, never sent: nobody approved

    inbox.append([command("approve_updates", T0 + 33 * M)])
    run(con, settings, inbox, T0 + 34 * M)
    sent = updates(slack)
    assert len(sent) == 1 and "Subject: [SEV2] shop — Checkout errors" in sent[0]
    assert "Next Update: by 2026-06-01 11:01 UTC" in sent[0]  # the 10:31 draft, SEV2: 30 min

    run(con, settings, inbox, T0 + 50 * M)
    assert len(updates(slack)) == 1  # not due before 11:01
    run(con, settings, inbox, T0 + 62 * M)
    assert len(updates(slack)) == 2 and "Next Update: by 2026-06-01 11:32 UTC" in updates(slack)[1]

    inbox.append([command("resolve", T0 + 70 * M)])
    run(con, settings, inbox, T0 + 71 * M)
    assert len(updates(slack)) == 3 and "Subject: [RESOLVED] shop — Checkout errors" in updates(slack)[2]
    run(con, settings, inbox, T0 + 200 * M)
    assert len(updates(slack)) == 3  # nothing after the resolved update

    rows = con.execute(
        "SELECT occurred_at, actor, message FROM timeline WHERE kind IN ('updates_approved', "
        "'stakeholder_update_sent') ORDER BY seq"
    ).fetchall()
    assert [(at, actor) for at, actor, _ in rows] == [
        (T0 + 33 * M, "alice"),
        (T0 + 33 * M, None),  # the 10:31 draft goes out at the approval
        (T0 + 62 * M, None),
        (T0 + 70 * M, None),
    ]
    assert all(": slack sent" in m for _, _, m in rows[1:]), rows


def test_a_second_approval_and_an_approval_after_resolve_are_refused(con, inbox, tmp_path, slack):
    settings = settings_for(tmp_path, slack_webhook_url=f"{slack.url}/hook")
    inbox.append([firing("Checkout errors", "SEV2"), command("approve_updates", T0 + M)])
    run(con, settings, inbox, T0 + M)
    inbox.append([command("approve_updates", T0 + 2 * M)])
    run(con, settings, inbox, T0 + 2 * M)
    messages = [m for (m,) in con.execute("SELECT message FROM timeline ORDER BY seq").fetchall()]
    assert any("already approved by alice" in m for m in messages), messages
    assert len(updates(slack)) == 1


def test_a_closed_incident_shows_no_update_due() -> None:
    ups = [{"created_at": T0, "due_at": T0 + 30 * M}, {"created_at": T0 + 40 * M, "due_at": None}]
    assert documents.update_due("resolved", ups) is None
    assert documents.update_due("closed", ups[:1]) is None  # even if its last update had a due time
    assert documents.update_due("acknowledged", ups[:1]) == T0 + 30 * M
    assert documents.update_due("triggered", []) is None
