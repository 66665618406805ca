"""Publishing by partitions (DESIGN §1, issue 13): closed days of the big tables are immutable Parquet
files the snapshot reads through views, the rest is a small snapshot file. Each test writes a few
buckets by hand (day 0 = 2026-06-01) and reads them back through `Snapshot`, as every reader does."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines import partitions
from pipelines.buckets import write_buckets
from pipelines.errors import StoreError
from pipelines.partitions import PARTS_DIR, collect_garbage
from pipelines.store import SNAPSHOT_FILE, Snapshot, Writer, snapshot_problem

DAY0 = 29_671_200  # 2026-06-01T00:00Z as an epoch minute
DAY = 1440
KEYS = {"shop/availability": 1, "shop/latency": 2}


def buckets(*rows: tuple[str, int, int, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["slo_id", "minute", "good", "valid"])


def three_days(writer: Writer) -> None:
    """Two SLOs, two buckets a day (10:00 and 10:10) on 2026-06-01, 06-02 and 06-03, whose 10:00 hour
    is the open one."""
    rows = [
        (slo, DAY0 + day * DAY + offset, 90 + day, 100)
        for day in range(3)
        for offset in (600, 610)
        for slo in KEYS
    ]
    write_buckets(writer.db, buckets(*rows), KEYS, "test")


def files(data_dir: Path, table: str = "buckets") -> list[str]:
    folder = data_dir / PARTS_DIR / table
    return sorted(os.listdir(folder)) if folder.exists() else []


def read(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    snapshot = Snapshot(data_dir)
    try:
        with snapshot.connection() as con:
            return con.execute(sql).fetchall()
    finally:
        snapshot.close()


PER_DAY = "SELECT minute // 1440 - 20605, count(*), sum(good) FROM buckets GROUP BY 1 ORDER BY 1"


def test_closed_days_become_files_and_the_open_day_stays_in_the_snapshot(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
    # 06-01 and 06-02 are closed (the newest bucket is on 06-03): one file each
    assert [name[:10] for name in files(tmp_path)] == ["2026-06-01", "2026-06-02"]
    # readers see every bucket under the table's own name: 4 a day, good 90/91/92 each
    assert read(tmp_path, PER_DAY) == [(0, 4, 360), (1, 4, 364), (2, 4, 368)]
    # the snapshot file itself holds only the open hour's rows (06-03 10:00 and 10:10)
    open_rows = read(tmp_path, "SELECT count(*), min(minute) FROM snap.buckets_open")
    assert open_rows == [(4, DAY0 + 2 * DAY + 600)]
    assert read(tmp_path, "SELECT table_name, count(*), sum(rows) FROM snapshot_parts GROUP BY 1") == [
        ("buckets", 2, 8)
    ]


def test_one_more_minute_rewrites_no_closed_day(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
        before = {
            name: os.stat(tmp_path / PARTS_DIR / "buckets" / name).st_mtime_ns for name in files(tmp_path)
        }
        write_buckets(writer.db, buckets(("shop/availability", DAY0 + 2 * DAY + 601, 50, 100)), KEYS, "test")
        writer.publish()
    after = {name: os.stat(tmp_path / PARTS_DIR / "buckets" / name).st_mtime_ns for name in files(tmp_path)}
    assert after == before  # the same files, untouched
    assert read(tmp_path, PER_DAY)[-1] == (2, 5, 418)  # 368 + 50


def test_a_minute_of_a_new_day_closes_the_previous_one(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
        write_buckets(writer.db, buckets(("shop/latency", DAY0 + 3 * DAY, 100, 100)), KEYS, "test")
        writer.publish()
    assert [name[:10] for name in files(tmp_path)] == ["2026-06-01", "2026-06-02", "2026-06-03"]
    assert read(tmp_path, PER_DAY) == [(0, 4, 360), (1, 4, 364), (2, 4, 368), (3, 1, 100)]
    assert read(tmp_path, "SELECT count(*) FROM snap.buckets_open") == [(1,)]


def test_a_late_bucket_gets_a_new_file_and_readers_of_the_old_snapshot_keep_theirs(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
        (old_day0, old_day1) = files(tmp_path)
        reader = Snapshot(tmp_path)
        with reader.connection() as con:  # attached before the late bucket is published
            assert con.execute("SELECT sum(good) FROM buckets").fetchone() == (1092,)
        # a re-read of 06-01 10:00 for one SLO: 10 good instead of 90
        write_buckets(writer.db, buckets(("shop/availability", DAY0 + 600, 10, 100)), KEYS, "test")
        writer.publish()
        new = files(tmp_path)
        # 06-01 got a second file under a new name; 06-02's file was not rewritten; both old files stay
        assert old_day0 in new and old_day1 in new and len(new) == 3
        assert read(tmp_path, PER_DAY)[0] == (0, 4, 280)
        # the reader still holds the snapshot it attached, and its files are still there to read
        con = reader._con
        assert con is not None
        assert con.execute("SELECT sum(good) FROM buckets").fetchone() == (1092,)
        reader.close()
        # once the grace period has passed, the next publish deletes the file no snapshot lists
        deleted = collect_garbage(writer.db, tmp_path, now=time.time() + partitions.PART_GRACE_SECONDS + 1)
        assert deleted == [f"{PARTS_DIR}/buckets/{old_day0}"]
    assert len(files(tmp_path)) == 2
    assert read(tmp_path, PER_DAY)[0] == (0, 4, 280)


def test_a_publish_that_fails_before_the_replace_leaves_the_last_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
        published = files(tmp_path)
        write_buckets(writer.db, buckets(("shop/availability", DAY0 + 600, 10, 100)), KEYS, "test")

        def crash(src: object, dst: object) -> None:
            raise OSError("simulated crash between the partition files and the snapshot")

        monkeypatch.setattr("pipelines.store.os.replace", crash)
        with pytest.raises(OSError, match="simulated crash"):
            writer.publish()
        monkeypatch.undo()
        # the new day-0 file was written, but the published snapshot is the old one, whole
        assert len(files(tmp_path)) == 3
        assert snapshot_problem(tmp_path) is None
        assert read(tmp_path, PER_DAY)[0] == (0, 4, 360)
        # the next publish carries the change; the unpublished file is removed after the grace period
        writer.publish()
        assert read(tmp_path, PER_DAY)[0] == (0, 4, 280)
        collect_garbage(writer.db, tmp_path, now=time.time() + partitions.PART_GRACE_SECONDS + 1)
        listed = [row[0].rsplit("/", 1)[1] for row in read(tmp_path, "SELECT file FROM snapshot_parts")]
    assert files(tmp_path) == sorted(listed)
    assert published[1] in listed  # 06-02 never changed: still its first file


def test_files_of_a_snapshot_whose_publish_died_after_the_replace_get_their_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer is killed after os.replace and before it recorded the files: the live snapshot lists
    files no publish knows. When the next publish replaces it, those files are retired from then on,
    not deleted at once for their age, so a reader still querying the dead writer's snapshot keeps them."""
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
        write_buckets(writer.db, buckets(("shop/availability", DAY0 + 600, 10, 100)), KEYS, "test")

        def killed(*args: object) -> None:
            raise OSError("simulated kill after the replace")

        monkeypatch.setattr("pipelines.store.partitions.commit", killed)
        with pytest.raises(OSError, match="simulated kill"):
            writer.publish()
        monkeypatch.undo()
        orphaned = {row[0].rsplit("/", 1)[1] for row in read(tmp_path, "SELECT file FROM snapshot_parts")}
        orphaned -= set(
            row[0].rsplit("/", 1)[1] for row in writer.db.execute("SELECT file FROM publish_parts").fetchall()
        )
        assert orphaned  # the day-0 file the dead publish wrote
        long_ago = time.time() - 10 * partitions.PART_GRACE_SECONDS
        for name in orphaned:  # old enough that age alone would delete them
            os.utime(tmp_path / PARTS_DIR / "buckets" / name, (long_ago, long_ago))
        write_buckets(writer.db, buckets(("shop/availability", DAY0 + 600, 20, 100)), KEYS, "test")
        writer.publish()  # writes day 0 again under a new name
        assert orphaned <= set(files(tmp_path))  # still there for the grace period
        collect_garbage(writer.db, tmp_path, now=time.time() + partitions.PART_GRACE_SECONDS + 1)
        assert not orphaned & set(files(tmp_path))
        assert read(tmp_path, PER_DAY)[0] == (0, 4, 290)


def test_a_copied_data_dir_reads_its_own_files(tmp_path: Path) -> None:
    original = tmp_path / "data"
    with Writer(original) as writer:
        three_days(writer)
        writer.publish()
    copy = tmp_path / "restored"
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    assert read(copy, PER_DAY) == [(0, 4, 360), (1, 4, 364), (2, 4, 368)]
    assert snapshot_problem(copy) is None


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_damaged_file_of_a_derived_table_is_a_problem_that_republishing_fixes(
    tmp_path: Path, damage: str
) -> None:
    with Writer(tmp_path) as writer:
        three_days(writer)
        # hourly checkpoints of the first two days (derived by the engine: the work file has them)
        writer.db.execute(
            "INSERT INTO checkpoints SELECT 1, m, m - ?, m - ? FROM range(?, ?, 60) t(m)",
            [DAY0, DAY0, DAY0, DAY0 + 2 * DAY],
        )
        partitions.mark_changed(writer.db, "checkpoints", DAY0, DAY0 + 2 * DAY + 600)
        writer.publish()
    victim = tmp_path / PARTS_DIR / "checkpoints" / files(tmp_path, "checkpoints")[0]
    if damage == "delete":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:100])
    problem = snapshot_problem(tmp_path)
    assert problem is not None and ("parquet" in problem or "partition" in problem), problem
    with Writer(tmp_path) as writer:
        assert writer.republish_if_unreadable() == problem
    assert snapshot_problem(tmp_path) is None
    checkpoints = read(tmp_path, "SELECT count(*), sum(cum_valid) FROM checkpoints")
    assert checkpoints == [(48, sum(range(0, 2 * DAY, 60)))]
    assert read(tmp_path, PER_DAY) == [(0, 4, 360), (1, 4, 364), (2, 4, 368)]


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_damaged_bucket_file_stops_the_writer_with_what_to_do(tmp_path: Path, damage: str) -> None:
    """Closed hours of buckets are stored only as files: a lost one cannot be rebuilt from the work
    file. The writer says which file and how to rebuild, and changes nothing; a reset still works."""
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
    victim = tmp_path / PARTS_DIR / "buckets" / files(tmp_path)[0]
    if damage == "delete":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:100])
    before = files(tmp_path)
    with Writer(tmp_path) as writer:
        with pytest.raises(StoreError, match=f"{victim.name}: a file of the store is missing.*inbox.sqlite3"):
            writer.republish_if_unreadable()
        with pytest.raises(StoreError, match=victim.name):
            write_buckets(writer.db, buckets(("shop/latency", DAY0 + 3 * DAY, 1, 1)), KEYS, "test")
        assert files(tmp_path) == before
        writer.reset()
        write_buckets(writer.db, buckets(("shop/latency", DAY0 + 3 * DAY, 1, 1)), KEYS, "test")
        writer.publish()
    assert read(tmp_path, PER_DAY) == [(3, 1, 1)]


def test_rows_written_without_mark_changed_are_published_all_the_same(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
        # a bulk load straight into a closed day, as a benchmark or a repair might do
        writer.db.execute("INSERT INTO buckets_open VALUES (2, ?, 5, 5)", [DAY0 + 7])
        writer.publish()
    assert read(tmp_path, PER_DAY) == [(0, 5, 365), (1, 4, 364), (2, 4, 368)]


def test_reset_retires_every_partition_file(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        three_days(writer)
        writer.publish()
        old = files(tmp_path)
        writer.reset()
        write_buckets(writer.db, buckets(("shop/availability", DAY0 + 5 * DAY, 7, 7)), KEYS, "test")
        writer.publish()
        assert read(tmp_path, PER_DAY) == [(5, 1, 7)]
        assert files(tmp_path) == old  # kept for readers of the snapshot published before the reset
        collect_garbage(writer.db, tmp_path, now=time.time() + partitions.PART_GRACE_SECONDS + 1)
    assert files(tmp_path) == []
    assert (tmp_path / SNAPSHOT_FILE).exists()


def test_the_engine_s_rewrites_reach_the_snapshot(tmp_path: Path) -> None:
    """Checkpoints and the 15-minute series read through the snapshot equal the work file's, row for
    row, after a first evaluation, one more minute, a late bucket two days back and a target change."""
    import dataclasses

    from pipelines import engine
    from pipelines.catalog import sync_slos
    from pipelines.model import Sli, Slo, SloWindow
    from pipelines.specs.values import default_alerts

    def slo(name: str, target: float) -> Slo:
        return Slo(
            service="shop", name=name, owner="team",
            sli=Sli(name=name, kind="ratio", category="availability"),
            target=target, window=SloWindow(kind="rolling", minutes=4320, text="3d"),
            alerts=default_alerts(4320), alerts_custom=False,
        )  # fmt: skip

    slos = [slo("availability", 0.99), slo("latency", 0.95)]
    # four days, a bucket every 7 minutes, one bad event in five
    rows = [(s.id, DAY0 + m, 4 + (m % 5 != 0), 5) for m in range(0, 4 * DAY - 100, 7) for s in slos]
    sql = {
        "checkpoints": "SELECT * FROM checkpoints ORDER BY slo_key, minute",
        "slo_series": "SELECT * FROM slo_series ORDER BY slo_key, minute",
    }
    with Writer(tmp_path) as writer:
        keys = sync_slos(writer.db, slos)
        end = DAY0 + 4 * DAY - 100

        def check(step: str) -> set[str]:
            writer.publish()
            for table, query in sql.items():
                work = writer.db.execute(query).fetchall()
                assert work, (step, table)
                assert read(tmp_path, query) == work, (step, table)
            return {row[0] for row in read(tmp_path, "SELECT file FROM snapshot_parts")}

        write_buckets(writer.db, buckets(*rows), keys, "test")
        engine.evaluate(writer.db, slos, end)
        first = check("first evaluation")
        write_buckets(writer.db, buckets(("shop/latency", end, 0, 5)), keys, "test")
        engine.evaluate(writer.db, slos, end + 1)
        assert check("one more minute") == first  # no closed day rewritten
        write_buckets(writer.db, buckets(("shop/availability", DAY0 + DAY + 3, 0, 50)), keys, "test")
        engine.evaluate(writer.db, slos, end + 1)
        check("a late bucket two days back")
        slos = [dataclasses.replace(slos[0], target=0.9), slos[1]]
        sync_slos(writer.db, slos)
        engine.evaluate(writer.db, slos, end + 1)
        listed = check("a target change")
    # 06-01 … 06-03 closed: a file a day per table; 06-04 until 22:00 (the open hour): a file an hour
    names = [name.split("/", 2)[1:] for name in listed]
    assert (
        sorted(t for t, n in names if "T" not in n)
        == ["buckets"] * 3 + ["checkpoints"] * 3 + ["slo_series"] * 3
    )
    hours = {t: sorted(n[:13] for t2, n in names if t2 == t and "T" in n) for t in ("buckets", "slo_series")}
    assert hours["buckets"] == [f"2026-06-04T{h:02d}" for h in range(22)]  # 06-04 22:19 is the last bucket
    assert hours["slo_series"] == [f"2026-06-04T{h:02d}" for h in range(22)]


def store_series(
    writer: Writer, rows: list[tuple[int, int, float]], drops: list[tuple[int, int]]
) -> None:
    """Store series rows (slo_key, minute, sli) in place of the rows `drops` names, as the engine does."""
    con = writer.db
    frame = pd.DataFrame(rows, columns=["slo_key", "minute", "sli"])
    con.register("new_rows", frame)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE batch AS SELECT s.* REPLACE (n.slo_key::INTEGER AS slo_key,
           n.minute::INTEGER AS minute, n.sli AS sli) FROM new_rows n LEFT JOIN (SELECT * FROM slo_series
           LIMIT 0) s ON TRUE"""
    )
    con.unregister("new_rows")
    con.execute("CREATE OR REPLACE TEMP TABLE gone (slo_key INTEGER, since INTEGER)")
    for key, since in drops:
        con.execute("INSERT INTO gone VALUES (?, ?)", [key, since])
    con.execute("BEGIN TRANSACTION")
    partitions.store_rows(con, writer.data_dir, "slo_series", "temp.main.batch", drops="temp.main.gone")
    con.execute("COMMIT")
    partitions.store_view(con, writer.data_dir)


SERIES = "SELECT slo_key, minute - 29671200, sli FROM slo_series ORDER BY 1, 2"


def test_dropped_series_rows_leave_their_files_and_the_rest_stays(tmp_path: Path) -> None:
    """The engine replaces an SLO's series from a minute on (late data, or its first: evaluated again): the
    rows dropped go from the closed units' files and the open rows alike; other SLOs' rows stay."""
    day1 = [(key, DAY0 + m, 1.0) for key in (1, 2) for m in range(0, 2 * DAY + 61, 15 * 24)]
    with Writer(tmp_path) as writer:
        store_series(writer, day1, [])
        assert files(tmp_path, "slo_series") != []  # 06-01 and 06-02 are closed: files
        # key 1 from 06-02 00:00 on: replaced by one row at 06-02 12:00; key 2 from its first row, by nothing
        store_series(writer, [(1, DAY0 + DAY + 720, 0.5)], [(1, DAY0 + DAY), (2, DAY0)])
        writer.publish()
    assert read(tmp_path, SERIES) == [(1, m, 1.0) for m in range(0, DAY, 15 * 24)] + [(1, DAY + 720, 0.5)]
