"""The DuckDB store (DESIGN §1): migrations, the single-writer lock, snapshot publishing and readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from pipelines.cycle import open_writer
from pipelines.errors import StoreError
from pipelines.store import (
    LOCK_FILE,
    MIGRATIONS,
    PUBLISHED_FILE,
    SNAPSHOT_FILE,
    WORK_FILE,
    Snapshot,
    Writer,
    connect,
    migrate,
)

REPO = Path(__file__).resolve().parents[2]


def _add_deploy(writer: Writer, version: str) -> None:
    writer.db.execute(
        "INSERT INTO deploys VALUES ('shop', TIMESTAMP '2026-06-01 00:00:00', ?, 'test')", [version]
    )


# --- migrations --------------------------------------------------------------------------------


def test_migrate_twice_records_version_once() -> None:
    con = connect()
    newest = MIGRATIONS[-1][0]
    assert [v for v, _ in MIGRATIONS] == list(range(1, newest + 1))
    assert migrate(con) == newest
    assert migrate(con) == newest
    assert con.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
        (v,) for v in range(1, newest + 1)
    ]


def test_reopening_the_writer_keeps_data_and_version(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        _add_deploy(writer, "v1")
    with Writer(tmp_path) as writer:
        assert writer.db.execute("SELECT max(version), count(*) FROM schema_version").fetchall() == [
            (MIGRATIONS[-1][0], MIGRATIONS[-1][0])
        ]
        assert writer.db.execute("SELECT service, version FROM deploys").fetchall() == [("shop", "v1")]


# --- the single writer -------------------------------------------------------------------------


def test_second_writer_is_refused_while_the_first_is_open(tmp_path: Path) -> None:
    with Writer(tmp_path):
        second = Writer(tmp_path)
        with pytest.raises(StoreError, match="another writer") as caught:
            second.__enter__()
        assert f"pid {os.getpid()}" in str(caught.value)
        assert second.con is None
    # released on exit: the next writer gets in
    with Writer(tmp_path) as writer:
        assert writer.db.execute("SELECT count(*) FROM slos").fetchone() == (0,)


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from pathlib import Path
                from pipelines.store import Writer
                with Writer(Path({str(tmp_path)!r})):
                    print("locked", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match="another writer") as caught:
            Writer(tmp_path).__enter__()
        assert f"pid {holder.pid}" in str(caught.value)
        assert (tmp_path / LOCK_FILE).read_text() == str(holder.pid)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with Writer(tmp_path) as writer:  # the lock died with its holder
        assert writer.db is not None


# --- publishing and reading ----------------------------------------------------------------------


def test_publish_writes_a_snapshot_next_to_the_work_file(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        _add_deploy(writer, "v1")
        assert not (tmp_path / SNAPSHOT_FILE).exists()
        assert writer.publish() == tmp_path / SNAPSHOT_FILE
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != LOCK_FILE)
    assert names == [PUBLISHED_FILE, SNAPSHOT_FILE, WORK_FILE]  # no temporary file left behind
    published = os.stat(tmp_path / SNAPSHOT_FILE)  # the record names the file just published
    assert json.loads((tmp_path / PUBLISHED_FILE).read_text()) == {
        "size": published.st_size,
        "mtime_ns": published.st_mtime_ns,
    }
    con = duckdb.connect(str(tmp_path / SNAPSHOT_FILE), read_only=True)
    try:
        assert con.execute("SELECT version FROM deploys").fetchall() == [("v1",)]
    finally:
        con.close()


def test_every_publish_carries_analytics_of_its_own_incidents(tmp_path: Path) -> None:
    """Whichever writer publishes, the snapshot's incident_durations and mttx_rollup describe its
    incidents: one resolved 40 min after impact (TTR 40), then the same store with it deleted."""
    snapshot = Snapshot(tmp_path)
    with open_writer(tmp_path) as writer:
        writer.db.execute(
            """INSERT INTO incidents (id, service, title, severity, status, source, fingerprint,
                 impact_start, detected_at, resolved_at, created_at, updated_at)
               VALUES ('INC-1', 'shop', 't', 'SEV2', 'resolved', 'test', 'f', TIMESTAMP '2026-07-01 10:00',
                 TIMESTAMP '2026-07-01 10:05', TIMESTAMP '2026-07-01 10:40', TIMESTAMP '2026-07-01 10:05',
                 TIMESTAMP '2026-07-01 10:40')"""
        )
        writer.publish()
        with snapshot.connection() as con:
            assert con.execute("SELECT id, quarter, ttd, ttr FROM incident_durations").fetchall() == [
                ("INC-1", "2026-Q3", 5.0, 40.0)
            ]
            assert con.execute(
                "SELECT incidents, ttr_p50 FROM mttx_rollup WHERE severity = '*' AND service = '*'"
            ).fetchall() == [(1, 40.0)]
        writer.db.execute("DELETE FROM incidents")
        writer.publish()
    with snapshot.connection() as con:
        assert con.execute("SELECT count(*) FROM incident_durations").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM mttx_rollup").fetchone() == (0,)
    snapshot.close()


def test_snapshot_before_any_publish_says_what_to_do(tmp_path: Path) -> None:
    snapshot = Snapshot(tmp_path)
    assert not snapshot.exists()
    with pytest.raises(StoreError, match="no published snapshot yet"), snapshot.connection():
        pass


def test_snapshot_sees_each_new_publish(tmp_path: Path) -> None:
    snapshot = Snapshot(tmp_path)
    with Writer(tmp_path) as writer:
        _add_deploy(writer, "v1")
        writer.publish()
        with snapshot.connection() as con:
            assert con.execute("SELECT version FROM deploys ORDER BY 1").fetchall() == [("v1",)]
        inode = os.stat(tmp_path / SNAPSHOT_FILE).st_ino

        _add_deploy(writer, "v2")
        with snapshot.connection() as con:  # not published yet: still the old file
            assert con.execute("SELECT version FROM deploys ORDER BY 1").fetchall() == [("v1",)]
        writer.publish()
    assert os.stat(tmp_path / SNAPSHOT_FILE).st_ino != inode
    with snapshot.connection() as con:  # the same Snapshot object, no reopening by hand
        assert con.execute("SELECT version FROM deploys ORDER BY 1").fetchall() == [("v1",), ("v2",)]
    snapshot.close()


def test_reader_does_not_block_publishing(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        _add_deploy(writer, "v1")
        writer.publish()
        reader = Snapshot(tmp_path)
        with reader.connection() as held:
            cursor = held.execute("SELECT version FROM deploys")
            _add_deploy(writer, "v2")
            writer.publish()  # while the reader's connection is open on the old snapshot
            # the reader keeps a consistent view of the file it attached
            assert cursor.fetchall() == [("v1",)]
            assert held.execute("SELECT count(*) FROM deploys").fetchone() == (1,)
        with Snapshot(tmp_path).connection() as fresh:
            assert fresh.execute("SELECT count(*) FROM deploys").fetchone() == (2,)
        reader.close()


def test_reader_in_another_process_does_not_block_publishing(tmp_path: Path) -> None:
    with Writer(tmp_path) as writer:
        _add_deploy(writer, "v1")
        writer.publish()
        reader = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    f"""
                    import sys
                    from pathlib import Path
                    from pipelines.store import Snapshot
                    snapshot = Snapshot(Path({str(tmp_path)!r}))
                    with snapshot.connection() as con:
                        print(con.execute("SELECT count(*) FROM deploys").fetchone()[0], flush=True)
                        sys.stdin.readline()
                        print(con.execute("SELECT count(*) FROM deploys").fetchone()[0], flush=True)
                    with snapshot.connection() as con:
                        print(con.execute("SELECT count(*) FROM deploys").fetchone()[0], flush=True)
                    """
                ),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert reader.stdout is not None and reader.stdin is not None
            assert reader.stdout.readline().strip() == "1"
            _add_deploy(writer, "v2")
            writer.publish()
            reader.stdin.write("\n")
            reader.stdin.flush()
            # the open connection still reads the old snapshot; the next one sees the new publish
            assert [reader.stdout.readline().strip() for _ in range(2)] == ["1", "2"]
            assert reader.wait(timeout=30) == 0
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
