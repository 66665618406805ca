"""`slo serve` as a real subprocess on a free loopback port, for integration tests and the benchmark.

    with running_service(tmp_path, token="t") as svc:
        svc.post("/api/incidents/ingest", body, headers) → (status, json)

The service's output goes to a log file that is printed when the test fails (datasette's habit), and
the process is always stopped: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.realparts import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    token: str | None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data.decode(errors="replace")

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        head = {"content-type": "application/json"}
        if self.token:
            head["authorization"] = f"Bearer {self.token}"
        head.update(headers or {})
        return self.request("POST", path, body, head)

    def health(self) -> dict[str, Any]:
        status, body = self.request("GET", "/api/health")
        assert status == 200, body
        return dict(body)


def start_service(
    tmp_path: Path,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    name: str = "service",
    port: int | None = None,
    data_dir: Path | None = None,
    startup_timeout: float = 30.0,
) -> Service:
    port = port or free_port()
    data_dir = data_dir or tmp_path / "data"
    log_path = tmp_path / f"{name}.log"
    full_env = {
        **os.environ,
        "SLO_DATA_DIR": str(data_dir),
        "SLO_SPECS_DIR": str(tmp_path / "specs"),  # none: the worker cycles without SLOs
        "SLO_CYCLE_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    full_env.pop("SLO_INGEST_TOKEN", None)
    if token:
        full_env["SLO_INGEST_TOKEN"] = token
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    svc = Service(proc, port, data_dir, log_path, token, full_env)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"slo serve exited with {proc.returncode}:\n{svc.log()}")
        with contextlib.suppress(OSError):
            if svc.request("GET", "/api/health", timeout=2)[0] == 200:
                return svc
        time.sleep(0.1)
    stop_service(svc)
    raise RuntimeError(f"slo serve did not answer within {startup_timeout}s:\n{svc.log()}")


def stop_service(svc: Service, grace: float = 15.0) -> int:
    if svc.proc.poll() is None:
        svc.proc.send_signal(signal.SIGTERM)
        try:
            svc.proc.wait(grace)
        except subprocess.TimeoutExpired:
            svc.proc.kill()
            svc.proc.wait(10)
    return svc.proc.returncode


@contextlib.contextmanager
def running_service(tmp_path: Path, **kwargs: Any) -> Iterator[Service]:
    svc = start_service(tmp_path, **kwargs)
    try:
        yield svc
    except BaseException:
        print(f"--- slo serve log ({svc.log_path}) ---\n{svc.log()}", file=sys.stderr)
        raise
    finally:
        stop_service(svc)
