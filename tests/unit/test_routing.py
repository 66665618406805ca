"""Known answers for severity routing and post-remediation verification (pipelines/incidents/routing.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.incidents.contract import TriageResult
from pipelines.incidents.routing import decide_route, slo_thresholds, verification_outcome, verify_recovery
from pipelines.model import BurnRateAlert

ALLOWED = ["rollback", "restart", "failover_db"]
CRITICAL = {"failover_db"}


def triage(action: str, *, error: str | None = None, method: str = "model") -> TriageResult:
    return TriageResult(method, "SEV3", "recent deploy", action, 0.8, "because", error=error)


# (case, severity, recommended action, triage error, expected route, action, needs approval)
ROUTE_CASES = [
    ("SEV1 escalates even with an allowed action", "SEV1", "rollback", None, "escalate", None, False),
    ("SEV2 escalates", "SEV2", "restart", None, "escalate", None, False),
    ("SEV3 + allowed action remediates", "SEV3", "rollback", None, "auto_remediate", "rollback", False),
    ("SEV4 + allowed action remediates", "SEV4", "restart", None, "auto_remediate", "restart", False),
    (
        "SEV3 + critical action waits for approval",
        "SEV3",
        "failover_db",
        None,
        "auto_remediate",
        "failover_db",
        True,
    ),
    ("SEV3 + escalate recommended", "SEV3", "escalate", None, "escalate", None, False),
    ("SEV3 + action not allow-listed", "SEV3", "rm -rf /", None, "escalate", None, False),
    ("SEV4 + action of another service", "SEV4", "flush_cache", None, "escalate", None, False),
    ("SEV3 + triage fell back", "SEV3", "rollback", "model API answered HTTP 529", "escalate", None, False),
    ("unknown severity escalates", "SEV9", "rollback", None, "escalate", None, False),
    ("no severity escalates", "", "rollback", None, "escalate", None, False),
]


@pytest.mark.parametrize(
    ("severity", "action", "error", "route", "route_action", "needs_approval"),
    [c[1:] for c in ROUTE_CASES],
    ids=[c[0] for c in ROUTE_CASES],
)
def test_route_table(
    severity: str, action: str, error: str | None, route: str, route_action: str | None, needs_approval: bool
) -> None:
    decision = decide_route(severity, triage(action, error=error), ALLOWED, CRITICAL)
    assert (decision.route, decision.action, decision.needs_approval) == (route, route_action, needs_approval)
    assert decision.reason


def test_route_reason_names_what_was_not_allowed() -> None:
    decision = decide_route("SEV3", triage("delete_database"), ALLOWED, CRITICAL)
    assert decision.reason == (
        "SEV3, but 'delete_database' is not on the service's allow-list (rollback, restart, failover_db)"
    )


def test_empty_allow_list_escalates_everything() -> None:
    decision = decide_route("SEV4", triage("restart"), [], set())
    assert decision.route == "escalate"
    assert "allow-list (none)" in decision.reason


# (case, burn rates, thresholds, recovered?)
VERIFY_CASES = [
    ("both short windows under", {"5m": 0.5, "30m": 2.0}, [("5m", 14.4), ("30m", 6.0)], True),
    ("exactly at the factor counts as recovered", {"5m": 14.4}, [("5m", 14.4)], True),
    ("one short window still over", {"5m": 0.5, "30m": 6.1}, [("5m", 14.4), ("30m", 6.0)], False),
    ("no data is not a recovery", {"5m": None}, [("5m", 14.4)], False),
    ("window missing from the status", {"30m": 1.0}, [("5m", 14.4)], False),
    ("no thresholds: nothing to verify against", {"5m": 0.0}, [], False),
]


@pytest.mark.parametrize(
    ("burn", "thresholds", "expected"), [c[1:] for c in VERIFY_CASES], ids=[c[0] for c in VERIFY_CASES]
)
def test_verify_recovery_table(
    burn: dict[str, float | None], thresholds: list[tuple[str, float]], expected: bool
) -> None:
    assert verify_recovery(burn, thresholds) is expected


def test_slo_thresholds_use_the_status_window_names() -> None:
    alerts = [
        BurnRateAlert("page", 60, 5, 14.4),
        BurnRateAlert("page", 360, 30, 6.0),
        BurnRateAlert("ticket", 1440, 120, 3.0),
        BurnRateAlert("ticket", 4320, 360, 1.0),
    ]
    assert slo_thresholds(alerts) == [("5m", 14.4), ("30m", 6.0), ("2h", 3.0), ("6h", 1.0)]


T0 = dt.datetime(2026, 5, 12, 17, 0)


@pytest.mark.parametrize(
    ("minutes_after", "recovered", "expected"),
    [
        (3, True, "verified"),
        (3, False, "pending"),
        (14, False, "pending"),
        (15, False, "failed"),
        (40, True, "verified"),
    ],
)
def test_verification_outcome(minutes_after: int, recovered: bool, expected: str) -> None:
    now = T0 + dt.timedelta(minutes=minutes_after)
    assert verification_outcome(T0, now, recovered, dt.timedelta(minutes=15)) == expected
