"""A demo store for the dashboard tests: `slo demo` (a real subprocess) plus a few incident rows
written through `pipelines.store.Writer`, published like the pipeline publishes.

Built once per pytest session under the session's base temp dir and reused by every module that
asks (the AppTest and browser suites share it). Building takes about 20 s on 2 cores.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.cycle import open_writer as Writer
from pipelines.store import Snapshot

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DemoStore:
    data_dir: Path
    evaluated_at: dt.datetime  # naive UTC: the latest evaluated instant
    status: list[dict]  # `slo status --json` of the store, from the CLI


def cli(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLO_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def build_demo_store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    data_dir = tmp_path_factory.getbasetemp() / "dashboard-demo"
    marker = data_dir / "incidents.done"
    if not marker.exists():
        result = cli(data_dir, "demo")
        assert result.returncode == 0, result.stderr
        add_incidents(data_dir)
        marker.write_text("ok")
    status = cli(data_dir, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    evaluated = dt.datetime.fromisoformat(rows[0]["evaluated_at"].replace("Z", ""))
    return DemoStore(data_dir, evaluated, rows)


# Migration 2's columns, named: later migrations may add columns (with defaults).
ALERT_COLUMNS = """(dedup_key, inbox_seq, source, status, service, slo_id, fingerprint, severity, title,
    description, labels, annotations, starts_at, ends_at, received_at, incident_id)"""
TIMELINE_COLUMNS = "(incident_id, seq, occurred_at, kind, source, actor, message, data)"
TRIAGE_COLUMNS = """(incident_id, attempt, method, model, severity, root_cause_hypothesis, recommended_action,
    confidence, rationale, latency_ms, raw, error, created_at)"""
REMEDIATION_COLUMNS = """(id, incident_id, action, status, attempts, exit_code, output, verified, approved_by,
    started_at, finished_at, created_at)"""
ACTION_ITEM_COLUMNS = "(id, incident_id, title, owner, priority, due_date, status, done_at, created_at)"
DOCUMENT_COLUMNS = "(incident_id, kind, created_at, model_written, due_at, body)"

# Incidents the tests know by heart. Durations in minutes from impact_start:
# detected +5, acknowledged +12, mitigated +40, resolved +90 for the resolved ones.
HISTORY = [
    # id, service, severity, quarter offset (days before the latest instant), ttr minutes
    ("DASH-H1", "search", "SEV2", 200, 60),
    ("DASH-H2", "search", "SEV2", 190, 120),
    ("DASH-H3", "payments", "SEV3", 180, 240),
    ("DASH-H4", "payments", "SEV1", 40, 30),
    ("DASH-H5", "auth", "SEV3", 20, 90),
]


def add_incidents(data_dir: Path) -> None:
    """DASH-1: open SEV2 on checkout-api/availability with a firing Alertmanager alert, triaged by
    rules, escalated; DASH-2: resolved SEV3 on search, auto-remediation awaiting approval, a
    post-mortem draft, a stakeholder update due and an action item; DASH-H1…5: resolved history."""
    with Snapshot(data_dir).connection() as con:
        row = con.execute("SELECT max(evaluated_to) FROM engine_state").fetchone()
    assert row and row[0]
    now = dt.datetime(1970, 1, 1) + dt.timedelta(minutes=int(row[0]))
    with Writer(data_dir) as writer:
        db = writer.db

        def incident(
            iid: str,
            service: str,
            title: str,
            severity: str,
            status: str,
            slo_id: str | None,
            start: dt.datetime,
            resolved: dt.datetime | None,
            route: str | None,
            **extra: object,
        ) -> None:
            ack = start + dt.timedelta(minutes=12) if status != "triggered" else None
            db.execute(
                """INSERT INTO incidents (id, service, title, severity, status, source, fingerprint, slo_id,
                     impact_start, impact_start_source, detected_at, detected_at_source,
                     acknowledged_at, acknowledged_at_source, mitigated_at, mitigated_at_source,
                     resolved_at, resolved_at_source, route, root_cause_category, root_cause, repeat_of,
                     imported, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'sli', ?, 'alertmanager', ?, 'dashboard', ?, 'cli',
                           ?, 'cli', ?, ?, ?, ?, ?, ?, ?)""",
                [
                    iid, service, title, severity, status, extra.get("source", "alertmanager"),
                    f"{service}/fp", slo_id, start, start + dt.timedelta(minutes=5), ack,
                    min(start + dt.timedelta(minutes=40), resolved) if resolved else None, resolved, route,
                    extra.get("category"), extra.get("root_cause"), extra.get("repeat_of"),
                    iid.startswith("DASH-H"), start + dt.timedelta(minutes=5),
                    start + dt.timedelta(minutes=5),
                ],
            )  # fmt: skip

        start1 = now - dt.timedelta(hours=3)
        incident("DASH-1", "checkout-api", "Checkout availability burning fast", "SEV2", "triggered",
                 "checkout-api/availability", start1, None, "escalate")  # fmt: skip
        db.execute(
            "INSERT INTO incident_slos (incident_id, slo_id, budget_consumed) "
            "VALUES ('DASH-1', 'checkout-api/availability', 0.12)"
        )
        db.execute(
            f"""INSERT INTO alerts {ALERT_COLUMNS}
               VALUES ('dash-am-1', 1, 'alertmanager', 'firing', 'checkout-api',
                 'checkout-api/availability', 'checkout-api/fp', 'SEV2', 'CheckoutErrorRateHigh',
                 'error rate above 2%', '{{}}', '{{}}', ?, NULL, ?, 'DASH-1')""",
            [start1 + dt.timedelta(minutes=4), start1 + dt.timedelta(minutes=5)],
        )
        db.execute(
            f"""INSERT INTO alerts {ALERT_COLUMNS}
               VALUES ('dash-gen-1', 2, 'generic', 'firing', 'reports', NULL,
                 'reports/queue',
                 'SEV3', 'Report queue backlog', 'backlog above 1000', '{{}}', '{{}}', ?, NULL, ?, NULL)""",
            [now - dt.timedelta(minutes=30), now - dt.timedelta(minutes=29)],
        )
        for seq, (minutes, kind, source, message) in enumerate(
            [
                (5, "alert", "alertmanager", "CheckoutErrorRateHigh firing"),
                (6, "triage", "triage", "rules: SEV2, recommended escalate (confidence 60%)"),
                (6, "route", "router", "escalated to the on-call engineer"),
            ],
            start=1,
        ):
            db.execute(
                f"INSERT INTO timeline {TIMELINE_COLUMNS} VALUES ('DASH-1', ?, ?, ?, ?, NULL, ?, NULL)",
                [seq, start1 + dt.timedelta(minutes=minutes), kind, source, message],
            )
        db.execute(
            f"""INSERT INTO triage {TRIAGE_COLUMNS}
               VALUES ('DASH-1', 1, 'rules', NULL, 'SEV2', 'payment client timeouts',
                 'escalate', 0.6, 'page-severity burn on a revenue path', 3.5, NULL, NULL, ?)""",
            [start1 + dt.timedelta(minutes=6)],
        )

        start2 = now - dt.timedelta(days=2)
        incident("DASH-2", "search", "Search correctness degraded", "SEV3", "resolved",
                 "search/correctness", start2, start2 + dt.timedelta(minutes=90), "auto_remediate",
                 category="deploy", root_cause="query planner regression", repeat_of="DASH-H2")  # fmt: skip
        db.execute(
            f"""INSERT INTO triage {TRIAGE_COLUMNS}
               VALUES ('DASH-2', 1, 'model', 'claude-test', 'SEV3', 'bad deploy',
                 'rollback', 0.82, 'a deploy 10 minutes before the burn', 900, NULL, NULL, ?)""",
            [start2 + dt.timedelta(minutes=6)],
        )
        db.execute(
            f"""INSERT INTO remediations {REMEDIATION_COLUMNS}
               VALUES ('DASH-REM-1', 'DASH-2', 'rollback', 'awaiting_approval', 0,
                 NULL,
                 NULL, NULL, NULL, NULL, NULL, ?)""",
            [start2 + dt.timedelta(minutes=7)],
        )
        db.execute(
            f"""INSERT INTO action_items {ACTION_ITEM_COLUMNS}
               VALUES ('DASH-AI-1', 'DASH-2', 'Add a canary for the planner',
                 'search-team', 'P2', ?, 'open', NULL, ?)""",
            [(now + dt.timedelta(days=10)).date(), start2 + dt.timedelta(hours=3)],
        )
        db.execute(
            f"INSERT INTO documents {DOCUMENT_COLUMNS} VALUES ('DASH-2', 'postmortem', ?, FALSE, NULL, ?)",
            [start2 + dt.timedelta(hours=2), "## Summary\nThe query planner regressed after a deploy."],
        )
        db.execute(
            f"INSERT INTO documents {DOCUMENT_COLUMNS} "
            "VALUES ('DASH-2', 'stakeholder_update', ?, FALSE, ?, ?)",
            [start2 + dt.timedelta(minutes=30), now + dt.timedelta(hours=1), "Search results degraded."],
        )
        db.execute(
            f"INSERT INTO timeline {TIMELINE_COLUMNS} "
            "VALUES ('DASH-2', 1, ?, 'alert', 'engine', NULL, 'burn-rate ticket', NULL)",
            [start2 + dt.timedelta(minutes=5)],
        )
        for iid, service, severity, days, ttr in HISTORY:
            start = now - dt.timedelta(days=days)
            incident(iid, service, f"{service} history {iid}", severity, "resolved", None,
                     start, start + dt.timedelta(minutes=ttr), "escalate", source="statuspage")  # fmt: skip
        writer.publish()
