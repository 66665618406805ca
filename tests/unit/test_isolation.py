"""One bad record never stalls the pipeline (issue 11, deliverables 2 and 3).

A record that makes a step raise is rolled back, kept in `step_failures` and on its incident's timeline,
and every other record and step goes on; inbox rows with absurd times are rejected by the fold; an inbox
that was deleted, recreated or restored from an older backup is refolded, never skipped.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.inbox import INBOX_FILE, Entry, Inbox
from pipelines.incidents.contract import Alert, Command
from tests.unit.test_incident_flow import T0, M, firing, kinds, one, run, settings_for

YEAR_9999 = dt.datetime(9999, 12, 31, 23, 59, 59)
YEAR_1 = dt.datetime(1, 1, 1, 0, 0, 1)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    from pipelines.store import connect, migrate

    c = connect()
    migrate(c)
    return c


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    box = Inbox(tmp_path / "data", synchronous="OFF")
    yield box
    box.close()


def alert_at(title: str, starts_at: dt.datetime, *, service: str = "shop", sev: str = "SEV3") -> Entry:
    a = Alert(
        source="generic",
        status="firing",
        service=service,
        fingerprint=title,
        title=title,
        dedup_key=f"gen:{title}",
        starts_at=starts_at,
        severity=sev,
    )
    return Entry(a.dedup_key, "alert", "generic", a.to_json())


def ack(incident_id: str, key: str, at: dt.datetime) -> Entry:
    c = Command(
        command="acknowledge", incident_id=incident_id, actor="alice", source="cli", dedup_key=key, at=at
    )
    return Entry(c.dedup_key, "command", "cli", c.to_json())


def failures(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT step, record, attempts, cleared_at IS NOT NULL FROM step_failures ORDER BY step, record"
    ).fetchall()


def test_a_step_that_raises_on_one_incident_leaves_every_other_incident_and_step_running(
    con, inbox, tmp_path
) -> None:
    settings = settings_for(tmp_path)
    inbox.append(
        [firing("payments down", "SEV1", service="payments"), firing("search slow", "SEV1", service="search")]
    )
    run(con, settings, inbox, T0 + M)
    assert one(con, "SELECT count(*) FROM incidents") == 2
    # Two records that make steps raise: an escalation time in year 9999 (the timers' deadlines
    # overflow) and a detection time in year 1 awaiting re-triage (the deploy look-back overflows).
    con.execute("UPDATE incidents SET escalated_at = ? WHERE id = 'INC-0001'", [YEAR_9999])
    con.execute("UPDATE incidents SET detected_at = ?, triage_pending = TRUE WHERE id = 'INC-0002'", [YEAR_1])

    inbox.append([firing("Workers crash looping", "SEV3")])  # an ordinary alert, after the bad ones
    report = run(con, settings, inbox, T0 + 10 * M)

    # The ordinary alert became an incident and went through every step.
    assert report.fold.opened == ["INC-0003"]
    assert "INC-0003" in report.triaged
    assert one(con, "SELECT route FROM incidents WHERE id = 'INC-0003'") == "escalate"  # rules, no key
    assert one(con, "SELECT count(*) FROM notifications WHERE incident_id = 'INC-0003'") == 2
    assert one(con, "SELECT count(*) FROM documents WHERE incident_id = 'INC-0003'") >= 1
    # Each bad record failed alone, and says so where people look.
    assert failures(con) == [("timers", "INC-0001", 1, False), ("triage", "INC-0002", 1, False)]
    errors = dict(con.execute("SELECT record, error FROM step_failures").fetchall())
    assert errors["INC-0001"].startswith("OverflowError") and errors["INC-0002"].startswith("OverflowError")
    assert "step_failed" in kinds(con, "INC-0001") and "step_failed" in kinds(con, "INC-0002")
    # A triage that cannot run takes seed 000's fallback edge: a human is paged.
    assert one(con, "SELECT route, triage_pending FROM incidents WHERE id = 'INC-0002'") == (
        "escalate",
        False,
    )
    assert any("INC-0001: timers: OverflowError" in e for e in report.errors)

    # The next cycle counts the same failure again without repeating it on the timeline.
    inbox.append([firing("Queue backlog", "SEV3", service="queue")])
    report = run(con, settings, inbox, T0 + 11 * M)
    assert report.fold.opened == ["INC-0004"] and "INC-0004" in report.triaged
    assert failures(con) == [("timers", "INC-0001", 2, False), ("triage", "INC-0002", 1, False)]
    assert kinds(con, "INC-0001").count("step_failed") == 1

    # Repaired, the record succeeds again and its failure is cleared.
    con.execute("UPDATE incidents SET escalated_at = ? WHERE id = 'INC-0001'", [T0 + M])
    run(con, settings, inbox, T0 + 12 * M)
    assert failures(con)[0] == ("timers", "INC-0001", 2, True)
    assert kinds(con, "INC-0001")[-1] != "step_failed" and "step_recovered" in kinds(con, "INC-0001")


def test_rows_with_absurd_times_stored_before_the_door_checked_are_rejected_not_folded(
    con, inbox, tmp_path
) -> None:
    settings = settings_for(tmp_path)
    inbox.append([alert_at("from year 1", YEAR_1), alert_at("from year 9999", YEAR_9999)])
    inbox.append([ack("INC-0001", "late-ack", YEAR_9999)])
    inbox.append([firing("Workers crash looping", "SEV3")])
    report = run(con, settings, inbox, T0 + M)
    assert report.fold.opened == ["INC-0001"]
    assert one(con, "SELECT title FROM incidents") == "Workers crash looping"
    reasons = [r[0] for r in con.execute("SELECT reason FROM inbox_rejects ORDER BY seq").fetchall()]
    assert len(reasons) == 3
    assert reasons[0].startswith("starts_at: 0001-01-01T00:00:01Z is outside the accepted range 2000-01-01")
    assert reasons[1].startswith("starts_at: 9999-12-31T23:59:59Z is outside the accepted range")
    assert reasons[2].startswith("at: 9999-12-31T23:59:59Z is outside the accepted range")
    assert one(con, "SELECT acknowledged_at FROM incidents") is None


def test_a_deleted_inbox_is_refolded_and_a_new_alert_becomes_an_incident(con, tmp_path) -> None:
    settings = settings_for(tmp_path)
    data = tmp_path / "data"
    box = Inbox(data, synchronous="OFF")
    box.append([firing("payments down", "SEV1", service="payments"), firing("search slow", service="search")])
    run(con, settings, box, T0 + M)
    assert one(con, "SELECT last_seq FROM inbox_cursor") == 2

    os.remove(data / INBOX_FILE)  # under the running process, which keeps its connection open
    box.append([firing("Workers crash looping", "SEV3")])  # seq 1 of a new file, below the cursor
    assert Inbox(data).count() == 1  # on the file every other process opens, not the deleted one
    assert sorted(p.name.split(".orphaned-")[0] for p in data.glob("*.orphaned-*")) == [
        "inbox.sqlite3-shm",
        "inbox.sqlite3-wal",
    ]

    report = run(con, settings, box, T0 + 2 * M)
    assert report.fold.refolds == 1
    assert report.fold.opened == ["INC-0003"]
    assert one(con, "SELECT title FROM incidents WHERE id = 'INC-0003'") == "Workers crash looping"
    assert one(con, "SELECT last_seq FROM inbox_cursor") == 1
    box.close()


def test_an_inbox_restored_from_an_older_backup_is_refolded_without_applying_anything_twice(
    con, tmp_path
) -> None:
    settings = settings_for(tmp_path)
    data = tmp_path / "data"
    box = Inbox(data, synchronous="FULL")
    box.append([firing("Workers crash looping", "SEV3")])
    box.append([ack("INC-0001", "ack-1", T0 + 2 * M)])
    box.close()
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(data / INBOX_FILE, backup)  # a backup after two rows (the WAL was checkpointed on close)

    box = Inbox(data, synchronous="FULL")
    box.append([firing("payments down", "SEV1", service="payments"), firing("search slow", service="search")])
    box.append([firing("queue backlog", service="queue")])
    run(con, settings, box, T0 + 3 * M)
    assert one(con, "SELECT last_seq FROM inbox_cursor") == 5
    box.close()

    for suffix in ("", "-wal", "-shm"):  # restored the way an operator would: the file alone
        (data / (INBOX_FILE + suffix)).unlink(missing_ok=True)
    shutil.copy(backup, data / INBOX_FILE)
    box = Inbox(data, synchronous="FULL")
    box.append([firing("disk filling", service="storage")])  # gets seq 3: below the old cursor
    report = run(con, settings, box, T0 + 4 * M)

    assert report.fold.refolds == 1
    assert report.fold.opened == ["INC-0005"]
    assert one(con, "SELECT title FROM incidents WHERE id = 'INC-0005'") == "disk filling"
    assert report.fold.duplicates == 2  # the backup's alert and acknowledgement were folded before
    assert kinds(con, "INC-0001").count("acknowledged") == 1
    assert one(con, "SELECT count(*) FROM incidents") == 5
    box.close()
