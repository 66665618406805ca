"""A real Prometheus for tests: backfill OpenMetrics with promtool, serve it on a free loopback port.

backfill(files, tsdb)           `promtool tsdb create-blocks-from openmetrics` per file
prometheus_server(tsdb, log)    start /usr/bin/prometheus on 127.0.0.1, wait until ready, and
                                always stop it (SIGCONT first, in case a test SIGSTOPped it)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.realparts import free_port, require_binary

READY_SECONDS = 30


def backfill(files: Sequence[Path], tsdb: Path) -> None:
    """Turn OpenMetrics files (one per UTC day keeps promtool fast) into TSDB blocks under `tsdb`."""
    promtool = require_binary("promtool")
    tsdb.mkdir(parents=True, exist_ok=True)
    for path in files:
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(path), str(tsdb)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise AssertionError(f"promtool backfill of {path} failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class RunningPrometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def query_range_requests(self) -> float:
        """How many /api/v1/query_range requests this server has answered (its own metrics)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query_range"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


@contextlib.contextmanager
def prometheus_server(tsdb: Path, log: Path) -> Iterator[RunningPrometheus]:
    """Prometheus serving `tsdb` (no scrape targets) with a 100-year retention, for old backfilled data."""
    binary = require_binary("prometheus")
    port = free_port()
    config = log.with_suffix(".yml")
    config.write_text("global:\n  scrape_interval: 1m\n")
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tsdb}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = RunningPrometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server we started, also when a test left it SIGSTOPped or already killed it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_ready(server: RunningPrometheus) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"prometheus not ready within {READY_SECONDS}s:\n{server.log_tail()}")
