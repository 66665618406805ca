"""The deploy feed (issue 17, item 3) through the real doors: `slo serve`'s `POST /api/deploys` and the
`slo deploys` / `slo import deploys` CLI.

A GitHub `deployment` webhook (tests/fixtures/webhooks/github_deployment.json, GitHub's shape) signed
with X-Hub-Signature-256 is posted to a running `slo serve`; an alert for the same service 30 minutes
later opens an incident; the quarterly review then lists that incident as started 30.0 minutes after
deploy `v1.4.2@9f2c4e1`, and the rules triage names the deploy as its hypothesis. Bad deploys are
refused naming the field, and the inbox holds nothing of them.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.ingest.deploys import sign_github
from tests.support.cli import os_user, slo
from tests.support.service import ROOT, Service, running_service

pytestmark = pytest.mark.integration

INGEST = "ingest-token-for-machines-0001"
SECRET = "github-webhook-secret-0123"
CI_BOT = "ci-bot-token-0123456789abcdef"  # a responder: may post deploys
VIEWER = "viewer-token-0123456789abcdef"  # may read, not post
TOKENS = f"""
tokens:
  "{CI_BOT}": {{name: ci-bot, role: responder}}
  "{VIEWER}": {{name: vic, role: viewer}}
"""
ENVIRONMENTS = "SLO_DEPLOY_ENVIRONMENTS: production, prod"
QUIET = {"ANTHROPIC_API_KEY": "", "SLACK_WEBHOOK_URL": "", "PAGERDUTY_ROUTING_KEY": ""}
FIXTURE = ROOT / "tests" / "fixtures" / "webhooks" / "github_deployment.json"


def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir(exist_ok=True)
    shutil.copy(ROOT / "slo_specs" / "checkout-api.yaml", folder)
    return folder


def github_payload(created_at: dt.datetime, **deployment: Any) -> bytes:
    body = json.loads(FIXTURE.read_text().replace("__CREATED_AT__", created_at.isoformat() + "Z"))
    body["deployment"].update(deployment)
    return json.dumps(body).encode()


def signed(raw: bytes, event: str = "deployment") -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": sign_github(raw, SECRET)}


def wait(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {seconds}s")


def cli_json(data_dir: Path, *args: str) -> Any:
    out = slo(data_dir, *args, "--json")
    return json.loads(out.stdout) if out.returncode == 0 else None


def service_env(tmp_path: Path) -> dict[str, str]:
    return {
        **QUIET,
        "SLO_SPECS_DIR": str(specs(tmp_path)),
        "SLO_API_TOKENS": TOKENS,
        "SLO_GITHUB_WEBHOOK_SECRET": SECRET,
        "SLO_CYCLE_SECONDS": "0.5",
    }


def post_as(svc: Service, token: str | None, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return svc.request("POST", "/api/deploys", json.dumps(body).encode(), headers)


def test_a_github_deployment_posted_to_slo_serve_is_correlated_with_the_next_incident(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    deployed_at = now - dt.timedelta(minutes=40)
    quarter = f"{deployed_at.year}-Q{(deployed_at.month - 1) // 3 + 1}"
    raw = github_payload(deployed_at)
    with running_service(tmp_path, token=INGEST, env=service_env(tmp_path)) as svc:
        status, answer = svc.post("/api/deploys", raw, signed(raw))
        assert status == 202, answer
        assert answer["deploy"] == {
            "service": "checkout-api",
            "version": "v1.4.2@9f2c4e1",
            "deployed_at": deployed_at.isoformat(),
            "who": "alice",
            "link": "https://github.com/acme/checkout-api/commit/9f2c4e1b7a3d5c6e8f0a1b2c3d4e5f6a7b8c9d0e",
            "description": "production: Release v1.4.2: new payment retry logic",
            "source": "github",
            "key": answer["accepted"][0],
        }
        # GitHub re-delivers; its deployment_status "success" for the same deployment follows: one deploy
        assert svc.post("/api/deploys", raw, signed(raw))[1]["duplicates"] == answer["accepted"]
        success = json.loads(raw)
        success["deployment_status"] = {"state": "success", "environment": "production", "id": 7}
        raw_status = json.dumps(success).encode()
        again = svc.post("/api/deploys", raw_status, signed(raw_status, "deployment_status"))[1]
        assert again["duplicates"] == answer["accepted"]
        listed = wait(lambda: cli_json(svc.data_dir, "deploys", "list"), 30, "the deploy in the snapshot")
        assert [(d["version"], d["who"], d["actor"], d["source"]) for d in listed] == [
            ("v1.4.2@9f2c4e1", "alice", "github", "github")
        ]

        alert = {
            "service": "checkout-api",
            "title": "Checkout 5xx above 2%",
            "fingerprint": "checkout-5xx",
            "starts_at": (now - dt.timedelta(minutes=10)).isoformat() + "Z",
        }
        assert svc.post("/api/incidents/ingest", json.dumps(alert).encode())[0] == 202
        detail = wait(
            lambda: (d := cli_json(svc.data_dir, "incidents", "show", "INC-0001")) and d.get("triage") and d,
            30,
            "the incident, triaged",
        )
        # the rules triage read the deploy as context: its hypothesis names it, its action is a rollback
        attempt = detail["triage_attempts"][-1]
        assert (attempt["method"], attempt["root_cause_hypothesis"]) == (
            "rules",
            f"recent deploy v1.4.2@9f2c4e1 at {deployed_at}: production: Release v1.4.2: new payment retry "
            "logic (deployed by alice)",
        )
        report = slo(svc.data_dir, "report", "quarterly", "--quarter", quarter, "--format", "json")
        assert report.returncode == 0, report.stderr
    deploys = json.loads(report.stdout)["deploys"]
    assert (deploys["incidents"], deploys["incidents_after_deploy"]) == (1, 1)
    assert (deploys["deploys"], deploys["deploys_followed_by_incident"], deploys["change_failure_rate"]) == (
        1,
        1,
        1.0,
    )
    [after] = deploys["incidents_list"]
    assert (after["id"], after["service"], after["deploy"], after["minutes_after_deploy"]) == (
        "INC-0001",
        "checkout-api",
        "v1.4.2@9f2c4e1",
        30.0,
    )
    assert (
        after["deploy_description"]
        == "production: Release v1.4.2: new payment retry logic (deployed by alice)"
    )


def test_bad_deploys_are_refused_naming_the_field_and_nothing_is_stored(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    good = {"service": "checkout-api", "version": "v2", "time": now.isoformat() + "Z", "who": "bob"}
    billing = json.loads(github_payload(now))
    billing["repository"]["name"] = "billing"
    raw_billing = json.dumps(billing).encode()
    staging = github_payload(now, environment="staging", production_environment=False)
    with running_service(tmp_path, token=INGEST, env=service_env(tmp_path)) as svc:
        answers = [
            post_as(svc, CI_BOT, {**good, "service": "billing"}),
            post_as(svc, CI_BOT, {k: v for k, v in good.items() if k != "version"}),
            post_as(svc, CI_BOT, {**good, "time": "yesterday"}),
            post_as(svc, CI_BOT, {**good, "time": "1999-12-31T23:59:00Z"}),
            post_as(svc, CI_BOT, {**good, "link": "ftp://example.com/x"}),
            post_as(svc, CI_BOT, {**good, "servce": "checkout-api"}),
            svc.post("/api/deploys", raw_billing, signed(raw_billing)),
            svc.post(
                "/api/deploys", raw_billing, {**signed(raw_billing), "X-Hub-Signature-256": "sha256=00"}
            ),
            post_as(svc, VIEWER, good),
            post_as(svc, None, good),
            post_as(svc, INGEST, good),  # the ingest token names nobody
        ]
        assert [(status, answer["detail"].split(":")[0]) for status, answer in answers] == [
            (400, "service"),
            (400, "version"),
            (400, "time"),
            (400, "time"),
            (400, "link"),
            (400, "servce"),
            (400, "repository.name"),
            (403, "X-Hub-Signature-256"),
            (403, "deploy"),
            (401, "Authorization"),
            (403, "Authorization"),
        ]
        assert answers[0][1]["detail"] == (
            "service: 'billing' is not a known service (one with an SLO spec); known: checkout-api"
        )
        assert answers[6][1]["detail"].startswith("repository.name: 'billing' is not a known service")
        status, ignored = svc.post("/api/deploys", staging, signed(staging))
        assert (status, ignored["accepted"], ignored["ignored"]) == (
            202,
            [],
            [f"deployment.environment 'staging' is not production ({ENVIRONMENTS})"],
        )
        assert svc.health()["inbox"]["count"] == 0  # nothing of any of them was stored
        status, answer = post_as(svc, CI_BOT, good)
        assert (status, len(answer["accepted"])) == (202, 1)
        listed = wait(lambda: cli_json(svc.data_dir, "deploys", "list"), 30, "the good deploy")
        assert [(d["service"], d["version"], d["who"], d["actor"], d["source"]) for d in listed] == [
            ("checkout-api", "v2", "bob", "ci-bot", "api")
        ]


def test_slo_import_deploys_checks_the_whole_file_first_and_re_imports_as_duplicates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"SLO_SPECS_DIR": str(specs(tmp_path))}
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "service,time,version,who,link\n"
        "checkout-api,2026-11-02T10:00:00Z,v1,alice,https://ci.example.com/1\n"
        "checkout-api,2026-11-03T10:00:00Z,,alice,\n"
    )
    out = slo(data, "import", "deploys", "--format", "csv", str(bad), env=env)
    assert (out.returncode, out.stderr.splitlines()) == (
        1,
        [f"{bad}: line 3.version: required field is missing", "nothing was imported"],
    )
    assert not (data / "inbox.sqlite3").exists()  # nothing reached the inbox
    good = tmp_path / "deploys.csv"
    good.write_text(bad.read_text().replace(",,alice,", ",v2,alice,"))
    first = slo(data, "import", "deploys", "--format", "csv", str(good), "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert [len(json.loads(first.stdout)[k]) for k in ("accepted", "duplicates")] == [2, 0]
    again = json.loads(slo(data, "import", "deploys", "--format", "csv", str(good), "--json", env=env).stdout)
    assert [len(again[k]) for k in ("accepted", "duplicates")] == [0, 2]
    listed = cli_json(data, "deploys", "list")
    assert [(d["version"], d["deployed_at"], d["who"], d["link"], d["actor"]) for d in listed] == [
        ("v2", "2026-11-03T10:00:00Z", "alice", None, os_user()),
        ("v1", "2026-11-02T10:00:00Z", "alice", "https://ci.example.com/1", os_user()),
    ]
    # a GitHub payload file: the same deployment as a deployment and a success status is one deploy
    payload = json.loads(github_payload(dt.datetime(2026, 11, 4, 9, 30)))
    status = {**payload, "deployment_status": {"state": "success", "environment": "production"}}
    failed = {**payload, "deployment_status": {"state": "failure", "environment": "production"}}
    (tmp_path / "github.json").write_text(json.dumps([payload, status, failed]))
    out = slo(
        data, "import", "deploys", "--format", "github", str(tmp_path / "github.json"), "--json", env=env
    )
    answer = json.loads(out.stdout)
    assert (len(answer["accepted"]), len(answer["duplicates"]), answer["ignored"]) == (
        1,
        1,
        ["[2]: deployment_status.state 'failure': only a successful deployment is a deploy"],
    )
    added = slo(data, "deploys", "add", "--service", "shop", "--version", "v9", env=env)
    assert (added.returncode, added.stderr.strip()) == (
        1,
        "error: --service: 'shop' is not a known service (one with an SLO spec); known: checkout-api",
    )
    assert [d["version"] for d in cli_json(data, "deploys", "list")] == ["v1.4.2@9f2c4e1", "v2", "v1"]
