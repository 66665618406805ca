"""Browser tests: the dashboard as a real Streamlit server, driven by Debian's Chromium via Playwright.

DESIGN §4: `executable_path="/usr/bin/chromium"` with the listed flags; never `playwright install`.
Servers bind 127.0.0.1 on free ports and are stopped (and their logs printed on failure) by the
fixtures. Screenshots go to `data/screenshots/` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dashboard_store import ROOT, DemoStore, build_demo_store
from tests.support.realparts import free_port, require_binary

SCREENSHOTS = ROOT / "data" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    return build_demo_store(tmp_path_factory)


# Module scope: a sync Playwright left running would break other suites' own sync_playwright() calls.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    path = require_binary("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        pytest.fail("playwright (Python package) is not installed: pip install -e '.[dev]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Server:
    """A child process serving HTTP on 127.0.0.1:port, its output kept in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path, port: int):
        self.name, self.port, self.log = name, port, log
        self.url = f"http://127.0.0.1:{port}"
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._fh, stderr=subprocess.STDOUT)

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + path, timeout=1) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.3)
        raise AssertionError(f"{self.name} not ready on {self.url}{path} after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self._fh.flush()
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


@contextlib.contextmanager
def dashboard_server(
    data_dir: Path, log_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "SLO_DATA_DIR": str(data_dir), **(extra_env or {})}
    server = Server(
        "dashboard",
        [sys.executable, "-m", "pipelines.cli", "dashboard", "--port", str(port)],
        env,
        log_dir / f"dashboard-{port}.log",
        port,
    )
    try:
        server.wait_ready("/_stcore/health")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dashboard(store: DemoStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No service here: SLO_SERVICE_URL points at a closed port.
    with dashboard_server(
        store.data_dir,
        tmp_path_factory.mktemp("logs"),
        {"SLO_SERVICE_URL": f"http://127.0.0.1:{free_port()}"},
    ) as server:
        yield server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("dashboard", "service_stack", "stack"):
            server = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            for s in getattr(server, "servers", [server]) if server else []:
                if isinstance(s, Server):
                    report.sections.append((f"{s.name} log", s.output()))
