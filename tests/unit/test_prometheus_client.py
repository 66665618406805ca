"""The Prometheus adapter over real HTTP, against a small local server speaking the query_range API.

The real Prometheus is in tests/integration; here a scripted server shows what a real one cannot be
made to do on demand: fail twice then answer, count requests in flight, check credentials.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pipelines.cli import main
from pipelines.config import PrometheusSettings
from pipelines.errors import PullFailed
from pipelines.sources.prometheus import Client, PrometheusError, pull
from pipelines.specs import load_specs

Reply = tuple[int, dict | str]


@dataclass
class FakePrometheus:
    """Answers /api/v1/query_range through `reply(query, start, end)`; records every request."""

    reply: Callable[[str, int, int], Reply]
    url: str = ""
    requests: list[dict] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    state = FakePrometheus(reply=lambda q, s, e: (200, {"status": "success", "data": {"result": []}}))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            args = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with state.lock:
                state.requests.append({"path": parts.path, "args": args, "headers": dict(self.headers)})
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                time.sleep(state.delay)
                status, body = state.reply(args.get("query", ""), int(args["start"]), int(args["end"]))
            finally:
                with state.lock:
                    state.in_flight -= 1
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def matrix(values: list[tuple[int, float]]) -> dict:
    return {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]},
    }


def settings(url: str, **overrides: str) -> PrometheusSettings:
    return PrometheusSettings.from_env({"PROMETHEUS_URL": url, **overrides})


def test_transient_errors_are_retried_with_backoff(fake: FakePrometheus) -> None:
    answers = iter([(503, "overloaded"), (502, "bad gateway"), (200, matrix([(120, 5.0)]))])
    fake.reply = lambda q, s, e: next(answers)
    waits: list[float] = []
    client = Client(settings(fake.url, PROMETHEUS_RETRIES="2"), sleep=waits.append)
    assert client.query_range("sum(increase(x[1m]))", 120, 120) == [{"metric": {}, "values": [[120, 5.0]]}]
    assert len(fake.requests) == 3
    assert waits == [0.5, 1.0]  # 0.5 s · 2^attempt


def test_retries_are_bounded(fake: FakePrometheus) -> None:
    fake.reply = lambda q, s, e: (503, "overloaded")
    client = Client(settings(fake.url, PROMETHEUS_RETRIES="1"), sleep=lambda _: None)
    with pytest.raises(PrometheusError) as caught:
        client.query_range("up", 60, 60)
    assert str(caught.value) == f"Prometheus at {fake.url} answered HTTP 503 — overloaded (after 2 attempts)"
    assert len(fake.requests) == 2


def test_a_rejected_query_is_not_retried(fake: FakePrometheus) -> None:
    fake.reply = lambda q, s, e: (400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
    client = Client(settings(fake.url), sleep=lambda _: None)
    with pytest.raises(PrometheusError) as caught:
        client.query_range("sum(", 60, 60)
    assert (caught.value.kind, str(caught.value)) == (
        "rejected",
        "Prometheus rejected the query (HTTP 400) — bad_data: parse error",
    )
    assert len(fake.requests) == 1


def test_every_request_has_a_timeout(fake: FakePrometheus) -> None:
    fake.delay = 1.0
    client = Client(settings(fake.url, PROMETHEUS_TIMEOUT="0.2", PROMETHEUS_RETRIES="0"))
    started = time.monotonic()
    with pytest.raises(PrometheusError) as caught:
        client.query_range("up", 60, 60)
    assert caught.value.kind == "timeout"
    assert str(caught.value) == f"Prometheus at {fake.url} did not answer within 0.2s (PROMETHEUS_TIMEOUT)"
    assert time.monotonic() - started < 0.9
    # Prometheus is told the same limit, so it stops evaluating too.
    assert fake.requests[0]["args"]["timeout"] == "0.2"


@pytest.mark.parametrize(
    ("env", "header"),
    [
        ({"PROMETHEUS_TOKEN": "tok123"}, "Bearer tok123"),
        ({"PROMETHEUS_USER": "alice", "PROMETHEUS_PASSWORD": "pw"}, "Basic YWxpY2U6cHc="),
    ],
)
def test_credentials_are_sent(fake: FakePrometheus, env: dict[str, str], header: str) -> None:
    Client(settings(fake.url, **env)).query_range("up", 60, 60)
    assert fake.requests[0]["headers"]["Authorization"] == header


SPECS = """\
service: svc
owner: team
slis:
  availability:
    good: 'sum(rate(ok_total[{{.window}}]))'
    valid: 'sum(rate(all_total[{{.window}}]))'
  latency:
    metric: 'max(p99_seconds)'
    threshold: 250ms
slos:
  - sli: availability
    target: 99%
  - sli: latency
    target: 99%
"""


def test_a_long_backfill_is_chunked_and_bounded_in_parallel(fake: FakePrometheus, tmp_path: Path) -> None:
    """25,000 minutes at most 10,000 per request: 3 chunks × 3 queries, at most 2 in flight."""
    (tmp_path / "svc.yaml").write_text(SPECS)
    slos, _ = load_specs([tmp_path])

    def reply(query: str, start: int, end: int) -> Reply:
        assert (end - start) // 60 + 1 <= 10_000
        value = {"sum(increase(ok_total[1m]))": 9, "sum(increase(all_total[1m]))": 10}.get(query, 0.2)
        # one instant more on each side than asked: the source keeps only its chunk's minutes
        return 200, matrix([(t, value) for t in range(start - 60, end + 61, 60)])

    fake.reply = reply
    fake.delay = 0.05
    ranges = {s.id: (1000, 26_000) for s in slos}
    result, stats = pull(settings(fake.url, PROMETHEUS_PARALLEL="2"), slos, ranges, 26_000)
    assert stats.requests == len(fake.requests) == 9
    assert 1 <= fake.max_in_flight <= 2
    by_slo = {slo: frame for slo, frame in result.buckets.groupby("slo_id")}
    availability, latency = by_slo["svc/availability"], by_slo["svc/latency"]
    assert availability["minute"].tolist() == list(range(1000, 26_000))  # no gap, no duplicate
    assert (availability["good"].unique().tolist(), availability["valid"].unique().tolist()) == ([9], [10])
    assert len(latency) == 25_000 and latency["good"].sum() == 25_000  # 0.2 s <= 250 ms every minute
    assert result.high_water == {"svc/availability": 26_000, "svc/latency": 26_000}


def test_a_pull_names_every_slo_it_could_not_complete(fake: FakePrometheus, tmp_path: Path) -> None:
    (tmp_path / "svc.yaml").write_text(SPECS)
    slos, _ = load_specs([tmp_path])

    def reply(query: str, start: int, end: int) -> Reply:
        if "p99" in query:
            return 200, {"status": "success", "data": {"result": [{"metric": {"a": "1"}, "values": []}] * 2}}
        return 200, matrix([])

    fake.reply = reply
    with pytest.raises(PullFailed) as caught:
        pull(settings(fake.url), slos, {s.id: (0, 10) for s in slos}, 10)
    assert list(caught.value.failures) == ["svc/latency"]
    assert "the query returned 2 series" in caught.value.failures["svc/latency"]
    assert (
        "svc.yaml:13: slis.latency.metric, sent as: max(p99_seconds)" in caught.value.failures["svc/latency"]
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "error: PROMETHEUS_URL is not set; expected e.g. PROMETHEUS_URL=http://127.0.0.1:9090"),
        (
            {"PROMETHEUS_URL": "http://127.0.0.1:9", "PROMETHEUS_PARALLEL": "0"},
            "error: Prometheus settings: PROMETHEUS_PARALLEL='0': expected a whole number from 1 to 32",
        ),
    ],
)
def test_run_without_usable_settings_is_bad_input(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "svc.yaml").write_text(SPECS)
    for name in [n for n in os.environ if n.startswith("PROMETHEUS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLO_SPECS_DIR", str(tmp_path / "specs"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "--source", "prometheus"]) == 1
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "data").exists()  # nothing written, not even a stale mark


def test_a_query_that_is_not_counters_fails_before_any_request(fake: FakePrometheus, tmp_path: Path) -> None:
    # The native loader refuses such a query itself (tests/unit/test_specs.py); an SLO can still reach
    # the pull with one another way (an imported spec), and the pull refuses it before asking anything.
    (tmp_path / "svc.yaml").write_text(SPECS)
    loaded, _ = load_specs([tmp_path])
    slos = [
        dataclasses.replace(
            s, sli=dataclasses.replace(s.sli, good_query=s.sli.good_query.replace("rate(", "irate("))
        )
        if s.sli.good_query and "ok_total" in s.sli.good_query
        else s
        for s in loaded
    ]
    with pytest.raises(PullFailed) as caught:
        pull(settings(fake.url), slos, {s.id: (0, 10) for s in slos}, 10)
    assert caught.value.failures == {
        "svc/availability": f"{tmp_path / 'svc.yaml'}:11: slis.availability.good: irate() does not give a "
        "counter's per-minute increase; expected counters inside rate(...[window]) or increase(...[window]), "
        'or a bare counter selector such as requests_total{code=~"5.."}'
    }
    assert str(caught.value).startswith("Prometheus pull incomplete for 1 of 2 SLO(s); nothing was published")
    assert fake.requests == []
