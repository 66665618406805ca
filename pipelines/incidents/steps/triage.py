"""Triage step: triage each pending incident (the model or the rules), store it, and route it.

Runs within a per-cycle time budget, so a slow model never hides new incidents; a triage that cannot
run escalates the incident to a human.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.incidents.context import build_context
from pipelines.incidents.contract import TriageResult
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.routing import decide_route
from pipelines.incidents.runbooks import load_runbook
from pipelines.incidents.steps.route import apply_route

# Seconds of triage per cycle (one model call may take its whole 30 s timeout): new incidents past it
# are published untriaged and triaged in the next cycle, so a slow model never hides them.
TRIAGE_BUDGET_S = 20.0


def triage_pending(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    iso: Isolation,
    backlog_budget_s: float | None = None,
    *,
    urgent_first: bool = False,
    interrupted: Callable[[], bool] | None = None,
) -> None:
    """Triage pending incidents, oldest first. The service (issue 13) passes `urgent_first`: SEV1/SEV2
    incidents go first, so a page never waits behind a storm's tickets; the others stop after
    `backlog_budget_s` seconds, or as soon as `interrupted()` says new input came in (the rest wait
    for the next cycle, listed but not yet triaged)."""
    order = "urgent DESC, created_at, id" if urgent_first else "created_at, id"
    ids = [
        (str(r[0]), bool(r[1]))
        for r in con.execute(
            f"""SELECT id, coalesce(severity IN ('SEV1', 'SEV2'), FALSE) AS urgent FROM incidents
                WHERE triage_pending AND status <> 'closed' ORDER BY {order}"""
        ).fetchall()
    ]
    started = time.monotonic()
    for n, (incident_id, urgent) in enumerate(ids):
        budget = TRIAGE_BUDGET_S if urgent or backlog_budget_s is None else backlog_budget_s
        # at least one per cycle
        if n and (time.monotonic() - started > budget or (not urgent and interrupted and interrupted())):
            # The writer must publish: the rest wait for the next cycle, visible but not yet triaged.
            iso.report.errors.append(
                f"triage budget used up; {len(ids) - n} incident(s) wait for the next cycle"
            )
            break

        def untriaged(error: str, incident_id: str = incident_id) -> None:
            # Seed 000's fallback edge: a triage that cannot run escalates to a human.
            con.execute(
                """UPDATE incidents SET triage_pending = FALSE,
                       escalation_pending = CASE WHEN status IN ('triggered', 'acknowledged')
                                            THEN ? ELSE escalation_pending END
                   WHERE id = ?""",
                [f"triage failed ({error[:200]})", incident_id],
            )

        if iso.run(
            "triage",
            incident_id,
            incident_id,
            _triage_one,
            con,
            settings,
            now,
            incident_id,
            transaction=False,
            on_failure=untriaged,
        ):
            iso.report.triaged.append(incident_id)


def _triage_one(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, incident_id: str
) -> bool:
    """Triage and route one incident; True when it was triaged."""
    # Lazy for start-up time: the triage module loads the anthropic SDK (~2 s), needed only once an
    # incident waits for triage, not by every `slo` command that imports the cycle.
    from pipelines.incidents.triage import run_triage

    inc = incident(con, incident_id)
    if inc is None:
        return False
    at = max(now, inc["detected_at"])
    ctx = build_context(con, settings, inc, at)
    result = run_triage(ctx, settings, at=inc["detected_at"])
    runbook = load_runbook(settings.runbooks_dir, inc["service"])
    decision = decide_route(result.severity, result, runbook.allowed_actions, runbook.critical_actions)
    con.execute("BEGIN TRANSACTION")
    try:
        attempt = _store_triage(con, inc, result, at)
        if inc["status"] not in ("triggered", "acknowledged"):
            # Re-triaged after mitigation: the assessment is kept, nobody is paged about it.
            con.execute("UPDATE incidents SET triage_pending = FALSE WHERE id = ?", [incident_id])
            add_timeline(
                con, incident_id, at, "route", "router", f"route unchanged: the incident is {inc['status']}"
            )
        else:
            con.execute(
                "UPDATE incidents SET severity = ?, triage_pending = FALSE, updated_at = "
                "greatest(updated_at, ?) WHERE id = ?",
                [result.severity, at, incident_id],
            )
            apply_route(con, inc, decision, at, attempt, result)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return True


def _store_triage(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], result: TriageResult, now: dt.datetime
) -> int:
    attempt = int(
        (
            con.execute(
                "SELECT coalesce(max(attempt), 0) + 1 FROM triage WHERE incident_id = ?", [inc["id"]]
            ).fetchone()
            or (1,)
        )[0]
    )
    con.execute(
        "INSERT INTO triage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            inc["id"],
            attempt,
            result.method,
            result.model,
            result.severity,
            result.root_cause_hypothesis,
            result.recommended_action,
            result.confidence,
            result.rationale,
            result.latency_ms,
            result.raw,
            result.error,
            now,
        ],
    )
    add_timeline(
        con,
        inc["id"],
        now,
        "triage",
        "triage",
        f"triage ({result.method}{', ' + result.model if result.model else ''}): {result.severity}, "
        f"action {result.recommended_action}, confidence {result.confidence:.2f}"
        + (f"; fell back to rules: {result.error}" if result.error else ""),
        data={
            "attempt": attempt,
            "method": result.method,
            "model": result.model,
            "latency_ms": result.latency_ms,
            "raw": result.raw,
            "hypothesis": result.root_cause_hypothesis,
        },
    )
    return attempt
