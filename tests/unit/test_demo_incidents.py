"""`slo demo`'s incident flow (issue 4, deliverable 7) on three of the demo's SLOs, to stay fast: the engine's
alerts and the injected Alertmanager alerts go through the real stage offline, with the real runbook scripts,
and the result shows auto-remediated, escalated, repeated and still-open incidents."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.config import Settings
from pipelines.cycle import run_cycle
from pipelines.demo.source import demo_pull
from pipelines.inbox import Inbox
from pipelines.store import SNAPSHOT_FILE

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
END = NOW.replace(tzinfo=None)
KEEP = {"search/availability", "notifications/availability", "reports/availability"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[duckdb.DuckDBPyConnection, Path]:
    data = tmp_path_factory.mktemp("demo") / "data"
    settings = Settings.load({"SLO_DATA_DIR": str(data)})
    slos, pull, replay = demo_pull(NOW, None)
    slos = [s for s in slos if s.id in KEEP]
    pull.buckets = pull.buckets[pull.buckets["slo_id"].isin(KEEP)]
    replay.events = [e for e in replay.events if set(e[2]) & KEEP]
    pull.deploys = [d for d in pull.deploys if d[0] in {"search", "notifications", "reports"}]
    run_cycle(settings, slos, pull, stage=replay, reset=True)
    con = duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True)
    yield con, data
    con.close()


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    rel = con.execute(sql, params or [])
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def test_every_search_page_alert_opened_an_escalated_incident(demo) -> None:
    con, _ = demo
    # Page alert intervals of search/availability, merged per severity as the engine emits them.
    starts = [
        r[0]
        for r in con.execute(
            """SELECT to_timestamp(min(a.start_minute) * 60)::TIMESTAMP FROM alert_intervals a
               JOIN slos s USING (slo_key) JOIN slo_alerts sa ON sa.slo_key = a.slo_key AND sa.bit = a.bit
               WHERE s.slo_id = 'search/availability' AND sa.severity = 'page'
               GROUP BY date_trunc('day', to_timestamp(a.start_minute * 60)) ORDER BY 1"""
        ).fetchall()
    ]
    incidents = rows(
        con,
        "SELECT * FROM incidents WHERE slo_id = 'search/availability' ORDER BY detected_at",
    )
    assert [i["detected_at"] for i in incidents] == starts
    assert len(starts) == 6  # the planner regression and its recurrence, in each of the three quarters
    for i in incidents:
        assert (i["source"], i["detected_at_source"], i["severity"], i["route"]) == (
            "engine",
            "engine",
            "SEV2",
            "escalate",
        )
        assert i["impact_start"] <= i["detected_at"] and i["impact_start_source"].startswith("sli_estimate")
        assert i["budget_consumed"] > 0


def test_the_recurrence_is_a_repeat_while_the_first_action_item_is_still_open(demo) -> None:
    con, _ = demo
    repeats = rows(
        con, "SELECT * FROM incidents WHERE repeat_of IS NOT NULL AND slo_id = 'search/availability'"
    )
    assert len(repeats) == 3
    for r in repeats:
        first = rows(con, "SELECT * FROM incidents WHERE id = ?", [r["repeat_of"]])[0]
        assert first["fingerprint"] == r["fingerprint"]
        assert r["detected_at"] - first["resolved_at"] < dt.timedelta(days=30)
        open_items = rows(
            con,
            "SELECT * FROM action_items WHERE incident_id = ? AND status = 'open' AND created_at < ?",
            [first["id"], r["detected_at"]],
        )
        assert open_items, f"{first['id']} had no open action item when {r['id']} started"


def test_queue_backlogs_are_auto_remediated_by_the_real_runbook_and_verified(demo) -> None:
    con, _ = demo
    auto = rows(
        con,
        """SELECT i.id, i.status, i.mitigated_at, i.mitigated_at_source, r.action, r.status AS rstatus,
                  r.exit_code, r.verified, r.verified_at, r.output
           FROM incidents i JOIN remediations r ON r.incident_id = i.id
           WHERE i.route = 'auto_remediate' ORDER BY i.id""",
    )
    assert len(auto) >= 2
    for a in auto:
        assert (a["action"], a["rstatus"], a["exit_code"], a["verified"]) == (
            "scale_up",
            "succeeded",
            0,
            True,
        )
        assert "ok: added 6 workers" in a["output"]  # runbooks/notifications/remediate.sh really ran
        assert (a["mitigated_at"], a["mitigated_at_source"]) == (a["verified_at"], "verification")
    assert (
        rows(
            con,
            "SELECT count(*) AS n FROM notifications n JOIN incidents i ON i.id = n.incident_id"
            " WHERE i.route = 'auto_remediate'",
        )[0]["n"]
        == 0
    )  # nobody was paged for them


def test_a_failing_runbook_action_escalates(demo) -> None:
    con, _ = demo
    failed = rows(
        con,
        """SELECT i.id, i.route, r.action, r.status, r.attempts, r.exit_code FROM incidents i
           JOIN remediations r ON r.incident_id = i.id WHERE r.status = 'failed' ORDER BY i.id""",
    )
    assert failed
    for f in failed:
        assert (f["route"], f["action"], f["attempts"], f["exit_code"]) == ("escalate", "flush_cache", 3, 1)
    escalated = rows(
        con, "SELECT message FROM timeline WHERE incident_id = ? AND kind = 'escalated'", [failed[0]["id"]]
    )
    assert escalated == [
        {"message": f"escalated to on-call-primary: remediation {failed[0]['id']}-R1 (flush_cache) failed"}
    ]


def test_the_newest_incidents_are_still_open_and_nothing_happened_after_the_end(demo) -> None:
    con, _ = demo
    open_ = {
        r["service"]: r["status"]
        for r in rows(con, "SELECT * FROM incidents WHERE status NOT IN ('resolved', 'closed')")
    }
    assert open_ == {"reports": "triggered", "search": "acknowledged"}
    assert rows(con, "SELECT max(occurred_at) AS t FROM timeline")[0]["t"] <= END


def test_late_acknowledgements_fire_the_timer(demo) -> None:
    con, _ = demo
    fired = rows(
        con,
        """SELECT i.escalated_at, i.acknowledged_at, t.occurred_at
           FROM timeline t JOIN incidents i ON i.id = t.incident_id
           WHERE t.kind = 'timer' AND t.message LIKE 'no acknowledgement 15 min%'""",
    )
    assert fired
    for f in fired:
        assert f["occurred_at"] == f["escalated_at"] + dt.timedelta(minutes=15) < f["acknowledged_at"]


def test_every_timestamp_has_its_source_and_closed_incidents_have_their_documents(demo) -> None:
    con, _ = demo
    for inc in rows(con, "SELECT * FROM incidents"):
        for name in ("impact_start", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at"):
            assert (inc[name] is None) == (inc[f"{name}_source"] is None), (inc["id"], name)
        kinds = {
            r["kind"] for r in rows(con, "SELECT kind FROM documents WHERE incident_id = ?", [inc["id"]])
        }
        assert {"triage_report", "stakeholder_update"} <= kinds
        if inc["status"] == "closed":
            assert {"postmortem", "runbook_suggestion"} <= kinds
    overdue = rows(con, "SELECT * FROM action_items WHERE status = 'open' AND due_date < ?", [END.date()])
    assert overdue


def test_the_store_is_derived_from_the_inbox(demo) -> None:
    con, data = demo
    inbox = Inbox(data)
    alerts_in_inbox = sum(1 for row in inbox.iter_since(0) if row.kind == "alert")
    assert rows(con, "SELECT count(*) AS n FROM alerts")[0]["n"] == alerts_in_inbox
    assert rows(con, "SELECT last_seq FROM inbox_cursor")[0]["last_seq"] == inbox.last_seq()
    assert rows(con, "SELECT count(*) AS n FROM inbox_rejects")[0]["n"] == 0
    inbox.close()


def test_the_postmortem_is_filled_from_the_timeline_and_the_sli_data(demo) -> None:
    con, _ = demo
    inc = rows(con, "SELECT * FROM incidents WHERE slo_id = 'search/availability' ORDER BY id LIMIT 1")[0]
    counts = rows(
        con,
        """SELECT sum(valid - good) AS bad, sum(valid) AS valid FROM buckets JOIN slos USING (slo_key)
           WHERE slo_id = 'search/availability' AND minute >= epoch(?::TIMESTAMP) // 60
             AND minute < epoch(?::TIMESTAMP) // 60""",
        [inc["impact_start"], inc["resolved_at"]],
    )[0]
    final = rows(
        con,
        "SELECT body FROM documents WHERE incident_id = ? AND kind = 'postmortem'"
        " ORDER BY created_at DESC LIMIT 1",
        [inc["id"]],
    )[0]["body"]
    assert "**Status**: Final" in final
    assert f"Users affected: {counts['bad']:,} of {counts['valid']:,} events bad" in final
    assert f"search/availability {inc['budget_consumed'] * 100:.1f}% of its window's error budget" in final
    assert f"| {inc['acknowledged_at']:%H:%M} | acknowledged |" in final
