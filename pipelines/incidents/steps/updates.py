"""Stakeholder updates sent to Slack at their cadence (issue 17, item 6; seeds 001/002).

The documents step drafts the updates (`documents.documents_due`: the initial notification, one on each
status change, one on each severity change (the cadence then restarts at the new severity's), and one
whenever the last one's `due_at` passes: SEV1 every 15 min, SEV2 30 min, SEV3 2 h, SEV4 daily — seed
002's cadence). Nothing is sent until the communications lead approves (the `approve_updates` command:
`slo incidents approve-updates ID`, taken only from the person assigned as the incident's
communications lead, or as an admin's override, recorded as such; see `incident_roles.comms_refusal`).
From then on this step sends the latest drafted update once: at the approval, the current one; after
it, each one the cadence, a status change or a severity change drafts, up to and including the
resolved one, and nothing after it. Each send (or why it was not sent) is on the timeline
(`stakeholder_update_sent`, its data naming the update by its drafted time).

The times are the stage's clock: an update goes out at max(its drafted time, the approval).
"""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.config import Settings
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.outbound import announce, update_message


def send_updates(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Send each approved incident's latest drafted update if it was not sent yet; how many went out."""
    # nothing is sent before a communications lead approves: no approval at all, no query of the drafts
    if con.execute("SELECT 1 FROM timeline WHERE kind = 'updates_approved' LIMIT 1").fetchone() is None:
        return 0
    rows = con.execute(
        """SELECT a.incident_id, a.occurred_at, u.created_at, u.body
           FROM timeline a
           JOIN (SELECT incident_id, created_at, body,
                        row_number() OVER (PARTITION BY incident_id ORDER BY created_at DESC) AS n
                 FROM documents WHERE kind = 'stakeholder_update') u
             ON u.incident_id = a.incident_id AND u.n = 1
           WHERE a.kind = 'updates_approved' AND u.created_at <= ?
             AND NOT EXISTS (SELECT 1 FROM timeline s WHERE s.incident_id = a.incident_id
                             AND s.kind = 'stakeholder_update_sent'
                             AND CAST(s.data->>'update_at' AS TIMESTAMP) >= u.created_at)
           ORDER BY a.incident_id""",
        [now],
    ).fetchall()
    sent = 0
    for iid, approved_at, drafted_at, body in rows:
        sent += bool(
            iso.run("updates", iid, iid, _send_one, con, settings, now, iid, approved_at, drafted_at, body)
        )
    return sent


def _send_one(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    iid: str,
    approved_at: dt.datetime,
    drafted_at: dt.datetime,
    body: str,
) -> bool:
    inc = incident(con, iid)
    if inc is None:
        return False
    at = max(drafted_at, approved_at)
    if not settings.slack_webhook_url:
        outcome, ok = "not sent: SLACK_WEBHOOK_URL is not set", False
    else:
        rec = announce(iid, update_message(inc, body), settings)
        con.execute(
            "INSERT INTO notifications VALUES (?, 'slack', ?, ?, ?, ?)",
            [iid, str(rec["status"]), int(rec["attempts"]), f"stakeholder update: {rec['detail']}"[:2000],
             max(now, at)],
        )  # fmt: skip
        outcome = f"slack {rec['status']}" + (f" — {rec['detail']}" if rec["detail"] else "")
        ok = rec["status"] == "sent"
    subject = body.splitlines()[0].removeprefix("Subject: ") if body else ""
    add_timeline(
        con,
        iid,
        at,
        "stakeholder_update_sent",
        "slack",
        f"stakeholder update ({subject}): {outcome}",
        data={"update_at": drafted_at.isoformat(), "status": outcome},
    )
    return ok
