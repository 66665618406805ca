"""`slo serve` against the red-team cases of issue 11, as a subprocess on a loopback port:

- a year-1 or year-9999 time in any format is refused with 400 naming the field and the range, and an
  ordinary alert sent a second later is an incident within 15 s, with no failed worker cycle;
- `inbox.sqlite3` deleted under the running service: the next alert is answered 202 and becomes an
  incident (the fold refolds the new inbox), and /api/health reports no folding lag.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.inbox import INBOX_FILE
from pipelines.ingest.pagerduty import sign
from tests.support.service import ROOT, Service, running_service

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
INGEST = "/api/incidents/ingest"
SECRET = "hardening-pd-secret"
ENV = {"SLO_CYCLE_SECONDS": "1", "PAGERDUTY_WEBHOOK_SECRET": SECRET}


def _json(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


def _incident_titles(svc: Service) -> list[str]:
    status, rows = svc.request("GET", "/api/incidents")
    return [r["title"] for r in rows] if status == 200 else []


def _wait_for_incident(svc: Service, title: str, within: float = 15.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if title in _incident_titles(svc):
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"{title!r} is not an incident after {within} s: {_incident_titles(svc)}")


def _generic(title: str, starts_at: str | None = None) -> bytes:
    alert: dict[str, Any] = {"service": "shop", "title": title, "severity": "SEV3"}
    if starts_at:
        alert["starts_at"] = starts_at
    return json.dumps({"alerts": [alert]}).encode()


@pytest.mark.parametrize("absurd", ["0001-01-01T00:00:01Z", "9999-12-31T23:59:59Z"])
def test_absurd_times_are_refused_in_every_format_and_the_next_alert_is_an_incident(
    tmp_path: Path, absurd: str
) -> None:
    am = _json("alertmanager_firing.json")
    am["alerts"][0]["startsAt"] = absurd
    pd = copy.deepcopy(_json("pagerduty_triggered.json"))
    pd["event"]["data"]["created_at"] = absurd
    pd_raw = json.dumps(pd).encode()
    with running_service(tmp_path, env=ENV) as svc:
        answers = {
            "generic": svc.post(INGEST, _generic("from another era", absurd)),
            "alertmanager": svc.post(INGEST, json.dumps(am).encode()),
            "pagerduty": svc.post(INGEST, pd_raw, {"x-pagerduty-signature": sign(pd_raw, SECRET)}),
            "command": svc.post(
                "/api/incidents/INC-0001/commands",
                json.dumps({"command": "acknowledge", "at": absurd}).encode(),
            ),
        }
        paths = {
            "generic": "alerts[0].starts_at",
            "alertmanager": "alerts[0].startsAt",
            "pagerduty": "event.data.created_at",
            "command": "at",
        }
        for name, (status, body) in answers.items():
            assert status == 400, (name, body)
            assert body["detail"].startswith(f"{paths[name]}: "), (name, body)
            assert "outside the accepted range 2000-01-01T00:00:00Z" in body["detail"], (name, body)
        assert svc.health()["inbox"]["count"] == 0  # nothing written

        time.sleep(1)
        assert svc.post(INGEST, _generic("Workers crash looping"))[0] == 202
        took = _wait_for_incident(svc, "Workers crash looping")
        print(f"incident after {took:.1f} s")
        worker = svc.health()["worker"]
        assert worker["cycles"] >= 1 and worker["failures"] == 0, worker


def test_an_inbox_deleted_under_the_running_service_loses_no_accepted_alert(tmp_path: Path) -> None:
    with running_service(tmp_path, env=ENV) as svc:
        assert svc.post(INGEST, _generic("first alert"))[0] == 202
        _wait_for_incident(svc, "first alert")
        folded = svc.health()["fold"]
        assert folded == {"folded_seq": 1, "lag": 0, "refold_pending": False}, folded

        (svc.data_dir / INBOX_FILE).unlink()
        status, answer = svc.post(INGEST, _generic("after the inbox was deleted"))
        assert status == 202 and len(answer["accepted"]) == 1
        _wait_for_incident(svc, "after the inbox was deleted")
        assert (svc.data_dir / INBOX_FILE).exists()
        health = svc.health()
        assert health["inbox"]["count"] == 1
        assert health["worker"]["failures"] == 0, health["worker"]
        deadline = time.monotonic() + 10
        while svc.health()["fold"] != {"folded_seq": 1, "lag": 0, "refold_pending": False}:
            assert time.monotonic() < deadline, svc.health()["fold"]
            time.sleep(0.25)
        assert "refolding it from its first row" in svc.log()
        assert {p.name.split(".orphaned-")[0] for p in svc.data_dir.glob("*.orphaned-*")} >= {
            "inbox.sqlite3-wal"
        }
