"""`slo import incidents` refuses times outside 2000-01-01 … now + 1 day (issue 11, point 1), as a real
subprocess: the fixture files (`tests/fixtures/statuspage/out_of_range.json`, `tests/fixtures/csv/
out_of_range.csv`) each hold one good incident, one in year 1 and one in year 9999. Each file is refused
whole, exit 1, every problem named by file:line; nothing reaches the inbox or the snapshot."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path

import pytest

from pipelines.inbox import Inbox
from pipelines.store import SNAPSHOT_FILE, Snapshot
from tests.support.cli import slo
from tests.support.review_store import build_review_store

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
pytestmark = pytest.mark.integration

RANGE = r"is outside the accepted range 2000-01-01T00:00:00Z … (\S+)Z \(2000-01-01 to one day after receipt\)"
CASES = {
    "statuspage": (
        FIXTURES / "statuspage" / "out_of_range.json",
        [
            "out_of_range.json:18: incidents[1] (id year1).started_at: 0001-01-01T00:00:00Z ",
            "out_of_range.json:28: incidents[2] (id year9999).resolved_at '9999-12-31T23:59:59-05:00': "
            "9999-12-31T23:59:59Z ",
        ],
    ),
    "csv": (
        FIXTURES / "csv" / "out_of_range.csv",
        [
            "out_of_range.csv:3: impact_start: 0001-01-01T00:00:00Z ",
            "out_of_range.csv:4: resolved_at: 9999-12-31T23:59:59Z ",
        ],
    ),
}




def _assert_refused(done: subprocess.CompletedProcess[str], path: Path, starts: list[str]) -> None:
    assert done.returncode == 1 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    *problems, last = done.stderr.splitlines()
    assert last == f"{len(starts)} problem(s); nothing was imported"
    assert len(problems) == len(starts), problems
    tomorrow = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1)
    for problem, start in zip(problems, starts, strict=True):
        assert problem.startswith(f"{path.parent}/{start}"), problem
        upper = re.fullmatch(re.escape(f"{path.parent}/{start}") + RANGE, problem)
        assert upper, problem
        assert abs(dt.datetime.fromisoformat(upper.group(1)) - tomorrow) < dt.timedelta(minutes=2)


@pytest.mark.parametrize("fmt", list(CASES))
def test_a_file_with_a_year_1_and_a_year_9999_row_is_refused_whole(tmp_path: Path, fmt: str) -> None:
    path, starts = CASES[fmt]
    _assert_refused(slo(tmp_path, "import", "incidents", "--format", fmt, str(path)), path, starts)
    assert Inbox(tmp_path).count() == 0
    assert not (tmp_path / SNAPSHOT_FILE).exists()


def _incident_ids(data_dir: Path) -> list[str]:
    snapshot = Snapshot(data_dir)
    try:
        with snapshot.connection() as con:
            return [r[0] for r in con.execute("SELECT id FROM incidents ORDER BY id").fetchall()]
    finally:
        snapshot.close()


@pytest.mark.parametrize("fmt", list(CASES))
def test_into_a_store_nothing_changes_and_without_those_rows_the_file_imports(
    tmp_path: Path, fmt: str
) -> None:
    build_review_store(tmp_path / "data", tmp_path / "specs")
    data_dir = tmp_path / "data"
    inbox_before, ids_before = Inbox(data_dir).count(), _incident_ids(data_dir)
    assert ids_before == ["INC-1", "INC-2", "INC-3", "INC-4"]
    path, starts = CASES[fmt]
    _assert_refused(slo(data_dir, "import", "incidents", "--format", fmt, str(path)), path, starts)
    assert (Inbox(data_dir).count(), _incident_ids(data_dir)) == (inbox_before, ids_before)

    # The same file with only the good incident: accepted, so the times were what was refused.
    good = tmp_path / path.name
    if fmt == "csv":
        good.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")
        expected = "IMP-7"
    else:
        doc = json.loads(path.read_text())
        doc["incidents"] = doc["incidents"][:1]
        good.write_text(json.dumps(doc, indent=2))
        expected = "IMP-ok1"
    done = slo(data_dir, "import", "incidents", "--format", fmt, str(good), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"] == 1
    assert _incident_ids(data_dir) == sorted([*ids_before, expected])
