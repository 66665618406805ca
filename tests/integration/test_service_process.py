"""`slo serve` as a subprocess on a free loopback port: the documented answers over real HTTP change
nothing, the worker publishes, SIGTERM stops it cleanly, and it refuses to listen beyond loopback
without a token."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.ingest.pagerduty import sign
from tests.support.service import ROOT, running_service, stop_service

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
INGEST = "/api/incidents/ingest"
TOKEN = "integration-token"
SECRET = "integration-pd-secret"


def test_documented_answers_over_http_change_nothing(tmp_path: Path) -> None:
    am = (FIXTURES / "alertmanager_firing.json").read_bytes()
    pd = (FIXTURES / "pagerduty_triggered.json").read_bytes()
    env = {"PAGERDUTY_WEBHOOK_SECRET": SECRET, "SLO_INGEST_MAX_BYTES": "65536"}
    with running_service(tmp_path, token=TOKEN, env=env) as svc:
        json_only = {"content-type": "application/json"}
        refusals = [
            ("malformed JSON", svc.post(INGEST, b'{"alerts": [')),
            ("wrong content type", svc.post(INGEST, am, {"content-type": "text/plain"})),
            ("oversized body", svc.post(INGEST, b'{"service": "x", "title": "' + b"y" * 70_000 + b'"}')),
            ("unknown format", svc.post(INGEST, b'{"kind": "nagios"}')),
            ("missing token", svc.request("POST", INGEST, am, json_only)),
            ("wrong token", svc.request("POST", INGEST, am, {**json_only, "authorization": "Bearer x"})),
            (
                "bad signature",
                svc.request("POST", INGEST, pd, {**json_only, "x-pagerduty-signature": "v1=00"}),
            ),
        ]
        got = {name: status for name, (status, _) in refusals}
        print("refusals:", got)
        assert got == {
            "malformed JSON": 400,
            "wrong content type": 415,
            "oversized body": 413,
            "unknown format": 400,
            "missing token": 401,
            "wrong token": 401,
            "bad signature": 403,
        }
        for name, (_, body) in refusals:
            assert set(body) == {"error", "detail"} and body["detail"], name
        assert svc.health()["inbox"]["count"] == 0
        # and the same inputs done right are accepted, once
        assert svc.post(INGEST, am)[0] == 202
        status, answer = svc.request(
            "POST", INGEST, pd, {**json_only, "x-pagerduty-signature": sign(pd, SECRET)}
        )
        assert (status, answer["accepted"]) == (202, ["pd:01DEN4HPBQAAAG05V5QQYBRZMF"])
        assert svc.post(INGEST, am)[1]["duplicates"] != []
        health = svc.health()
        assert health["inbox"]["count"] == 3
        assert health["ingest"]["400"] == 2 and health["ingest"]["401"] == 2
        code = stop_service(svc)
        assert code == 0, svc.log()
        assert "Application shutdown complete" in svc.log()


def test_worker_runs_the_cycle_and_publishes(tmp_path: Path) -> None:
    with running_service(tmp_path, env={"SLO_CYCLE_SECONDS": "1"}) as svc:
        deadline = time.monotonic() + 20
        worker = svc.health()["worker"]
        while worker["cycles"] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            worker = svc.health()["worker"]
        print("worker:", worker)
        assert worker["running"] and worker["cycles"] >= 2 and worker["failures"] == 0
        assert svc.health()["snapshot"]["age_seconds"] is not None
        assert svc.request("GET", "/api/incidents") == (200, [])
        assert stop_service(svc) == 0


def test_refuses_a_public_address_without_token(tmp_path: Path) -> None:
    env = {"SLO_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--host 0.0.0.0: refusing to listen beyond this machine without SLO_INGEST_TOKEN" in result.stderr


def test_serve_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--host" in result.stdout and "--port" in result.stdout
