"""Done-when: the rules from `slo rules`, loaded into a real Prometheus scraping a target whose errors
jump to 100 %, fire SLOBurnRateHigh{severity="page"} within a minute and a half.

The target is a tiny HTTP server in this process counting 100 requests a second, all answered 200
until the jump and all 500 after it. Prometheus scrapes it and evaluates the rules every second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.realparts import free_port, require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 90.0  # seconds from the jump to a firing page alert (the "minute and a half")

SPEC = """\
service: shop
owner: shop-team
slis:
  availability:
    good: sum(increase(shop_requests_total{code!~"5.."}[{{.window}}]))
    valid: sum(increase(shop_requests_total[{{.window}}]))
slos:
  - sli: availability
    target: 99.9%
    window: 30d
"""


class Target:
    """Counters of a service doing 100 requests a second; `fail()` makes every later request a 500."""

    RATE = 100.0

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.failing_since: float | None = None

    def fail(self) -> None:
        self.failing_since = time.monotonic()

    def exposition(self) -> bytes:
        now = time.monotonic()
        jump = self.failing_since if self.failing_since is not None else now
        ok = self.RATE * (jump - self.started)
        failed = self.RATE * (now - jump)
        text = (
            "# TYPE shop_requests_total counter\n"
            f'shop_requests_total{{code="200"}} {ok:.0f}\n'
            f'shop_requests_total{{code="500"}} {failed:.0f}\n'
        )
        return text.encode()


def _serve(target: Target) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = target.exposition()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: Prometheus scrapes every second
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _page_alerts(api: str) -> list[dict[str, Any]]:
    alerts = _get(f"{api}/api/v1/alerts")["data"]["alerts"]
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == "SLOBurnRateHigh"
        and a["labels"].get("severity") == "page"
        and a["state"] == "firing"
    ]


def _wait(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


def test_page_alert_fires_in_real_prometheus_when_errors_jump(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "shop.yaml").write_text(SPEC)
    rules = tmp_path / "rules.yaml"
    made = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "rules", str(tmp_path / "specs"), "-o", str(rules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr

    target = Target()
    server = _serve(target)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n"
        f"  - job_name: shop\n    static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    passed = False
    try:
        _wait(
            lambda: urllib.request.urlopen(f"{api}/-/ready", timeout=2).status == 200, 30, "Prometheus ready"
        )
        groups = _get(f"{api}/api/v1/rules")["data"]["groups"]
        assert [g["name"] for g in groups] == ["slo:shop/availability"]
        # A few healthy scrapes first, so the windows hold good traffic before the jump.
        _wait(
            lambda: (
                len(_get(f"{api}/api/v1/query?query=shop_requests_total")["data"]["result"]) == 2
                and time.monotonic() - target.started > 5
            ),
            30,
            "the first scrapes",
        )
        assert _page_alerts(api) == [], "a page alert fired while every request succeeded"
        target.fail()
        firing = _wait(lambda: _page_alerts(api), DEADLINE, "SLOBurnRateHigh{severity='page'} to fire")
        took = time.monotonic() - (target.failing_since or 0.0)
        print(f"page alert firing {took:.1f}s after the errors jumped to 100%: {firing[0]['labels']}")
        assert took < DEADLINE
        labels = firing[0]["labels"]
        assert labels["service"] == "shop" and labels["slo"] == "shop/availability"
        assert (labels["long_window"], labels["short_window"]) in {("1h", "5m"), ("6h", "30m")}
        passed = True
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        server.shutdown()
        server.server_close()
        log.close()
        if not passed:
            print((tmp_path / "prometheus.log").read_text()[-4000:])
