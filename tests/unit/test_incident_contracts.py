"""One definition per contract (issue 12): the incident list the CLI, the service and the dashboard
show, and the duration figures the dashboard and the report compute.

- `slo incidents list --json`, `GET /api/incidents` and the dashboard's incident table are the same
  rows with the same fields (`pipelines.incidents.read`); the API's triage object leaves out `model`.
- The dashboard's p50/p90/mean of TTD…TTR are the analytics roll-up's (`mttx`), on known values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dashboard import queries
from pipelines.analytics import mttx
from pipelines.cli import main
from pipelines.config import Settings
from pipelines.service.app import create_app
from pipelines.service.settings import ServiceSettings
from pipelines.store import Snapshot, Writer
from tests.support.asgi import AsgiClient
from tests.support.incident_rows import add_incident, store

# The incident list's fields, as documented in read.py's docstring and docs/incidents.md.
FIELDS = [
    "id", "service", "title", "severity", "status", "source", "fingerprint", "slo_id",
    "impact_start", "impact_start_source", "detected_at", "detected_at_source",
    "acknowledged_at", "acknowledged_at_source", "mitigated_at", "mitigated_at_source",
    "resolved_at", "resolved_at_source", "closed_at",
    "route", "budget_consumed", "repeat_of", "root_cause_category", "root_cause", "external_id",
    "escalation_tier", "imported", "triage",
]  # fmt: skip


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A published store with two incidents: INC-0001 (two triage attempts, the model's first, the
    rules' second) detected at 12:00 with an impact at 11:00; INC-0002 detected at 13:00, impact 11:30."""
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path / "data"))
    with Writer(tmp_path / "data") as w:
        w.db.execute(
            "INSERT INTO incidents (id, service, title, severity, status, source, fingerprint, impact_start,"
            " impact_start_source, detected_at, detected_at_source, route, root_cause, created_at,"
            " updated_at) VALUES"
            " ('INC-0001', 'checkout-api', 'Errors', 'SEV2', 'triggered', 'alertmanager', 'fp1',"
            " '2026-11-23 11:00:00', 'alert_start', '2026-11-23 12:00:00', 'alertmanager', 'escalate', NULL,"
            " now(), now()),"
            " ('INC-0002', 'search', 'Slow', 'SEV3', 'resolved', 'generic', 'fp2', '2026-11-23 11:30:00',"
            " 'alert_start', '2026-11-23 13:00:00', 'generic', NULL, 'a cold cache', now(), now())"
        )
        w.db.execute(
            "INSERT INTO triage (incident_id, attempt, method, severity, recommended_action, confidence,"
            " model, created_at) VALUES"
            " ('INC-0001', 1, 'model', 'SEV1', 'escalate', 0.4, 'claude-x', now()),"
            " ('INC-0001', 2, 'rules', 'SEV2', 'escalate', 0.9, NULL, now())"
        )
        w.publish()
    return tmp_path / "data"


def test_cli_service_and_dashboard_list_the_same_incidents(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["incidents", "list", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    with AsgiClient(
        create_app(Settings(data_dir=data, specs_dir=data / "no-specs"), ServiceSettings(cycle_seconds=0))
    ) as client:
        api = client.request("GET", "/api/incidents").json()
    snapshot = Snapshot(data)
    with snapshot.connection() as con:
        frame = queries.incidents(con)
    snapshot.close()

    assert [list(row) for row in cli] == [FIELDS, FIELDS]
    assert [r["id"] for r in cli] == ["INC-0002", "INC-0001"]  # newest detected first
    latest = {"method": "rules", "severity": "SEV2", "recommended_action": "escalate", "confidence": 0.9}
    assert cli[1]["triage"] == {**latest, "model": None}  # the latest attempt
    assert (cli[1]["detected_at"], cli[1]["detected_at_source"]) == ("2026-11-23T12:00:00Z", "alertmanager")
    assert cli[0]["root_cause"] == "a cold cache"
    # The service answers the same rows; its triage object is DESIGN §3's four fields.
    assert api == [{**r, "triage": latest if r["triage"] else None} for r in cli]
    # The dashboard: the same incidents and columns (triage flat), newest impact first.
    assert list(frame["id"]) == ["INC-0002", "INC-0001"]
    flat = [f for f in FIELDS if f != "triage"] + [f"triage_{k}" for k in latest] + ["triage_model"]
    assert list(frame.columns) == flat
    assert frame.loc[1, "impact_start"] == pd.Timestamp("2026-11-23 11:00:00")


def test_show_gives_the_triage_the_list_gives(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`slo incidents show --json` takes the latest of the attempts it shows (the rules' second, not
    the model's first), the object `list --json` gives; no triage yet is null in both."""
    capsys.readouterr()
    assert main(["incidents", "list", "--json"]) == 0
    listed = {r["id"]: r["triage"] for r in json.loads(capsys.readouterr().out)}
    for iid in ("INC-0001", "INC-0002"):
        assert main(["incidents", "show", iid, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["triage"] == listed[iid]
    assert listed == {
        "INC-0001": {"method": "rules", "severity": "SEV2", "recommended_action": "escalate",
                     "confidence": 0.9, "model": None},
        "INC-0002": None,
    }  # fmt: skip


def test_the_dashboard_duration_figures_are_the_rollups() -> None:
    # Five resolved incidents in 2026-Q3 with TTR 10…50 min (TTD 1…5), and one still open.
    con = store()
    for i, ttr in enumerate([10, 20, 30, 40, 50]):
        add_incident(
            con, f"INC-{i}", start=f"2026-07-1{i}T10:00", detect=i + 1, ack=1, mitigate=ttr - 5, resolve=ttr
        )
    add_incident(con, "INC-open", start="2026-07-20T10:00", detect=3)
    frame = queries.incident_durations(con)
    row = next(
        r for r in mttx.rollup(con) if (r["quarter"], r["severity"], r["service"]) == ("2026-Q3", "*", "*")
    )
    for metric in mttx.METRICS:
        shown = queries.percentile_summary(frame[metric])
        assert {k: mttx.round_figure(v) for k, v in shown.items()} == mttx.distribution(row, metric), metric
    # By hand: TTR p50 of 10…50 is 30, p90 is 40 + 0.6 × 10 = 46, the mean 30; the open one is left out.
    assert queries.percentile_summary(frame["ttr"]) == {"count": 5, "p50": 30.0, "p90": 46.0, "mean": 30.0}
    assert queries.DURATIONS == {"ttd": "TTD", "tta": "TTA", "ttm": "TTM", "ttr": "TTR"}
