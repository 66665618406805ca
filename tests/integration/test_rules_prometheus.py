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

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.prometheus_server import stop
from tests.support.realparts import free_port, require_binary
from tests.support.rules_stack import (
    SPEC,
    Ingest,
    Target,
    get,
    guide_alertmanager_yml,
    page_alerts,
    serve,
    wait,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 90.0  # seconds from the jump to a firing page alert (the "minute and a half")

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
    servers = [serve(target), ingest.serve()]
    token = tmp_path / "slo_ingest_token"
    token.write_text("test-ingest-token\n")
    am_port, port = free_port(), free_port()
    (tmp_path / "alertmanager.yml").write_text(guide_alertmanager_yml(servers[1].server_address[1], token))
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
            wait(lambda url=url: urllib.request.urlopen(url, timeout=2).status == 200, 30, f"{url} ready")
        groups = get(f"{api}/api/v1/rules")["data"]["groups"]
        assert [g["name"] for g in groups] == ["slo:shop/availability"]
        # A few healthy scrapes first, so the windows hold good traffic before the jump.
        wait(
            lambda: (
                len(get(f"{api}/api/v1/query?query=shop_requests_total")["data"]["result"]) == 2
                and time.monotonic() - target.started > 5
            ),
            30,
            "the first scrapes",
        )
        assert page_alerts(api) == [], "a page alert fired while every request succeeded"
        target.fail()
        firing = wait(lambda: page_alerts(api), DEADLINE, "SLOBurnRateHigh{severity='page'} to fire")
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
        delivered = wait(
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
            stop(process)
        for server in servers:
            server.shutdown()
            server.server_close()
        for log in logs.values():
            log.close()
        if not passed:
            for name in logs:
                print(f"--- {name} log ---\n" + (tmp_path / f"{name}.log").read_text()[-3000:])
