"""The dashboard's pure parts: the stale banner and freshness notes, period bounds, percentiles, the
launch command line, and the service-state check against a real (closed / open) loopback port. (The
quarterly review is the analytics module's; its renderers are tested with it.)"""

from __future__ import annotations

import datetime as dt
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from dashboard import actions, auth, freshness, queries
from dashboard.queries import snapshot_version
from pipelines import launch
from pipelines.store import SNAPSHOT_FILE

NOW = dt.datetime(2026, 11, 23, 12, 0)
FRESH = {"evaluated_to": pd.Timestamp("2026-11-23 11:59"), "last_run_at": NOW, "last_run_source": "demo"}


DOWN = "prometheus unreachable"


def row(slo: str, data_status: str = "ok", **extra: object) -> dict[str, object]:
    return {"slo": slo, "data_status": data_status, "alerts": [], **extra}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # nothing stale in the status rows: no banner, however old the evaluation
        ([row("a/x", stale=False)], []),
        # stale where `slo status` says so, one line per reason with its SLOs
        (
            [row("b/y", stale=True, stale_reason=DOWN, stale_since="2026-11-23T11:00:00Z"),
             row("a/x", stale=True, stale_reason=DOWN, stale_since="2026-11-23T11:00:00Z"),
             row("c/z", stale=False)],
            ["prometheus unreachable (since 2026-11-23 11:00 UTC): a/x, b/y"],
        ),
        ([row("a/x", stale=True)], ["the last pull failed: a/x"]),
    ],
)  # fmt: skip
def test_stale_reasons_are_the_status_rows_stale_flags(
    rows: list[dict[str, object]], expected: list[str]
) -> None:
    assert freshness.stale_reasons(rows) == expected


@pytest.mark.parametrize(
    ("rows", "fresh", "expected"),
    [
        ([row("a/x")], FRESH, []),
        # evaluated 2 hours ago: a note (the CLI's status says nothing stale)
        (
            [row("a/x")],
            {**FRESH, "evaluated_to": pd.Timestamp("2026-11-23 10:00")},
            [
                "evaluated up to 2026-11-23 10:00 UTC, 2.0 h ago "
                "(last pipeline run: demo at 2026-11-23 12:00 UTC)"
            ],
        ),
        (
            [row("a/x")],
            {"evaluated_to": pd.Timestamp("2026-11-20 12:00"), "last_run_at": None, "last_run_source": None},
            ["evaluated up to 2026-11-20 12:00 UTC, 3.0 days ago (no pipeline run recorded)"],
        ),
        # data_status per SLO, as the CLI's `note:` lines
        (
            [row("a/x", "no_recent_data"), row("b/y", "no_data"), row("c/z")],
            FRESH,
            ["no recent data: a/x", "no data: b/y"],
        ),
        (
            [row(f"s/{i}", "no_recent_data") for i in range(7)],
            FRESH,
            ["no recent data: s/0, s/1, s/2, s/3, s/4 and 2 more"],
        ),
    ],
)  # fmt: skip
def test_freshness_notes(
    rows: list[dict[str, object]], fresh: dict[str, object], expected: list[str]
) -> None:
    assert freshness.notes(rows, fresh, NOW) == expected


def test_period_bounds_month_and_quarter() -> None:
    minute = int(dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC).timestamp() // 60)
    assert [queries.ts(m) for m in queries.period_bounds(minute, "month")] == [
        pd.Timestamp("2026-11-01"),
        pd.Timestamp("2026-12-01"),
    ]
    assert [queries.ts(m) for m in queries.period_bounds(minute, "quarter")] == [
        pd.Timestamp("2026-10-01"), pd.Timestamp("2027-01-01")]  # fmt: skip


def test_percentiles_interpolate_linearly_like_numpy() -> None:
    # p50 of 10, 20, 30, 40 is 25; p90 is 30 + 0.7 × 10 = 37
    s = queries.percentile_summary(pd.Series([40.0, None, 10.0, 30.0, 20.0]))
    assert s == {"count": 4, "p50": 25.0, "p90": 37.0, "mean": 25.0}
    assert queries.percentile_summary(pd.Series([], dtype=float))["count"] == 0


def test_dashboard_command_binds_loopback_and_never_calls_out() -> None:
    cmd = launch.dashboard_command(8765)
    assert cmd[1:4] == ["-m", "streamlit", "run"]
    assert cmd[4] == str(launch.ROOT / "dashboard" / "app.py")
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--server.port"] == "8765"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"


def test_service_state_reads_health_then_the_writer_lock(tmp_path: Path) -> None:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert actions.service_state(tmp_path, url).running
    finally:
        server.shutdown()
        server.server_close()
    closed = f"http://127.0.0.1:{server.server_port}"
    state = actions.service_state(tmp_path, closed)
    assert not state.running and "not running" in state.detail
    # A lock file naming a live pipeline process counts as a running writer …
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "pipelines.cli", "serve"])
    try:
        deadline = time.monotonic() + 10  # until the child has exec'ed (a fork still shows pytest)
        while b"pipelines.cli" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (tmp_path / "writer.lock").write_text(str(proc.pid))
        assert actions.service_state(tmp_path, closed).running
    finally:
        proc.kill()
        proc.wait()
    # … another live process (this one, pytest) is not the pipeline …
    (tmp_path / "writer.lock").write_text(str(os.getpid()))
    assert not actions.service_state(tmp_path, closed).running
    # … a dead pid does not.
    (tmp_path / "writer.lock").write_text("999999999")
    assert not actions.service_state(tmp_path, closed).running


def test_send_command_refuses_unknown_commands(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not one of"):
        actions.send_command(tmp_path, "delete_everything", "INC-1", auth.LOCAL)
    assert not (tmp_path / "inbox.sqlite3").exists() or actions.Inbox(tmp_path).count() == 0


def test_the_cache_key_of_a_snapshot_is_more_than_its_inode(tmp_path: Path) -> None:
    """A file system gives a freed inode to a later file: two publishes apart, a new snapshot may carry
    the number of an old one whose results are cached. Its time and size tell them apart."""
    snap = tmp_path / SNAPSHOT_FILE
    snap.write_bytes(b"first publish")
    first = snapshot_version(tmp_path)
    os.utime(snap, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert os.stat(snap).st_ino == int(str(first).split(":")[1])  # the same inode …
    assert snapshot_version(tmp_path) != first  # … another file
    snap.write_bytes(b"third publish, longer")
    os.utime(snap, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert len({first, snapshot_version(tmp_path)}) == 2
    snap.unlink()
    assert snapshot_version(tmp_path) is None


def test_the_prefetch_takes_the_slow_queries_read_lately(monkeypatch: pytest.MonkeyPatch) -> None:
    """A review read in the last ten minutes is computed again for each new snapshot (most recently read
    first); one nobody asked for since is dropped; another data directory's are not this one's."""
    monkeypatch.setattr(queries, "_asked", {})
    queries._asked[("/d", "quarterly_review", ("2026-Q3", None))] = 1000.0
    queries._asked[("/d", "quarter_deploys", ("2026-Q3", 4))] = 1300.0
    queries._asked[("/other", "quarterly_review", ("2026-Q2", None))] = 1350.0
    queries._asked[("/d", "quarterly_review", ("2026-Q1", None))] = 700.0  # 11 min before 1360
    assert queries.recently_asked("/d", 1360.0) == [
        ("quarter_deploys", ("2026-Q3", 4)),
        ("quarterly_review", ("2026-Q3", None)),
    ]
    assert ("/d", "quarterly_review", ("2026-Q1", None)) not in queries._asked
