"""Every dashboard page and action under Streamlit's AppTest, on a real demo store.

Figures are checked from their Plotly JSON, tables against `slo status --json` from the CLI, actions
by reading back what landed in the inbox.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import queries
from pipelines.cycle import open_writer as Writer
from pipelines.inbox import Inbox
from pipelines.outside_text import markdown
from pipelines.store import Snapshot
from tests.support.dashboard_store import (
    ALERT_COLUMNS,
    HISTORY,
    ROOT,
    TIMELINE_COLUMNS,
    DemoStore,
    build_demo_store,
    cli,
)

APP = ROOT / "dashboard" / "app.py"


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    return build_demo_store(tmp_path_factory)


@pytest.fixture
def env(store: DemoStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoStore]:
    monkeypatch.setenv("SLO_DATA_DIR", str(store.data_dir))
    # Nothing listens here: the pages must say the service is not running.
    monkeypatch.setenv("SLO_SERVICE_URL", "http://127.0.0.1:9")
    yield store


def page(name: str, **params: str | list[str]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if name != "fleet":
        at.switch_page(f"views/{name}.py")
    at.query_params.clear()
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def decoded(value: Any) -> Any:
    """Plotly JSON with its typed arrays (`{"dtype", "bdata"}`) turned back into lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
        return {k: decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [decoded(json.loads(c.proto.spec)) for c in at.get("plotly_chart")]


def figure(at: AppTest, index: int = 0) -> dict[str, Any]:
    return figures(at)[index]


def trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    found = [t for t in fig["data"] if t.get("name") == name]
    assert found, f"no trace named {name!r}: {[t.get('name') for t in fig['data']]}"
    return found[0]


def inbox_rows(store: DemoStore) -> list[Any]:
    inbox = Inbox(store.data_dir)
    try:
        return inbox.read_since(0)
    finally:
        inbox.close()


# -- Fleet ------------------------------------------------------------------------------------------


def test_fleet_lists_every_slo_with_the_cli_budgets_worst_first(env: DemoStore) -> None:
    at = page("fleet")
    table = at.dataframe[0].value
    by_slo = {r["slo"]: r for r in env.status}
    print(f"fleet rows: {len(table)}; status --json rows: {len(env.status)}")
    assert len(table) == len(env.status) == 17
    for row in table.itertuples():
        expected = by_slo[row.slo]["budget_remaining"]
        assert row.budget == pytest.approx(expected * 100, rel=1e-12), row.slo
        assert by_slo[row.slo]["policy_state"] in row.state
    budgets = list(table["budget"])
    assert budgets == sorted(budgets), "sorted by budget remaining, lowest first"
    assert at.metric[0].value == "17"


def test_fleet_filters_come_from_and_go_to_the_url(env: DemoStore) -> None:
    at = page("fleet", service=["search", "auth"])
    table = at.dataframe[0].value
    expected = sorted(r["slo"] for r in env.status if r["service"] in {"search", "auth"})
    assert sorted(table["slo"]) == expected and len(expected) == 5
    # a state a search-team SLO is in (the demo now holds every state), so the owner filter below keeps rows
    state = next(r["policy_state"] for r in env.status if r["owner"] == "search-team" and r["policy_state"])
    at = page("fleet", state=state)
    assert set(at.dataframe[0].value["slo"]) == {r["slo"] for r in env.status if r["policy_state"] == state}
    # Changing a filter writes it back to the URL.
    at.multiselect(key="owner").set_value(["search-team"]).run()
    assert at.query_params["owner"] == ["search-team"] or at.query_params["owner"] == "search-team"
    assert set(at.dataframe[0].value["owner"]) == {"search-team"}


def test_fleet_selecting_a_row_opens_the_slo_detail(env: DemoStore) -> None:
    at = page("fleet")
    first = at.dataframe[0].value["slo"].iloc[0]
    at.session_state["fleet_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.title[0].value == "SLO detail"
    assert at.query_params["slo"] in (first, [first])


# -- SLO detail -------------------------------------------------------------------------------------


def test_slo_detail_burn_down_ideal_line_and_thresholds(env: DemoStore) -> None:
    slo_id = "checkout-api/availability"
    at = page("slo", slo=slo_id)
    fig = figure(at)
    end = env.evaluated_at
    ideal = trace(fig, "ideal burn-down")
    x = [pd.Timestamp(v).to_pydatetime() for v in ideal["x"]]
    print(f"ideal line: {list(zip(x, ideal['y'], strict=True))}")
    assert x == [end - dt.timedelta(days=30), end] and ideal["y"] == [1.0, 0.0]
    actual = trace(fig, "budget remaining")
    expected = next(r for r in env.status if r["slo"] == slo_id)["budget_remaining"]
    print(f"burn-down ends at {actual['y'][-1]!r}; slo status says {expected!r}")
    assert pd.Timestamp(actual["x"][-1]).to_pydatetime() == end
    assert actual["y"][-1] == pytest.approx(expected, abs=1e-9)
    assert actual["y"][0] == 1.0
    thresholds = sorted(t["y"][0] for t in fig["data"] if "threshold" in (t.get("name") or ""))
    with Snapshot(env.data_dir).connection() as con:
        factors = con.execute(
            "SELECT factor FROM slo_alerts JOIN slos USING (slo_key) WHERE slo_id = ? ORDER BY factor",
            [slo_id],
        ).fetchall()
    print(f"thresholds drawn: {thresholds}; slo_alerts factors: {factors}")
    assert thresholds == [f for (f,) in factors] and len(thresholds) >= 2
    # The open incident on this SLO is on the same time axis (row 5).
    assert any(t.get("y") == ["DASH-1"] for t in fig["data"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Budget remaining"] == f"{expected * 100:.1f}%"


def test_slo_detail_calendar_window_ideal_ends_at_the_period_end(env: DemoStore) -> None:
    at = page("slo", slo="inventory/correctness")  # a quarter window
    ideal = trace(figure(at), "ideal burn-down")
    end = env.evaluated_at - dt.timedelta(minutes=1)
    q0 = dt.datetime(end.year, 3 * ((end.month - 1) // 3) + 1, 1)
    q1 = dt.datetime(q0.year + (q0.month == 10), 1 if q0.month == 10 else q0.month + 3, 1)
    assert [pd.Timestamp(v).to_pydatetime() for v in ideal["x"]] == [q0, q1]


def test_slo_detail_shades_every_alert_interval_in_the_window(env: DemoStore) -> None:
    with Snapshot(env.data_dir).connection() as con:
        row = con.execute(
            """SELECT s.slo_id, count(*) FROM alert_intervals i JOIN slos s USING (slo_key)
               WHERE s.window_kind = 'rolling' AND s.window_minutes = 43200
                 AND coalesce(i.end_minute, 2147483647) > (SELECT max(evaluated_to) FROM engine_state) - 43200
               GROUP BY 1 ORDER BY 2 DESC LIMIT 1"""
        ).fetchone()
    assert row, "the demo has burn-rate alerts in the last 30 days"
    slo_id, count = row
    fig = figure(page("slo", slo=slo_id))
    shaded = [s for s in fig["layout"].get("shapes", []) if " alert " in (s.get("name") or "")]
    print(f"{slo_id}: {count} alert intervals, {len(shaded)} shaded")
    assert len(shaded) == count


def test_slo_detail_unknown_slo_falls_back_to_the_first(env: DemoStore) -> None:
    at = page("slo", slo="no-such/slo")
    assert at.selectbox(key="slo").value == sorted(r["slo"] for r in env.status)[0]


# -- Alerts -----------------------------------------------------------------------------------------


def test_alerts_lists_engine_and_received_alerts(env: DemoStore) -> None:
    at = page("alerts", since="129600")
    table = at.dataframe[0].value
    with Snapshot(env.data_dir).connection() as con:
        engine = con.execute(
            """SELECT count(*) FROM alert_intervals WHERE end_minute IS NULL
               OR end_minute >= (SELECT max(evaluated_to) FROM engine_state) - 129600"""
        ).fetchone()[0]
    assert engine > 0
    engine_rows = table[table["source"] == "engine"]
    assert len(engine_rows) >= 1
    # An engine alert the incident flow took in is listed once, not also as an interval.
    keys = [(r.slo, r.title, r.starts_at) for r in engine_rows.itertuples()]
    assert len(keys) == len(set(keys))
    with Snapshot(env.data_dir).connection() as con:
        received = {r[0] for r in con.execute("SELECT title FROM alerts").fetchall()}
    shown = set(table.loc[table["source"] != "engine", "title"])
    assert shown <= received
    assert {"CheckoutErrorRateHigh", "Report queue backlog"} <= shown
    assert table["state"].iloc[0] == "firing"  # firing first


def select_row(at: AppTest, key: str, column: str, value: str) -> None:
    rows = list(at.dataframe[0].value[column])
    assert value in rows, rows
    at.session_state[key] = {"selection": {"rows": [rows.index(value)], "columns": [], "cells": []}}


def test_alerts_start_an_incident_and_retriage(env: DemoStore) -> None:
    at = page("alerts", source="generic")
    select_row(at, "alerts_table", "title", "Report queue backlog")
    at.run()
    before = len(inbox_rows(env))
    at.button(key="alert_start").click().run()
    rows = inbox_rows(env)[before:]
    assert [(r.kind, r.source, r.body["fingerprint"], r.body["status"]) for r in rows] == [
        ("alert", "dashboard", "reports/queue", "firing")
    ]
    assert "pending" in " ".join(m.value for m in at.markdown)
    assert any("not running" in e.value for e in at.error)

    at = page("alerts", source="alertmanager")
    select_row(at, "alerts_table", "title", "CheckoutErrorRateHigh")
    at.run()
    at.button(key="alert_retriage").click().run()
    last = inbox_rows(env)[-1]
    assert (last.kind, last.body["command"], last.body["incident_id"]) == ("command", "retriage", "DASH-1")


# -- Incidents --------------------------------------------------------------------------------------


def test_no_resolved_or_closed_demo_incident_shows_an_update_due(env: DemoStore) -> None:
    """The demo's own incidents (issue 17): the page of every one resolved or closed says no
    stakeholder update is scheduled, so none can read "overdue"; an open one still shows its next."""
    snap = Snapshot(env.data_dir)
    with snap.connection() as con:
        shown = con.execute(
            "SELECT id, status FROM incidents WHERE starts_with(id, 'INC-') AND NOT imported ORDER BY id"
        ).fetchall()
    snap.close()
    done = [iid for iid, status in shown if status in ("resolved", "closed")]
    assert len(done) >= 40  # the demo's history: all but the few incidents still open at its end
    for iid in done:
        at = page("incidents", incident=iid)
        assert not any("stakeholder update due" in m.value for m in [*at.info, *at.error]), iid
        assert "No stakeholder update scheduled." in [c.value for c in at.caption], iid
    still_open = next(iid for iid, status in shown if status not in ("resolved", "closed"))
    at = page("incidents", incident=still_open)
    assert any("Next stakeholder update due" in m.value for m in [*at.info, *at.error]), still_open


def test_incidents_list_filters_and_detail(env: DemoStore) -> None:
    at = page("incidents", severity="SEV2")
    table = at.dataframe[0].value
    assert set(table["severity"]) == {"SEV2"}
    assert {"DASH-H1", "DASH-H2", "DASH-1"} <= set(table["id"])
    assert not {"DASH-2", "DASH-H3", "DASH-H4", "DASH-H5"} & set(table["id"])
    at = page("incidents", incident="DASH-2")
    text = " ".join(m.value for m in at.markdown)
    assert "method **model**" in text and "confidence **82%**" in text and "recommended **rollback**" in text
    assert "query planner regressed" in text  # the post-mortem draft
    # DASH-2 is resolved: its last update's due time is not shown, so it can never read "overdue" (issue 17)
    assert not any("stakeholder update due" in i.value for i in [*at.info, *at.error])
    assert "No stakeholder update scheduled." in [c.value for c in at.caption]
    assert "Repeat of** DASH-H2" in text
    timeline = at.table[0].value
    assert list(timeline["message"]) == ["burn-rate ticket"]
    # DASH-2 resolved 90 min after impact (detected at 5, mitigated at 40, acknowledged 7 after detection)
    assert "TTD 5 min · TTA 7 min · TTM 40 min · TTR 90 min" in [c.value for c in at.caption]
    # an open incident shows the durations it already has (analytics leave it out of distributions)
    at = page("incidents", incident="DASH-1")
    assert "TTD 5 min · TTA — · TTM — · TTR —" in [c.value for c in at.caption]


@pytest.mark.parametrize(
    ("incident", "button", "command", "args"),
    [
        ("DASH-1", "ack", "acknowledge", {}),
        ("DASH-1", "mitigate", "mitigate", {}),
        ("DASH-1", "resolve", "resolve", {}),
        ("DASH-1", "retriage", "retriage", {}),
        ("DASH-2", "approve_DASH-REM-1", "approve_remediation", {"remediation_id": "DASH-REM-1"}),
        (
            "DASH-2",
            "reject_DASH-REM-1",
            "reject_remediation",
            {"remediation_id": "DASH-REM-1", "reason": "rejected in the dashboard"},
        ),
    ],
)
def test_incident_buttons_append_commands(
    env: DemoStore, incident: str, button: str, command: str, args: dict[str, str]
) -> None:
    at = page("incidents", incident=incident)
    before = len(inbox_rows(env))
    at.button(key=button).click().run()
    rows = inbox_rows(env)[before:]
    assert len(rows) == 1
    row = rows[0]
    assert (row.kind, row.source, row.dedup_key) == ("command", "dashboard", row.body["dedup_key"])
    assert (row.body["command"], row.body["incident_id"], row.body["args"]) == (command, incident, args)
    assert row.body["source"] == "dashboard"
    text = " ".join(m.value for m in at.markdown)
    assert f":orange-badge[pending] — {command.replace('_', ' ')} → {incident}" in text
    assert any("the service is not running" in e.value for e in at.error)


def test_incident_acknowledge_is_disabled_once_acknowledged(env: DemoStore) -> None:
    at = page("incidents", incident="DASH-2")
    assert at.button(key="ack").disabled and at.button(key="resolve").disabled
    assert not at.button(key="retriage").disabled


def test_a_root_cause_the_validator_refuses_is_said_on_the_page_and_not_sent(env: DemoStore) -> None:
    """The one command validator refuses text over 4,000 characters at every door: the form says so
    (the page does not crash) and nothing reaches the inbox."""
    at = page("incidents", incident="DASH-1")
    before = len(inbox_rows(env))
    at.text_area(key="rc_text").set_value("x" * 4001)
    at.button(key="FormSubmitter:root_cause-Record root cause").click().run()
    assert not at.exception
    assert any("4000" in e.value or "4,000" in e.value for e in at.error), [e.value for e in at.error]
    assert len(inbox_rows(env)) == before


def test_incident_root_cause_and_action_item_forms(env: DemoStore) -> None:
    at = page("incidents", incident="DASH-1")
    before = len(inbox_rows(env))
    at.text_area(key="rc_text").set_value("")
    at.button(key="FormSubmitter:root_cause-Record root cause").click().run()
    assert any("needs a description" in e.value for e in at.error)
    assert len(inbox_rows(env)) == before, "a refused form appends nothing"
    at.selectbox(key="rc_category").set_value("dependency")
    at.text_area(key="rc_text").set_value("payment provider timeouts")
    at.button(key="FormSubmitter:root_cause-Record root cause").click().run()
    at.text_input(key="ai_title").set_value("Circuit breaker on the payment client")
    at.text_input(key="ai_owner").set_value("commerce-team")
    at.date_input(key="ai_due").set_value(dt.date(2027, 1, 15))
    at.button(key="FormSubmitter:action_item-Add action item").click().run()
    bodies = [r.body for r in inbox_rows(env)[before:]]
    assert [(b["command"], b["args"]) for b in bodies] == [
        ("root_cause", {"category": "dependency", "text": "payment provider timeouts"}),
        (
            "action_item",
            {"title": "Circuit breaker on the payment client", "owner": "commerce-team", "priority": "P2",
             "due_date": "2027-01-15"},
        ),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("step_actor", "names_key", "kind", "mark"),
    [
        ("fold", True, "acknowledged", ":green-badge[done]"),  # the step carries the command's inbox key
        # a dashboard step by the same actor, after the sending (what the incident fold writes)
        ("local", False, "acknowledged", ":green-badge[done]"),  # no sign-in: the single local user
        ("bob", False, "acknowledged", ":orange-badge[pending]"),  # someone else's acknowledge
        ("local", False, "command_rejected", ":red-badge[rejected]"),
    ],
)
def test_a_command_shows_done_once_the_snapshot_has_it_on_the_timeline(
    env: DemoStore, step_actor: str, names_key: bool, kind: str, mark: str
) -> None:

    at = page("incidents", incident="DASH-1")
    assert "Acting as" not in [w.label for w in at.text_input]  # issue 15: the actor is the identity
    at.button(key="ack").click().run()
    key = inbox_rows(env)[-1].dedup_key
    assert inbox_rows(env)[-1].body["actor"] == "local"
    assert ":orange-badge[pending]" in " ".join(m.value for m in at.markdown)
    # What the incident fold does when it applies the command (issue 4): a timeline step.
    with Writer(env.data_dir) as w:
        w.db.execute(
            """INSERT INTO timeline SELECT 'DASH-1', max(seq) + 1, now()::TIMESTAMP, ?,
                 'dashboard', ?, 'acknowledge rejected: test',
                 CASE WHEN ? THEN json_object('dedup_key', ?) END
               FROM timeline WHERE incident_id = 'DASH-1'""",
            [kind, step_actor, names_key, key],
        )
        w.publish()
    try:
        at.run()
        text = " ".join(m.value for m in at.markdown)
        assert f"{mark} — acknowledge → DASH-1" in text
    finally:
        with Writer(env.data_dir) as w:
            w.db.execute("DELETE FROM timeline WHERE incident_id = 'DASH-1' AND seq > 3")
            w.publish()


@pytest.mark.parametrize(
    ("incident", "entries", "button", "label", "reason", "args"),
    [
        (  # the status page asked for its approval, no communications lead: the local admin overrides
            "DASH-1",
            [("status_page_pending", None)],
            "comms_approve_status",
            "Approve the status page post (admin override)",
            "no communications lead is assigned; assign one first (slo incidents assign DASH-1 --role comms "
            "--person NAME) and they approve",
            {"override": True},
        ),
        (  # the local user is the communications lead: a plain approval
            "DASH-1",
            [
                ("status_page_pending", None),
                ("role_assigned", {"role": "communications_lead", "person": "local"}),
            ],
            "comms_approve_status",
            "Approve the status page post",
            None,
            {},
        ),
        (  # a drafted update (below); bob is the lead, so the local admin's approval is an override
            "DASH-1",
            [("role_assigned", {"role": "communications_lead", "person": "bob"})],
            "comms_approve_updates",
            "Approve stakeholder updates to Slack (admin override)",
            "only the communications lead, bob, approves it; local is not the communications lead",
            {"override": True},
        ),
    ],
)
def test_the_communications_lead_approves_and_an_admin_overrides(
    env: DemoStore, incident: str, entries: list[Any], button: str, label: str, reason: str | None, args: Any
) -> None:
    # The page cache is keyed by the snapshot's inode, which ext4 hands out again two publishes later:
    # this test's publish could otherwise be served the previous case's cached page.
    queries._cached.clear()
    with Writer(env.data_dir) as w:
        last = w.db.execute("SELECT max(seq) FROM timeline WHERE incident_id = ?", [incident]).fetchone()[0]
        for i, (kind, data) in enumerate(entries, start=1):
            w.db.execute(
                f"INSERT INTO timeline {TIMELINE_COLUMNS} "
                "VALUES (?, ?, now()::TIMESTAMP, ?, 'cli', 'ivan', ?, ?)",
                [incident, last + i, kind, kind, None if data is None else json.dumps(data)],
            )
        if button == "comms_approve_updates":  # the documents step drafted a stakeholder update
            w.db.execute(
                "INSERT INTO documents (incident_id, kind, created_at, model_written, due_at, body) "
                "VALUES (?, 'stakeholder_update', now()::TIMESTAMP, FALSE, NULL, 'Checkout degraded.')",
                [incident],
            )
        w.publish()
    try:
        at = page("incidents", incident=incident)
        assert at.button(key=button).label == label and not at.button(key=button).disabled
        captions = [c.value for c in at.caption if "communications lead" in c.value]
        instead = " As an admin you may approve in their stead: the timeline records an override."
        assert captions == ([] if reason is None else [markdown(reason) + instead])  # as the page escapes it
        before = len(inbox_rows(env))
        at.button(key=button).click().run()
        (row,) = inbox_rows(env)[before:]
        assert (row.body["command"], row.body["actor"], row.body["args"]) == (button[6:], "local", args)
    finally:
        with Writer(env.data_dir) as w:
            w.db.execute("DELETE FROM timeline WHERE incident_id = ? AND seq > ?", [incident, last])
            w.db.execute(
                "DELETE FROM documents WHERE incident_id = ? AND body = 'Checkout degraded.'", [incident]
            )
            w.publish()


# -- Analytics and quarterly review -----------------------------------------------------------------


def test_analytics_distributions_from_the_incident_rows(env: DemoStore) -> None:
    at = page("analytics")
    charts = figures(at)
    ttr = next(c for c in charts if c["layout"]["title"]["text"].startswith("TTR"))
    points = {i: v for t in ttr["data"] for i, v in zip(t["text"], t["y"], strict=True)}
    ours = sorted(v for i, v in points.items() if i.startswith("DASH-"))
    expected = sorted([ttr for *_, ttr in HISTORY] + [90])  # DASH-2 resolved after 90 min
    print(f"TTR points of the test's incidents: {ours}")
    assert ours == expected
    with Snapshot(env.data_dir).connection() as con:
        rows = con.execute(
            """SELECT year(impact_start) || '-Q' || quarter(impact_start),
                      date_diff('second', impact_start, detected_at) / 60.0, resolved_at IS NOT NULL
               FROM incidents WHERE impact_start IS NOT NULL"""
        ).fetchall()
    assert len(points) == sum(1 for *_, resolved in rows if resolved)  # one point per resolved incident
    mix = next(c for c in charts if c["layout"]["title"]["text"].startswith("Incidents by severity"))
    assert sum(sum(t["y"]) for t in mix["data"]) == len(rows)
    # The summary's TTD p50 per quarter is numpy's linear-interpolation median of the resolved incidents'
    # values (open incidents are left out of durations), written as the review writes minutes (6.5, not 7).
    summary = at.table[0].value
    for quarter, p50 in summary.loc[summary["measure"] == "TTD", ["quarter", "p50"]].itertuples(index=False):
        values = [v for q, v, resolved in rows if q == quarter and v is not None and resolved]
        assert p50 == f"{float(np.percentile(values, 50)):,.1f}", quarter


def test_analytics_quarter_sections_are_the_reviews(env: DemoStore) -> None:
    """Alert quality, the backtest, on-call load and deploys show `slo report quarterly --format json`'s
    figures for the chosen quarter."""
    at = page("analytics")
    focus = at.selectbox(key="focus").value
    done = cli(env.data_dir, "report", "quarterly", "--quarter", focus, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    metrics = {m.label: m.value for m in at.metric}
    quality = report["alert_quality"]
    print(f"{focus}: page metrics {metrics}; report alert quality {quality}")
    assert metrics["pages"] == str(quality["pages"])
    assert metrics["precision (pages with an incident)"] == charts_pct(quality["precision"])
    assert metrics["incidents after a deploy"] == (
        f"{report['deploys']['incidents_after_deploy']} of {report['deploys']['incidents']}"
    )
    table = next(d.value for d in at.table if "setting" in d.value.columns)
    assert list(zip(table["setting"], table["pages"], strict=True)) == [
        (b["setting"], b["pages"]) for b in report["backtest"]
    ]
    weekly = next(f for f in figures(at) if f["layout"]["title"]["text"] == "Pages per on-call week")
    assert weekly["data"][0]["y"] == report["oncall"]["pages_per_week"]
    # the page's TTD/TTR p50 and p90 of the quarter read as the review's Incidents table reads them
    summary = at.table[0].value
    incidents = report["incidents"]
    for measure in ("TTD", "TTR"):
        [row] = summary[(summary["measure"] == measure) & (summary["quarter"] == focus)].to_dict("records")
        stats = incidents[f"{measure.lower()}_minutes"]
        assert (row["p50"], row["p90"]) == (f"{stats['p50']:,.1f}", f"{stats['p90']:,.1f}"), measure
    assert metrics["detection p50"] == f"{quality['detection_minutes']['p50']:,.1f} min"


ONCALL = """\
people: {alice: {}, bob: {}}
schedules:
  primary:
    layers:
      - {start: "2026-01-05T00:00:00Z", rotation_turn_length: 1w, users: [alice, bob]}
policies:
  default: {tiers: [{target: {schedule: primary}, timeout: 5m}]}
"""


def test_with_an_oncall_file_both_pages_show_the_reviews_load_per_engineer(
    env: DemoStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "oncall.yaml").write_text(ONCALL)
    monkeypatch.setenv("SLO_ONCALL_FILE", str(tmp_path / "oncall.yaml"))
    at = page("analytics")
    focus = at.selectbox(key="focus").value
    done = cli(env.data_dir, "report", "quarterly", "--quarter", focus, "--format", "json")
    assert done.returncode == 0, done.stderr
    oncall = json.loads(done.stdout)["oncall"]
    assert oncall["method"] == "schedule" and {p["person"] for p in oncall["people"]} == {"alice", "bob"}
    # the schedule alternates weekly: each person's pages/week is their pages over their on-call weeks
    for p in oncall["people"]:
        assert p["pages_per_week"] == round(p["pages"] / p["on_call_weeks"], 2)
    expected = [
        [p["schedule"], p["person"], str(p["pages"]), f"{p['on_call_weeks']:g}", f"{p['pages_per_week']:g}",
         "yes" if p["pages_per_week"] < 5 else "no"]
        for p in oncall["people"]
    ]  # fmt: skip
    table = next(d.value for d in at.table if "person" in d.value.columns)
    assert table.values.tolist() == expected
    assert any(c.value.startswith("Method: the on-call schedule (primary):") for c in at.caption)
    at = page("quarterly", quarter=focus)
    tables = [d.value for d in at.table if "person" in d.value.columns]
    assert [t.values.tolist() for t in tables] == [expected]


def charts_pct(value: float | None) -> str:
    from dashboard.charts import pct

    return pct(value)


def test_analytics_filters_by_quarter_and_severity(env: DemoStore) -> None:
    at = page("analytics", severity="SEV1")
    ttr = next(c for c in figures(at) if c["layout"]["title"]["text"].startswith("TTR"))
    assert {t["name"] for t in ttr["data"]} == {"SEV1"}
    points = {i: v for t in ttr["data"] for i, v in zip(t["text"], t["y"], strict=True)}
    assert points["DASH-H4"] == 30 and not [i for i in points if i in {"DASH-H1", "DASH-2"}]


def test_quarterly_review_is_the_reports_and_downloads(env: DemoStore) -> None:
    from pipelines.analytics.render import SECTIONS

    at = page("quarterly")
    quarter = at.selectbox(key="quarter").value
    done = cli(env.data_dir, "report", "quarterly", "--quarter", quarter, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [h.value for h in at.header] == list(SECTIONS)
    assert [b.proto.label for b in at.get("download_button")] == [
        "Download Markdown",
        "Download HTML",
        "Download JSON",
    ]
    slos = at.table[0].value
    assert list(slos["SLO"]) == [s["slo"] for s in report["slos"]]
    assert len(slos) == 17  # every demo SLO
    h = report["headline"]
    headline = at.markdown[0].value
    print(headline)
    assert f"- SLOs met: {h['slos_met']} of {h['slos_measured']} (" in headline
    assert f"- Incidents: {h['incidents']} (" in headline
    assert len(at.get("plotly_chart")) == 5  # burn-down, two trends, pages per week, backtest


def test_pages_without_incident_data_say_so(
    tmp_path: Path, store: DemoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store with metrics but no incidents: the incident and analytics pages say "no data yet"."""
    import shutil

    # the work file and its files (the store keeps closed hours of buckets as Parquet files)
    shutil.copy(store.data_dir / "work.duckdb", tmp_path / "work.duckdb")
    shutil.copytree(store.data_dir / "parts", tmp_path / "parts")

    with Writer(tmp_path) as w:
        w.db.execute("DELETE FROM incidents")
        w.publish()  # publishes the (empty-incident) work file, its analytics rebuilt
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path))
    at = page("incidents")
    assert any(i.value.startswith("No incidents yet") for i in at.info)
    at = page("analytics")
    assert any(i.value.startswith("No incident data yet") for i in at.info)


def test_every_page_without_a_snapshot_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path))
    for name in ("fleet", "slo", "alerts", "incidents", "analytics", "quarterly"):
        at = page(name)
        assert any("slo demo" in i.value for i in at.info), name


def test_an_engine_alert_taken_in_by_the_incident_flow_is_listed_once(
    store: DemoStore, tmp_path: Path
) -> None:
    import shutil

    from dashboard import queries

    shutil.copy(store.data_dir / "work.duckdb", tmp_path / "work.duckdb")
    shutil.copytree(store.data_dir / "parts", tmp_path / "parts")  # the store's closed hours of buckets
    with Writer(tmp_path) as w:
        w.db.execute("DELETE FROM alerts WHERE source = 'engine'")
        slo_id, severity, start = w.db.execute(
            """SELECT s.slo_id, a.severity, to_timestamp(i.start_minute * 60)::TIMESTAMP
               FROM alert_intervals i JOIN slo_alerts a USING (slo_key, bit) JOIN slos s USING (slo_key)
               ORDER BY i.start_minute DESC LIMIT 1"""
        ).fetchone()
        w.publish()
    before = queries.run_query(tmp_path, queries.alerts, 400 * 1440)
    mine = before[(before["source"] == "engine") & (before["slo"] == slo_id) & (before["starts_at"] == start)]
    assert len(mine) >= 1
    with Writer(tmp_path) as w:  # what the fold writes for the engine's alert (fingerprint <slo>:<severity>)
        w.db.execute(
            f"""INSERT INTO alerts {ALERT_COLUMNS} VALUES ('engine-test', 99, 'engine', 'firing', 'svc', ?,
                 ? || ':' || ?, 'SEV2', 'SLO burn', '', '{{}}', '{{}}', ?, NULL, ?, NULL)""",
            [slo_id, slo_id, severity, start, start],
        )
        w.publish()
    after = queries.run_query(tmp_path, queries.alerts, 400 * 1440)
    listed = after[(after["slo"] == slo_id) & (after["starts_at"] == start)]
    print(
        f"{slo_id} {severity} at {start}: before {len(mine)} interval row(s); after {list(listed['title'])}"
    )
    assert list(listed["title"]) == ["SLO burn"]
