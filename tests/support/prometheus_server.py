"""A real Prometheus for tests: backfill OpenMetrics with promtool, serve it on a free loopback port.

backfill(files, tsdb)           `promtool tsdb create-blocks-from openmetrics` per file
prometheus_server(tsdb, log)    start /usr/bin/prometheus on 127.0.0.1, wait until ready, and
                                always stop it (SIGCONT first, in case a test SIGSTOPped it)
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import ssl
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
    ca_file: Path | None = None  # set when serving TLS
    auth: tuple[str, str] | None = None  # set when basic auth is required

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


# Basic auth for tests: user `slo`, password TEST_PASSWORD; Prometheus wants the bcrypt hash
# (made once with crypt.crypt(TEST_PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))).
TEST_USER = "slo"
TEST_PASSWORD = "s3cret-for-tests"
TEST_PASSWORD_BCRYPT = "$2b$04$pASFyF3kpxRR0aFxFYUHNu/NpRXKXcaUItLjU8azNA1tUsS7TX9na"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, made by the openssl command."""
    openssl = require_binary("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@contextlib.contextmanager
def prometheus_server(tsdb: Path, log: Path, secure: bool = False) -> Iterator[RunningPrometheus]:
    """Prometheus serving `tsdb` (no scrape targets) with a 100-year retention, for old backfilled data.

    `secure`: HTTPS with a self-signed certificate and basic auth (TEST_USER / TEST_PASSWORD), set up
    through Prometheus's own --web.config.file.
    """
    binary = require_binary("prometheus")
    port = free_port()
    config = log.with_suffix(".yml")
    config.write_text("global:\n  scrape_interval: 1m\n")
    extra: list[str] = []
    ca_file = None
    if secure:
        ca_file, key = self_signed_certificate(log.parent)
        web = log.with_suffix(".web.yml")
        web.write_text(
            f"tls_server_config:\n  cert_file: {ca_file}\n  key_file: {key}\n"
            f"basic_auth_users:\n  {TEST_USER}: {TEST_PASSWORD_BCRYPT}\n"
        )
        extra.append(f"--web.config.file={web}")
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tsdb}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    scheme = "https" if secure else "http"
    server = RunningPrometheus(
        f"{scheme}://127.0.0.1:{port}", process, log, ca_file, (TEST_USER, TEST_PASSWORD) if secure else None
    )
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
        request = urllib.request.Request(f"{server.url}/-/ready")
        if server.auth:
            token = base64.b64encode(":".join(server.auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=str(server.ca_file)) if server.ca_file else None
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"prometheus not ready within {READY_SECONDS}s:\n{server.log_tail()}")
