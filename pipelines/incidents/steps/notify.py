"""Notification steps: escalate the incidents marked for it (PagerDuty, Slack), announce a critical
remediation waiting for approval (Slack, naming who may approve), retry a failed page, tell Slack how a
remediation ended and that the incident is resolved (seed 003's notify step), and resolve in PagerDuty
what we paged (every tier's alert) or what came from there (its incident, through the REST API) once
the incident is resolved here. Every notification is recorded and on the timeline.

Who a page goes to is the service's escalation policy (`oncall.py`; without an on-call file, seed 002's
tier names through PAGERDUTY_ROUTING_KEY): each tier pages its own target with its own dedup key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.incidents import oncall
from pipelines.incidents.contract import TriageResult
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.oncall import PageTarget
from pipelines.incidents.outbound import (
    announce,
    approval_message,
    page_once,
    remediation_notice,
    resolve_page,
    resolve_pagerduty_incident,
    resolved_notice,
)
from pipelines.incidents.routing import escalate

# A failed page is sent again (the same tier, target and dedup key) while nobody acknowledged: 1, 2 and
# 4 min after the previous attempt, each retry on the timeline.
PAGE_RETRIES = 3
PAGE_RETRY_BACKOFF = dt.timedelta(minutes=1)
# Slack notices for remediation outcomes and resolutions older than this when first noticed (a store
# that had none before) are recorded without a message: nobody wants a flood of old news.
NOTICE_WINDOW = dt.timedelta(hours=1)
LOOK_BACK = dt.timedelta(days=1)  # older events are not looked at again


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


def page_target(settings: Settings, inc: dict[str, Any], at: dt.datetime) -> PageTarget:
    """Whom the incident's current tier (`escalation_tier`, 0-based) pages at `at`."""
    tier = int(inc.get("escalation_tier") or 0)
    book = oncall.configured_or_default(settings)
    if book is None:
        return oncall.default_page_target(str(inc["id"]), tier)
    return book.page_target(str(inc["service"]), str(inc["id"]), tier, at)


def tier_name(settings: Settings, inc: dict[str, Any], tier: int) -> str:
    """The name of tier `tier` (0-based) of the incident's policy, for timeline messages."""
    book = oncall.configured_or_default(settings)
    tiers = (book.policy_for(str(inc["service"])) if book else oncall.DEFAULT_POLICY).tiers
    return tiers[max(0, min(tier, len(tiers) - 1))].target.label()


def notify(
    con: duckdb.DuckDBPyConnection, settings: Settings, inc: dict[str, Any], at: dt.datetime, reason: str
) -> list[dict[str, Any]]:
    """Page the incident's responders (PagerDuty: the policy's current tier; Slack) for `reason` and
    record every notification at `at` (the cycle's clock) and on the timeline; a failure to send is
    recorded, never raised."""
    try:
        page = _fresh_key(con, inc, page_target(settings, inc, at))
        records = escalate(
            {**inc, "escalation_reason": reason}, _latest_triage(con, inc["id"]), settings, page
        )
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


def _fresh_key(con: duckdb.DuckDBPyConnection, inc: dict[str, Any], page: PageTarget) -> PageTarget:
    """`page`, under a dedup key of its own when it would page again a tier whose alert someone has since
    acknowledged in PagerDuty (a recovery that did not hold, a failed verification, a reopened incident):
    PagerDuty folds a trigger whose dedup key names an alert still open into that alert, and an
    acknowledged alert notifies nobody. While nobody acknowledged it there (an acknowledgement made here
    is not sent to PagerDuty), the same key is right: its alert is still notifying."""
    sent = dict(
        con.execute(
            """SELECT json_extract_string(data, '$.page.dedup_key') AS key, max(occurred_at) FROM timeline
               WHERE incident_id = ? AND kind = 'notification' AND source = 'pagerduty'
                 AND json_extract_string(data, '$.status') = 'sent' GROUP BY key""",
            [inc["id"]],
        ).fetchall()
    )
    if page.dedup_key not in sent:
        return page
    (acked,) = con.execute(
        """SELECT max(occurred_at) FROM timeline
           WHERE incident_id = ? AND kind = 'acknowledged' AND source = 'pagerduty'""",
        [inc["id"]],
    ).fetchone() or (None,)
    if acked is None or acked < sent[page.dedup_key]:
        return page
    n = 2
    while f"{page.dedup_key}-re{n}" in sent:
        n += 1
    return dataclasses.replace(page, dedup_key=f"{page.dedup_key}-re{n}")


def _record(
    con: duckdb.DuckDBPyConnection, iid: str, rec: dict[str, Any], sent: dt.datetime, note: str = ""
) -> None:
    """One notification record, and its line on the timeline (a page keeps its tier, target and dedup
    key in the entry's data, which the retry and the resolve steps read)."""
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
        + (f" — {rec.get('detail')}" if rec.get("detail") else "")
        + note,
        data={"page": rec["page"], "status": rec.get("status")} if rec.get("page") else None,
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


def announce_notice(
    con: duckdb.DuckDBPyConnection, settings: Settings, iid: str, message: dict[str, Any], at: dt.datetime
) -> None:
    """Post `message` to Slack (no page) and record it, on the timeline too; never raises."""
    _record(con, iid, announce(iid, message, settings), at)


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
        f"escalated to {tier_name(settings, inc, int(inc['escalation_tier'] or 0))}: {reason}",
    )
    notify(con, settings, inc, at, reason)
    con.execute(
        """UPDATE incidents SET route = 'escalate', escalation_pending = NULL,
               escalated_at = coalesce(escalated_at, ?), updated_at = greatest(updated_at, ?) WHERE id = ?""",
        [at, at, iid],
    )
    return True


# Whether PagerDuty accepted any page of ours, and whether any incident came from there: a store without
# PagerDuty skips both look-ups of `resolve_pages` with this one small query each cycle.
ANY_PAGERDUTY = """
SELECT EXISTS (SELECT 1 FROM notifications WHERE channel = 'pagerduty' AND status = 'sent'),
       EXISTS (SELECT 1 FROM incidents WHERE source = 'pagerduty' AND external_id IS NOT NULL
               AND NOT imported)
"""
# Resolved incidents we paged whose pages are not resolved since their last page.
PAGED_RESOLVED = """
SELECT i.id, i.resolved_at FROM incidents i
WHERE i.status IN ('resolved', 'closed') AND coalesce(i.resolved_at_source, '') <> 'pagerduty'
  AND i.source <> 'pagerduty'  -- never paged: resolved there through the REST API below
  AND EXISTS (SELECT 1 FROM notifications n WHERE n.incident_id = i.id AND n.channel = 'pagerduty'
              AND n.status = 'sent')
  -- not resolved since its last page: a reopened incident paged again is resolved again
  AND NOT EXISTS (SELECT 1 FROM timeline t WHERE t.incident_id = i.id AND t.kind = 'page_resolved'
                  AND t.seq > (SELECT max(p.seq) FROM timeline p WHERE p.incident_id = i.id
                               AND p.kind = 'notification' AND p.source = 'pagerduty'
                               AND json_extract_string(p.data, '$.status') = 'sent'))
"""
# Resolved incidents born in PagerDuty not resolved there yet.
BORN_RESOLVED = """
SELECT i.id, i.external_id, i.resolved_at, i.resolved_at_source FROM incidents i
WHERE i.source = 'pagerduty' AND i.external_id IS NOT NULL AND NOT i.imported
  AND i.status IN ('resolved', 'closed') AND coalesce(i.resolved_at_source, '') <> 'pagerduty'
  AND NOT EXISTS (SELECT 1 FROM timeline t WHERE t.incident_id = i.id
                  AND t.kind = 'pagerduty_incident_resolved')
"""


def resolve_pages(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> None:
    """Once the incident is resolved here (not by PagerDuty telling us): resolve every PagerDuty alert we
    triggered for it, one per tier's dedup key, through the routing key that tier used; and an incident
    born in PagerDuty is resolved there through the REST API. Each recorded once (timeline
    `page_resolved`, `pagerduty_incident_resolved`); an incident reopened and paged again after its
    `page_resolved` has its pages resolved again when it is resolved again."""
    paged, born_there = con.execute(ANY_PAGERDUTY).fetchone() or (False, False)
    for iid, resolved_at in con.execute(PAGED_RESOLVED).fetchall() if paged else []:
        iso.run("PagerDuty resolve", iid, iid, _resolve_alerts, con, settings, iid, max(now, resolved_at))
    for iid, external_id, resolved_at, source in con.execute(BORN_RESOLVED).fetchall() if born_there else []:
        at = max(now, resolved_at)
        iso.run("PagerDuty resolve", iid, iid, _resolve_born, con, settings, iid, external_id, source, at)


def _sent_pages(con: duckdb.DuckDBPyConnection, iid: str) -> list[dict[str, Any]]:
    """The pages of `iid` PagerDuty accepted, one per dedup key (a page from before tiers: the id)."""
    pages: dict[str, dict[str, Any]] = {}
    for (data,) in con.execute(
        """SELECT data FROM timeline WHERE incident_id = ? AND kind = 'notification' AND source = 'pagerduty'
           ORDER BY seq""",
        [iid],
    ).fetchall():
        entry = json.loads(data) if data else {}
        page = entry.get("page")
        if page and entry.get("status") == "sent":
            pages.setdefault(str(page["dedup_key"]), page)
    return list(pages.values()) or [{"dedup_key": iid, "routing_key_env": "PAGERDUTY_ROUTING_KEY"}]


def _resolve_alerts(con: duckdb.DuckDBPyConnection, settings: Settings, iid: str, at: dt.datetime) -> None:
    outcomes = []
    for page in _sent_pages(con, iid):
        key = str(page["dedup_key"])
        rec = resolve_page(iid, settings, key, str(page.get("routing_key_env") or "PAGERDUTY_ROUTING_KEY"))
        con.execute(
            "INSERT INTO notifications VALUES (?, 'pagerduty', ?, ?, ?, ?)",
            [
                iid,
                str(rec.get("status")),
                int(rec.get("attempts") or 0),
                f"resolve {key}: {rec.get('detail') or ''}",
                at,
            ],
        )
        outcomes.append((key, str(rec.get("status"))))
    if len(outcomes) == 1:
        message = f"PagerDuty alert resolved: {outcomes[0][1]}"
    else:
        message = "PagerDuty alerts resolved: " + ", ".join(f"{k} {st}" for k, st in outcomes)
    add_timeline(
        con, iid, at, "page_resolved", "pagerduty", message, data={"dedup_keys": [k for k, _ in outcomes]}
    )


def _resolve_born(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    iid: str,
    external_id: str,
    source: str | None,
    at: dt.datetime,
) -> None:
    rec = resolve_pagerduty_incident(
        iid, external_id, settings, f"resolved in the SLO service as {iid} ({source})"
    )
    con.execute(
        "INSERT INTO notifications VALUES (?, 'pagerduty', ?, ?, ?, ?)",
        [iid, str(rec["status"]), int(rec["attempts"]), f"REST resolve {external_id}: {rec['detail']}", at],
    )
    add_timeline(
        con,
        iid,
        at,
        "pagerduty_incident_resolved",
        "pagerduty",
        f"PagerDuty incident {external_id} resolved through the REST API: {rec['status']}"
        + (f" — {rec['detail']}" if rec["detail"] else ""),
        data={"external_id": external_id, "status": rec["status"]},
    )


# Whether any page failed at all (the look-up below needs one): one look at the timeline each cycle.
ANY_FAILED_PAGE = """
SELECT 1 FROM timeline WHERE kind = 'notification' AND source = 'pagerduty' AND data->>'status' = 'failed'
LIMIT 1
"""


def retry_pages(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Send again every page whose last attempt failed, while the incident is still unacknowledged:
    the same tier, target and dedup key, `PAGE_RETRY_BACKOFF` × 2ⁿ after the previous attempt, at most
    `PAGE_RETRIES` times. How many were retried."""
    if con.execute(ANY_FAILED_PAGE).fetchone() is None:
        return 0
    rows = con.execute(
        """SELECT t.incident_id, t.occurred_at, t.data
           FROM timeline t JOIN incidents i ON i.id = t.incident_id
           WHERE i.status = 'triggered' AND t.kind = 'notification' AND t.source = 'pagerduty'
             AND t.data IS NOT NULL AND EXISTS (SELECT 1 FROM timeline f WHERE f.incident_id = i.id
                 AND f.kind = 'notification' AND f.source = 'pagerduty' AND f.data->>'status' = 'failed')
           ORDER BY t.incident_id, t.seq"""
    ).fetchall()
    last: dict[tuple[str, str], tuple[dt.datetime, dict[str, Any], int]] = {}
    for iid, at, data in rows:
        entry = json.loads(data)
        if not entry.get("page"):
            continue
        key = (str(iid), str(entry["page"]["dedup_key"]))
        tries = last[key][2] + 1 if key in last else 1
        last[key] = (at, entry, tries)
    retried = 0
    for (iid, _), (at, entry, tries) in last.items():
        if entry.get("status") != "failed" or tries > PAGE_RETRIES:
            continue
        due = at + PAGE_RETRY_BACKOFF * 2 ** (tries - 1)
        if due <= now:
            retried += bool(
                iso.run("page retry", iid, iid, _retry_page, con, settings, iid, entry["page"], due, tries)
            )
    return retried


def _retry_page(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    iid: str,
    page: dict[str, Any],
    at: dt.datetime,
    retry: int,
) -> bool:
    inc = incident(con, iid)
    if inc is None:
        return False
    target = PageTarget(
        int(page["tier"]) - 1,
        str(page["target"]),
        page.get("on_call"),
        str(page["routing_key_env"]),
        str(page["dedup_key"]),
    )
    rec = page_once(inc, _latest_triage(con, iid), settings, target)
    left = PAGE_RETRIES - retry
    note = f" (retry {retry} of {PAGE_RETRIES}" + (
        f"; next in {int((PAGE_RETRY_BACKOFF * 2**retry).total_seconds() // 60)} min)"
        if rec["status"] == "failed" and left > 0
        else ")"
    )
    _record(con, iid, rec, at, note)
    return True


def send_notices(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Seed 003's notify step in Slack: a remediation succeeded (verified) or failed (the script, or the
    SLI did not recover), and the incident resolved. Once each (timeline `notice`, keyed), at the time
    it happened; the approval a critical remediation waits for is announced by `announce_approval`.
    An incident never routed (a history load's, every alert over before it arrived) was never
    announced, so its resolution is not either. Slack unset: the step is still on the timeline, saying
    so, and no notification row is written."""
    since = now - LOOK_BACK
    candidates = con.execute(
        """SELECT r.incident_id, 'remediation_succeeded:' || r.id, r.verified_at, r.id FROM remediations r
             WHERE r.verified AND r.verified_at >= $since
           UNION ALL
           SELECT r.incident_id, 'remediation_failed:' || r.id,
                  CASE WHEN r.status = 'succeeded' THEN r.verify_by ELSE r.finished_at END, r.id
             FROM remediations r
             WHERE (r.status IN ('failed', 'timed_out', 'interrupted') OR r.verified = FALSE)
                   AND r.finished_at >= $since
           UNION ALL
           SELECT i.id, 'resolved:' || strftime(i.resolved_at, '%Y-%m-%dT%H:%M:%S'), i.resolved_at, NULL
             FROM incidents i
             WHERE i.resolved_at >= $since AND i.status IN ('resolved', 'closed') AND NOT i.imported
               AND i.route IS NOT NULL""",
        {"since": since},
    ).fetchall()
    if not candidates:
        return 0
    done = {
        (str(iid), json.loads(data).get("key"))
        for iid, data in con.execute(
            "SELECT incident_id, data FROM timeline WHERE kind = 'notice'"
        ).fetchall()
        if data
    }
    imported = {r[0] for r in con.execute("SELECT id FROM incidents WHERE imported").fetchall()}
    sent = 0
    for iid, key, at, rid in sorted(candidates, key=lambda c: (c[2], c[1])):
        if at is None or (iid, key) in done or iid in imported:
            continue
        sent += bool(iso.run("notice", key, iid, _notice, con, settings, now, iid, key, at, rid))
    return sent


def _notice(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    iid: str,
    key: str,
    at: dt.datetime,
    rid: str | None,
) -> bool:
    inc = incident(con, iid)
    if inc is None:
        return False
    if rid is not None:
        rel = con.execute(
            "SELECT id, action, status, attempts, exit_code, output, verified FROM remediations WHERE id = ?",
            [rid],
        )
        cols = [d[0] for d in rel.description]
        remediation = dict(zip(cols, rel.fetchone() or (), strict=True))
        how = _verification_text(con, iid, rid)
        message = remediation_notice(inc, remediation, how)
        what = f"remediation {rid} ({remediation['action']}) " + (
            "succeeded and was verified" if key.startswith("remediation_succeeded") else "failed"
        )
    else:
        message = resolved_notice(inc)
        what = "incident resolved"
    if at < now - NOTICE_WINDOW:
        outcome = f"not sent: {at:%Y-%m-%d %H:%M} is over {int(NOTICE_WINDOW.total_seconds() // 3600)} h ago"
    elif not settings.slack_webhook_url:
        outcome = "not sent: SLACK_WEBHOOK_URL is not set"
    else:
        rec = announce(iid, message, settings)
        con.execute(
            "INSERT INTO notifications VALUES (?, 'slack', ?, ?, ?, ?)",
            [
                iid,
                str(rec["status"]),
                int(rec["attempts"]),
                f"notice {key}: {rec['detail']}"[:2000],
                max(now, at),
            ],
        )
        outcome = f"slack {rec['status']}" + (f" — {rec['detail']}" if rec["detail"] else "")
    add_timeline(con, iid, at, "notice", "slack", f"notice ({what}): {outcome}", data={"key": key})
    return True


def _verification_text(con: duckdb.DuckDBPyConnection, iid: str, rid: str) -> str:
    """What the verification step wrote about remediation `rid` (verified or not), else ''."""
    row = con.execute(
        """SELECT message FROM timeline WHERE incident_id = ? AND kind IN ('verified', 'verification_failed')
           AND message LIKE ? ORDER BY seq DESC LIMIT 1""",
        [iid, f"remediation {rid} %"],
    ).fetchone()
    if row is None:
        return ""
    text = str(row[0])
    return text.split(": ", 1)[1] if ": " in text else text
