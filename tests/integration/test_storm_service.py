"""`slo serve` under an alert storm (issue 13): a page is not delayed by a backlog of lower alerts.

A real service on a loopback port (worker every 5 s, the default budgets). 5,000 low-severity alerts
in Alertmanager v4 format arrive as five deliveries of 1,000 (a single delivery of 5,000 is refused:
the per-delivery cap), then, a second later, one SEV1 alert:

- the SEV1's incident is listed by `GET /api/incidents` within 15 s of its 202;
- the storm is folded completely, each alert once: the published store holds exactly the 5,000
  accepted alerts, each on an incident, nothing set aside as a dead letter, and the fold cursor stands
  on the inbox's last row.

The storm is shaped like one: 50 services, 4 SLOs each, every alert its own fingerprint, so most
alerts join the open incident of their SLO (200 incidents) instead of each opening one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.store import Snapshot
from tests.support.service import Service, running_service

pytestmark = pytest.mark.integration

INGEST = "/api/incidents/ingest"
ENV = {"SLO_CYCLE_SECONDS": "5", "SLO_INGEST_MAX_BYTES": str(4 << 20)}  # room for a 5,000-alert body
STORM = 5000


def _alert(
    title: str, fingerprint: str, severity: str, labels: dict[str, str], starts_at: str
) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "StormTest", "severity": severity, **labels},
        "annotations": {"summary": title},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


def _delivery(alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "receiver": "slo",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
        }
    ).encode()


def _titles(svc: Service) -> set[str]:
    status, rows = svc.request("GET", "/api/incidents", timeout=30)
    return {r["title"] for r in rows} if status == 200 else set()


def _published(svc: Service, sql: str) -> tuple[Any, ...]:
    """One row from the published snapshot, read as every reader reads it."""
    snapshot = Snapshot(svc.data_dir)
    try:
        with snapshot.connection() as con:
            row = con.execute(sql).fetchone()
    finally:
        snapshot.close()
    assert row is not None
    return tuple(row)


def test_a_sev1_behind_a_5000_alert_storm_is_listed_within_15_s_and_the_storm_is_folded_once(
    tmp_path: Path,
) -> None:
    starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    storm = [
        _alert(
            f"storm alert {i}",
            f"storm-{i}",
            "warning",  # SEV3
            {"service": f"svc-{i % 50}", "slo": f"endpoint{i // 50 % 4}"},
            starts,
        )
        for i in range(STORM)
    ]
    with running_service(tmp_path, env=ENV) as svc:
        status, answer = svc.post(INGEST, _delivery(storm))
        assert status == 400, answer
        assert "5000 alerts in one delivery; at most 1000" in json.dumps(answer), answer
        assert svc.health()["inbox"]["count"] == 0  # refused whole: nothing stored

        for k in range(5):
            status, answer = svc.post(INGEST, _delivery(storm[k * 1000 : (k + 1) * 1000]))
            assert status == 202, answer
            assert len(answer["accepted"]) == 1000
        time.sleep(1.0)
        page = _alert("the checkout is down", "sev1-page", "sev1", {"service": "checkout"}, starts)
        status, answer = svc.post(INGEST, _delivery([page]))
        assert status == 202 and len(answer["accepted"]) == 1, answer
        accepted = time.monotonic()

        while "the checkout is down" not in _titles(svc):
            assert time.monotonic() - accepted < 15.0, (
                f"the SEV1 is not listed 15 s after its 202; worker: {svc.health()['worker']}"
            )
            time.sleep(0.25)
        listed = time.monotonic() - accepted

        deadline = time.monotonic() + 120
        while (fold := svc.health()["fold"]).get("lag") != 0:
            assert time.monotonic() < deadline, f"the storm is not folded after 120 s: {fold}"
            time.sleep(1.0)

        folded = time.monotonic() - accepted
        print(f"SEV1 listed {listed:.1f} s after its 202; the storm folded {folded:.0f} s after it")
        health = svc.health()
        assert health["dead_letters"]["inbox_rejects"] == 0
        assert health["fold"]["folded_seq"] == health["inbox"]["last_seq"] == STORM + 1
        alerts, distinct, on_incidents, incidents = _published(
            svc,
            """SELECT count(*), count(DISTINCT dedup_key), count(incident_id),
                      count(DISTINCT incident_id) FROM alerts WHERE title LIKE 'storm alert %'""",
        )
        assert (alerts, distinct, on_incidents) == (STORM, STORM, STORM)  # none lost, none twice
        assert incidents == 200  # one per (service, SLO): the other 4,800 alerts joined theirs
        assert _published(svc, "SELECT count(*) FROM incidents WHERE service = 'checkout'") == (1,)
