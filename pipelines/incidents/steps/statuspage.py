"""The incident stage's status-page step (issue 17, item 5; seed 001's status-page updates).

For each incident of a service that opted in (SLO_STATUSPAGE_SERVICES):
- first, the approval is asked for on the timeline (`status_page_pending`); nothing is posted before
  a human approves the first post with `approve_status` (`slo incidents approve-status ID [--note
  IMPACT]`, or the API command), taken only from the person assigned as the incident's communications
  lead (`slo incidents assign ID --role comms --person NAME`), or as an admin's override, recorded as
  such (`incident_roles.comms_refusal`);
- once approved: the Statuspage incident is created with the status the incident is in, then updated
  when that status changes (triggered → investigating, acknowledged → identified, mitigated →
  monitoring, resolved/closed → resolved) and every 15 minutes while it lasts (seed 001), and resolved.

Every post is on the timeline (`status_page_posted|updated|resolved`, or `status_page_failed`, retried
next cycle) and in `notifications` (channel statuspage). A service that did not opt in never posts, with
or without an approval.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse

import duckdb

from pipelines.config import Settings
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.outbound import announce
from pipelines.incidents.statuspage import (
    UPDATE_EVERY,
    create_body,
    page_status,
    send,
    update_body,
    update_text,
)

STEP = "status page"
# Open incidents of the opted-in services that were never asked about.
UNASKED_SQL = """
SELECT id FROM incidents
WHERE NOT imported AND status IN ('triggered', 'acknowledged', 'mitigated') AND list_contains(?, service)
  AND id NOT IN (SELECT incident_id FROM status_posts)
ORDER BY created_at, id
"""
# Approved incidents of the opted-in services whose page is not resolved yet.
APPROVED_SQL = """
SELECT p.incident_id, i.service, i.status, p.page_incident_id, p.posted_status, p.next_update_at
FROM status_posts p JOIN incidents i ON i.id = p.incident_id
WHERE p.approved_at IS NOT NULL AND list_contains(?, i.service)
  AND (p.posted_status IS NULL OR p.posted_status <> 'resolved')
ORDER BY p.approved_at, p.incident_id
"""


def post_status_pages(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> int:
    """Ask for approvals, then create, update and resolve the approved incidents' status-page incidents;
    returns how many posts were made."""
    components = dict(settings.statuspage_services)
    if not components:
        return 0
    services = sorted(components)
    missing = [
        name
        for name, value in (
            ("STATUSPAGE_PAGE_ID", settings.statuspage_page_id),
            ("STATUSPAGE_API_KEY", settings.statuspage_api_key),
        )
        if not value
    ]
    for (iid,) in con.execute(UNASKED_SQL, [services]).fetchall():
        iso.run(STEP, iid, iid, _ask, con, settings, iid, now, missing)
    if missing:
        return 0
    posted = 0
    for iid, service, status, page_id, posted_status, next_at in con.execute(
        APPROVED_SQL, [services]
    ).fetchall():
        wanted = page_status(status)
        due = page_id is None or wanted != posted_status or (next_at is not None and now >= next_at)
        if due:
            posted += bool(iso.run(STEP, iid, iid, _post, con, settings, now, iid, components[service]))
    return posted


def _ask(
    con: duckdb.DuckDBPyConnection, settings: Settings, iid: str, now: dt.datetime, missing: list[str]
) -> None:
    """Ask for the approval: on the timeline, and in Slack where the communications lead reads it."""
    con.execute("INSERT INTO status_posts (incident_id, asked_at) VALUES (?, ?)", [iid, now])
    note = f" ({' and '.join(missing)} not set: nothing can be posted yet)" if missing else ""
    how = f"slo incidents approve-status {iid} [--note IMPACT]"
    message = f"status page: the first post waits for the communications lead's approval ({how}){note}"
    if settings.slack_webhook_url:
        inc = incident(con, iid) or {"service": "?", "title": ""}
        head = " ".join(_escaped(v) for v in (f"*{iid}*", f"{inc['service']}:", inc["title"]))
        text = (
            f":loudspeaker: {head}\n*Status page:* the first post waits for the communications lead's "
            f"approval: `{_escaped(how)}`, or the `approve_status` command through the API."
        )
        rec = announce(iid, {"text": text}, settings)
        con.execute(
            "INSERT INTO notifications VALUES (?, 'slack', ?, ?, ?, ?)",
            [
                iid,
                str(rec["status"]),
                int(rec["attempts"]),
                f"status page approval: {rec['detail']}"[:2000],
                now,
            ],
        )
    add_timeline(con, iid, now, "status_page_pending", "statuspage", message)


def _post(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iid: str, component: str | None
) -> bool:
    inc = incident(con, iid)
    row = con.execute(
        "SELECT page_incident_id, posted_status, impact, updates FROM status_posts WHERE incident_id = ?",
        [iid],
    ).fetchone()
    if inc is None or row is None:
        return False
    page_id, posted_status, impact, updates = row
    status = page_status(str(inc["status"]))
    next_at = None if status == "resolved" else now + UPDATE_EVERY
    text = update_text(inc, status, impact, now, next_at)
    page = urllib.parse.quote(str(settings.statuspage_page_id), safe="")
    if page_id is None:
        reply = send(settings, "POST", f"/pages/{page}/incidents", create_body(inc, status, text, component))
        kind = "status_page_posted"
        if reply.status == "sent" and reply.incident_id is None:
            reply = type(reply)(
                "failed", reply.attempts, f"{reply.detail}, but the answer named no incident id"
            )
    else:
        path = f"/pages/{page}/incidents/{urllib.parse.quote(str(page_id), safe='')}"
        reply = send(settings, "PATCH", path, update_body(inc, status, text, component))
        kind = "status_page_resolved" if status == "resolved" else "status_page_updated"
    con.execute(
        "INSERT INTO notifications VALUES (?, 'statuspage', ?, ?, ?, ?)",
        [iid, reply.status, reply.attempts, f"{kind} {status}: {reply.detail}"[:2000], now],
    )
    if reply.status != "sent":
        con.execute("UPDATE status_posts SET failures = failures + 1 WHERE incident_id = ?", [iid])
        add_timeline(
            con, iid, now, "status_page_failed", "statuspage",
            f"status page: {status} not posted ({reply.detail}); retried next cycle",
        )  # fmt: skip
        return False
    con.execute(
        """UPDATE status_posts SET page_incident_id = coalesce(page_incident_id, ?), posted_status = ?,
               posted_at = ?, next_update_at = ?, updates = ? WHERE incident_id = ?""",
        [reply.incident_id, status, now, next_at, int(updates) + 1, iid],
    )
    shown = page_id or reply.incident_id
    words = {
        "status_page_posted": f"status page incident {shown} created: {status}",
        "status_page_updated": f"status page incident {shown} updated: {status}"
        + (" (no change; the 15-minute update)" if status == posted_status else ""),
        "status_page_resolved": f"status page incident {shown} resolved",
    }
    add_timeline(con, iid, now, kind, "statuspage", words[kind], data={"status": status, "body": text})
    return True


def _escaped(text: object) -> str:
    """Slack reads <…> as links and mentions: an alert's title must not be able to ping anyone."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
