"""Triage step: triage each pending incident (the model or the rules), store it, and route it.

Runs within a per-cycle time budget, so a slow model never hides new incidents; a triage that cannot
run escalates the incident to a human. The SLO status of every pending incident's service is read
once for the cycle (`context.slo_statuses`), not once per incident.

History (`triage_history`): an incident none of whose alerts was still firing when it reached us (every
alert's resolution came no later than its firing notification was received, as when a history load
replays alerts that ended long ago) is triaged first, in bulk, by the rules, without a model call,
and resolved at its last alert's end; it is never routed, so nobody is paged or notified about it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.incidents import rules_triage, severity_rules
from pipelines.incidents.context import context_with, slo_statuses
from pipelines.incidents.contract import TriageResult
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.routing import decide_route
from pipelines.incidents.rows import records
from pipelines.incidents.runbooks import load_runbook
from pipelines.incidents.steps.route import apply_route

# Seconds of triage per cycle (one model call may take its whole 30 s timeout): new incidents past it
# are published untriaged and triaged in the next cycle, so a slow model never hides them.
TRIAGE_BUDGET_S = 20.0
# Pending incidents whose SLO status is read together (one evaluation of their services' SLOs).
CONTEXT_CHUNK = 50


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
    for the next cycle, listed but not yet triaged). History incidents (`triage_history`) go first,
    in bulk, outside any budget: they cost no model call and page nobody."""
    triage_history(con, settings, now, iso)
    order = "urgent DESC, created_at, id" if urgent_first else "created_at, id"
    pending = con.execute(
        f"""SELECT id, coalesce(severity IN ('SEV1', 'SEV2'), FALSE) AS urgent, service, detected_at
            FROM incidents WHERE triage_pending AND status <> 'closed' ORDER BY {order}"""
    ).fetchall()
    ids = [(str(r[0]), bool(r[1])) for r in pending]
    # The SLO status of the services involved: one evaluation per chunk of incidents (a cycle that
    # stops early after a budget never pays for the whole backlog).
    statuses: dict[tuple[str, dt.datetime], list[dict[str, Any]]] = {}
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

        if (pending[n][2], max(now, pending[n][3])) not in statuses:
            chunk = pending[n : n + CONTEXT_CHUNK]
            statuses.update(slo_statuses(con, [(r[2], max(now, r[3])) for r in chunk]))
        if iso.run(
            "triage",
            incident_id,
            incident_id,
            _triage_one,
            con,
            settings,
            now,
            incident_id,
            statuses,
            transaction=False,
            on_failure=untriaged,
        ):
            iso.report.triaged.append(incident_id)


def _triage_one(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    incident_id: str,
    statuses: dict[tuple[str, dt.datetime], list[dict[str, Any]]],
) -> bool:
    """Triage and route one incident; True when it was triaged."""
    # Lazy for start-up time: the triage module loads the anthropic SDK (~2 s), needed only once an
    # incident waits for triage, not by every `slo` command that imports the cycle.
    from pipelines.incidents.triage import run_triage

    inc = incident(con, incident_id)
    if inc is None:
        return False
    at = max(now, inc["detected_at"])
    ctx = context_with(con, settings, inc, statuses.get((inc["service"], at), []))
    result = run_triage(ctx, settings, at=inc["detected_at"])
    severity, upgrades = _severity_triggers(con, inc, ctx.title, ctx.alert_text, result.severity)
    runbook = load_runbook(settings.runbooks_dir, inc["service"])
    decision = decide_route(severity, result, runbook.allowed_actions, runbook.critical_actions)
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
                [severity, at, incident_id],
            )
            for up in upgrades:  # seed 002's triggers, each on the timeline with its reason
                add_timeline(
                    con, incident_id, at, "severity_upgraded", "triage", up.message(),
                    data={"trigger": up.trigger, "from": up.before, "to": up.after, "by": "triage"},
                )  # fmt: skip
            apply_route(con, inc, decision, at, attempt, result)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return True


def _severity_triggers(
    con: duckdb.DuckDBPyConnection, inc: dict[str, Any], title: str, alert_text: str, severity: str
) -> tuple[str, list[severity_rules.Upgrade]]:
    """The triage's severity raised by seed 002's triggers found in the title and the alerts' text
    (`severity_rules`); an upgrade made by a person or the scope step stands (a re-triage never lowers
    the severity below it)."""
    found = severity_rules.detect(f"{title}\n{alert_text}")
    final, upgrades = severity_rules.apply(severity, {k: f"{v!r} in the alert" for k, v in found.items()})
    kept = con.execute(
        "SELECT 1 FROM timeline WHERE incident_id = ? AND kind = 'severity_upgraded'"
        " AND json_extract_string(data, '$.by') <> 'triage' LIMIT 1",
        [inc["id"]],
    ).fetchone()
    if kept:
        final = severity_rules.most_severe([final, inc["severity"]])
    return final or severity, upgrades


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


# Incidents waiting for their first triage none of whose firing alerts was news: each has a resolved
# notification (same fingerprint and start) whose end is no later than the firing one was received.
HISTORY_SQL = """
SELECT i.*, (SELECT max(r.ends_at) FROM alerts r WHERE r.incident_id = i.id AND r.status = 'resolved')
       AS history_ended
FROM incidents i
WHERE i.triage_pending AND i.status = 'triggered' AND NOT i.imported
  AND NOT EXISTS (SELECT 1 FROM triage t WHERE t.incident_id = i.id)
  AND EXISTS (SELECT 1 FROM alerts f WHERE f.incident_id = i.id AND f.status = 'firing')
  AND NOT EXISTS (
      SELECT 1 FROM alerts f WHERE f.incident_id = i.id AND f.status = 'firing'
        AND NOT EXISTS (
            SELECT 1 FROM alerts r WHERE r.incident_id = i.id AND r.status = 'resolved'
              AND r.fingerprint = f.fingerprint AND r.starts_at = f.starts_at
              AND r.ends_at IS NOT NULL AND r.ends_at <= f.received_at))
ORDER BY i.created_at, i.id
"""

HISTORY_NOTE = (
    "History: every alert of this incident had resolved before it was received (e.g. a history load), "
    "so it was triaged by the rules in bulk, without a model call, and nobody was paged."
)


def triage_history(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> int:
    """Triage the history incidents (see the module docstring) in bulk; how many."""
    incs = records(con, HISTORY_SQL, [])
    if not incs:
        return 0
    statuses = slo_statuses(con, [(inc["service"], max(now, inc["detected_at"])) for inc in incs])
    done = 0
    for inc in incs:
        if iso.run("triage", inc["id"], inc["id"], _history_one, con, settings, now, inc, statuses):
            iso.report.triaged.append(inc["id"])
            done += 1
    return done


def _history_one(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    inc: dict[str, Any],
    statuses: dict[tuple[str, dt.datetime], list[dict[str, Any]]],
) -> bool:
    """Rules triage, no route, resolved at the last alert's end; runs in the isolation's transaction."""
    ended = inc.pop("history_ended")
    iid = inc["id"]
    at = max(now, inc["detected_at"])
    ctx = context_with(con, settings, inc, statuses.get((inc["service"], at), []))
    result = rules_triage.classify(ctx, at=inc["detected_at"])
    result = replace(result, rationale=f"{result.rationale} {HISTORY_NOTE}")
    _store_triage(con, inc, result, at)
    ended = max(ended, inc["detected_at"])
    con.execute(
        """UPDATE incidents SET severity = ?, triage_pending = FALSE, status = 'resolved',
               resolved_at = ?, resolved_at_source = 'alerts',
               mitigated_at = coalesce(mitigated_at, ?),
               mitigated_at_source = coalesce(mitigated_at_source, 'alerts (implied by resolve)'),
               updated_at = greatest(updated_at, ?) WHERE id = ?""",
        [result.severity, ended, ended, at, iid],
    )
    con.execute("UPDATE incident_slos SET budget_consumed = NULL WHERE incident_id = ?", [iid])
    add_timeline(
        con,
        iid,
        at,
        "route",
        "router",
        "not routed: every alert had resolved before it was received (history); nobody is paged",
        data={"route": None, "history": True},
    )
    add_timeline(
        con,
        iid,
        ended,
        "resolved",
        "alerts",
        "resolved: every alert had ended (history)",
        data={"from": "triggered"},
    )
    return True
