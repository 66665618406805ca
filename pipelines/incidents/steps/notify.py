"""Notification steps: escalate the incidents marked for it (PagerDuty, Slack), announce a critical
remediation waiting for approval (Slack, naming who may approve), and resolve the PagerDuty alert once
the incident is resolved here. Every notification is recorded and on the timeline.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.incidents import timers
from pipelines.incidents.contract import TriageResult
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.outbound import announce, approval_message, resolve_page
from pipelines.incidents.routing import escalate


def _latest_triage(con: duckdb.DuckDBPyConnection, iid: str) -> TriageResult:
    rel = con.execute(
        """SELECT method, severity, root_cause_hypothesis, recommended_action, confidence, rationale, model,
                  latency_ms, raw, error FROM triage WHERE incident_id = ? ORDER BY attempt DESC LIMIT 1""",
        [iid],
    )
    row = rel.fetchone()
    if row is None:
        return TriageResult("rules", "SEV2", "not triaged", "escalate", 0.0, "escalated before any triage")
    return TriageResult(*row)


def notify(
    con: duckdb.DuckDBPyConnection, settings: Settings, inc: dict[str, Any], at: dt.datetime, reason: str
) -> list[dict[str, Any]]:
    """Page the incident's responders (PagerDuty, Slack) for `reason` and record every notification at
    `at` (the cycle's clock) and on the timeline; a failure to send is recorded, never raised."""
    try:
        records = escalate({**inc, "escalation_reason": reason}, _latest_triage(con, inc["id"]), settings)
    except Exception as exc:
        records = [
            {
                "channel": "none",
                "status": "failed",
                "attempts": 0,
                "detail": f"{exc.__class__.__name__}: {exc}",
            }
        ]
    for rec in records:
        _record(con, inc["id"], rec, at)  # the cycle's clock (a replayed demo records its simulated time)
    return records


def _record(con: duckdb.DuckDBPyConnection, iid: str, rec: dict[str, Any], sent: dt.datetime) -> None:
    """One notification record, and its line on the timeline."""
    con.execute(
        "INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?)",
        [
            iid,
            str(rec.get("channel")),
            str(rec.get("status")),
            int(rec.get("attempts") or 0),
            str(rec.get("detail") or "")[:2000],
            sent,
        ],
    )
    add_timeline(
        con,
        iid,
        sent,
        "notification",
        str(rec.get("channel")),
        f"{rec.get('channel')}: {rec.get('status')}"
        + (f" — {rec.get('detail')}" if rec.get("detail") else ""),
    )


def announce_approval(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    inc: dict[str, Any],
    remediation: tuple[str, str],
    at: dt.datetime,
    deadline: dt.datetime,
    approvers: list[str],
) -> None:
    """Say on the timeline and in Slack that remediation `(id, action)` waits for an approval until
    `deadline`, and who may give it. Once per remediation: the caller skips one whose
    `approval_requested` entry is on the timeline (written here, in the same transaction)."""
    rid, action = remediation
    who = "the approver or admin role" + (f" ({', '.join(approvers)})" if approvers else "")
    add_timeline(
        con,
        inc["id"],
        at,
        "approval_requested",
        "router",
        f"remediation {rid} ({action}) waits for an approval until {deadline:%Y-%m-%d %H:%M} UTC; "
        f"who may approve: {who}; without one it is withdrawn and the incident escalated",
        data={"remediation_id": rid, "deadline": deadline.isoformat(), "approvers": approvers},
    )
    rec = announce(inc["id"], approval_message(inc, rid, action, deadline, approvers), settings)
    _record(con, inc["id"], rec, at)


def send_escalations(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> None:
    for (iid,) in con.execute(
        "SELECT id FROM incidents WHERE escalation_pending IS NOT NULL ORDER BY created_at, id"
    ).fetchall():
        if iso.run("escalation", iid, iid, _escalate_one, con, settings, now, iid):
            iso.report.escalated.append(iid)


def _escalate_one(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iid: str) -> bool:
    inc = incident(con, iid)
    if inc is None:
        return False
    at = max(now, inc["updated_at"])
    reason = str(inc["escalation_pending"])
    add_timeline(
        con,
        iid,
        at,
        "escalated",
        "router",
        f"escalated to {timers.TIERS[int(inc['escalation_tier'] or 0)]}: {reason}",
    )
    notify(con, settings, inc, at, reason)
    con.execute(
        """UPDATE incidents SET route = 'escalate', escalation_pending = NULL,
               escalated_at = coalesce(escalated_at, ?), updated_at = greatest(updated_at, ?) WHERE id = ?""",
        [at, at, iid],
    )
    return True


def resolve_pages(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> None:
    """Resolve the PagerDuty alert we triggered once the incident is resolved here (same dedup key),
    unless PagerDuty itself told us; recorded once (timeline `page_resolved`)."""
    rows = con.execute(
        """SELECT i.id, i.resolved_at FROM incidents i
           WHERE i.status IN ('resolved', 'closed') AND coalesce(i.resolved_at_source, '') <> 'pagerduty'
             AND EXISTS (SELECT 1 FROM notifications n WHERE n.incident_id = i.id AND n.channel = 'pagerduty'
                         AND n.status = 'sent')
             AND NOT EXISTS (SELECT 1 FROM timeline t WHERE t.incident_id = i.id
                             AND t.kind = 'page_resolved')"""
    ).fetchall()
    if not rows:
        return

    def resolve(iid: str, resolved_at: dt.datetime) -> None:
        rec = resolve_page(iid, settings)
        at = max(now, resolved_at)
        con.execute(
            "INSERT INTO notifications VALUES (?, 'pagerduty', ?, ?, ?, ?)",
            [
                iid,
                str(rec.get("status")),
                int(rec.get("attempts") or 0),
                f"resolve: {rec.get('detail') or ''}",
                at,
            ],
        )
        add_timeline(
            con, iid, at, "page_resolved", "pagerduty", f"PagerDuty alert resolved: {rec.get('status')}"
        )

    for iid, resolved_at in rows:
        iso.run("PagerDuty resolve", iid, iid, resolve, iid, resolved_at)
