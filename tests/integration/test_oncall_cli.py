"""`slo oncall` and `slo serve` with an on-call file (issue 17, item 1), as a user runs them: a bad file
is refused with the file and the field named and nothing starts or changes; a PagerDuty schedule export
imports into a file that checks; the on-call load counts real pages per person the schedule had on call."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from pipelines.config import Settings
from pipelines.incidents.contract import Alert
from tests.support.cli import slo
from tests.support.incident_rows import publish_alert
from tests.support.receivers import Endpoint
from tests.support.service import start_service
from tests.unit.test_oncall import PAGERDUTY_EXPORT

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
START = (NOW - dt.timedelta(days=8)).replace(minute=0, second=0)  # alice's week, then bob's (from a day ago)
GOOD = f"""
people:
  alice: {{}}
  bob: {{}}
schedules:
  primary:
    layers:
      - {{start: {START:%Y-%m-%dT%H:%M:%SZ}, rotation_turn_length: 1w, users: [alice, bob]}}
policies:
  default:
    tiers:
      - {{target: {{schedule: primary}}, timeout: 5m}}
      - {{target: {{person: bob}}}}
"""
GAP = """
people: {alice: {}}
schedules:
  primary:
    layers:
      - {start: 2026-11-02T10:00:00Z, end: 2026-11-09T10:00:00Z, rotation_turn_length: 1w, users: [alice]}
      - {start: 2026-11-09T12:00:00Z, rotation_turn_length: 1w, users: [alice]}
policies:
  default: {tiers: []}
"""


def test_check_names_every_problem_and_exits_1(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GAP)
    out = slo(tmp_path / "data", "oncall", "check", str(good), env={"PAGERDUTY_ROUTING_KEY": ""})
    assert (out.returncode, out.stdout) == (0, f"{good}: 2 people, 1 schedule(s), 1 policy: ok\n")
    assert (
        out.stderr == "warning: PAGERDUTY_ROUTING_KEY is not set: a page through it is recorded as skipped\n"
    )
    out = slo(
        tmp_path / "data", "oncall", "check", str(good), env={"PAGERDUTY_ROUTING_KEY": "R0UT1NG-KEY-0123"}
    )
    assert (out.returncode, out.stderr) == (0, "")
    out = slo(tmp_path / "data", "oncall", "check", str(bad))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"{bad}: schedules.primary.layers: gap: nobody is on call from 2026-11-09T10:00:00Z to "
        "2026-11-09T12:00:00Z (between layer 0 and layer 1)",
        f"{bad}: policies.default.tiers: a policy needs at least one tier (target and timeout)",
        "2 problem(s); the file is not used",
    ]


def test_slo_serve_refuses_to_start_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GAP)
    with pytest.raises(RuntimeError) as caught:
        start_service(tmp_path, env={"SLO_ONCALL_FILE": str(bad)}, startup_timeout=30)
    assert "slo serve exited with 1" in str(caught.value)
    assert f"{bad}: schedules.primary.layers: gap: nobody is on call" in str(caught.value)
    assert not (tmp_path / "data" / "inbox.sqlite3").exists()  # nothing was started or stored


def test_a_pagerduty_export_imports_into_a_file_that_checks(tmp_path: Path) -> None:
    export = tmp_path / "schedule.json"
    export.write_text(json.dumps(PAGERDUTY_EXPORT))
    out = slo(tmp_path / "data", "oncall", "import-pagerduty", str(export))
    assert out.returncode == 0, out.stderr
    entries = yaml.safe_load(out.stdout)
    entries["policies"] = {"default": {"tiers": [{"target": {"schedule": "Backend primary"}}]}}
    path = tmp_path / "oncall.yaml"
    path.write_text(yaml.safe_dump(entries))
    out = slo(
        tmp_path / "data", "oncall", "who", "--at", "2026-11-10T00:00:00Z", env={"SLO_ONCALL_FILE": str(path)}
    )
    assert (out.returncode, out.stdout) == (0, "Backend primary: Kyler Kuhn\n")


def test_on_call_load_counts_each_page_for_whoever_was_on_call(tmp_path: Path) -> None:
    (tmp_path / "oncall.yaml").write_text(GOOD)
    pd = Endpoint([202])
    try:
        settings = dataclasses.replace(
            Settings.load({"SLO_DATA_DIR": str(tmp_path / "data")}),
            oncall_file=tmp_path / "oncall.yaml",
            pagerduty_routing_key="R0UT1NG-KEY-0123456789abcdef",
            pagerduty_events_url=pd.url,
            slack_webhook_url=None,
            anthropic_api_key=None,
        )
        # alice had the week from 8 days ago, bob has had the last day: two pages in hers, one in his
        for n, at in enumerate(
            [
                START + dt.timedelta(days=1),
                START + dt.timedelta(days=2),
                START + dt.timedelta(days=7, hours=1),
            ]
        ):
            alert = Alert(
                source="alertmanager", status="firing", service="shop", fingerprint=f"f{n}",
                title=f"Page {n}", dedup_key=f"am:{n}", starts_at=at, severity="SEV2",
            )  # fmt: skip
            publish_alert(settings, alert, at)
    finally:
        pd.close()
    # three tier-1 pages (the later cycles also page tier 2 of the unacknowledged ones: not counted)
    assert sorted(b["dedup_key"] for _, b, _ in pd.received if "-tier" not in b["dedup_key"]) == [
        "INC-0001",
        "INC-0002",
        "INC-0003",
    ]
    out = slo(
        tmp_path / "data",
        "oncall",
        "load",
        "--days",
        "14",
        "--json",
        env={"SLO_ONCALL_FILE": str(tmp_path / "oncall.yaml")},
    )
    assert out.returncode == 0, out.stderr
    load = json.loads(out.stdout)
    people = {p["person"]: (p["pages"], p["on_call_weeks"]) for p in load["people"]}
    assert load["schedule"] == "primary"
    assert people["alice"][0] == 2 and people["bob"][0] == 1
    assert people["alice"][1] == 1.0  # her whole week is inside the last 14 days
    assert 0 < people["bob"][1] < 1.0  # his week is still running
