"""Known answers for the rule-based triage classifier (the table in pipelines/incidents/rules_triage.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pipelines.incidents.contract import TriageContext
from pipelines.incidents.rules_triage import classify, classify_severity, slo_signals

PAGE = {"severity": "page", "long_window": "1h", "short_window": "5m", "factor": 14.4}
TICKET_FAST = {"severity": "ticket", "long_window": "1d", "short_window": "2h", "factor": 3.0}
TICKET_SLOW = {"severity": "ticket", "long_window": "3d", "short_window": "6h", "factor": 1.0}


def slo(
    name: str,
    *,
    budget: float | None = 0.8,
    alerts: list[dict[str, Any]] | None = None,
    policy: str | None = None,
    **burn: float,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "slo": f"checkout-api/{name}",
        "sli": 0.999 if budget is not None else None,
        "budget_remaining": budget,
        "policy_state": policy,
        "burn_rates": {k.removeprefix("b"): v for k, v in burn.items()},
        "evaluated_at": "2026-05-12T16:50:00",
    }
    if alerts is not None:
        obj["alerts"] = alerts
    return obj


# (case, source severity, SLO status objects, expected severity)
SEVERITY_CASES = [
    ("page + budget exhausted", None, [slo("availability", budget=-0.2, alerts=[PAGE])], "SEV1"),
    (
        "page + policy exhausted",
        None,
        [slo("availability", budget=0.0, policy="exhausted", alerts=[PAGE])],
        "SEV1",
    ),
    (
        "page on one, ticket on another",
        None,
        [slo("availability", alerts=[PAGE]), slo("latency", alerts=[TICKET_FAST])],
        "SEV1",
    ),
    ("page alone", None, [slo("availability", budget=0.7, alerts=[PAGE])], "SEV2"),
    ("ticket + budget exhausted", None, [slo("availability", budget=-0.1, alerts=[TICKET_FAST])], "SEV2"),
    ("fast ticket", None, [slo("availability", budget=0.9, alerts=[TICKET_FAST])], "SEV3"),
    ("slow ticket, budget 40%", None, [slo("availability", budget=0.4, alerts=[TICKET_SLOW])], "SEV3"),
    ("slow ticket, budget 90%", None, [slo("availability", budget=0.9, alerts=[TICKET_SLOW])], "SEV4"),
    ("nothing firing, source SEV2", "SEV2", [slo("availability", alerts=[])], "SEV2"),
    ("nothing firing, no source", None, [slo("availability", alerts=[])], "SEV3"),
    ("no SLO data, source SEV4", "SEV4", [], "SEV4"),
    ("source SEV1 is never lowered", "SEV1", [slo("availability", budget=0.9, alerts=[TICKET_FAST])], "SEV1"),
    ("unknown source severity ignored", "P9", [], "SEV3"),
    # Without an `alerts` list, DESIGN §2's default thresholds apply to the burn rates (strict >).
    ("defaults: 1h & 5m over 14.4", None, [slo("availability", b1h=15.0, b5m=20.0)], "SEV2"),
    ("defaults: 1h exactly 14.4 is not a page", None, [slo("availability", b1h=14.4, b5m=20.0)], "SEV3"),
    ("defaults: 6h & 30m over 6", None, [slo("availability", b6h=6.5, b30m=7.0)], "SEV2"),
    ("defaults: 1d & 2h over 3", None, [slo("availability", b1d=3.5, b2h=4.0)], "SEV3"),
    ("defaults: only 3d & 6h over 1, budget 80%", None, [slo("availability", b3d=1.5, b6h=1.2)], "SEV4"),
    ("defaults: nothing over", None, [slo("availability", b1h=2.0, b5m=3.0)], "SEV3"),
]


@pytest.mark.parametrize(
    ("source", "status", "expected"), [c[1:] for c in SEVERITY_CASES], ids=[c[0] for c in SEVERITY_CASES]
)
def test_severity_table(source: str | None, status: list[dict[str, Any]], expected: str) -> None:
    severity, rule = classify_severity(source, slo_signals(status))
    assert severity == expected, rule


def context(**overrides: Any) -> TriageContext:
    base: dict[str, Any] = {
        "incident_id": "INC-0007",
        "service": "checkout-api",
        "title": "SLOBurnRateHigh checkout-api/availability",
        "alert_text": "error budget burning",
        "source_severity": "SEV3",
        "slo_status": [slo("availability", budget=0.9, alerts=[TICKET_FAST])],
        "recent_deploys": [],
        "runbook_text": "",
        "allowed_actions": ["rollback", "restart", "scale_up", "flush_cache"],
        "similar_incidents": [],
    }
    base.update(overrides)
    return TriageContext(**base)


AT = dt.datetime(2026, 5, 12, 16, 50)
DEPLOY = {
    "deployed_at": "2026-05-12T16:05:00",
    "version": "v2026.05.12-1605",
    "description": "payment client",
}
OLD_DEPLOY = {"deployed_at": "2026-05-12T13:00:00", "version": "v2026.05.12-1300", "description": "flags"}
FIXED_BEFORE = {
    "id": "INC-0002",
    "root_cause": "cart cache stampede",
    "remediation_action": "flush_cache",
    "remediation_status": "succeeded",
}

# (case, context overrides, expected recommended action, hypothesis starts with, confidence)
ACTION_CASES = [
    (
        "deploy 45 min before → rollback",
        {"recent_deploys": [DEPLOY]},
        "rollback",
        "recent deploy v2026.05.12-1605",
        0.7,
    ),
    ("deploy 3 h 50 min before is not recent", {"recent_deploys": [OLD_DEPLOY]}, "escalate", "unknown", 0.3),
    (
        "deploy but rollback not allow-listed",
        {"recent_deploys": [DEPLOY], "allowed_actions": ["restart"]},
        "escalate",
        "recent deploy",
        0.7,
    ),
    (
        "similar incident fixed by flush_cache",
        {"similar_incidents": [FIXED_BEFORE]},
        "flush_cache",
        "repeat of INC-0002",
        0.65,
    ),
    (
        "similar incident whose fix failed",
        {"similar_incidents": [{**FIXED_BEFORE, "remediation_status": "failed"}]},
        "escalate",
        "unknown",
        0.3,
    ),
    (
        "memory pressure → scale_up",
        {"alert_text": "memory pressure on checkout pods"},
        "scale_up",
        "saturation",
        0.5,
    ),
    (
        "memory pressure, only restart allowed",
        {"alert_text": "queue backlog growing", "allowed_actions": ["restart"]},
        "restart",
        "saturation",
        0.5,
    ),
    (
        "crash loop → restart",
        {"alert_text": "pod checkout-3 is crash-looping (OOMKilled)"},
        "restart",
        "crash",
        0.5,
    ),
    ("cache evictions → flush_cache", {"alert_text": "cart cache evictions"}, "flush_cache", "cache", 0.5),
    (
        "database timeout → escalate",
        {"alert_text": "upstream database timeouts"},
        "escalate",
        "dependency",
        0.5,
    ),
    ("scrape gap → escalate", {"alert_text": "no data: scrape target down"}, "escalate", "data gap", 0.5),
    ("nothing known", {}, "escalate", "unknown", 0.3),
    (
        "no SLO data lowers confidence",
        {"slo_status": [], "recent_deploys": [DEPLOY]},
        "rollback",
        "recent deploy",
        0.6,
    ),
    (
        "empty allow-list",
        {"allowed_actions": [], "recent_deploys": [DEPLOY]},
        "escalate",
        "recent deploy",
        0.7,
    ),
]


@pytest.mark.parametrize(
    ("overrides", "action", "hypothesis", "confidence"),
    [c[1:] for c in ACTION_CASES],
    ids=[c[0] for c in ACTION_CASES],
)
def test_hypothesis_and_action_table(
    overrides: dict[str, Any], action: str, hypothesis: str, confidence: float
) -> None:
    result = classify(context(**overrides), at=AT)
    assert result.method == "rules"
    assert result.recommended_action == action, result.rationale
    assert result.root_cause_hypothesis.startswith(hypothesis), result.root_cause_hypothesis
    assert result.confidence == pytest.approx(confidence)
    assert result.error is None


def test_without_a_time_every_given_deploy_counts() -> None:
    # The fold may pass only the deploys it already judged recent and no time: the latest one wins.
    result = classify(context(recent_deploys=[OLD_DEPLOY, DEPLOY]))
    assert (
        result.root_cause_hypothesis
        == "recent deploy v2026.05.12-1605 at 2026-05-12 16:05:00: payment client"
    )
    assert result.recommended_action == "rollback"


def test_deploy_after_the_alert_is_not_a_cause() -> None:
    later = {"deployed_at": "2026-05-12T17:10:00", "version": "v-later"}
    assert classify(context(recent_deploys=[later]), at=AT).recommended_action == "escalate"


def test_rationale_names_the_rule() -> None:
    result = classify(context(slo_status=[slo("availability", budget=-0.5, alerts=[PAGE])]), at=AT)
    assert result.severity == "SEV1"
    assert "page-level burn on checkout-api/availability and budget exhausted" in result.rationale
