"""Buckets of closed hours are stored once, as files (issue 13; `partitions.store_rows`): what the
writer itself sees, before any publish. Day 0 = 2026-06-01; two SLOs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines import partitions
from pipelines.buckets import write_buckets
from pipelines.errors import StoreError
from pipelines.partitions import PARTS_DIR, collect_garbage
from pipelines.store import MIGRATIONS, WORK_FILE, Snapshot, Writer, migrate

DAY0 = 29_671_200  # 2026-06-01T00:00Z as an epoch minute
DAY = 1440
KEYS = {"shop/availability": 1, "shop/latency": 2}


def frame(rows: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["slo_id", "minute", "good", "valid"])


def history(days: int, last_minute_of_day: int) -> list[tuple[str, int, int, int]]:
    """Every 10th minute of `days` days for both SLOs, the last day up to `last_minute_of_day`;
    good = 90 + day, valid = 100."""
    return [
        (slo, DAY0 + day * DAY + m, 90 + day, 100)
        for day in range(days)
        for m in range(0, DAY if day < days - 1 else last_minute_of_day + 1, 10)
        for slo in KEYS
    ]


def on_disk(data_dir: Path) -> set[str]:
    folder = data_dir / PARTS_DIR / "buckets"
    return {f"{PARTS_DIR}/buckets/{n}" for n in os.listdir(folder)} if folder.exists() else set()


def listed(writer: Writer) -> dict[str, tuple[int, int]]:
    """The store's files: name → (first hour − day 0's, hours)."""
    return {
        p.file: (p.hour - DAY0 // 60, p.span) for p in partitions.stored_parts(writer.db, "buckets")
    }


def totals(con: duckdb.DuckDBPyConnection) -> list[tuple[int, int, int]]:
    """Per day since day 0: rows and good."""
    return con.execute(
        f"SELECT minute // {DAY} - {DAY0 // DAY}, count(*), sum(good) FROM buckets GROUP BY 1 ORDER BY 1"
    ).fetchall()


def test_a_history_is_written_once_as_files_and_only_the_open_hour_stays_in_the_database(
    tmp_path: Path,
) -> None:
    rows = history(3, 10 * 60 + 30)  # day 2 up to 10:30: its 10:00 hour is open
    with Writer(tmp_path) as writer:
        write_buckets(writer.db, frame(rows), KEYS, "test")
        # days 0 and 1 as a file each, and day 2's closed hours 00:00-09:00 as a file each
        assert sorted(listed(writer).values()) == [(0, 24), (24, 24)] + [(48 + h, 1) for h in range(10)]
        assert set(listed(writer)) == on_disk(tmp_path)
        # the database keeps only 10:00-10:30 of day 2: 4 minutes × 2 SLOs
        assert writer.db.execute("SELECT count(*), min(minute) FROM buckets_open").fetchall() == [
            (8, DAY0 + 2 * DAY + 600)
        ]
        # and reads every row under the table's name: 144 minutes × 2 SLOs a day, 64 on day 2
        assert totals(writer.db) == [(0, 288, 288 * 90), (1, 288, 288 * 91), (2, 128, 128 * 92)]


def test_a_newer_row_replaces_the_stored_one_in_its_file(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        write_buckets(writer.db, frame(history(3, 600)), KEYS, "test")
        before = listed(writer)
        # a re-read of day 0 00:10 for one SLO: 10 good instead of 90
        write_buckets(writer.db, frame([("shop/latency", DAY0 + 10, 10, 100)]), KEYS, "test")
        after = listed(writer)
        assert totals(writer.db)[0] == (0, 288, 288 * 90 - 80)  # replaced, not added
        # day 0's file was written again under a new name; every other file is the same
        assert sorted(set(before) - set(after)) == [f for f, unit in before.items() if unit == (0, 24)]
        assert [unit for f, unit in after.items() if f not in before] == [(0, 24)]
        # the old file is kept until a publish no longer lists it and its grace period has passed
        writer.publish()
        collect_garbage(writer.db, tmp_path, now=time.time() + partitions.PART_GRACE_SECONDS + 1)
        assert on_disk(tmp_path) == set(after)


def test_closing_hours_and_days_moves_rows_to_files(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        write_buckets(writer.db, frame(history(2, 600)), KEYS, "test")  # day 1 up to 10:00
        assert sorted(listed(writer).values()) == [(0, 24)] + [(24 + h, 1) for h in range(10)]
        # a minute at 11:05 closes the 10:00 hour: its 2 rows go to a file of their own
        write_buckets(writer.db, frame([("shop/availability", DAY0 + DAY + 665, 1, 1)]), KEYS, "test")
        assert sorted(listed(writer).values()) == [(0, 24)] + [(24 + h, 1) for h in range(11)]
        assert writer.db.execute("SELECT count(*) FROM buckets_open").fetchall() == [(1,)]
        # a minute of day 2 closes day 1: its eleven hour files become one day file
        write_buckets(writer.db, frame([("shop/latency", DAY0 + 2 * DAY + 5, 2, 2)]), KEYS, "test")
        assert sorted(listed(writer).values()) == [(0, 24), (24, 24)]
        assert totals(writer.db) == [(0, 288, 288 * 90), (1, 123, 122 * 91 + 1), (2, 1, 2)]
        writer.publish()
    snapshot = Snapshot(tmp_path)
    try:
        with snapshot.connection() as con:
            assert totals(con) == [(0, 288, 288 * 90), (1, 123, 122 * 91 + 1), (2, 1, 2)]
    finally:
        snapshot.close()


def test_a_write_that_fails_after_its_files_lists_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Writer(tmp_path) as writer:
        write_buckets(writer.db, frame(history(2, 600)), KEYS, "test")
        files_before, totals_before = listed(writer), totals(writer.db)

        def dies(*args: object) -> None:
            raise OSError("simulated failure after the files were written")

        monkeypatch.setattr(partitions, "_insert_parts", dies)
        with pytest.raises(OSError, match="simulated failure"):
            write_buckets(writer.db, frame(history(3, 600)), KEYS, "test")
        monkeypatch.undo()
        # nothing changed: the same files listed, the same rows read
        assert listed(writer) == files_before and totals(writer.db) == totals_before
        orphans = on_disk(tmp_path) - set(files_before)
        assert orphans  # the files the failed write left, listed nowhere
        later = time.time() + partitions.PART_GRACE_SECONDS + 1
        for name in orphans:
            os.utime(tmp_path / name, (later - partitions.PART_GRACE_SECONDS - 1,) * 2)
        assert set(collect_garbage(writer.db, tmp_path, now=later)) == orphans
        assert on_disk(tmp_path) == set(files_before)


def test_a_store_from_before_files_moves_its_closed_hours_at_the_next_publish(tmp_path: Path) -> None:
    """A work file of schema 6 kept every bucket in its `buckets` table: opening it renames that table
    to `buckets_open` and the next publish moves the closed hours into files."""
    con = duckdb.connect(str(tmp_path / WORK_FILE))
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, sql in MIGRATIONS:
        if version <= 6:
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?)", [version])
    con.execute(
        "INSERT INTO buckets SELECT 1, m, 9, 10 FROM range(?, ?, 30) t(m)", [DAY0, DAY0 + DAY + 121]
    )
    con.execute("INSERT INTO publish_marks VALUES ('buckets', ?, NULL)", [DAY0 + DAY + 120])
    con.close()
    with Writer(tmp_path) as writer:
        assert migrate(writer.db) == MIGRATIONS[-1][0]
        assert listed(writer) == {}
        assert totals(writer.db) == [(0, 48, 48 * 9), (1, 5, 45)]  # all of them, before any file
        writer.publish()
        assert sorted(listed(writer).values()) == [(0, 24), (24, 1), (25, 1)]
        assert writer.db.execute("SELECT count(*) FROM buckets_open").fetchall() == [(1,)]  # 02:00
        assert totals(writer.db) == [(0, 48, 48 * 9), (1, 5, 45)]


def test_a_re_read_of_minutes_already_in_a_file_rewrites_nothing(tmp_path: Path) -> None:
    """A source re-reading the minutes it sent last time (Prometheus' overlap) across a closed day:
    the day's file already holds them as they are, so it is not written again; a changed count is."""
    with Writer(tmp_path) as writer:
        write_buckets(writer.db, frame(history(3, 600)), KEYS, "test")
        before = listed(writer)
        again = [r for r in history(3, 600) if DAY0 + DAY - 20 <= r[1] < DAY0 + DAY + 10]
        write_buckets(writer.db, frame(again), KEYS, "test")  # the end of day 0, the start of day 1
        assert listed(writer) == before
        changed = [(slo, m, g - 1, v) if m == DAY0 + DAY - 10 else (slo, m, g, v) for slo, m, g, v in again]
        write_buckets(writer.db, frame(changed), KEYS, "test")
        after = listed(writer)
        assert [unit for f, unit in after.items() if f not in before] == [(0, 24)]  # day 0 only
        assert totals(writer.db)[0] == (0, 288, 288 * 90 - 2)


def test_a_late_row_beside_a_fleet_s_hour_rewrites_only_its_own_unit(tmp_path: Path) -> None:
    """Many SLOs' rows for the open hour and one SLO's row two days back: only that day's file and the
    open hour change, not every unit between."""
    many = {f"svc/slo-{i:03d}": i + 1 for i in range(100)}
    with Writer(tmp_path) as writer:
        rows = [
            (slo, DAY0 + day * DAY + m, 1, 1) for day in range(3) for m in range(0, DAY, 60) for slo in many
        ]
        write_buckets(writer.db, frame(rows), many, "test")
        before = listed(writer)
        hour = [(slo, DAY0 + 3 * DAY + m, 2, 2) for m in range(30) for slo in many]
        write_buckets(writer.db, frame([*hour, ("svc/slo-007", DAY0 + DAY + 5, 0, 1)]), many, "test")
        new_units = sorted(unit for f, unit in listed(writer).items() if f not in before)
        assert new_units == [(24, 24), (48, 24)]  # day 1 (the late row) and day 2 (it closed)


def test_a_bucket_file_lost_while_the_writer_runs_fails_every_later_read(tmp_path: Path) -> None:
    """No read may see `buckets` without its files: once one is found missing, reads fail naming it."""
    with Writer(tmp_path) as writer:
        write_buckets(writer.db, frame(history(3, 600)), KEYS, "test")
        victim = next(f for f, unit in listed(writer).items() if unit == (0, 24))
        (tmp_path / victim).unlink()
        with pytest.raises(StoreError, match="a file of the store is missing"):
            write_buckets(writer.db, frame([("shop/latency", DAY0 + 2 * DAY + 601, 1, 1)]), KEYS, "test")
        with pytest.raises(duckdb.Error, match=victim.rsplit("/", 1)[1]):
            writer.db.execute("SELECT count(*) FROM buckets").fetchall()


def test_an_unreadable_bucket_file_of_the_right_size_is_named_and_the_lock_is_free(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        write_buckets(writer.db, frame(history(3, 600)), KEYS, "test")
        writer.publish()
        victim = tmp_path / next(f for f, unit in listed(writer).items() if unit == (0, 24))
    victim.write_bytes(b"\0" * victim.stat().st_size)  # same size, not Parquet any more
    with Writer(tmp_path) as writer, pytest.raises(StoreError, match="a file of the store cannot be read"):
        writer.publish()
    with Writer(tmp_path) as writer:  # the lock was released: a second writer opens, and may reset
        writer.reset()
        write_buckets(writer.db, frame([("shop/latency", DAY0, 1, 1)]), KEYS, "test")
        assert totals(writer.db) == [(0, 1, 1)]
