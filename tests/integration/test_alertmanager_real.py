"""A real Alertmanager (Debian's prometheus-alertmanager) routes alerts to `slo serve`: they reach the
inbox within seconds, a repeat notification of the group is recognised as a duplicate, and the
resolution arrives as a new notification of the same alert (same fingerprint)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.inbox import Inbox
from tests.support.realparts import free_port, require_binary
from tests.support.service import running_service

pytestmark = pytest.mark.integration

TOKEN = "am-token"

CONFIG = """
route:
  receiver: slo
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: slo
    webhook_configs:
      - url: http://127.0.0.1:{port}/api/incidents/ingest
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


def am_request(base: str, method: str, path: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        base + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"within {timeout}s: {what}")


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_real_alertmanager_posts_to_the_service(tmp_path: Path) -> None:
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    with running_service(tmp_path, token=TOKEN) as svc:
        am_port = free_port()
        (tmp_path / "alertmanager.yml").write_text(CONFIG.format(port=svc.port, token=TOKEN))
        log_path = tmp_path / "alertmanager.log"
        with open(log_path, "wb") as log:
            am = subprocess.Popen(
                [
                    binary,
                    f"--config.file={tmp_path / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                    "--log.level=debug",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{am_port}"
        inbox = Inbox(svc.data_dir)
        try:
            wait_for(lambda: _ready(base), "Alertmanager ready")
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            labels = {
                "alertname": "SLOBurnRateHigh",
                "service": "checkout-api",
                "slo": "availability",
                "severity": "page",
                "long_window": "1h",
                "short_window": "5m",
            }
            first = {
                "labels": labels,
                "startsAt": iso(now - dt.timedelta(minutes=1)),
                "annotations": {"summary": "checkout-api/availability burns 14.4x"},
            }
            am_request(base, "POST", "/api/v2/alerts", [first])
            took = wait_for(lambda: inbox.count() >= 1, "the first alert in the inbox")
            print(f"first alert in the inbox {took:.1f}s after it was posted to Alertmanager")
            (fp,) = [a["fingerprint"] for a in am_request(base, "GET", "/api/v2/alerts")]
            (row,) = inbox.read_since(0)
            assert (row.kind, row.source) == ("alert", "alertmanager")
            assert {
                k: row.body[k] for k in ("status", "service", "slo", "severity", "fingerprint", "ends_at")
            } == {
                "status": "firing",
                "service": "checkout-api",
                "slo": "checkout-api/availability",
                "severity": "SEV2",
                "fingerprint": fp,
                "ends_at": None,
            }

            # A second alert in the same group: Alertmanager re-sends the group, the first one included.
            second = {
                "labels": {**labels, "long_window": "6h", "short_window": "30m"},
                "startsAt": iso(now),
                "annotations": {"summary": "slow burn"},
            }
            am_request(base, "POST", "/api/v2/alerts", [second])
            wait_for(lambda: inbox.count() >= 2, "the second alert in the inbox")
            wait_for(lambda: svc.health()["ingest"].get("duplicates", 0) >= 1, "the repeat recognised")
            time.sleep(1.5)  # another group_interval: nothing new may appear
            assert inbox.count() == 2

            # Resolve the first: the same fingerprint arrives resolved, a new row.
            am_request(base, "POST", "/api/v2/alerts", [{**first, "endsAt": iso(dt.datetime.now(dt.UTC))}])
            wait_for(lambda: inbox.count() >= 3, "the resolution in the inbox")
            rows = inbox.read_since(0)
            resolved = [r.body for r in rows if r.body["status"] == "resolved"]
            assert [(r["fingerprint"], r["ends_at"] is not None) for r in resolved] == [(fp, True)]
            health = svc.health()
            print("service ingest counters:", health["ingest"])
            assert health["ingest"].get("401", 0) == 0  # Alertmanager sent the bearer token
        except BaseException:
            print(log_path.read_text(errors="replace")[-5000:])
            raise
        finally:
            am.terminate()
            try:
                am.wait(10)
            except subprocess.TimeoutExpired:
                am.kill()
                am.wait(5)
            inbox.close()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
