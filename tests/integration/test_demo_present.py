"""Done-when of issue 16's demo: right after `slo demo` (the real CLI, as a user runs it), the fleet holds an
SLO in every policy state, a page alert fires, an escalated incident waits for its acknowledgement and
a critical remediation waits for its approval; then, with the live demo in the real `slo serve`, a new
burn-rate alert opens an incident on its own (time compressed: SLO_DEMO_SPEED=30, the same code path)
and the data never looks stale."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dashboard.freshness import notes, stale_reasons
from pipelines.demo.live import demo_anchor
from pipelines.incidents.documents import next_update_due, update_due
from pipelines.model import POLICY_STATES
from pipelines.store import SNAPSHOT_FILE
from pipelines.timeutil import minute_of
from tests.support.service import running_service

ROOT = Path(__file__).resolve().parents[2]


def slo(data_dir: Path, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "SLACK_WEBHOOK_URL")}
    env["SLO_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    data = tmp_path_factory.mktemp("demo-present") / "data"
    return data, slo(data, "demo", "--json")


def test_every_policy_state_is_held_right_after_the_demo(demo: tuple[Path, dict[str, Any]]) -> None:
    data, built = demo
    status = slo(data, "status", "--json")
    assert len(status) == 17
    assert {row["evaluated_at"] for row in status} == {built["evaluated_to"]}
    assert {row["policy_state"] for row in status} == set(POLICY_STATES)
    for row in status:  # each state is what DESIGN's thresholds say of the budget shown beside it
        r = row["budget_remaining"]
        expected = (
            "normal"
            if r > 0.5
            else "freeze_review"
            if r >= 0.25
            else "reliability_focus"
            if r > 0
            else "exhausted"
        )
        assert row["policy_state"] == expected, row["slo"]


def test_a_page_alert_fires_now_and_its_incident_waits_for_an_acknowledgement(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    data, _ = demo
    status = slo(data, "status", "--json")
    paging = [row for row in status if any(a["severity"] == "page" for a in row["alerts"])]
    assert paging, "no page alert fires at the demo's end"
    for row in paging:
        for alert in row["alerts"]:
            if alert["severity"] == "page":  # the burn rates shown really are over the factor
                assert row["burn_rates"][alert["long_window"]] > alert["factor"]
                assert row["burn_rates"][alert["short_window"]] > alert["factor"]
    incidents = slo(data, "incidents", "list", "--json")
    waiting = [
        i
        for i in incidents
        if i["status"] == "triggered"
        and i["route"] == "escalate"
        and i["source"] == "engine"
        and i["severity"] in ("SEV1", "SEV2")
        and i["service"] in {row["service"] for row in paging}
    ]
    assert waiting, [(i["id"], i["service"], i["status"]) for i in incidents[:6]]
    inc = waiting[0]
    assert inc["acknowledged_at"] is None and inc["resolved_at"] is None
    assert inc["triage"]["method"] == "rules" and inc["triage"]["severity"] == inc["severity"]
    detail = slo(data, "incidents", "show", inc["id"], "--json")
    kinds = [step["kind"] for step in detail["timeline"]]
    assert "triage" in kinds and "escalated" in kinds and "acknowledged" not in kinds


def test_a_critical_remediation_waits_for_its_approval(demo: tuple[Path, dict[str, Any]]) -> None:
    data, _ = demo
    incidents = slo(data, "incidents", "list", "--json")
    candidates = [i for i in incidents if i["route"] == "auto_remediate" and i["status"] == "triggered"]
    pending = []
    for inc in candidates:
        detail = slo(data, "incidents", "show", inc["id"], "--json")
        pending += [(inc, r) for r in detail["remediations"] if r["status"] == "awaiting_approval"]
    assert len(pending) == 1, candidates
    inc, remediation = pending[0]
    # auth's flush_cache is marked critical in runbooks/auth/actions.yaml
    assert (inc["service"], remediation["action"]) == ("auth", "flush_cache")
    assert remediation["approved_by"] is None
    assert inc["severity"] == "SEV3" and inc["triage"]["recommended_action"] == "flush_cache"


def test_the_live_demo_opens_an_incident_with_no_input(
    demo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    built_dir, built = demo
    data = tmp_path / "data"
    shutil.copytree(built_dir, data)
    built_end = dt.datetime.fromisoformat(built["evaluated_to"].replace("Z", ""))
    before = {i["id"] for i in slo(data, "incidents", "list", "--json")}
    env = {"SLO_DEMO_LIVE": "true", "SLO_DEMO_SPEED": "30", "SLO_CYCLE_SECONDS": "1"}
    with running_service(tmp_path, data_dir=data, env=env) as svc:
        deadline = time.monotonic() + 300
        new: list[dict[str, Any]] = []
        while not new and time.monotonic() < deadline and svc.proc.poll() is None:
            time.sleep(2)
            new = [
                i
                for i in slo(data, "incidents", "list", "--json")
                if i["id"] not in before and i["slo_id"] == "payments/availability" and i["triage"]
            ]
        assert new, f"no new incident within 300 s:\n{svc.log()[-3000:]}"
        print(f"live demo: a new incident listed {time.monotonic() - deadline + 300:.1f} s after start")
        status = slo(data, "status", "--json")
        health = svc.health()
    reopened = [
        (i["id"], i["title"], i["detected_at"])
        for i in slo(data, "incidents", "list", "--json")
        if i["id"] not in before and i["detected_at"] <= built["evaluated_to"]
    ]
    assert reopened == []  # the live service opens nothing about what the build already replayed
    inc = new[0]
    # the live burn's page alert, triaged by the rules and routed to a human, after the build's end
    assert (inc["source"], inc["route"], inc["triage"]["method"]) == ("engine", "escalate", "rules")
    assert inc["severity"] in ("SEV1", "SEV2") and "(page)" in inc["title"]
    detected = dt.datetime.fromisoformat(inc["detected_at"].replace("Z", ""))
    assert built_end < detected <= built_end + dt.timedelta(hours=3)
    assert health["worker"]["failures"] == 0
    evaluated = dt.datetime.fromisoformat(status[0]["evaluated_at"].replace("Z", ""))
    assert evaluated > built_end
    # what the dashboard's banner checks: nothing stale, no SLO without recent data, evaluated up to now
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    fresh = {"evaluated_to": evaluated, "last_run_at": now, "last_run_source": "demo"}
    assert stale_reasons(status) == [] and notes(status, fresh, now) == []


def test_what_the_demo_shows_never_cites_the_design_documents(demo: tuple[Path, dict[str, Any]]) -> None:
    """Every text the demo stores (titles, timelines, documents, triage, …) and the help of the commands
    a demo user runs speak the user's words: no "DESIGN §n", no "seed 00n"."""
    data, _ = demo
    leak = re.compile(r"DESIGN §|seed 00\d")
    con = duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'"
        ).fetchall()
        found = [
            (table, column, text[:120])
            for table, column in columns
            for (text,) in con.execute(
                f'SELECT "{column}" FROM "{table}" WHERE regexp_matches("{column}", ?) LIMIT 2',
                [leak.pattern],
            ).fetchall()
        ]
        checked = con.execute("SELECT count(*) FROM timeline").fetchone()
    finally:
        con.close()
    assert checked and checked[0] > 500  # the demo's timelines were read
    assert found == []
    for args in (["demo"], ["status"], ["incidents", "list"], ["incidents", "show"], ["up"]):
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *args, "--help"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert done.stdout.startswith("usage: slo") and not leak.search(done.stdout), args


def test_only_a_store_built_by_the_demo_goes_live(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    data, built = demo
    end = minute_of(dt.datetime.fromisoformat(built["evaluated_to"].replace("Z", "+00:00")))
    assert demo_anchor(data) == (end, end)  # the build's end, and where its data ends
    assert demo_anchor(tmp_path / "empty") is None  # nothing published: the worker's usual cycle


def _severity_of(update: str) -> str:
    """The severity an update was written under, from its subject: "[SEV2] …" or "[SEV2 UPDATE] …"."""
    return update.removeprefix("Subject: [").split("]", 1)[0].split(" ", 1)[0]


def test_every_resolved_incident_got_every_stakeholder_update_due_in_its_lifetime(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    """For every resolved or closed demo incident, walked by hand: the initial notification when it was
    detected; then, for each update, the next one due `next_update_due(its severity, its time)` (SEV1
    15 min, SEV2 30 min, SEV3 2 h, SEV4 a day) must have been drafted by then while the incident was
    unresolved; an update at each status change (root cause found, mitigated); the resolved one when
    it was resolved, and nothing after it. Each update is on the incident's timeline at its time, and
    no resolved or closed incident shows an update as due (so none overdue)."""
    data, _ = demo
    con = duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True)
    try:
        incidents = con.execute(
            """SELECT id, status, detected_at, root_cause_at, mitigated_at, resolved_at FROM incidents
               WHERE NOT imported AND status IN ('resolved', 'closed') ORDER BY id"""
        ).fetchall()
        walked = 0
        for iid, status, detected, root_cause_at, mitigated, resolved in incidents:
            updates = con.execute(
                """SELECT created_at, due_at, split_part(body, chr(10), 1) AS subject FROM documents
                   WHERE incident_id = ? AND kind = 'stakeholder_update' ORDER BY created_at""",
                [iid],
            ).fetchall()
            drafted = [
                at
                for (at,) in con.execute(
                    """SELECT occurred_at FROM timeline WHERE incident_id = ? AND kind = 'document'
                       AND starts_with(message, 'stakeholder update drafted') ORDER BY occurred_at, seq""",
                    [iid],
                ).fetchall()
            ]
            shown = f"{iid}: " + ", ".join(f"{at:%m-%d %H:%M} {subject[9:40]}" for at, _, subject in updates)
            assert drafted == [at for at, _, _ in updates], shown  # each update is on the timeline
            times = [at for at, _, _ in updates]
            assert times[0] == detected and "UPDATE" not in updates[0][2], shown  # initial notification
            assert times[-1] == resolved and updates[-1][2].startswith("Subject: [RESOLVED]"), shown
            assert not any(s.startswith("Subject: [RESOLVED]") for _, _, s in updates[:-1]), shown
            for (at, due, subject), (following, _, _) in itertools.pairwise(updates):
                expected = next_update_due(_severity_of(subject), at)
                assert due == expected, shown  # the due time each update announced is the cadence's
                if expected < resolved:
                    assert following <= expected, f"update due {expected:%m-%d %H:%M} missing — {shown}"
            changes = [t for t in (mitigated,) if t is not None and t < resolved]
            if root_cause_at is not None and (mitigated is None or root_cause_at < mitigated):
                changes.append(root_cause_at)
            assert all(t in times for t in changes), (changes, shown)  # an update at each status change
            # what the incident page shows as the next update: nothing once resolved or closed
            rows = [{"created_at": at, "due_at": due} for at, due, _ in updates]
            assert update_due(status, rows) is None
            walked += 1
    finally:
        con.close()
    assert walked >= 40  # the demo's history: every incident but the few still open at its end
