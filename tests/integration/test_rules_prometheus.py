"""Done-when: the rules from `slo rules`, loaded into a real Prometheus scraping a target whose errors
jump to 100 %, fire SLOBurnRateHigh{severity="page"} within a minute and a half — and the README
guide's alertmanager.yml delivers it to the ingest endpoint with the bearer token.

The target is a tiny HTTP server in this process counting 100 requests a second, all answered 200
until the jump and all 500 after it. Prometheus scrapes it and evaluates the rules every second and
sends alerts to a real Alertmanager configured with the guide's route and receiver; the receiver's
URL points at a small HTTP server here standing in for `slo serve` (another branch), which records
what Alertmanager posts.
"""

from __future__ import annotations

import json
import re
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


class Ingest:
    """Records the webhooks Alertmanager posts, as `slo serve`'s ingest endpoint would receive them."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, dict[str, Any]]] = []  # (path, Authorization, body)
        self.lock = threading.Lock()

    def serve(self) -> ThreadingHTTPServer:
        ingest = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with ingest.lock:
                    ingest.posts.append((self.path, self.headers.get("Authorization", ""), body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def page_alerts(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self.lock:
            return [
                (path, auth, alert)
                for path, auth, body in self.posts
                for alert in body.get("alerts", [])
                if alert["labels"].get("alertname") == "SLOBurnRateHigh"
                and alert["labels"].get("severity") == "page"
                and alert["status"] == "firing"
            ]


def _guide_alertmanager_yml(ingest_port: int, token_file: Path) -> str:
    """The README guide's alertmanager.yml, with only the port, token path and group_wait changed."""
    guide = (ROOT / "docs" / "alerting.md").read_text()
    text = re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL)[1]
    assert "url: http://127.0.0.1:8080/api/incidents/ingest" in text
    return (
        text.replace("127.0.0.1:8080", f"127.0.0.1:{ingest_port}")
        .replace("/etc/alertmanager/slo_ingest_token", str(token_file))
        .replace("group_wait: 10s", "group_wait: 1s")
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


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


def test_page_alert_fires_in_real_prometheus_and_reaches_the_ingest_endpoint(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager", "alertmanager")
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

    target, ingest = Target(), Ingest()
    servers = [_serve(target), ingest.serve()]
    token = tmp_path / "slo_ingest_token"
    token.write_text("test-ingest-token\n")
    am_port, port = free_port(), free_port()
    (tmp_path / "alertmanager.yml").write_text(_guide_alertmanager_yml(servers[1].server_address[1], token))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules}]\n"
        f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]}}]}}\n"
        "scrape_configs:\n"
        "  - job_name: shop\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{servers[0].server_address[1]}']}}]\n"
    )
    api = f"http://127.0.0.1:{port}"
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("prometheus", "alertmanager")}
    processes = [
        subprocess.Popen(
            [
                alertmanager,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",  # no gossip port: a single Alertmanager, loopback only
            ],
            stdout=logs["alertmanager"],
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=logs["prometheus"],
            stderr=subprocess.STDOUT,
        ),
    ]
    passed = False
    try:
        for url in (f"{api}/-/ready", f"http://127.0.0.1:{am_port}/-/ready"):
            _wait(lambda url=url: urllib.request.urlopen(url, timeout=2).status == 200, 30, f"{url} ready")
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
        print(
            f"page alert firing in Prometheus {took:.1f}s after the errors jumped to 100%: "
            f"{firing[0]['labels']}"
        )
        assert took < DEADLINE
        labels = firing[0]["labels"]
        assert labels["service"] == "shop" and labels["slo"] == "shop/availability"
        assert (labels["long_window"], labels["short_window"]) in {("1h", "5m"), ("6h", "30m")}

        # Alertmanager posts it, with the guide's route and bearer token, to the ingest endpoint.
        delivered = _wait(
            ingest.page_alerts, 30, "Alertmanager to post the page alert to the ingest endpoint"
        )
        took = time.monotonic() - (target.failing_since or 0.0)
        path, authorization, alert = delivered[0]
        print(f"delivered to {path} {took:.1f}s after the jump: {alert['labels']}")
        assert path == "/api/incidents/ingest"
        assert authorization == "Bearer test-ingest-token"
        assert alert["labels"]["slo"] == "shop/availability"
        assert alert["annotations"]["runbook_url"] == "runbooks/shop/"
        with ingest.lock:
            assert all(body["version"] == "4" for _, _, body in ingest.posts)
        passed = True
    finally:
        for process in processes:
            _stop(process)
        for server in servers:
            server.shutdown()
            server.server_close()
        for log in logs.values():
            log.close()
        if not passed:
            for name in logs:
                print(f"--- {name} log ---\n" + (tmp_path / f"{name}.log").read_text()[-3000:])
