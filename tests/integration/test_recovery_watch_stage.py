"""The recovery watch after a person's mitigation, and the declaration naming the incident commander,
through the real incident stage (`stage.process`: DuckDB store, inbox, fold, triage, escalation) with
the local Slack and PagerDuty Events receivers (tests/support/receivers.py).

The stage runs at chosen instants (the service runs it every few seconds at the wall clock; the demo at
its simulated clock): what a run at each instant records is what the service would have recorded.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipelines.config import Settings
from pipelines.inbox import Entry
from pipelines.incidents.contract import Alert, Command
from pipelines.timeutil import minute_of
from tests.support.receivers import Endpoint
from tests.unit.test_incident_flow import T0, command, firing, run, settings_for

pytestmark = pytest.mark.integration

M = dt.timedelta(minutes=1)
SLO = "shop/availability"


def pagerduty_ack(at: dt.datetime) -> Entry:
    """PagerDuty's acknowledgement of our page, as its webhook becomes a command."""
    c = Command(command="acknowledge", incident_id="INC-0001", actor="PagerDuty: bob", source="pagerduty",
                dedup_key=f"pd:ack:{at.isoformat()}", at=at, args={})  # fmt: skip
    return Entry(c.dedup_key, "command", "pagerduty", c.to_json())


@pytest.fixture
def outside() -> Iterator[tuple[Endpoint, Endpoint]]:
    """(Slack, PagerDuty Events API)"""
    slack, pagerduty = Endpoint([200], b"ok"), Endpoint([202])
    yield slack, pagerduty
    slack.close()
    pagerduty.close()


def configured(tmp_path: Path, slack: Endpoint, pagerduty: Endpoint) -> Settings:
    return settings_for(
        tmp_path,
        slack_webhook_url=f"{slack.url}/services/T0/B0/x",
        pagerduty_routing_key="rk-test",
        pagerduty_events_url=f"{pagerduty.url}/v2/enqueue",
        notify_backoff_s=0.0,
    )


def entries(con: duckdb.DuckDBPyConnection, *kinds: str) -> list[tuple[dt.datetime, str, str]]:
    return [
        (at, kind, message)
        for at, kind, message in con.execute(
            "SELECT occurred_at, kind, message FROM timeline WHERE incident_id = 'INC-0001' ORDER BY seq"
        ).fetchall()
        if kind in kinds
    ]


def texts(endpoint: Endpoint) -> list[str]:
    return [body.get("text", "") for _, body, _ in endpoint.received]


def triggers(endpoint: Endpoint) -> int:
    return sum(body.get("event_action") == "trigger" for _, body, _ in endpoint.received)


def slo_alert(title: str, at: dt.datetime) -> Entry:
    """A page on `shop/availability` (what the engine or Alertmanager sends for a burning SLO)."""
    a = Alert(source="alertmanager", status="firing", service="shop", fingerprint=title, title=title,
              dedup_key=f"am:{title}:{at.isoformat()}", starts_at=at, severity="SEV2", slo=SLO)  # fmt: skip
    return Entry(a.dedup_key, "alert", "alertmanager", a.to_json())


def availability_slo(con: duckdb.DuckDBPyConnection, bad: dict[int, int], evaluated_to: dt.datetime) -> None:
    """`shop/availability`, 99% over 30 days with the default page alerts; 100 requests a minute from
    an hour before T0 to `evaluated_to`, `bad[n]` of them failing in minute T0 + n."""
    con.execute(
        "INSERT INTO slos (slo_key, slo_id, service, name, target, window_text, window_kind, window_minutes,"
        " budget_minutes, alerts_custom) VALUES (1, ?, 'shop', 'availability', 0.99, '30d', 'rolling', 43200,"
        " 432, FALSE)",
        [SLO],
    )
    con.executemany(
        "INSERT INTO slo_alerts VALUES (1, ?, ?, ?, ?, ?)",
        [[0, "page", 60, 5, 14.4], [1, "page", 360, 30, 6.0], [2, "ticket", 1440, 120, 3.0]],
    )
    m0, end = minute_of(T0), minute_of(evaluated_to)
    con.executemany(
        "INSERT INTO buckets_open VALUES (1, ?, ?, 100)",
        [[m, 100 - bad.get(m - m0, 0)] for m in range(m0 - 60, end)],
    )
    con.execute("INSERT INTO engine_state VALUES (1, ?, ?, NULL)", [m0 - 60, end])


def test_a_new_alert_after_the_mitigation_escalates_once(con, inbox, tmp_path, outside) -> None:
    """No SLO: the watch reads the incident's alerts. The same alert firing again 10 min after bob's
    mitigation is a recovery that did not hold: on the timeline at the alert's start, in Slack, and the
    incident paged again; later runs add nothing."""
    slack, pagerduty = outside
    settings = configured(tmp_path, slack, pagerduty)
    inbox.append([firing("Checkout errors", "SEV2", at=T0)])
    run(con, settings, inbox, T0 + M)
    assert triggers(pagerduty) == 1
    inbox.append([pagerduty_ack(T0 + 3 * M)])  # the responder acknowledged the page in PagerDuty
    inbox.append([command("mitigate", T0 + 5 * M)])
    run(con, settings, inbox, T0 + 6 * M)
    assert entries(con, "recovery_held", "recovery_not_held") == []  # the watch is open
    inbox.append([firing("Checkout errors", "SEV2", at=T0 + 15 * M)])  # the same alert, firing again
    for minute in (16, 17, 40, 90):
        run(con, settings, inbox, T0 + minute * M)
    watched = [e for e in entries(con, "recovery_not_held", "recovery_held", "escalated") if e[0] > T0 + M]
    assert watched == [
        (
            T0 + 15 * M,
            "recovery_not_held",
            "recovery not held 10 min after the mitigation at 10:05 (watched 30 min): new alert fired at "
            "10:15: Checkout errors (fingerprint Checkout errors); escalated",
        ),
        (
            T0 + 16 * M,
            "escalated",
            "escalated to on-call-primary: recovery not held after the mitigation: new alert fired at "
            "10:15: Checkout errors (fingerprint Checkout errors)",
        ),
    ]
    assert triggers(pagerduty) == 2  # paged again, once
    # not mitigated any more: acknowledged again
    assert con.execute("SELECT status, mitigated_at, acknowledged_at FROM incidents").fetchone() == (
        "acknowledged",
        None,
        T0 + 3 * M,
    )
    undone = con.execute("SELECT message FROM timeline WHERE kind = 'mitigation_undone'").fetchall()
    assert undone == [("not mitigated any more: the recovery did not hold (status back to acknowledged)",)]
    # … under a key of its own: the first page's alert is still open in PagerDuty, acknowledged there,
    # and a trigger with its key would be folded into it without notifying anyone
    keys = [body["dedup_key"] for _, body, _ in pagerduty.received if body.get("event_action") == "trigger"]
    assert keys == ["INC-0001", "INC-0001-re2"]
    [notice] = [t for t in texts(slack) if "Recovery not held" in t]
    assert notice.splitlines() == [
        ":rotating_light: *Recovery not held INC-0001* shop: Checkout errors",
        "*Evidence:* recovery not held 10 min after the mitigation at 10:05 (watched 30 min): new alert "
        "fired at 10:15: Checkout errors (fingerprint Checkout errors)",
        "The incident is escalated to the on-call responders.",
    ]


def test_a_clean_watch_is_held_at_its_deadline_once_the_data_is_in(con, inbox, tmp_path, outside) -> None:
    """An SLO-tied incident, healthy after the mitigation at 10:05: `recovery_held` at 10:35, written
    only once the SLO's data is evaluated past 10:35, and no page or Slack message for it (the rules
    triage makes it SEV1, so its 30-minute root-cause timer pages on its own at 10:30)."""
    slack, pagerduty = outside
    settings = configured(tmp_path, slack, pagerduty)
    availability_slo(con, {n: 50 for n in range(-10, 4)}, T0 + 30 * M)  # bad before the mitigation only
    inbox.append([slo_alert("Availability burning", T0)])
    run(con, settings, inbox, T0 + M)
    inbox.append([command("mitigate", T0 + 5 * M)])
    run(con, settings, inbox, T0 + 6 * M)
    run(con, settings, inbox, T0 + 40 * M)  # past the deadline, but the data ends at 10:30
    assert entries(con, "recovery_held", "recovery_not_held") == []
    con.execute(
        "INSERT INTO buckets_open SELECT 1, m, 100, 100 FROM range(?, ?) t(m)",
        [minute_of(T0 + 30 * M), minute_of(T0 + 40 * M)],
    )
    con.execute("UPDATE engine_state SET evaluated_to = ?", [minute_of(T0 + 40 * M)])
    run(con, settings, inbox, T0 + 41 * M)
    run(con, settings, inbox, T0 + 42 * M)
    assert entries(con, "recovery_held", "recovery_not_held") == [
        (
            T0 + 35 * M,
            "recovery_held",
            "recovery held: no page-level burn and no new alert for 30 min after the mitigation at 10:05 "
            "(shop/availability and the incident's alerts watched)",
        )
    ]
    # a held recovery is only on the timeline: Slack hears nothing of it and nobody is paged for it
    assert not [t for t in texts(slack) if "recovery" in t.lower()]
    assert len(entries(con, "escalated")) == 1  # the first escalation only


def test_a_page_level_burn_after_the_mitigation_escalates(con, inbox, tmp_path, outside) -> None:
    """Half the requests fail again from 10:12: the 5 min window holds 2 such minutes at 10:14
    (100 bad of 500 = 20%, burn 20 > 14.4): not held at 10:14, with the burn rate as evidence."""
    slack, pagerduty = outside
    settings = configured(tmp_path, slack, pagerduty)
    availability_slo(con, {n: 50 for n in range(12, 40)}, T0 + 40 * M)
    inbox.append([slo_alert("Availability burning", T0)])
    run(con, settings, inbox, T0 + M)
    inbox.append([command("mitigate", T0 + 5 * M)])
    run(con, settings, inbox, T0 + 6 * M)
    run(con, settings, inbox, T0 + 41 * M)
    run(con, settings, inbox, T0 + 42 * M)
    [(at, kind, message)] = entries(con, "recovery_held", "recovery_not_held")
    assert (at, kind) == (T0 + 14 * M, "recovery_not_held")
    assert message == (
        "recovery not held 9 min after the mitigation at 10:05 (watched 30 min): shop/availability burned "
        "20.0× its budget over 5 min to 10:14 (page threshold 14.4); escalated"
    )
    data = json.loads(
        con.execute("SELECT data FROM timeline WHERE kind = 'recovery_not_held'").fetchone()[0]  # type: ignore[index]
    )
    assert data["evidence"] == [
        {"slo": SLO, "window_minutes": 5, "burn_rate": 20.0, "factor": 14.4, "at": "2026-06-01T10:14:00"}
    ]
    assert triggers(pagerduty) == 2
    # nobody acknowledged the page in PagerDuty: its alert is still notifying, so the same key is right
    keys = [body["dedup_key"] for _, body, _ in pagerduty.received if body.get("event_action") == "trigger"]
    assert keys == ["INC-0001", "INC-0001"]
    # not mitigated any more; the person's mitigation counts as the acknowledgement nobody had made
    assert con.execute("SELECT status, mitigated_at, acknowledged_at FROM incidents").fetchone() == (
        "acknowledged",
        None,
        T0 + 5 * M,
    )
    assert sum("Recovery not held INC-0001" in t for t in texts(slack)) == 1


def test_resolving_during_the_watch_ends_it_without_an_entry(con, inbox, tmp_path, outside) -> None:
    slack, pagerduty = outside
    settings = configured(tmp_path, slack, pagerduty)
    inbox.append([firing("Checkout errors", "SEV2", at=T0)])
    run(con, settings, inbox, T0 + M)
    inbox.append([command("mitigate", T0 + 5 * M), command("resolve", T0 + 20 * M)])
    run(con, settings, inbox, T0 + 21 * M)
    run(con, settings, inbox, T0 + 60 * M)
    assert entries(con, "recovery_held", "recovery_not_held") == []


def assign(role: str, person: str, at: dt.datetime) -> Entry:
    return command("assign", at, role=role, person=person)


def test_the_declaration_names_the_commander_once_per_commander(con, inbox, tmp_path, outside) -> None:
    slack, pagerduty = outside
    settings = configured(tmp_path, slack, pagerduty)
    inbox.append([firing("Checkout errors", "SEV2", at=T0)])
    run(con, settings, inbox, T0 + M)
    inbox.append([assign("ic", "alice", T0 + 2 * M)])
    run(con, settings, inbox, T0 + 3 * M)
    inbox.append([assign("comms", "carol", T0 + 4 * M)])  # another role: no new declaration
    run(con, settings, inbox, T0 + 5 * M)
    inbox.append([assign("ic", "bob", T0 + 6 * M)])  # the commander changes: declared again
    run(con, settings, inbox, T0 + 7 * M)
    run(con, settings, inbox, T0 + 8 * M)
    assert entries(con, "declared") == [
        (T0 + 3 * M, "declared", "INC-0001 declared SEV2: Checkout errors; incident commander: alice"),
        (T0 + 7 * M, "declared", "INC-0001 declared SEV2: Checkout errors; incident commander: bob"),
    ]
    assert [t for t in texts(slack) if "declared" in t] == [
        ":mega: INC-0001 declared SEV2: Checkout errors; incident commander: alice",
        ":mega: INC-0001 declared SEV2: Checkout errors; incident commander: bob",
    ]


def test_a_sev3_incident_is_not_declared(con, inbox, tmp_path, outside) -> None:
    slack, pagerduty = outside
    settings = configured(tmp_path, slack, pagerduty)
    inbox.append([firing("Slow reports", "SEV3", at=T0)])
    run(con, settings, inbox, T0 + M)
    inbox.append([assign("ic", "alice", T0 + 2 * M)])
    run(con, settings, inbox, T0 + 3 * M)
    assert entries(con, "declared") == []
    assert not [t for t in texts(slack) if "declared" in t]
