"""Escalation policies paging real HTTP receivers (issue 17, items 1 and 7): the incident stage, a real
on-call file, and local stand-ins for the PagerDuty Events API v2 and a Slack incoming webhook
(tests/support/receivers.py) that record what reached them.

- tier 2 is paged with a different routing key and dedup key once tier 1's timeout passed;
- an acknowledgement stops the chain; resolving resolves every tier's alert through its own key;
- a failed page is on the timeline and sent again with backoff until PagerDuty takes it;
- Slack hears how a remediation ended (succeeded and verified, failed) and that the incident resolved.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.config import Settings
from pipelines.inbox import Inbox
from tests.support.receivers import Endpoint
from tests.unit.test_incident_flow import T0, M, command, firing, kinds, one, resolved, run, settings_for

pytestmark = pytest.mark.integration

PRIMARY_KEY = "primary-routing-key-0123456789"
BOB_KEY = "bob-routing-key-abcdefghijklmn"
LEADERSHIP_KEY = "leadership-routing-key-zyxwvu"
ONCALL = """
people:
  alice: {email: alice@example.com}
  bob: {email: bob@example.com, routing_key_env: BOB_ROUTING_KEY}
schedules:
  primary:
    layers:
      - {start: 2026-05-25T10:00:00Z, rotation_turn_length: 1w, users: [alice]}
  secondary:
    layers:
      - {start: 2026-05-25T10:00:00Z, rotation_turn_length: 1w, users: [bob]}
policies:
  default:
    tiers:
      - {target: {schedule: primary}, timeout: 5m}
      - {target: {schedule: secondary}, timeout: 10m}
      - {target: {routing_key_env: LEADERSHIP_ROUTING_KEY}}
  slow-shop:
    tiers:
      - {target: {schedule: primary}, timeout: 1h}
      - {target: {schedule: secondary}}
"""


@pytest.fixture
def receivers() -> Iterator[tuple[Endpoint, Endpoint]]:
    pd, slack = Endpoint([202]), Endpoint([200])
    yield pd, slack
    pd.close()
    slack.close()


def setup(tmp_path: Path, pd: Endpoint, slack: Endpoint | None = None, **changes: Any) -> Settings:
    (tmp_path / "oncall.yaml").write_text(ONCALL)
    base = settings_for(tmp_path, **changes)
    return dataclasses.replace(
        base,
        oncall_file=tmp_path / "oncall.yaml",
        pagerduty_routing_key=PRIMARY_KEY,
        pagerduty_events_url=f"{pd.url}/v2/enqueue",
        routing_keys={"BOB_ROUTING_KEY": BOB_KEY, "LEADERSHIP_ROUTING_KEY": LEADERSHIP_KEY},
        slack_webhook_url=f"{slack.url}/services/T0/B0/hooksecret" if slack else None,
        notify_max_retries=0,
        notify_timeout_s=2.0,
    )


def events(pd: Endpoint) -> list[tuple[str, str, str, Any, Any]]:
    """(action, routing key, dedup key, tier, on call) of every event PagerDuty received."""
    out = []
    for _, body, _ in pd.received:
        details = body.get("payload", {}).get("custom_details", {})
        out.append(
            (
                body["event_action"],
                body["routing_key"],
                body["dedup_key"],
                details.get("escalation_tier"),
                details.get("on_call"),
            )
        )
    return out


def test_tier_2_is_paged_with_its_own_target_and_dedup_key_after_tier_1s_timeout(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    pd, _ = receivers
    settings = setup(tmp_path, pd)
    inbox.append([firing("Checkout errors", "SEV2")])
    run(con, settings, inbox, T0)  # escalated at T0: tier 1, the primary's alice
    run(con, settings, inbox, T0 + 4 * M)
    assert events(pd) == [("trigger", PRIMARY_KEY, "INC-0001", 1, "alice")]

    run(con, settings, inbox, T0 + 5 * M)  # tier 1's 5 min passed without an acknowledgement
    assert events(pd)[1:] == [("trigger", BOB_KEY, "INC-0001-tier2", 2, "bob")]
    assert pd.received[1][1]["payload"]["summary"] == "[tier 2] [SEV2] shop: Checkout errors"
    assert one(con, "SELECT message FROM timeline WHERE kind = 'timer'") == (
        "no acknowledgement from tier 1 (schedule primary) within its 5 min: escalating to tier 2 "
        "(schedule secondary)"
    )
    pages = con.execute(
        "SELECT occurred_at, message FROM timeline WHERE kind = 'notification' AND source = 'pagerduty' "
        "ORDER BY seq"
    ).fetchall()
    assert pages == [
        (
            T0,
            "pagerduty: sent — tier 1 (schedule primary: alice), dedup_key INC-0001: HTTP 202 after 1 "
            "attempt(s)",
        ),
        (
            T0 + 5 * M,
            "pagerduty: sent — tier 2 (schedule secondary: bob), dedup_key INC-0001-tier2: HTTP 202 after 1 "
            "attempt(s)",
        ),
    ]

    run(con, settings, inbox, T0 + 14 * M)  # tier 2's 10 min are not over: nothing new
    assert len(pd.received) == 2
    inbox.append([command("resolve", T0 + 14 * M)])
    run(con, settings, inbox, T0 + 16 * M)  # resolved before tier 3: leadership is never paged
    assert events(pd)[2:] == [
        ("resolve", PRIMARY_KEY, "INC-0001", None, None),
        ("resolve", BOB_KEY, "INC-0001-tier2", None, None),
    ]
    assert one(con, "SELECT message FROM timeline WHERE kind = 'page_resolved'") == (
        "PagerDuty alerts resolved: INC-0001 sent, INC-0001-tier2 sent"
    )
    run(con, settings, inbox, T0 + 60 * M)
    assert len(pd.received) == 4  # nothing more, ever
    text = json.dumps(con.execute("SELECT * FROM notifications").fetchall(), default=str)
    assert BOB_KEY not in text and PRIMARY_KEY not in text


def test_an_acknowledgement_stops_the_chain(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    pd, _ = receivers
    settings = setup(tmp_path, pd)
    inbox.append([firing("Checkout errors", "SEV2")])
    run(con, settings, inbox, T0)
    inbox.append([command("acknowledge", T0 + 3 * M)])
    for minute in (5, 15, 40):
        run(con, settings, inbox, T0 + minute * M)
    assert events(pd) == [("trigger", PRIMARY_KEY, "INC-0001", 1, "alice")]
    assert "timer" not in kinds(con)


def test_a_service_policy_with_a_long_timeout_waits_for_it(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    pd, _ = receivers
    settings = setup(tmp_path, pd)
    inbox.append([firing("Slow pages", "SEV2", service="slow-shop")])
    run(con, settings, inbox, T0)
    run(con, settings, inbox, T0 + 59 * M)
    assert [e[2] for e in events(pd)] == ["INC-0001"]
    run(con, settings, inbox, T0 + 60 * M)
    assert events(pd)[1:] == [("trigger", BOB_KEY, "INC-0001-tier2", 2, "bob")]


def test_a_failed_page_is_on_the_timeline_and_retried_with_backoff(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path
) -> None:
    pd = Endpoint([500, 503, 500, 202])
    try:
        settings = setup(tmp_path, pd)
        inbox.append([firing("Slow pages", "SEV2", service="slow-shop")])  # tier 2 only after 1 h
        run(con, settings, inbox, T0)
        for minute in (0.5, 1, 2, 2.9, 3, 6, 7, 20):
            run(con, settings, inbox, T0 + minute * M)
        attempts = [(e[0], e[2]) for e in events(pd)]
        assert attempts == [("trigger", "INC-0001")] * 4  # the same tier-1 page, four times
        pages = con.execute(
            "SELECT occurred_at, message FROM timeline WHERE kind = 'notification' AND source = 'pagerduty' "
            "ORDER BY seq"
        ).fetchall()
        head = "tier 1 (schedule primary: alice), dedup_key INC-0001"
        answer = 'HTTP {}: {{"status":"invalid event","errors":["bad"]}}; gave up after 1 attempt(s)'
        assert pages == [
            (T0, f"pagerduty: failed — {head}: {answer.format(500)}"),
            (T0 + M, f"pagerduty: failed — {head}: {answer.format(503)} (retry 1 of 3; next in 2 min)"),
            (T0 + 3 * M, f"pagerduty: failed — {head}: {answer.format(500)} (retry 2 of 3; next in 4 min)"),
            (T0 + 7 * M, f"pagerduty: sent — {head}: HTTP 202 after 1 attempt(s) (retry 3 of 3)"),
        ]  # fmt: skip
    finally:
        pd.close()


def test_retries_stop_once_someone_acknowledges(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path
) -> None:
    pd = Endpoint([500])
    try:
        settings = setup(tmp_path, pd)
        inbox.append([firing("Slow pages", "SEV2", service="slow-shop")])
        run(con, settings, inbox, T0)
        run(con, settings, inbox, T0 + M)  # retry 1
        inbox.append([command("acknowledge", T0 + 2 * M)])  # seen on the dashboard anyway
        for minute in (3, 7, 20):
            run(con, settings, inbox, T0 + minute * M)
        assert len(pd.received) == 2
    finally:
        pd.close()


def slack_texts(slack: Endpoint) -> list[str]:
    return [body["text"] for _, body, _ in slack.received]


def test_slack_hears_a_remediation_succeed_and_the_incident_resolve(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    pd, slack = receivers
    settings = setup(tmp_path, pd, slack, rules_route_by_severity=True)
    inbox.append([firing("Workers crash looping")])  # SEV3: the allow-listed restart runs
    run(con, settings, inbox, T0 + M)
    assert slack.received == [] and pd.received == []  # nobody is paged for it
    inbox.append([resolved("Workers crash looping", at=T0, ends=T0 + 6 * M)])
    run(con, settings, inbox, T0 + 7 * M)  # the alert resolved: verified, mitigated
    [success] = slack_texts(slack)
    assert success == (
        ":white_check_mark: *Auto-remediation succeeded* *INC-0001* shop: Workers crash looping\n"
        "*Fix applied:* restart (INC-0001-R1), after 1 attempt(s), exit code 0\n"
        "*Verification:* all of the incident's alerts resolved\n"
        "*Status:* mitigated; resolve the incident once the responders agree."
    )
    inbox.append([command("resolve", T0 + 20 * M)])
    run(con, settings, inbox, T0 + 21 * M)
    run(con, settings, inbox, T0 + 30 * M)  # once each
    assert len(slack.received) == 2
    assert slack_texts(slack)[1] == (
        ":large_green_circle: *[RESOLVED] INC-0001* shop: Workers crash looping\n"
        "*Severity:* SEV3  *Duration:* 2026-06-01 10:00 to 10:20 UTC (0 h 20 min)\n"
        "*Resolved by:* cli\n"
        "*Follow-up:* the post-mortem draft is on the incident."
    )
    notices = con.execute(
        "SELECT occurred_at, message FROM timeline WHERE kind = 'notice' ORDER BY seq"
    ).fetchall()
    assert notices == [
        (T0 + 6 * M, "notice (remediation INC-0001-R1 (restart) succeeded and was verified): slack sent — "
                     "HTTP 200 after 1 attempt(s)"),
        (T0 + 20 * M, "notice (incident resolved): slack sent — HTTP 200 after 1 attempt(s)"),
    ]  # fmt: skip
    assert "hooksecret" not in json.dumps(con.execute("SELECT * FROM notifications").fetchall(), default=str)


def test_slack_hears_a_remediation_fail_and_the_approval_it_waits_for(
    con: duckdb.DuckDBPyConnection,
    inbox: Inbox,
    tmp_path: Path,
    receivers: tuple[Endpoint, Endpoint],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pd, slack = receivers
    settings = setup(tmp_path, pd, slack, rules_route_by_severity=True, critical=True)
    inbox.append([firing("Workers crash looping")])
    run(con, settings, inbox, T0 + M)
    [waiting] = slack_texts(slack)
    assert waiting.startswith(":raised_hand: *INC-0001* shop: Workers crash looping\n*Approval needed:* ")
    monkeypatch.setenv("SLO_REMEDIATE_OUTCOME", "fail")
    inbox.append([command("approve_remediation", T0 + 2 * M, remediation_id="INC-0001-R1")])
    run(con, settings, inbox, T0 + 2 * M)
    texts = slack_texts(slack)
    failed = [t for t in texts if t.startswith(":red_circle:")]
    assert failed == [
        ":red_circle: *Auto-remediation FAILED: manual intervention required* *INC-0001* shop: Workers crash "
        "looping\n"
        "*Attempted fix:* restart (INC-0001-R1), after 2 attempt(s), exit code 1\n"
        "*Result:* failed\n"
        "*Output (end):* --- attempt 1: failed, exit code 1, 34 bytes of output\nshop: restart for INC-0001\n"
        "failed\n\n--- attempt 2: failed, exit code 1, 34 bytes of output\n"
        "shop: restart for INC-0001\nfailed\n"
        "The incident is escalated to the on-call responders."
    ]
    # the failure escalates: tier 1 is paged, and Slack gets the page's message too
    assert events(pd) == [("trigger", PRIMARY_KEY, "INC-0001", 1, "alice")]
    assert any(t.startswith(":rotating_light:") for t in texts)


def test_without_slack_the_notice_is_on_the_timeline_only(
    con: duckdb.DuckDBPyConnection, inbox: Inbox, tmp_path: Path, receivers: tuple[Endpoint, Endpoint]
) -> None:
    pd, _ = receivers
    settings = setup(tmp_path, pd, None, rules_route_by_severity=True)
    inbox.append([firing("Workers crash looping")])
    run(con, settings, inbox, T0 + M)
    inbox.append([resolved("Workers crash looping", at=T0, ends=T0 + 6 * M)])
    run(con, settings, inbox, T0 + 7 * M)
    assert one(con, "SELECT message FROM timeline WHERE kind = 'notice'") == (
        "notice (remediation INC-0001-R1 (restart) succeeded and was verified): not sent: SLACK_WEBHOOK_URL "
        "is not set"
    )
    assert one(con, "SELECT count(*) FROM notifications") == 0


def test_a_file_that_was_never_good_pages_with_the_default_policy(
    con: duckdb.DuckDBPyConnection,
    inbox: Inbox,
    tmp_path: Path,
    receivers: tuple[Endpoint, Endpoint],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pd, _ = receivers
    settings = setup(tmp_path, pd)
    (tmp_path / "oncall.yaml").write_text(
        ONCALL.replace("users: [bob]", "users: [zoe]")
    )  # slo serve refuses it
    inbox.append([firing("Checkout errors", "SEV2")])
    run(con, settings, inbox, T0)
    run(con, settings, inbox, T0 + 15 * M)  # without the file: the SEV2 response time, 15 min
    # a typo silences nobody: tier 1 and 2 through PAGERDUTY_ROUTING_KEY, each with its own dedup key
    assert events(pd) == [
        ("trigger", PRIMARY_KEY, "INC-0001", 1, None),
        ("trigger", PRIMARY_KEY, "INC-0001-tier2", 2, None),
    ]
    assert "schedules.secondary.layers[0].users[0]: unknown person 'zoe'" in caplog.text
