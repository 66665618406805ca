"""A published snapshot that was emptied, cut short or overwritten (issue 11, point 7).

Over the small review store (`tests/support/review_store.py`: 2 SLOs, incidents INC-1…INC-4):
- every reader says `snapshot unreadable (…); the next cycle rebuilds it` in one line, exit 1, no traceback:
  `slo status`, `slo incidents list`, `slo report quarterly` as real subprocesses;
- the service worker's next cycle republishes it from the work file, after which the same commands
  read the same incidents and the same status again;
- `slo serve` answers /api/incidents with 503 and that line while it is unreadable, /api/health still
  answers and says so, and its worker rebuilds the snapshot within a few cycles.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.config import Settings
from pipelines.cycle import republish_if_unreadable
from pipelines.service.worker import idle_cycle
from pipelines.store import HEADER_BYTES, SNAPSHOT_FILE, snapshot_problem
from tests.support.cli import slo
from tests.support.review_store import build_review_store
from tests.support.service import running_service

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

BLOCK = 256 * 1024  # DuckDB's block size: data blocks follow the 12 KiB of headers
INCIDENTS = ["INC-1", "INC-2", "INC-3", "INC-4"]  # what the review store holds (its docstring)
READERS = {
    "status": ["status", "--json"],
    "incidents list": ["incidents", "list", "--json"],
    "report quarterly": ["report", "quarterly", "--quarter", "2026-Q3", "--format", "json", "--no-backtest"],
}


def _garbage(path: Path, start: int, length: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(bytes((i * 151 + 7) % 256 for i in range(length)))  # fixed, so every run sees the same


def _every_block(path: Path) -> None:
    """4 KiB of garbage at the start of every block (where a small table's compressed data sits, with
    the block's checksum): whatever a reader reads is damaged."""
    size = path.stat().st_size
    for block_start in range(HEADER_BYTES, size, BLOCK):
        _garbage(path, block_start, 4096)


# Damage that leaves nothing readable: each of the three readers must say so.
UNREADABLE: dict[str, Callable[[Path], None]] = {
    "emptied": lambda p: os.truncate(p, 0),
    "cut to 100 bytes": lambda p: os.truncate(p, 100),
    "cut to its first data block": lambda p: os.truncate(p, HEADER_BYTES + BLOCK),
    "database headers overwritten": lambda p: _garbage(p, 4096, 8192),
    "every block's start overwritten": _every_block,
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pristine")
    build_review_store(base / "data", base / "specs")
    return base


def _copy(pristine: Path, to: Path) -> Settings:
    shutil.copytree(pristine / "data", to / "data")
    shutil.copytree(pristine / "specs", to / "specs")
    return Settings(data_dir=to / "data", specs_dir=to / "specs")




def _readings(data_dir: Path) -> dict[str, Any]:
    """What the readers show: status rows without their evaluation instant, incident ids, the report's
    incident totals."""
    out: dict[str, Any] = {}
    for name, args in READERS.items():
        done = slo(data_dir, *args)
        assert done.returncode == 0, (name, done.stderr)
        out[name] = json.loads(done.stdout)
    return {
        "status": sorted(
            (r["slo"], r["sli"], r["budget_remaining"], r["policy_state"]) for r in out["status"]
        ),
        "incidents": sorted(r["id"] for r in out["incidents list"]),
        "report": out["report quarterly"]["incidents"],
    }


def _one_line_unreadable(done: subprocess.CompletedProcess[str], path: Path) -> str:
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and done.stdout == "" and len(lines) == 1, (done.returncode, done.stderr)
    [line] = lines
    assert line.startswith(f"error: snapshot unreadable ({path}: "), line
    assert line.endswith("); the next cycle rebuilds it"), line
    return line


@pytest.mark.parametrize("damage", list(UNREADABLE))
def test_every_reader_says_unreadable_in_one_line_and_the_next_cycle_rebuilds_it(
    pristine: Path, tmp_path: Path, damage: str
) -> None:
    settings = _copy(pristine, tmp_path)
    before = _readings(settings.data_dir)
    assert before["incidents"] == INCIDENTS

    snapshot = settings.data_dir / SNAPSHOT_FILE
    UNREADABLE[damage](snapshot)
    for name, args in READERS.items():
        line = _one_line_unreadable(slo(settings.data_dir, *args), snapshot)
        print(f"{damage} · {name}: {line}")

    problem = snapshot_problem(settings.data_dir)
    assert problem is not None
    idle_cycle(settings)()  # the service worker's cycle: it reads the snapshot before it evaluates
    assert snapshot_problem(settings.data_dir) is None
    assert _readings(settings.data_dir) == before


def test_garbage_over_the_middle_half_is_found_by_whichever_reader_meets_it(
    pristine: Path, tmp_path: Path
) -> None:
    """Damage in the middle of the file hits some tables and not others: a reader that meets it says the
    one line, one that does not reads as before; the cycle still republishes, since the file is no longer
    the one published (the check is not left to whichever query happens to meet the damage)."""
    settings = _copy(pristine, tmp_path)
    before = _readings(settings.data_dir)
    snapshot = settings.data_dir / SNAPSHOT_FILE
    size = snapshot.stat().st_size
    _garbage(snapshot, size // 4, size // 2)

    failed = []
    for name, args in READERS.items():
        done = slo(settings.data_dir, *args)
        if done.returncode == 0:
            assert done.stderr == "", done.stderr
            continue
        _one_line_unreadable(done, snapshot)
        failed.append(name)
    print(f"readers that met the damage: {failed}")
    assert "status" in failed  # the SLO tables sit in the middle of this store's file

    inode = snapshot.stat().st_ino
    assert republish_if_unreadable(settings.data_dir) is not None
    assert snapshot.stat().st_ino != inode  # a new file, atomically replaced
    assert _readings(settings.data_dir) == before
    assert republish_if_unreadable(settings.data_dir) is None  # healthy now: nothing to do


def test_damage_the_first_read_does_not_meet_is_found_because_the_file_changed(
    pristine: Path, tmp_path: Path
) -> None:
    """Garbage at the start of the quarterly roll-up's block (the file's last block when the snapshot
    was a copy of the work file; the snapshot's own layout now puts it elsewhere): attaching and the
    first query still work, the report does not; the cycle's check republishes anyway, because the
    file is not the one the last publish recorded."""
    settings = _copy(pristine, tmp_path)
    before = _readings(settings.data_dir)
    snapshot = settings.data_dir / SNAPSHOT_FILE
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        ((block,),) = con.execute(
            "SELECT min(block_id) FROM pragma_storage_info('mttx_rollup') WHERE block_id >= 0"
        ).fetchall()
    finally:
        con.close()
    _garbage(snapshot, HEADER_BYTES + block * BLOCK, 4096)

    assert slo(settings.data_dir, *READERS["incidents list"]).returncode == 0
    _one_line_unreadable(slo(settings.data_dir, *READERS["report quarterly"]), snapshot)
    assert republish_if_unreadable(settings.data_dir) == (
        "changed since it was published (written in place, or replaced by another file)"
    )
    assert _readings(settings.data_dir) == before


def test_a_healthy_snapshot_is_left_alone(pristine: Path, tmp_path: Path) -> None:
    settings = _copy(pristine, tmp_path)  # copied with its times: still the file its record names
    inode = (settings.data_dir / SNAPSHOT_FILE).stat().st_ino
    assert snapshot_problem(settings.data_dir) is None
    assert republish_if_unreadable(settings.data_dir) is None
    assert (settings.data_dir / SNAPSHOT_FILE).stat().st_ino == inode


def _incident_ids(status: int, body: Any) -> list[str] | None:
    return sorted(r["id"] for r in body) if status == 200 else None


def test_the_service_answers_503_while_unreadable_and_its_worker_rebuilds_it(
    pristine: Path, tmp_path: Path
) -> None:
    settings = _copy(pristine, tmp_path)
    snapshot = settings.data_dir / SNAPSHOT_FILE
    os.truncate(snapshot, 100)

    with running_service(tmp_path, name="no-worker", env={"SLO_CYCLE_SECONDS": "0"}) as svc:
        status, body = svc.request("GET", "/api/incidents")
        assert status == 503, body
        assert body == {
            "error": "unavailable",
            "detail": f"snapshot unreadable ({snapshot}: 100 bytes, shorter than a DuckDB header "
            f"({HEADER_BYTES} bytes)); the next cycle rebuilds it",
        }
        health = svc.health()
        assert health["snapshot"]["readable"] is False
        assert health["snapshot"]["error"] == body["detail"]

    started = time.monotonic()
    with running_service(tmp_path, name="worker", env={"SLO_CYCLE_SECONDS": "1"}) as svc:
        ids = None
        while ids is None and time.monotonic() - started < 30:
            ids = _incident_ids(*svc.request("GET", "/api/incidents"))
            time.sleep(0.2)
        print(f"/api/incidents answered again {time.monotonic() - started:.1f} s after the service started")
        assert ids == INCIDENTS
        health = svc.health()
        assert health["snapshot"]["readable"] is True and health["snapshot"]["error"] is None
        assert health["worker"]["failures"] == 0, health["worker"]
        assert "republished from the work file" in svc.log()
