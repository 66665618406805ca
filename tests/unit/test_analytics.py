"""Known answers for the incident analytics (DESIGN §2), each a small dataset a reader can check by hand.

Incident rows are written straight into an in-memory DuckDB with the real migrations
(`tests/support/incident_rows.py`); times are minutes after impact_start unless said otherwise.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pipelines.analytics import mttx
from pipelines.analytics.alert_quality import alert_quality
from pipelines.analytics.deploys import deploy_correlation
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.repeats import chains, quarter_repeats, repeat_links
from pipelines.analytics.slo_quarter import slo_quarter
from pipelines.analytics.success_metrics import success_metrics
from pipelines.timeutil import minute_of
from tests.support.incident_rows import add_action_item, add_alert, add_incident, store, t

Q3 = Quarter(2026, 3)


def _row(con, quarter: str, severity: str = "*", service: str = "*") -> dict:
    return next(
        r
        for r in mttx.rollup(con)
        if (r["quarter"], r["severity"], r["service"]) == (quarter, severity, service)
    )


# ---------------------------------------------------------------------------------------------
# Quarters


@pytest.mark.parametrize(
    ("instant", "quarter"),
    [
        ("2026-07-01T00:00:00", "2026-Q3"),  # midnight UTC opens Q3
        ("2026-06-30T23:59:59", "2026-Q2"),  # one second earlier is still Q2
        ("2026-01-01T00:00:00", "2026-Q1"),
        ("2025-12-31T23:59:59", "2025-Q4"),
        ("2026-09-30T23:59:59.999", "2026-Q3"),
    ],
)
def test_an_incident_belongs_to_the_quarter_of_its_impact_start(instant: str, quarter: str) -> None:
    con = store()
    add_incident(con, "INC-1", start=instant, detect=1, resolve=10)
    assert [d["quarter"] for d in mttx.durations(con)] == [quarter]
    assert Quarter.of(t(instant)).label == quarter


def test_quarter_bounds_and_neighbours() -> None:
    q = Quarter.parse("2026-Q4")
    assert (q.start, q.end) == (dt.datetime(2026, 10, 1), dt.datetime(2027, 1, 1))
    assert (q.previous().label, q.next().label) == ("2026-Q3", "2027-Q1")
    with pytest.raises(ValueError, match=r"expected e\.g\. 2026-Q3"):
        Quarter.parse("2026-Q5")


# ---------------------------------------------------------------------------------------------
# Durations and percentiles


def test_durations_follow_the_definitions() -> None:
    # impact 10:00, detected 10:04, acknowledged 10:06, mitigated 10:20, resolved 10:45
    con = store()
    add_incident(con, "INC-1", start="2026-07-10T10:00", detect=4, ack=2, mitigate=20, resolve=45)
    d = mttx.durations(con)[0]
    assert (d["ttd"], d["tta"], d["ttm"], d["ttr"]) == (4.0, 2.0, 20.0, 45.0)


@pytest.mark.parametrize(
    ("ttrs", "p50", "p90"),
    [
        # odd count: median is the middle value; p90 rank (5−1)·0.9 = 3.6 → 40 + 0.6·10 = 46
        ([10, 20, 30, 40, 50], 30.0, 46.0),
        # even count: median halfway between 20 and 30; p90 rank 3·0.9 = 2.7 → 30 + 0.7·10 = 37
        ([10, 20, 30, 40], 25.0, 37.0),
        # one value: every percentile is that value
        ([7], 7.0, 7.0),
        # heavy tail: p50 1.5 (rank 1.5 between 1 and 2); p90 rank 3.6 → 3 + 0.6·97 = 61.2
        ([1, 2, 3, 100, 1], 2.0, 61.2),
    ],
)
def test_percentiles_interpolate_linearly_like_numpy(ttrs: list[int], p50: float, p90: float) -> None:
    con = store()
    for i, ttr in enumerate(ttrs):
        add_incident(con, f"INC-{i}", start=f"2026-07-{i + 1:02d}T08:00", detect=1, resolve=ttr)
    row = _row(con, "2026-Q3")
    assert (row["ttr_p50"], row["ttr_p90"]) == pytest.approx((p50, p90))
    assert (row["ttr_p50"], row["ttr_p90"]) == pytest.approx(tuple(np.percentile(ttrs, [50, 90])))
    assert row["ttr_mean"] == pytest.approx(sum(ttrs) / len(ttrs))
    assert row["ttr_count"] == len(ttrs)


def test_open_incidents_are_counted_apart_and_left_out_of_every_duration() -> None:
    con = store()
    add_incident(con, "INC-1", start="2026-07-01T08:00", detect=2, ack=1, resolve=30)
    add_incident(con, "INC-2", start="2026-07-02T08:00", detect=4, resolve=90)
    # open: detected and mitigated, never resolved — none of its durations may count
    add_incident(con, "INC-3", start="2026-07-03T08:00", detect=6, ack=3, mitigate=10)
    row = _row(con, "2026-Q3")
    assert (row["incidents"], row["open"]) == (3, 1)
    assert (row["ttr_count"], row["ttr_p50"]) == (2, pytest.approx(60.0))  # (30 + 90) / 2
    assert (row["ttd_count"], row["ttd_p50"]) == (2, pytest.approx(3.0))  # INC-3's 6 min left out
    assert row["tta_count"] == 1  # INC-2 was never acknowledged; INC-3 is open


def test_rollup_by_severity_and_service() -> None:
    con = store()
    add_incident(
        con, "A", start="2026-07-01T08:00", severity="SEV1", service="payments", detect=1, resolve=20
    )
    add_incident(con, "B", start="2026-07-02T08:00", severity="SEV1", service="search", detect=1, resolve=40)
    add_incident(con, "C", start="2026-07-03T08:00", severity="SEV3", service="search", detect=1, resolve=300)
    assert _row(con, "2026-Q3", "SEV1")["ttr_p50"] == pytest.approx(30.0)
    assert _row(con, "2026-Q3", "*", "search")["incidents"] == 2
    assert _row(con, "2026-Q3", "SEV3", "search")["ttr_p90"] == pytest.approx(300.0)


def test_quarter_over_quarter_verdicts() -> None:
    # 4 values on one side: too few to call
    assert mttx.compare_medians("ttr", [10, 11, 12, 13], [20] * 9).verdict == "too_few"
    # every current value 10, every previous 100: the interval is exactly [−90, −90]
    c = mttx.compare_medians("ttr", [10] * 6, [100] * 6)
    assert (c.verdict, c.difference, c.ci_low, c.ci_high) == ("improved", -90.0, -90.0, -90.0)
    assert mttx.compare_medians("ttr", [100] * 6, [10] * 6).verdict == "worsened"
    # the same spread both quarters: the interval spans zero
    spread = [5, 10, 20, 40, 80, 160]
    assert mttx.compare_medians("ttr", spread, list(reversed(spread))).verdict == "inconclusive"
    # a fixed seed: the same inputs give the same interval
    a = mttx.compare_medians("ttr", [1, 5, 9, 30, 2, 8], [3, 4, 50, 6, 7, 70])
    b = mttx.compare_medians("ttr", [1, 5, 9, 30, 2, 8], [3, 4, 50, 6, 7, 70])
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)


# ---------------------------------------------------------------------------------------------
# Repeats


@pytest.mark.parametrize(
    ("days_after", "is_repeat"),
    [(29, True), (30, True), (31, False)],
)
def test_repeat_window_counts_days_from_the_previous_resolution(days_after: int, is_repeat: bool) -> None:
    con = store()
    # first: 2026-07-01 10:00 → resolved 11:00; second starts `days_after` days after 11:00
    add_incident(con, "INC-1", start="2026-07-01T10:00", detect=1, resolve=60, fingerprint="search/planner")
    second = t("2026-07-01T11:00") + dt.timedelta(days=days_after)
    add_incident(con, "INC-2", start=second, detect=1, resolve=20, fingerprint="search/planner")
    links = repeat_links(con)
    assert [(r["id"], r["repeat_of"]) for r in links] == ([("INC-2", "INC-1")] if is_repeat else [])


def test_repeat_needs_same_service_and_fingerprint_or_root_cause() -> None:
    con = store()
    add_incident(
        con,
        "A",
        start="2026-07-01T10:00",
        detect=1,
        resolve=60,
        fingerprint="f1",
        root_cause_category="config",
    )
    # same root-cause category, other fingerprint: a repeat of A
    add_incident(
        con,
        "B",
        start="2026-07-05T10:00",
        detect=1,
        resolve=60,
        fingerprint="f2",
        root_cause_category="config",
    )
    # same fingerprint as A but another service: not a repeat
    add_incident(
        con, "C", start="2026-07-06T10:00", service="payments", detect=1, resolve=60, fingerprint="f1"
    )
    # same fingerprint as B, 3 days after B: repeats B (the latest), so A → B → D is one chain
    add_incident(con, "D", start="2026-07-08T12:00", detect=1, resolve=60, fingerprint="f2")
    # starts while A is still unresolved (overlap): not a repeat
    add_incident(con, "E", start="2026-07-01T10:30", detect=1, resolve=10, fingerprint="f1")
    links = repeat_links(con)
    assert [(r["id"], r["repeat_of"]) for r in links] == [("B", "A"), ("D", "B")]
    assert [c["incidents"] for c in chains(links)] == [["A", "B", "D"]]


def test_repeat_while_the_previous_action_items_were_open() -> None:
    con = store()
    add_incident(con, "INC-1", start="2026-07-01T10:00", detect=1, resolve=60, fingerprint="f")
    # two items from INC-1's post-mortem: one done 07-05, one still open
    add_action_item(
        con, "AI-1", "INC-1", created="2026-07-02T09:00", due="2026-07-09", done="2026-07-05T12:00"
    )
    add_action_item(con, "AI-2", "INC-1", created="2026-07-02T09:00", due="2026-07-09")
    add_incident(con, "INC-2", start="2026-07-10T10:00", detect=1, resolve=30, fingerprint="f")
    section = quarter_repeats(con, "2026-Q3")
    assert (section["count"], section["with_open_action_items"]) == (1, 1)
    assert section["repeats"][0]["open_action_items"] == 1
    assert section["repeats"][0]["action_items"] == 2
    # resolved 07-01 11:00, next start 07-10 10:00: 8 days 23 h = 8.958… days
    assert section["repeats"][0]["days_after_previous_resolution"] == pytest.approx(8.96)


# ---------------------------------------------------------------------------------------------
# Seed 002's success metrics


def _metrics(con, as_of: str = "2026-10-15T00:00", pages: list[int] | None = None, repeats: int = 0) -> dict:
    return {m["metric"]: m for m in success_metrics(con, Q3, t(as_of), pages or [], repeats)}


def test_action_items_due_and_done() -> None:
    con = store()
    add_incident(con, "INC-1", start="2026-07-01T10:00", detect=1, resolve=60)
    add_action_item(
        con, "on-time", "INC-1", created="2026-07-02T00:00", due="2026-07-20", done="2026-07-20T23:00"
    )
    add_action_item(
        con, "late", "INC-1", created="2026-07-02T00:00", due="2026-07-20", done="2026-07-21T01:00"
    )
    add_action_item(con, "open", "INC-1", created="2026-07-02T00:00", due="2026-08-01")
    add_action_item(
        con, "early", "INC-1", created="2026-07-02T00:00", due="2026-09-01", done="2026-08-01T00:00"
    )
    # due after as_of (2026-09-15): not judged yet
    add_action_item(con, "not-due", "INC-1", created="2026-07-02T00:00", due="2026-09-20")
    # due in Q2: another quarter
    add_action_item(con, "q2", "INC-1", created="2026-06-01T00:00", due="2026-06-30")
    m = _metrics(con, as_of="2026-09-15T00:00")["action_items_on_time"]
    assert m["detail"]["due"] == 4
    assert (m["detail"]["done_on_time"], m["detail"]["done_late"], m["detail"]["still_open"]) == (2, 1, 1)
    assert (m["value"], m["met"]) == (0.5, False)  # 2 of 4 < 90 %


def test_postmortems_within_48_hours() -> None:
    con = store()
    add_incident(
        con, "on-time", start="2026-07-01T10:00", severity="SEV1", detect=1, resolve=60, postmortem_hours=47
    )
    add_incident(
        con, "late", start="2026-07-02T10:00", severity="SEV2", detect=1, resolve=60, postmortem_hours=49
    )
    add_incident(con, "missing", start="2026-07-03T10:00", severity="SEV2", detect=1, resolve=60)
    # the product drafts a post-mortem document at resolution: a draft is not a post-mortem held
    con.execute(
        "INSERT INTO documents (incident_id, kind, created_at, body) "
        "VALUES ('missing', 'postmortem', TIMESTAMP '2026-07-03 11:02', 'draft')"
    )
    add_incident(con, "sev3", start="2026-07-04T10:00", severity="SEV3", detect=1, resolve=60)
    # resolved 2026-09-30 11:00, as_of 10-01 12:00: 25 h, still within the 48 h
    add_incident(con, "pending", start="2026-09-30T10:00", severity="SEV1", detect=1, resolve=60)
    m = _metrics(con, as_of="2026-10-01T12:00")["postmortems_within_48h"]
    assert m["detail"] == {"on_time": 1, "missed": 2, "pending": 1, "missed_ids": ["late", "missing"]}
    assert (m["value"], m["met"]) == (pytest.approx(1 / 3, abs=1e-4), False)


def test_mttd_and_mttr_targets_use_the_median() -> None:
    con = store()
    # SEV2 TTDs 2, 4, 30
    for i, ttd in enumerate((2, 4, 30)):
        add_incident(
            con, f"S{i}", start=f"2026-07-0{i + 1}T10:00", severity="SEV2", detect=ttd, resolve=ttd + 20
        )
    # SEV1 TTRs 20 and 50 → p50 35 ≥ 30 (missed)
    add_incident(con, "S1a", start="2026-08-01T10:00", severity="SEV1", detect=1, resolve=20)
    add_incident(con, "S1b", start="2026-08-02T10:00", severity="SEV1", detect=1, resolve=50)
    m = _metrics(con)
    # all SEV1/SEV2 TTDs: 1, 1, 2, 4, 30 → p50 2 < 5: met, although the mean 7.6 is not
    assert (m["mttd_sev1_sev2"]["value"], m["mttd_sev1_sev2"]["met"]) == (pytest.approx(2.0), True)
    assert m["mttd_sev1_sev2"]["detail"]["mean"] == pytest.approx(38 / 5)
    assert (m["mttr_sev1"]["value"], m["mttr_sev1"]["met"]) == (pytest.approx(35.0), False)


def test_pages_per_oncall_week_and_repeats() -> None:
    m = _metrics(store(), pages=[1, 4, 5, 0], repeats=2)
    assert (m["pages_per_oncall_week"]["value"], m["pages_per_oncall_week"]["met"]) == (5, False)
    assert m["pages_per_oncall_week"]["detail"]["weeks_at_or_over_target"] == 1
    assert (m["no_repeats"]["value"], m["no_repeats"]["met"]) == (2, False)


# ---------------------------------------------------------------------------------------------
# Alert quality and deploys


def test_alert_precision_recall_and_detection() -> None:
    con = store()
    add_incident(con, "I1", start="2026-07-01T10:00", detect=3, resolve=30)
    add_incident(con, "I2", start="2026-07-02T10:00", detect=7, resolve=30)
    add_incident(con, "I3", start="2026-07-03T10:00", detect=5, resolve=30, source="cli")  # no alert
    add_incident(con, "IMP", start="2026-07-04T10:00", detect=5, resolve=30, imported=True)  # not counted
    add_alert(con, "a1", service="checkout-api", starts="2026-07-01T10:03", incident_id="I1")
    add_alert(
        con,
        "a1-resolved",
        service="checkout-api",
        starts="2026-07-01T10:03",
        incident_id="I1",
        fingerprint="a1",
        status="resolved",
    )  # the same episode: one page
    add_alert(con, "a2", service="checkout-api", starts="2026-07-02T10:07", incident_id="I2")
    add_alert(con, "noise", service="checkout-api", starts="2026-07-09T03:00", incident_id=None)
    add_alert(
        con, "ticket", service="checkout-api", starts="2026-07-09T04:00", incident_id=None, severity="SEV3"
    )
    q = alert_quality(con, Q3, minute_of(dt.datetime(2026, 7, 15)))
    assert (q["pages"], q["pages_linked"], q["precision"]) == (3, 2, pytest.approx(0.6667))
    assert (q["incidents"], q["incidents_preceded_by_alert"], q["recall"]) == (3, 2, pytest.approx(0.6667))
    assert q["detection_minutes"]["p50"] == pytest.approx(5.0)  # TTD 3 and 7
    assert q["pages_per_week"] == [2, 1]  # week 1: 07-01, 07-02; week 2: 07-09


def test_deploy_correlation_window() -> None:
    con = store()
    add_incident(con, "after-2h", start="2026-07-01T12:00", detect=1, resolve=30)
    add_incident(con, "after-5h", start="2026-07-05T15:00", detect=1, resolve=30)
    add_incident(con, "other-svc", start="2026-07-08T12:00", service="search", detect=1, resolve=30)
    con.execute("INSERT INTO deploys VALUES ('checkout-api', '2026-07-01 10:00', 'v1', 'x')")
    con.execute("INSERT INTO deploys VALUES ('checkout-api', '2026-07-05 10:00', 'v2', 'y')")
    con.execute("INSERT INTO deploys VALUES ('checkout-api', '2026-07-08 11:00', 'v3', 'z')")
    d = deploy_correlation(con, Q3, hours=4)
    assert [(x["id"], x["deploy"], x["minutes_after_deploy"]) for x in d["incidents_list"]] == [
        ("after-2h", "v1", 120.0)
    ]
    assert (d["deploys"], d["deploys_followed_by_incident"], d["change_failure_rate"]) == (3, 1, 0.3333)


# ---------------------------------------------------------------------------------------------
# SLO per quarter


def test_slo_attainment_budget_and_policy_time() -> None:
    con = store()
    con.execute(
        "INSERT INTO slos (slo_key, slo_id, service, name, target, window_text, window_kind, window_minutes, "
        "budget_minutes, alerts_custom) VALUES (1, 'checkout-api/availability', 'checkout-api', "
        "'availability', 0.99, '30d', 'rolling', 43200, 432, FALSE)"
    )
    qs = minute_of(dt.datetime(2026, 7, 1))
    # last Q2 minute: 100 valid, all bad (must not count); Q3: 3 minutes of 100 valid with 1, 0, 2 bad
    con.execute("INSERT INTO buckets_open VALUES (1, ?, 0, 100)", [qs - 1])
    for i, bad in enumerate((1, 0, 2)):
        con.execute("INSERT INTO buckets_open VALUES (1, ?, ?, 100)", [qs + i, 100 - bad])
    day = 1440
    con.execute("INSERT INTO engine_state VALUES (1, ?, ?, NULL)", [qs - 3 * day, qs + 3 * day])
    # normal since Q2; freeze_review at day 1; exhausted at day 2; evaluated up to day 3
    con.execute("INSERT INTO policy_transitions VALUES (1, ?, NULL, 'normal', 0.9)", [qs - 3 * day])
    con.execute("INSERT INTO policy_transitions VALUES (1, ?, 'normal', 'freeze_review', 0.4)", [qs + day])
    con.execute(
        "INSERT INTO policy_transitions VALUES (1, ?, 'freeze_review', 'exhausted', -0.1)", [qs + 2 * day]
    )
    [s] = slo_quarter(con, Q3)
    assert (s["good"], s["valid"]) == (297, 300)
    assert s["attainment"] == pytest.approx(0.99)  # 297/300 = 0.99 exactly: at its target...
    # ...but its window's budget ran out on day 2: the quarter's outcome is "exhausted", never "met"
    assert (s["outcome"], s["met"], s["health"]) == ("exhausted", False, "exhausted")
    assert s["budget_spent"] == pytest.approx(1.0)  # 3 bad of 0.01·300 = 3 allowed
    assert s["policy_minutes"] == {
        "normal": day,
        "freeze_review": day,
        "reliability_focus": 0,
        "exhausted": day,
        "no_data": 0,
    }
    assert s["exhausted"] is True


def test_without_an_alert_feed_the_engine_page_intervals_are_the_pages() -> None:
    con = store()
    con.execute(
        "INSERT INTO slos (slo_key, slo_id, service, name, target, window_text, window_kind, window_minutes, "
        "budget_minutes, alerts_custom) VALUES (1, 'search/availability', 'search', 'availability', 0.999, "
        "'30d', 'rolling', 43200, 43.2, FALSE)"
    )
    for bit, severity in enumerate(("page", "page", "ticket")):
        con.execute("INSERT INTO slo_alerts VALUES (1, ?, ?, 60, 5, 14.4)", [bit, severity])
    m = minute_of(dt.datetime(2026, 7, 1, 10))
    # both page conditions fire around 10:00 (overlapping: one page); a lone page at 20:00; a ticket
    for bit, s, e in ((0, m, m + 20), (1, m + 10, m + 40), (0, m + 600, m + 610), (2, m + 700, m + 900)):
        con.execute("INSERT INTO alert_intervals VALUES (1, ?, ?, ?)", [bit, s, e])
    add_incident(con, "I1", start="2026-07-01T09:58", service="search", detect=2, resolve=45)
    add_incident(con, "I2", start="2026-07-02T09:00", service="search", detect=9, resolve=30, source="cli")
    q = alert_quality(con, Q3, minute_of(dt.datetime(2026, 7, 15)))
    assert q["page_source"] == "engine burn-rate alerts"
    assert (q["pages"], q["pages_linked"]) == (2, 1)  # 10:00–10:40 (I1) and 20:00 (noise)
    assert (q["incidents_preceded_by_alert"], q["recall"]) == (1, 0.5)


def test_candidate_settings_from_the_command_line() -> None:
    from pipelines.analytics.alert_quality import parse_setting

    s = parse_setting("1h/5m>10, 6h/30m>4")
    assert [(a.long_window, a.short_window, a.factor) for a in s.alerts or ()] == [
        (60, 5, 10.0),
        (360, 30, 4.0),
    ]
    with pytest.raises(ValueError, match="expected LONG/SHORT>FACTOR"):
        parse_setting("1h>10")
    with pytest.raises(ValueError, match="SHORT no longer than LONG"):
        parse_setting("5m/1h>10")
