"""The inbox fold (issue 4, deliverable 3): grouping, re-delivery, the state machine, PagerDuty lifecycle
events, timestamps with their sources, impact_start and budget consumed — each checkable by hand."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.inbox import Entry, Inbox
from pipelines.incidents import impact
from pipelines.incidents.contract import Alert, Command
from pipelines.incidents.fold import fold_inbox
from pipelines.store import connect, migrate
from pipelines.timeutil import minute_of

T0 = dt.datetime(2026, 6, 1, 10, 0)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = connect()
    migrate(c)
    return c


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    box = Inbox(tmp_path, synchronous="OFF")
    yield box
    box.close()


def alert(
    fingerprint: str = "HighErrorRate",
    *,
    service: str = "shop",
    status: str = "firing",
    starts: dt.datetime = T0,
    key: str | None = None,
    source: str = "alertmanager",
    external_id: str | None = None,
    slo: str | None = None,
    ends: dt.datetime | None = None,
    severity: str = "SEV2",
) -> Entry:
    a = Alert(
        source=source,
        status=status,
        service=service,
        fingerprint=fingerprint,
        title=f"{fingerprint} on {service}",
        dedup_key=key or f"{source}:{service}:{fingerprint}:{starts.isoformat()}:{status}",
        starts_at=starts,
        ends_at=ends,
        severity=severity,
        slo=slo,
        external_id=external_id,
    )
    return Entry(a.dedup_key, "alert", source, a.to_json())


def command(
    name: str,
    incident_id: str | None,
    at: dt.datetime,
    *,
    source: str = "cli",
    external_id: str | None = None,
    key: str | None = None,
    **args: Any,
) -> Entry:
    c = Command(
        command=name,
        incident_id=incident_id,
        actor="alice",
        source=source,
        dedup_key=key or f"{name}:{incident_id or external_id}:{at.isoformat()}",
        at=at,
        args=args,
        external_id=external_id,
    )
    return Entry(c.dedup_key, "command", source, c.to_json())


def fold(con: duckdb.DuckDBPyConnection, inbox: Inbox, *entries: Entry) -> None:
    inbox.append(entries)
    fold_inbox(con, inbox)


def incidents(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rel = con.execute("SELECT * FROM incidents ORDER BY id")
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def timeline(con: duckdb.DuckDBPyConnection, incident_id: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in con.execute(
            "SELECT kind, message FROM timeline WHERE incident_id = ? ORDER BY seq", [incident_id]
        ).fetchall()
    ]


# --- grouping -------------------------------------------------------------------------------------


def test_same_service_and_fingerprint_join_while_open(con, inbox) -> None:
    fold(
        con,
        inbox,
        alert("HighErrorRate", starts=T0),
        alert("HighErrorRate", starts=T0 + dt.timedelta(minutes=3)),  # fired again: joins
        alert("HighLatency", starts=T0 + dt.timedelta(minutes=1)),  # another fingerprint: new incident
        alert("HighErrorRate", service="cart", starts=T0),  # another service: new incident
    )
    rows = incidents(con)
    assert [(r["id"], r["service"], r["fingerprint"]) for r in rows] == [
        ("INC-0001", "shop", "HighErrorRate"),
        ("INC-0002", "shop", "HighLatency"),
        ("INC-0003", "cart", "HighErrorRate"),
    ]
    assert con.execute("SELECT incident_id, count(*) FROM alerts GROUP BY 1 ORDER BY 1").fetchall() == [
        ("INC-0001", 2),
        ("INC-0002", 1),
        ("INC-0003", 1),
    ]
    assert [k for k, _ in timeline(con, "INC-0001")] == ["impact_start", "alert", "alert_joined"]


def test_after_resolution_the_same_fingerprint_opens_a_repeat(con, inbox) -> None:
    fold(con, inbox, alert(starts=T0), command("resolve", "INC-0001", T0 + dt.timedelta(minutes=30)))
    later = T0 + dt.timedelta(days=3)
    fold(con, inbox, alert(starts=later))
    rows = incidents(con)
    assert [(r["id"], r["status"], r["repeat_of"]) for r in rows] == [
        ("INC-0001", "resolved", None),
        ("INC-0002", "triggered", "INC-0001"),
    ]


def test_page_and_ticket_on_one_slo_are_one_incident(con, inbox) -> None:
    fold(
        con,
        inbox,
        alert("shop/availability:page", source="engine", slo="shop/availability", starts=T0),
        alert(
            "shop/availability:ticket",
            source="engine",
            slo="shop/availability",
            starts=T0 + dt.timedelta(minutes=4),
        ),
    )
    assert [r["id"] for r in incidents(con)] == ["INC-0001"]
    assert con.execute("SELECT count(*) FROM alerts WHERE incident_id = 'INC-0001'").fetchone() == (2,)


def test_a_joining_page_raises_the_severity_before_triage_and_nothing_lowers_it(con, inbox) -> None:
    # Alertmanager posts a group's alerts in no fixed order: a ticket (SEV3) may open the incident
    # and the page (SEV2) join it a moment later; DESIGN §2 says a page is SEV2 until triaged.
    slo = "shop/availability"
    fold(con, inbox, alert("t", source="engine", slo=slo, starts=T0, severity="SEV3"))
    assert incidents(con)[0]["severity"] == "SEV3"
    fold(con, inbox, alert("p", source="engine", slo=slo, starts=T0, severity="SEV2"))
    assert incidents(con)[0]["severity"] == "SEV2"
    fold(con, inbox, alert("i", source="engine", slo=slo, starts=T0, severity="SEV4"))
    assert [(r["id"], r["severity"]) for r in incidents(con)] == [("INC-0001", "SEV2")]


# --- re-delivery ----------------------------------------------------------------------------------


def test_redelivery_is_not_double_counted(con, inbox) -> None:
    first = alert(starts=T0)
    assert inbox.append([first]).accepted == [first.dedup_key]
    assert inbox.append([first]).duplicates == [first.dedup_key]  # the same delivery again
    # Alertmanager re-notifies the same alert (same start) with a new payload: a new dedup key.
    again = alert(starts=T0, key="alertmanager:renotify-1")
    inbox.append([again])
    fold_inbox(con, inbox)
    fold_inbox(con, inbox)  # folding again reads nothing new: the cursor moved with the effects
    assert len(incidents(con)) == 1
    assert con.execute("SELECT count(*) FROM alerts").fetchone() == (2,)
    assert [k for k, _ in timeline(con, "INC-0001")] == ["impact_start", "alert"]
    assert con.execute("SELECT last_seq FROM inbox_cursor").fetchone() == (inbox.last_seq(),)


def test_a_bad_row_is_kept_with_its_reason_and_does_not_block(con, inbox) -> None:
    inbox.append([Entry("junk-1", "alert", "generic", {"status": "firing"})])
    fold(con, inbox, alert(starts=T0))
    reasons = con.execute("SELECT seq, reason FROM inbox_rejects").fetchall()
    assert len(reasons) == 1 and reasons[0][0] == 1
    assert "Alert contract" in reasons[0][1]
    assert [r["id"] for r in incidents(con)] == ["INC-0001"]


# --- state machine --------------------------------------------------------------------------------


def test_lifecycle_with_timestamps_and_sources(con, inbox) -> None:
    m = dt.timedelta(minutes=1)
    fold(
        con,
        inbox,
        alert(starts=T0),
        command("acknowledge", "INC-0001", T0 + 4 * m),
        command("mitigate", "INC-0001", T0 + 20 * m, source="api"),
        command("resolve", "INC-0001", T0 + 35 * m, source="pagerduty"),
        command("close", "INC-0001", T0 + 60 * m),  # rejected: no root cause yet
        command("root_cause", "INC-0001", T0 + 61 * m, category="deploy", text="bad config", fix="rollback"),
        command("close", "INC-0001", T0 + 62 * m, key="close-again"),
    )
    (inc,) = incidents(con)
    assert inc["status"] == "closed"
    assert (inc["detected_at"], inc["detected_at_source"]) == (T0, "alertmanager")
    assert (inc["acknowledged_at"], inc["acknowledged_at_source"]) == (T0 + 4 * m, "cli")
    assert (inc["mitigated_at"], inc["mitigated_at_source"]) == (T0 + 20 * m, "api")
    assert (inc["resolved_at"], inc["resolved_at_source"]) == (T0 + 35 * m, "pagerduty")
    assert inc["closed_at"] == inc["postmortem_done_at"] == T0 + 62 * m
    assert (inc["root_cause_category"], inc["root_cause"], inc["fix"]) == ("deploy", "bad config", "rollback")
    kinds = [k for k, _ in timeline(con, "INC-0001")]
    assert kinds == [
        "impact_start",
        "alert",
        "acknowledged",
        "mitigated",
        "resolved",
        "command_rejected",
        "root_cause",
        "closed",
    ]
    rejected = dict(timeline(con, "INC-0001"))["command_rejected"]
    assert rejected.startswith("close rejected: record the root cause first")


@pytest.mark.parametrize(
    ("steps", "bad", "status", "why"),
    [
        ((), "close", "triggered", "the incident is triggered (allowed from: resolved)"),
        (
            ("acknowledge",),
            "acknowledge",
            "acknowledged",
            "the incident is acknowledged (allowed from: triggered)",
        ),
        (
            ("resolve",),
            "mitigate",
            "resolved",
            "the incident is resolved (allowed from: triggered, acknowledged)",
        ),
        (("resolve",), "acknowledge", "resolved", "the incident is resolved (allowed from: triggered)"),
    ],
)
def test_invalid_transitions_are_recorded_as_rejected(con, inbox, steps, bad, status, why) -> None:
    entries = [alert(starts=T0)]
    for i, step in enumerate(steps):
        entries.append(command(step, "INC-0001", T0 + dt.timedelta(minutes=i + 1)))
    entries.append(command(bad, "INC-0001", T0 + dt.timedelta(minutes=10), key="the-bad-one"))
    fold(con, inbox, *entries)
    (inc,) = incidents(con)
    assert inc["status"] == status
    assert timeline(con, "INC-0001")[-1] == ("command_rejected", f"{bad} rejected: {why}")


def test_resolve_implies_mitigated_but_never_an_acknowledgement(con, inbox) -> None:
    fold(
        con,
        inbox,
        alert(starts=T0),
        command("resolve", "INC-0001", T0 + dt.timedelta(minutes=9), source="pagerduty"),
    )
    (inc,) = incidents(con)
    assert inc["acknowledged_at"] is None
    assert inc["mitigated_at"] == T0 + dt.timedelta(minutes=9)
    assert inc["mitigated_at_source"] == "pagerduty (implied by resolve)"


def test_action_items_and_bad_arguments(con, inbox) -> None:
    fold(
        con,
        inbox,
        alert(starts=T0),
        command(
            "action_item",
            "INC-0001",
            T0,
            key="a1",
            title="Add canary",
            owner="@platform",
            priority="p1",
            due_date="2026-06-15",
        ),
        command(
            "action_item",
            "INC-0001",
            T0,
            key="a2",
            title="x",
            owner="y",
            priority="urgent",
            due_date="2026-06-15",
        ),
        command(
            "action_item", "INC-0001", T0, key="a3", title="x", owner="y", priority="P2", due_date="next week"
        ),
    )
    assert con.execute(
        "SELECT id, title, owner, priority, due_date, status FROM action_items"
    ).fetchall() == [("INC-0001-A1", "Add canary", "@platform", "P1", dt.date(2026, 6, 15), "open")]
    msgs = [m for k, m in timeline(con, "INC-0001") if k == "command_rejected"]
    assert msgs == [
        "action_item rejected: priority 'URGENT': expected one of P0, P1, P2, P3, P4",
        "action_item rejected: due_date 'next week': expected a date YYYY-MM-DD",
    ]


# --- PagerDuty lifecycle --------------------------------------------------------------------------


def test_pagerduty_lifecycle_finds_the_incident_by_external_id(con, inbox) -> None:
    m = dt.timedelta(minutes=1)
    fold(
        con,
        inbox,
        alert("pd-svc-1", source="pagerduty", external_id="Q1ABC", starts=T0),
        command("acknowledge", None, T0 + 2 * m, source="pagerduty", external_id="Q1ABC"),
        command("resolve", None, T0 + 7 * m, source="pagerduty", external_id="Q1ABC"),
        command("acknowledge", None, T0 + 8 * m, source="pagerduty", external_id="NOPE"),
    )
    (inc,) = incidents(con)
    assert (inc["status"], inc["external_id"]) == ("resolved", "Q1ABC")
    assert (inc["acknowledged_at"], inc["acknowledged_at_source"]) == (T0 + 2 * m, "pagerduty")
    assert (inc["resolved_at"], inc["resolved_at_source"]) == (T0 + 7 * m, "pagerduty")
    (reject,) = con.execute("SELECT reason FROM inbox_rejects").fetchall()
    assert reject[0] == "acknowledge: no incident 'NOPE' (by id or external id)"


def test_pagerduty_event_for_an_incident_we_paged_names_our_id_as_dedup_key(con, inbox) -> None:
    fold(
        con,
        inbox,
        alert(starts=T0),
        command(
            "acknowledge", None, T0 + dt.timedelta(minutes=3), source="pagerduty", external_id="INC-0001"
        ),
    )
    assert incidents(con)[0]["status"] == "acknowledged"


def test_resolved_alert_lands_on_the_timeline(con, inbox) -> None:
    end = T0 + dt.timedelta(minutes=25)
    fold(con, inbox, alert(starts=T0), alert(starts=T0, status="resolved", ends=end))
    assert ("alert_resolved", "alert resolved: HighErrorRate on shop") in timeline(con, "INC-0001")
    at = con.execute("SELECT occurred_at FROM timeline WHERE kind = 'alert_resolved'").fetchone()
    assert at == (end,)
    assert incidents(con)[0]["status"] == "triggered"  # an alert ending is not a human resolving it


# --- impact_start and budget consumed --------------------------------------------------------------


def test_impact_start_walks_back_to_the_first_elevated_minute() -> None:
    # target 99% → threshold max(2 × 0.001, 0.01) = 1% bad. Alert at minute 100.
    # Minutes 60..99: 100 valid each; bad 5% from minute 80, with one calm minute at 85 (a gap shorter
    # than 10 quiet minutes does not end the stretch), and 0.5% before 80.
    buckets = []
    for m in range(40, 100):
        bad = 5 if m >= 80 and m != 85 else 0
        buckets.append((m, 100 - bad, 100))
    first, bounded, threshold = impact.estimate_impact_start(buckets, 100, 0.99, 0.001)
    assert (first, bounded) == (80, False)
    assert threshold == pytest.approx(0.01)


def test_impact_start_is_bounded_by_the_look_back() -> None:
    buckets = [(m, 90, 100) for m in range(0, 100)]  # 10% bad all the way back
    assert impact.estimate_impact_start(buckets, 100, 0.99, 0.0, lookback=30)[:2] == (70, True)


def test_no_signal_before_the_alert_gives_none() -> None:
    buckets = [(m, 100, 100) for m in range(0, 100)]
    assert impact.estimate_impact_start(buckets, 100, 0.99, 0.0)[0] is None


def _slo_with_buckets(
    con: duckdb.DuckDBPyConnection, target: float, window: int, rows: list[tuple[int, int, int]]
) -> None:
    con.execute(
        "INSERT INTO slos (slo_key, slo_id, service, name, target, window_text, window_kind, window_minutes,"
        " budget_minutes, alerts_custom) VALUES (1, 'shop/availability', 'shop', 'availability', ?, '1d',"
        " 'rolling', ?, 0, FALSE)",
        [target, window],
    )
    con.executemany("INSERT INTO buckets_open VALUES (1, ?, ?, ?)", [list(r) for r in rows])


def test_budget_consumed_by_hand(con) -> None:
    # A one-day window of 1,440 minutes × 100 valid events, target 99%: allowed = 1% × 144,000 = 1,440.
    # The incident spans the last 30 minutes, 20 bad events each: 600 bad → 600 / 1,440 = 0.416…
    base = 29_000_000
    rows = [(base + i, 100 if i < 1410 else 80, 100) for i in range(1440)]
    _slo_with_buckets(con, 0.99, 1440, rows)
    start = dt.datetime.fromtimestamp((base + 1410) * 60, dt.UTC).replace(tzinfo=None)
    end = dt.datetime.fromtimestamp((base + 1440) * 60, dt.UTC).replace(tzinfo=None)
    share = impact.budget_consumed_for(con, "shop/availability", start, end)
    assert share == pytest.approx(600 / 1440)


def test_incident_on_an_slo_gets_its_impact_start_from_the_sli(con, inbox) -> None:
    base = 29_000_000
    # 10% bad from minute base+1400; the alert fires at base+1410.
    rows = [(base + i, 90 if i >= 1400 else 100, 100) for i in range(1410)]
    _slo_with_buckets(con, 0.99, 1440, rows)
    at = dt.datetime.fromtimestamp((base + 1410) * 60, dt.UTC).replace(tzinfo=None)
    fold(con, inbox, alert("shop/availability:page", slo="shop/availability", source="engine", starts=at))
    (inc,) = incidents(con)
    assert inc["impact_start"] == at - dt.timedelta(minutes=10)
    assert inc["impact_start_source"] == "sli_estimate"
    assert inc["detected_at"] == at and inc["detected_at_source"] == "engine"
    data = json.loads(con.execute("SELECT data FROM timeline WHERE kind = 'impact_start'").fetchone()[0])
    assert data == {"slos": ["shop/availability"]}


# --- the engine's own alerts through the inbox -----------------------------------------------------


def _engine_slo(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO slos (slo_key, slo_id, service, name, target, window_text, window_kind, window_minutes,"
        " budget_minutes, alerts_custom) VALUES (1, 'shop/availability', 'shop', 'availability', 0.99, '30d',"
        " 'rolling', 43200, 432, FALSE)"
    )
    con.executemany(
        "INSERT INTO slo_alerts VALUES (1, ?, ?, ?, ?, ?)",
        [[0, "page", 60, 5, 14.4], [1, "page", 360, 30, 6.0], [2, "ticket", 1440, 120, 3.0]],
    )


def test_engine_alerts_merge_conditions_per_severity_and_enter_once(con, inbox) -> None:
    from pipelines.incidents import engine_alerts

    _engine_slo(con)
    m0 = minute_of(T0)
    # page 1h/5m fires 10:00–10:20, page 6h/30m 10:05–10:40 (overlapping: one page alert 10:00–10:40);
    # ticket fires at 10:30 and is still firing.
    con.executemany(
        "INSERT INTO alert_intervals VALUES (1, ?, ?, ?)",
        [[0, m0, m0 + 20], [1, m0 + 5, m0 + 40], [2, m0 + 30, None]],
    )
    con.execute("INSERT INTO engine_state VALUES (1, ?, ?, NULL)", [m0 - 1000, m0 + 60])
    merged = engine_alerts.merged_intervals(con, None)
    assert [
        (a.severity, a.start - m0, None if a.end is None else a.end - m0, a.conditions) for a in merged
    ] == [
        ("page", 0, 40, "1h/5m>14.4, 6h/30m>6"),
        ("ticket", 30, None, "1d/2h>3"),
    ]
    now = T0 + dt.timedelta(minutes=60)
    assert engine_alerts.emit(con, inbox, now) == 3  # page firing + page resolved + ticket firing
    assert engine_alerts.emit(con, inbox, now) == 0  # the dedup keys make it idempotent
    fold_inbox(con, inbox)
    (inc,) = incidents(con)
    assert (inc["source"], inc["fingerprint"], inc["slo_id"], inc["severity"]) == (
        "engine",
        "shop/availability:page",
        "shop/availability",
        "SEV2",
    )
    assert [k for k, _ in timeline(con, "INC-0001")] == [
        "impact_start",
        "alert",
        "alert_resolved",
        "alert_joined",
    ]
    # A live cycle a week later does not re-announce last week's alerts, only what still fires.
    later = engine_alerts.merged_intervals(con, m0 + 7 * 1440 - engine_alerts.LIVE_HORIZON_MINUTES)
    assert [a.severity for a in later] == ["ticket"]


def test_an_unexpected_failure_rolls_back_only_its_row(con, inbox, monkeypatch) -> None:
    from pipelines.incidents import fold as fold_module

    real = fold_module.fold_alert

    def flaky(c: duckdb.DuckDBPyConnection, row: Any, report: Any, cache: Any = None) -> None:
        if row.body["fingerprint"] == "Boom":
            c.execute(
                "INSERT INTO incidents (id, service, title, status, source, created_at, updated_at)"
                " VALUES ('HALF', 's', 't', 'triggered', 'x', now(), now())"
            )  # a half-done effect
            raise RuntimeError("disk on fire")
        real(c, row, report, cache)

    monkeypatch.setattr(fold_module, "fold_alert", flaky)
    fold(con, inbox, alert("A", starts=T0), alert("Boom", starts=T0), alert("C", starts=T0))
    assert [r["fingerprint"] for r in incidents(con)] == ["A", "C"]  # no trace of the half-done row
    (reason,) = con.execute("SELECT reason FROM inbox_rejects").fetchall()
    assert reason[0] == "could not be applied: RuntimeError: disk on fire"
    assert con.execute("SELECT last_seq FROM inbox_cursor").fetchone() == (inbox.last_seq(),)
