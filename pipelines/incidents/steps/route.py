"""Route step: apply the router's decision to one freshly triaged incident.

Records the route and the triage report, then either marks the incident for escalation or queues its
remediation (waiting for a recorded approval when the action is critical). Runs inside the triage's
transaction (`steps.triage`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from pipelines.incidents import documents
from pipelines.incidents.contract import TriageResult
from pipelines.incidents.fold import add_timeline


def apply_route(
    con: duckdb.DuckDBPyConnection,
    inc: dict[str, Any],
    decision: Any,
    at: dt.datetime,
    attempt: int,
    result: TriageResult,
) -> None:
    iid = inc["id"]
    existing = con.execute("SELECT count(*) FROM remediations WHERE incident_id = ?", [iid]).fetchone()
    n_rem = int(existing[0]) if existing else 0
    route = decision.route
    reason = decision.reason
    if route == "auto_remediate" and n_rem and attempt > 1:
        route, reason = "escalate", f"re-triage after a remediation was already tried: {reason}"
    if route == "auto_remediate" and inc["route"] == "escalate":
        route, reason = "escalate", f"already escalated to a human; triage suggested {decision.action}"
    add_timeline(
        con,
        iid,
        at,
        "route",
        "router",
        f"route: {route} — {reason}",
        data={"route": route, "action": decision.action, "needs_approval": decision.needs_approval},
    )
    con.execute("UPDATE incidents SET route = ? WHERE id = ?", [route, iid])
    triage_doc = documents.render_triage_report(
        {**inc, "severity": result.severity},
        {"attempt": attempt, **result.to_json()},
        {"route": route, "reason": reason},
    )
    con.execute("INSERT INTO documents VALUES (?, 'triage_report', ?, FALSE, NULL, ?)", [iid, at, triage_doc])
    if route == "escalate":
        if inc.get("escalated_at") is None or attempt > 1:
            con.execute("UPDATE incidents SET escalation_pending = ? WHERE id = ?", [reason, iid])
        return
    rid = f"{iid}-R{n_rem + 1}"
    status = "awaiting_approval" if decision.needs_approval else "queued"
    con.execute(
        "INSERT INTO remediations (id, incident_id, action, status, attempts, created_at) VALUES "
        "(?, ?, ?, ?, 0, ?)",
        [rid, iid, decision.action, status, at],
    )
    add_timeline(
        con,
        iid,
        at,
        "remediation_queued",
        "router",
        f"remediation {rid}: {decision.action}"
        + (
            " — critical action: waiting for a recorded approval (slo incidents approve|reject)"
            if decision.needs_approval
            else ""
        ),
        data={"remediation_id": rid, "action": decision.action, "status": status},
    )
