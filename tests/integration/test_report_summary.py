"""The model-written executive summary: the real anthropic SDK against a local server speaking the
Messages API. The model sees only the computed figures; a summary quoting a number that is not among
them is rejected and the report says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipelines.analytics.quarter import Quarter
from pipelines.analytics.render import render_markdown
from pipelines.analytics.review import build_review
from pipelines.analytics.summary import attach_summary, unknown_numbers
from pipelines.store import Snapshot
from tests.support.realparts import free_port
from tests.support.review_store import build_review_store

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-not-a-secret-0123"
pytestmark = pytest.mark.integration


class MessagesServer:
    """POST /v1/messages answers `self.answer` as the assistant's text; every request is kept."""

    def __init__(self) -> None:
        self.answer = ""
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                reply = json.dumps(
                    {
                        "id": "msg_test",
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [{"type": "text", "text": server.answer}],
                        "stop_reason": "end_turn",
                        "stop_sequence": None,
                        "usage": {"input_tokens": 10, "output_tokens": 10},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("summary")
    build_review_store(base / "data", base / "specs")
    return base / "data"


@pytest.fixture
def model() -> Iterator[MessagesServer]:
    server = MessagesServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)


def report(data_dir: Path, model: MessagesServer, fmt: str) -> str:
    env = dict(os.environ)
    env.update(
        SLO_DATA_DIR=str(data_dir), ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=f"http://127.0.0.1:{model.port}"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "report",
            "quarterly",
            "--quarter",
            "2026-Q3",
            "--format",
            fmt,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_summary_quoting_only_the_figures_is_added_and_marked(
    data_dir: Path, model: MessagesServer
) -> None:
    model.answer = (
        "In 2026-Q3 both SLOs met their targets (2 of 2) and there were 3 incidents, 1 of them SEV1. "
        "SEV1 MTTR was 25.0 min against a target under 30 min; 1 repeat incident struck while action items "
        "were open, so finish them first."
    )
    r = json.loads(report(data_dir, model, "json"))
    assert r["executive_summary"] == {
        "text": model.answer,
        "model": "claude-sonnet-4-6",
        "model_written": True,
    }
    [request] = model.requests
    assert request["path"] == "/v1/messages"
    assert KEY in (request["headers"].get("Authorization", "") + request["headers"].get("X-Api-Key", ""))
    figures = request["body"]["messages"][0]["content"]
    assert figures.startswith("Figures (JSON):")
    given = json.loads(figures.removeprefix("Figures (JSON):\n"))
    assert set(given) == {
        "quarter",
        "previous_quarter",
        "headline",
        "success_metrics",
        "top_risks",
        "recommendations",
    }
    md = render_markdown(r)
    assert "> **Executive summary (model-written)**" in md
    assert KEY not in md and KEY not in json.dumps(r)


def test_a_summary_with_an_unknown_number_is_rejected(data_dir: Path, model: MessagesServer) -> None:
    model.answer = "In 2026-Q3 incidents fell by 87 percent and MTTR was 25.0 min."
    snap = Snapshot(data_dir)
    try:
        with snap.connection() as con:
            r = build_review(con, Quarter(2026, 3), with_backtest=False)
    finally:
        snap.close()
    attach_summary(r, {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{model.port}"})
    assert len(model.requests) == 1
    assert "executive_summary" not in r
    assert r["executive_summary_rejected"] == "quoted numbers not among the figures: 87"
    assert "Executive summary" not in render_markdown(r)


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("MTTR 25.0 min, 99.2% of budget", []),  # 0.9921 quoted as a percentage
        ("MTTR 25 min", []),  # rounded to the summary's precision
        ("MTTR 26 min", ["26"]),
        ("1,234 pages", ["1,234"]),
    ],
)
def test_number_check(text: str, bad: list[str]) -> None:
    assert unknown_numbers(text, {"mttr": 25.0, "budget_spent": 0.9921}) == bad
