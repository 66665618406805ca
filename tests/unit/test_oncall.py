"""On-call schedules and escalation policies (issue 17, item 1): who is on call, whom each tier pages,
when the timers escalate under a policy, on-call load per engineer-week, and every bad file refused
with the file and field named. Known answers a reader can check against a calendar."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.config import Settings
from pipelines.incidents import oncall, timers
from pipelines.incidents.oncall import OnCallError, load_oncall, on_call_load, parse_oncall

M = dt.timedelta(minutes=1)
T0 = dt.datetime(2026, 11, 10, 3, 0)  # a Tuesday, 03:00 UTC

GOOD = """
people:
  alice: {email: alice@example.com}
  bob: {email: bob@example.com, routing_key_env: BOB_ROUTING_KEY}
  carol: {}
  dan: {}
  erin: {routing_key_env: ERIN_ROUTING_KEY}
schedules:
  backend-primary:
    layers:
      - start: 2026-11-02T10:00:00Z          # a Monday, 10:00 UTC (seed 002: hand-off Monday 10:00)
        rotation_turn_length: 1w
        users: [alice, bob, carol, dan]
  backend-secondary:
    layers:
      - name: november
        start: 2026-11-02T10:00:00Z
        end: 2026-11-16T10:00:00Z
        rotation_turn_length: 1w
        users: [bob, carol]
      - name: from mid-november
        start: 2026-11-16T10:00:00Z
        rotation_turn_length: 1d
        users: [dan, alice]
policies:
  default:
    tiers:
      - {target: {schedule: backend-primary}, timeout: 5m}
      - {target: {schedule: backend-secondary}, timeout: 10m}
      - {target: {person: erin}, timeout: 15m}
      - {target: {routing_key_env: LEADERSHIP_ROUTING_KEY}}
  search-api:
    tiers:
      - {target: {person: carol}, timeout: 30m}
      - {target: {person: dan}}
"""


@pytest.fixture
def book() -> oncall.OnCall:
    return parse_oncall(yaml.safe_load(GOOD), "oncall.yaml")


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("schedule", "at", "who"),
    [
        ("backend-primary", "2026-11-02 09:59", None),  # before the first hand-off: nobody
        ("backend-primary", "2026-11-02 10:00", "alice"),
        ("backend-primary", "2026-11-09 09:59", "alice"),
        ("backend-primary", "2026-11-09 10:00", "bob"),  # the weekly hand-off, Monday 10:00
        ("backend-primary", "2026-11-23 10:00", "dan"),
        ("backend-primary", "2026-11-30 10:00", "alice"),  # four weeks on: round again
        ("backend-secondary", "2026-11-10 03:00", "carol"),
        ("backend-secondary", "2026-11-16 09:59", "carol"),  # the first layer's last minute
        ("backend-secondary", "2026-11-16 10:00", "dan"),  # the second layer: daily turns
        ("backend-secondary", "2026-11-17 10:00", "alice"),
        ("backend-secondary", "2026-11-18 10:00", "dan"),
    ],
)
def test_who_is_on_call(book: oncall.OnCall, schedule: str, at: str, who: str | None) -> None:
    assert book.schedules[schedule].on_call(t(at)) == who


def test_each_tier_pages_its_own_target_with_its_own_dedup_key(book: oncall.OnCall) -> None:
    targets = [book.page_target("checkout-api", "INC-0042", n, T0) for n in range(5)]
    assert [(p.label, p.person, p.routing_key_env, p.dedup_key) for p in targets] == [
        ("schedule backend-primary", "bob", "BOB_ROUTING_KEY", "INC-0042"),  # bob's week; his own key
        ("schedule backend-secondary", "carol", "PAGERDUTY_ROUTING_KEY", "INC-0042-tier2"),
        ("erin", "erin", "ERIN_ROUTING_KEY", "INC-0042-tier3"),
        ("routing_key_env LEADERSHIP_ROUTING_KEY", None, "LEADERSHIP_ROUTING_KEY", "INC-0042-tier4"),
        ("routing_key_env LEADERSHIP_ROUTING_KEY", None, "LEADERSHIP_ROUTING_KEY", "INC-0042-tier4"),
    ]
    assert targets[1].describe() == "tier 2 (schedule backend-secondary: carol)"
    # a service with its own policy
    assert book.page_target("search-api", "INC-7", 1, T0).person == "dan"


def test_without_a_file_the_default_policy_is_seed_002s() -> None:
    policy = oncall.OnCall().policy_for("anything")
    assert [(tier.target.value, tier.timeout) for tier in policy.tiers] == [
        ("on-call-primary", 5 * M),
        ("on-call-secondary", 10 * M),
        ("engineering-manager", 15 * M),
        ("vp-engineering", dt.timedelta(0)),
    ]
    # tier n+1 is paged tier n's timeout after tier n: 5, 5 + 10, 5 + 10 + 15 min
    assert policy.deadlines(T0) == [(1, T0 + 5 * M), (2, T0 + 15 * M), (3, T0 + 30 * M)]
    target = oncall.default_page_target("INC-0001", 1)
    assert (target.label, target.routing_key_env, target.dedup_key) == (
        "on-call-secondary",
        "PAGERDUTY_ROUTING_KEY",
        "INC-0001-tier2",
    )


def incident(**kw: Any) -> dict[str, Any]:
    base = {
        "severity": "SEV2",
        "detected_at": T0,
        "escalated_at": T0,
        "acknowledged_at": None,
        "mitigated_at": None,
        "resolved_at": None,
        "root_cause_at": T0 + M,
        "escalation_tier": 0,
        "imported": False,
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    ("inc", "now", "expected"),
    [
        (incident(), T0 + 4 * M, []),
        (incident(), T0 + 5 * M, [("ack:1", T0 + 5 * M, 1)]),
        (incident(), T0 + 14 * M, [("ack:1", T0 + 5 * M, 1)]),
        (incident(), T0 + 15 * M, [("ack:1", T0 + 5 * M, 1), ("ack:2", T0 + 15 * M, 2)]),
        (
            incident(),
            T0 + 90 * M,
            [("ack:1", T0 + 5 * M, 1), ("ack:2", T0 + 15 * M, 2), ("ack:3", T0 + 30 * M, 3)],
        ),
        (incident(acknowledged_at=T0 + 4 * M), T0 + 90 * M, []),  # acknowledged: the chain stops
        (incident(acknowledged_at=T0 + 7 * M), T0 + 90 * M, [("ack:1", T0 + 5 * M, 1)]),  # tier 2 acked
        (
            incident(mitigated_at=T0 + 20 * M),
            T0 + 90 * M,
            [("ack:1", T0 + 5 * M, 1), ("ack:2", T0 + 15 * M, 2)],
        ),
    ],
)
def test_timers_follow_the_policy(
    book: oncall.OnCall, inc: dict[str, Any], now: dt.datetime, expected: list[Any]
) -> None:
    due = timers.due_timers(inc, now, book.policy_for("checkout-api"))
    assert [(e.key, e.at, e.tier) for e in due] == expected


def test_a_timer_message_names_both_tiers(book: oncall.OnCall) -> None:
    [first] = timers.due_timers(incident(), T0 + 5 * M, book.policy_for("checkout-api"))
    assert first.message == (
        "no acknowledgement from tier 1 (schedule backend-primary) within its 5 min: "
        "escalating to tier 2 (schedule backend-secondary)"
    )


BAD = [
    (
        "a gap between layers",
        {
            "schedules.s.layers.0.end": "2026-11-09T10:00:00Z",
            "schedules.s.layers.1.start": "2026-11-10T10:00:00Z",
        },
        "f.yaml: schedules.s.layers: gap: nobody is on call from 2026-11-09T10:00:00Z to "
        "2026-11-10T10:00:00Z (between layer 0 and layer 1)",
    ),
    (
        "overlapping layers",
        {
            "schedules.s.layers.0.end": "2026-11-12T10:00:00Z",
            "schedules.s.layers.1.start": "2026-11-10T10:00:00Z",
        },
        "f.yaml: schedules.s.layers: overlap: layer 0 (2026-11-02T10:00:00Z, until 2026-11-12T10:00:00Z) and "
        "layer 1 (from 2026-11-10T10:00:00Z) are both in effect; end the first where the next starts",
    ),
    (
        "an open-ended layer before another",
        {"schedules.s.layers.0.end": None},
        "f.yaml: schedules.s.layers: overlap: layer 0 (2026-11-02T10:00:00Z, open-ended) and layer 1 "
        "(from 2026-11-09T10:00:00Z) are both in effect; end the first where the next starts",
    ),
    (
        "a policy with no tiers",
        {"policies.p.tiers": []},
        "f.yaml: policies.p.tiers: a policy needs at least one tier (target and timeout)",
    ),
    (
        "an unknown person in a rotation",
        {"schedules.s.layers.1.users": ["alice", "zoe"]},
        "f.yaml: schedules.s.layers[1].users[1]: unknown person 'zoe'; people has: alice, bob",
    ),
    (
        "an unknown person as a target",
        {"policies.p.tiers.1.target": {"person": "zoe"}},
        "f.yaml: policies.p.tiers[1].target.person: unknown person 'zoe'; people has: alice, bob",
    ),
    (
        "an unknown schedule as a target",
        {"policies.p.tiers.0.target": {"schedule": "nights"}},
        "f.yaml: policies.p.tiers[0].target.schedule: unknown schedule 'nights'; schedules has: s",
    ),
    (
        "a timeout missing before the last tier",
        {"policies.p.tiers.0.timeout": None},
        "f.yaml: policies.p.tiers[0].timeout: required on every tier but the last (e.g. 5m)",
    ),
    (
        "a turn that is not a duration",
        {"schedules.s.layers.1.rotation_turn_length": "weekly"},
        "f.yaml: schedules.s.layers[1].rotation_turn_length: 'weekly' is not a duration; expected seconds "
        "or e.g. 30m, 12h, 1w",
    ),
    (
        "a hand-off without a time zone",
        {"schedules.s.layers.0.start": "2026-11-02T10:00:00"},
        "f.yaml: schedules.s.layers[0].start: '2026-11-02T10:00:00' has no time zone; write it in UTC "
        "with a Z",
    ),
    (
        "a routing key in the file instead of a variable's name",
        {"policies.p.tiers.1.target": {"routing_key_env": "R0UT1NGKEY0123"}},
        "f.yaml: policies.p.tiers[1].target.routing_key_env: 'R0UT1NGKEY0123' is not an environment variable "
        "name ending in ROUTING_KEY (e.g. VP_ROUTING_KEY)",
    ),
]


def small_file() -> dict[str, Any]:
    return {
        "people": {"alice": {}, "bob": {}},
        "schedules": {
            "s": {
                "layers": [
                    {
                        "start": "2026-11-02T10:00:00Z",
                        "end": "2026-11-09T10:00:00Z",
                        "rotation_turn_length": "1d",
                        "users": ["alice"],
                    },
                    {
                        "start": "2026-11-09T10:00:00Z",
                        "rotation_turn_length": "1w",
                        "users": ["alice", "bob"],
                    },
                ]
            }
        },
        "policies": {
            "p": {"tiers": [{"target": {"schedule": "s"}, "timeout": "5m"}, {"target": {"person": "bob"}}]}
        },
    }


def with_changes(changes: dict[str, Any]) -> dict[str, Any]:
    data = small_file()
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return data


def test_the_small_file_is_good() -> None:
    book = parse_oncall(small_file(), "f.yaml")
    assert book.schedules["s"].on_call(t("2026-11-16 10:00")) == "bob"


@pytest.mark.parametrize(("what", "changes", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_is_refused_naming_the_file_and_field(
    what: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(OnCallError) as caught:
        parse_oncall(with_changes(changes), "f.yaml")
    assert caught.value.problems == [message]


def test_every_problem_is_reported_and_a_bad_file_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "oncall.yaml"
    path.write_text(GOOD)
    settings = Settings(data_dir=tmp_path, specs_dir=tmp_path, oncall_file=path)
    good = oncall.configured(settings)
    assert good is not None and set(good.policies) == {"default", "search-api"}
    broken = GOOD.replace("users: [bob, carol]", "users: [bob, zoe]").replace("timeout: 30m", "timeout: soon")
    path.write_text(broken)
    with pytest.raises(OnCallError) as caught:
        load_oncall(path)
    assert caught.value.problems == [
        f"{path}: schedules.backend-secondary.layers[0].users[1]: unknown person 'zoe'; people has: "
        "alice, bob, carol, dan, erin",
        f"{path}: policies.search-api.tiers[0].timeout: 'soon' is not a duration; expected seconds or "
        "e.g. 30m, 12h, 1w",
    ]
    assert oncall.configured(settings) is good  # the service keeps paging with the last good file
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(broken)
    with pytest.raises(OnCallError):  # never good: nothing to fall back on
        oncall.configured(Settings(data_dir=tmp_path, specs_dir=tmp_path, oncall_file=fresh))


def test_on_call_load_is_pages_per_engineer_per_on_call_week(book: oncall.OnCall) -> None:
    primary = book.schedules["backend-primary"]
    start, end = t("2026-11-02 10:00"), t("2026-11-30 10:00")  # four weeks: one each
    pages = [
        t("2026-11-03 02:00"),  # alice
        t("2026-11-04 02:00"),  # alice
        t("2026-11-09 09:59"),  # alice, a minute before the hand-off
        t("2026-11-09 10:00"),  # bob
        t("2026-11-25 12:00"),  # dan
        t("2026-11-30 10:00"),  # outside the period
    ]
    load = on_call_load(primary, pages, start, end)
    assert [(x.person, x.pages, x.on_call_weeks, x.pages_per_week) for x in load] == [
        ("alice", 3, 1.0, 3.0),
        ("bob", 1, 1.0, 1.0),
        ("dan", 1, 1.0, 1.0),
        ("carol", 0, 1.0, 0.0),
    ]
    # half a week of alice (the period starts mid-turn): her two pages are 4 a week
    half = on_call_load(primary, pages[:2], t("2026-11-05 22:00"), t("2026-11-09 10:00"))
    assert [(x.person, x.pages, x.on_call_weeks, x.pages_per_week) for x in half] == [("alice", 0, 0.5, 0.0)]
    two = on_call_load(primary, pages[:2], t("2026-11-02 10:00"), t("2026-11-05 22:00"))
    assert [(x.person, x.pages, x.on_call_weeks, x.pages_per_week) for x in two] == [("alice", 2, 0.5, 4.0)]


PAGERDUTY_EXPORT = {
    "schedule": {
        "id": "PI7DH85",
        "type": "schedule",
        "name": "Backend primary",
        "time_zone": "UTC",
        "schedule_layers": [
            {
                "id": "PG68P1M",
                "name": "Layer 1",
                "start": "2026-11-02T10:00:00Z",
                "end": "2026-11-16T10:00:00Z",
                "rotation_virtual_start": "2026-11-02T10:00:00Z",
                "rotation_turn_length_seconds": 604800,
                "users": [
                    {"user": {"id": "PXPGF42", "type": "user_reference", "summary": "Earline Greenholt"}},
                    {"user": {"id": "PAM4FGS", "type": "user_reference", "summary": "Kyler Kuhn"}},
                ],
                "restrictions": [],
            },
            {
                "id": "PG68P1N",
                "name": "Layer 2",
                "start": "2026-11-16T10:00:00Z",
                "rotation_virtual_start": "2026-11-16T10:00:00Z",
                "rotation_turn_length_seconds": 86400,
                "users": [{"user": {"id": "PAM4FGS", "type": "user_reference", "summary": "Kyler Kuhn"}}],
            },
        ],
    }
}


def test_a_pagerduty_schedule_export_imports_into_the_file_shape() -> None:
    entries = oncall.from_pagerduty_schedule(json.loads(json.dumps(PAGERDUTY_EXPORT)))
    assert entries["people"] == {"Earline Greenholt": {"id": "PXPGF42"}, "Kyler Kuhn": {"id": "PAM4FGS"}}
    book = parse_oncall(entries, "export.json")
    schedule = book.schedules["Backend primary"]
    assert schedule.on_call(t("2026-11-03 00:00")) == "Earline Greenholt"
    assert schedule.on_call(t("2026-11-10 00:00")) == "Kyler Kuhn"
    assert schedule.on_call(t("2026-11-20 00:00")) == "Kyler Kuhn"
    with pytest.raises(OnCallError, match="schedule: expected a PagerDuty schedule with schedule_layers"):
        oncall.from_pagerduty_schedule({"schedule": {"name": "x"}})
