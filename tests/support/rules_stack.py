"""A real Prometheus evaluating the exported rules against a target whose errors jump on demand, with
the README guide's Alertmanager route: shared by the rules test and the end-to-end alert flow."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


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


def serve(target: Target) -> ThreadingHTTPServer:
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


def guide_alertmanager_yml(ingest_port: int, token_file: Path) -> str:
    """The README guide's alertmanager.yml, with only the port, token path and group_wait changed."""
    guide = (ROOT / "docs" / "alerting.md").read_text()
    text = re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL)[1]
    assert "url: http://127.0.0.1:8080/api/incidents/ingest" in text
    return (
        text.replace("127.0.0.1:8080", f"127.0.0.1:{ingest_port}")
        .replace("/etc/alertmanager/slo_ingest_token", str(token_file))
        .replace("group_wait: 10s", "group_wait: 1s")
    )


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def page_alerts(api: str) -> list[dict[str, Any]]:
    alerts = get(f"{api}/api/v1/alerts")["data"]["alerts"]
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == "SLOBurnRateHigh"
        and a["labels"].get("severity") == "page"
        and a["state"] == "firing"
    ]


def wait(condition: Any, seconds: float, what: str) -> Any:
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
