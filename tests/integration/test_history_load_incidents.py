"""A history load (`slo run --source csv` as a subprocess) whose data holds burn-rate alerts that ended
before the load, and one still firing at the data's end, with PagerDuty and Slack pointed at a local
HTTP receiver (issue 13, deliverable 3):

- the alerts that had ended become incidents, triaged by the rules (no model call), resolved at their
  alert's end, never routed, and nobody is paged or notified about them (no request, no
  `notifications` row), with a timeline a person can check minute by minute;
- the alert still firing at the data's end is an ordinary live incident: triaged, escalated, and paged
  once on each channel, and Slack asked once for its incident commander (issue 17) — the receiver
  hears about it and about nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.support.cli import ROOT

pytestmark = pytest.mark.integration

SPEC = """\
service: shop
owner: team-shop
slis:
{slis}
slos:
{slos}
"""
SLI = """\
  e{i}:
    description: "Requests to endpoint {i} answered without a server error"
    category: availability
    good: |
      sum(increase(http_requests_total{{service="shop", endpoint="e{i}", code!~"5.."}}[{{{{.window}}}}]))
    valid: |
      sum(increase(http_requests_total{{service="shop", endpoint="e{i}"}}[{{{{.window}}}}]))
"""
SLO = """\
  - sli: e{i}
    target: 99.9%
    window: 30d
"""
HOURS = 48
VALID = 1000
# Minutes before the data's end at which each SLO's one fully failed minute lies. One failed minute of
# 1,000 in an hour burns the 1h window 16.7× and the 5m one 200× (page: > 14.4 both): a page alert
# from the minute after it for 5 minutes. With 38 h or more of data before it, it stays under every
# other condition (3d: 1,000 bad of ≥ 2.28 M valid is 0.44× the budget rate; 6h: 2.8×, under 6).
FAILED_BEFORE_END = {"shop/e0": 600, "shop/e1": 300, "shop/e2": 2}


class Receiver:
    """PagerDuty's Events API and a Slack webhook on one loopback port: records every POST."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.received.append((self.path, json.loads(body)))
                reply = b'{"status":"success","message":"Event processed","dedup_key":"x"}'
                self.send_response(202 if self.path.startswith("/v2") else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _write_inputs(tmp_path: Path, end: dt.datetime) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    idx = range(len(FAILED_BEFORE_END))
    (specs / "shop.yaml").write_text(
        SPEC.format(slis="".join(SLI.format(i=i) for i in idx), slos="".join(SLO.format(i=i) for i in idx))
    )
    events = tmp_path / "events.csv"
    lines = ["slo,timestamp,good,valid"]
    for n in range(HOURS * 60, 0, -1):
        at = end - dt.timedelta(minutes=n)
        for slo, failed in FAILED_BEFORE_END.items():
            good = 0 if n == failed else VALID
            lines.append(f"{slo},{at:%Y-%m-%dT%H:%M:%SZ},{good},{VALID}")
    events.write_text("\n".join(lines) + "\n")
    return events


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    rel = con.execute(sql, params or [])
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def test_a_history_load_makes_incidents_of_ended_alerts_without_paging_anyone(
    tmp_path: Path, receiver: Receiver
) -> None:
    # The data ends a few minutes ago: every alert is inside the live horizon (24 h before now).
    end = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0) - dt.timedelta(minutes=5)
    events = _write_inputs(tmp_path, end)
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY",)}
    env.update(
        SLO_DATA_DIR=str(tmp_path / "data"),
        SLO_SPECS_DIR=str(tmp_path / "specs"),
        PAGERDUTY_ROUTING_KEY="history-test-routing-key",
        PAGERDUTY_EVENTS_URL=f"{receiver.url}/v2/enqueue",
        SLACK_WEBHOOK_URL=f"{receiver.url}/slack/hook",
    )
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--source", "csv", "--events", str(events)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr

    con = duckdb.connect(str(tmp_path / "data" / "slo.duckdb"), read_only=True)
    try:
        incidents = {
            r["slo_id"]: r
            for r in _rows(con, "SELECT * FROM incidents WHERE source = 'engine' ORDER BY created_at, id")
        }
        assert sorted(incidents) == ["shop/e0", "shop/e1", "shop/e2"]
        notified = _rows(con, "SELECT incident_id, channel, status FROM notifications ORDER BY 1, 2")
        live = incidents["shop/e2"]
        assert notified == [
            {"incident_id": live["id"], "channel": "pagerduty", "status": "sent"},
            {"incident_id": live["id"], "channel": "slack", "status": "sent"},
            # issue 17: the escalated SEV1/SEV2 asks Slack for an incident commander
            {"incident_id": live["id"], "channel": "slack", "status": "sent"},
        ]
        assert live["status"] == "triggered" and live["route"] == "escalate"

        for slo in ("shop/e0", "shop/e1"):
            inc = incidents[slo]
            failed = end - dt.timedelta(minutes=FAILED_BEFORE_END[slo])
            fired, ended = failed + dt.timedelta(minutes=1), failed + dt.timedelta(minutes=6)
            assert (inc["status"], inc["route"], inc["escalated_at"]) == ("resolved", None, None)
            assert (inc["detected_at"], inc["resolved_at"], inc["resolved_at_source"]) == (
                fired,
                ended,
                "alerts",
            )
            assert inc["impact_start"] == failed  # the failed minute itself, from the SLI data
            triage = _rows(con, "SELECT method, model FROM triage WHERE incident_id = ?", [inc["id"]])
            assert triage == [{"method": "rules", "model": None}]
            timeline = _rows(
                con,
                "SELECT occurred_at, kind FROM timeline WHERE incident_id = ? ORDER BY occurred_at, seq",
                [inc["id"]],
            )
            kinds = [t["kind"] for t in timeline if t["kind"] != "document"]
            assert kinds == ["impact_start", "alert", "alert_resolved", "resolved", "triage", "route"]
            at = {t["kind"]: t["occurred_at"] for t in timeline}
            assert (at["impact_start"], at["alert"], at["alert_resolved"], at["resolved"]) == (
                failed,
                fired,
                ended,
                ended,
            )
            assert "notification" not in at and "escalated" not in at and "timer" not in at
    finally:
        con.close()

    # The receiver heard about the live incident only: one page, one Slack message and the request for
    # an incident commander (issue 17).
    paths = sorted(p for p, _ in receiver.received)
    assert paths == ["/slack/hook", "/slack/hook", "/v2/enqueue"]
    asks = [b["text"] for p, b in receiver.received if "has no incident commander" in b.get("text", "")]
    assert len(asks) == 1 and live["id"] in asks[0]
    page = next(body for p, body in receiver.received if p == "/v2/enqueue")
    assert page["dedup_key"] == live["id"] and page["event_action"] == "trigger"
