"""Severity routing (DESIGN §2, seed 000's router) and post-remediation verification (seed 003): pure.

    decide_route(severity, triage, allowed_actions, critical_actions) → RouteDecision
        1. the triage fell back or was overridden (triage.error set)   → escalate
        2. SEV1 / SEV2 (or an unknown severity)                         → escalate
        3. SEV3 / SEV4, recommended action "escalate"                   → escalate
        4. SEV3 / SEV4, action not on the service's allow-list          → escalate
        5. SEV3 / SEV4, allow-listed action marked critical             → auto_remediate, needs_approval
        6. SEV3 / SEV4, allow-listed action                             → auto_remediate

    verify_recovery(burn_rates, thresholds) → bool          is every short window back at or under its factor?
    verification_outcome(finished_at, now, recovered, within) → verified | pending | failed

The I/O adapters the router's decisions drive live next door and are re-exported here, so the incident
flow imports its whole routing vocabulary from one module:
    escalate(incident, triage, settings)  → notification records   (outbound.py: PagerDuty Events v2, Slack)
    run_remediation(service, action, incident_id, settings, dry_run=…) → remediation record   (remediation.py)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipelines.incidents.contract import RouteDecision, TriageResult
from pipelines.incidents.outbound import escalate
from pipelines.incidents.remediation import run_remediation

__all__ = [
    "decide_route",
    "escalate",
    "run_remediation",
    "slo_thresholds",
    "verification_outcome",
    "verify_recovery",
]

AUTO_REMEDIATE_SEVERITIES = {"SEV3", "SEV4"}


def decide_route(
    severity: str, triage: TriageResult, allowed_actions: list[str], critical_actions: set[str]
) -> RouteDecision:
    """Where an incident goes next, from its (triaged) severity and the triage; see the module table."""
    if triage.error:
        return RouteDecision("escalate", None, f"triage fell back: {triage.error}")
    if severity not in AUTO_REMEDIATE_SEVERITIES:
        return RouteDecision("escalate", None, f"{severity} goes to a human (SEV1/SEV2 always escalate)")
    action = triage.recommended_action
    if action == "escalate":
        return RouteDecision("escalate", None, f"{severity}, but the triage recommends escalation")
    if action not in allowed_actions:
        listed = ", ".join(allowed_actions) or "none"
        return RouteDecision(
            "escalate", None, f"{severity}, but {action!r} is not on the service's allow-list ({listed})"
        )
    if action in critical_actions:
        return RouteDecision(
            "auto_remediate",
            action,
            f"{severity}: {action} is allow-listed but critical",
            needs_approval=True,
        )
    return RouteDecision("auto_remediate", action, f"{severity}: run the allow-listed action {action}")


def slo_thresholds(alerts: Iterable[Any]) -> list[tuple[str, float]]:
    """(short window text, factor) for each of an SLO's burn-rate alerts (`model.BurnRateAlert`s).

    Window text matches the keys of `slo status --json` burn_rates: "5m", "30m", "1h", "2h", "6h"….
    """
    out = []
    for alert in alerts:
        minutes = int(alert.short_window)
        text = (
            f"{minutes // 1440}d"
            if minutes % 1440 == 0
            else f"{minutes // 60}h"
            if minutes % 60 == 0
            else f"{minutes}m"
        )
        out.append((text, float(alert.factor)))
    return out


def verify_recovery(burn_rates: Mapping[str, float | None], thresholds: Sequence[tuple[str, float]]) -> bool:
    """True when, for every (short window, factor), the burn rate over that short window is ≤ factor.

    An alert fires while its short window burns above the factor (strict `>`, DESIGN §2), so "back
    under its threshold" is `≤`. A missing or null burn rate is not a recovery (no data is never
    healthy), and an SLO with no thresholds has nothing to verify against, so it is not verified either.
    """
    if not thresholds:
        return False
    for window, factor in thresholds:
        burn = burn_rates.get(window)
        if burn is None or burn > factor:
            return False
    return True


def verification_outcome(
    finished_at: dt.datetime, now: dt.datetime, recovered: bool, within: dt.timedelta
) -> str:
    """`verified` once recovered; `pending` while the verification window is open; then `failed`.

    The fold calls this each cycle after a remediation succeeded; `failed` escalates the incident.
    """
    if recovered:
        return "verified"
    return "pending" if now < finished_at + within else "failed"
