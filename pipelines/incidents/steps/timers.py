"""Timer steps: record (and notify) every escalation timer that fell due; announce and expire approvals;
schedule each resolved SEV1/SEV2 incident's post-mortem and mark it overdue at its deadline.

The timer rules themselves are pure (`pipelines.incidents.timers`); this step reads the candidates,
records each due timer once on the timeline, raises the escalation tier and pages while the incident
is still open.

Approvals (issue 15): a critical remediation waiting for approval is announced once (timeline and
Slack, naming who may approve); when no approval or rejection came within `approval_timeout_s` of its
creation (SLO_APPROVAL_TIMEOUT, default 15 min), it is withdrawn at that deadline (status `withdrawn`,
so a later approval is refused by the fold) and the incident marked for escalation, which
`send_escalations` pages. Both are keyed on stored state (the `approval_requested` entry, the
remediation's status), so a replay or a restart neither announces nor escalates twice.

Post-mortems (seeds 001, 002: "within 48 hours"): `run_postmortems` writes the pure
`timers.postmortem_timers` entries, `postmortem_scheduled` at the resolution and `postmortem_overdue`
at the deadline, each once (keyed by kind and deadline in its data) with one Slack notice; news over
`NOTICE_WINDOW` old when first noticed (a store catching up) and Slack not configured are said on the
entry, with no message sent and no notification row. An incident never routed (a history load's, over
before it arrived) has no post-mortem deadline.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import duckdb

from pipelines.auth.tokens import tokens_for
from pipelines.config import Settings
from pipelines.errors import SloError
from pipelines.incidents import oncall, timers
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.outbound import postmortem_notice
from pipelines.incidents.rows import incidents_where
from pipelines.incidents.steps.notify import NOTICE_WINDOW, announce_approval, announce_notice, notify

log = logging.getLogger(__name__)


def run_timers(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Record (and notify) every timer that fell due; incidents resolved over a day ago are done."""
    candidates = incidents_where(
        con,
        "NOT imported AND severity IS NOT NULL AND (resolved_at IS NULL OR resolved_at >= ?)"
        " AND status <> 'closed' OR (status = 'closed' AND closed_at >= ?)",
        [now - dt.timedelta(days=1), now - dt.timedelta(days=1)],
    )
    book = oncall.configured_or_default(settings) if candidates else None
    return sum(
        iso.run("timers", inc["id"], inc["id"], _timers_of, con, settings, now, inc, book) or 0
        for inc in candidates
    )


def _timers_of(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    inc: dict[str, Any],
    book: oncall.OnCall | None = None,
) -> int:
    """Record the timers of one incident that fell due; how many. With an on-call file the
    acknowledgement timers follow the service's escalation policy, and each tier pages its own target."""
    fired = 0
    due = timers.due_timers(inc, now, book.policy_for(str(inc["service"])) if book else None)
    # The highest tier paged so far: the escalation paged tier 0, each timer its own; a timer reaching
    # a tier already paged is recorded but pages nobody again (issue 17: never twice for one level).
    paged = int(inc.get("escalation_tier") or 0)
    if inc.get("escalated_at") is None and not paged:
        paged = -1
    if due:
        iid = inc["id"]
        done = {
            json.loads(r[0]).get("key")
            for r in con.execute(
                "SELECT data FROM timeline WHERE incident_id = ? AND kind = 'timer'", [iid]
            ).fetchall()
        }
        for event in due:
            if event.key in done:
                continue
            fresh = event.tier > paged
            add_timeline(
                con,
                iid,
                event.at,
                "timer",
                "timer",
                event.message + ("" if fresh else f" (tier {event.tier + 1} was paged already: not again)"),
                data={"key": event.key, "tier": event.tier, "paged": fresh},
            )
            con.execute(
                "UPDATE incidents SET escalation_tier = greatest(coalesce(escalation_tier, 0), ?) "
                "WHERE id = ?",
                [event.tier, iid],
            )
            open_ = inc["status"] in ("triggered", "acknowledged", "mitigated")  # nobody paged after the fact
            if fresh and open_:
                notify(con, settings, {**inc, "escalation_tier": event.tier}, event.at, event.message)
            paged = max(paged, event.tier)
            fired += 1
    return fired


# Resolved or closed SEV1/SEV2 incidents missing a post-mortem entry: no `postmortem_scheduled` for
# this resolution's deadline, or past that deadline with no post-mortem done by then and no
# `postmortem_overdue` yet (one query a cycle: an idle cycle finds none).
POSTMORTEMS_DUE = """
WITH pm AS (
    SELECT id, resolved_at + to_hours(CAST($hours AS BIGINT)) AS due, postmortem_done_at AS done
    FROM incidents
    WHERE NOT imported AND route IS NOT NULL AND severity IN ('SEV1', 'SEV2')
      AND status IN ('resolved', 'closed') AND resolved_at <= $now),
noted AS (
    SELECT incident_id, kind, CAST(json_extract_string(data, '$.due') AS TIMESTAMP) AS due FROM timeline
    WHERE kind IN ('postmortem_scheduled', 'postmortem_overdue'))
SELECT pm.id FROM pm
WHERE NOT EXISTS (SELECT 1 FROM noted n WHERE n.incident_id = pm.id AND n.kind = 'postmortem_scheduled'
                  AND n.due = pm.due)
   OR (pm.due <= $now AND (pm.done IS NULL OR pm.done > pm.due)
       AND NOT EXISTS (SELECT 1 FROM noted n WHERE n.incident_id = pm.id AND n.kind = 'postmortem_overdue'
                       AND n.due = pm.due))
ORDER BY pm.id
"""


def run_postmortems(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation
) -> int:
    """Schedule the post-mortem of each newly resolved SEV1/SEV2 incident and mark the ones past their
    deadline without a post-mortem done overdue; how many entries were written."""
    due = con.execute(POSTMORTEMS_DUE, {"hours": timers.POSTMORTEM_HOURS, "now": now}).fetchall()
    return sum(
        iso.run("post-mortem", iid, iid, _postmortem_of, con, settings, now, iid) or 0 for (iid,) in due
    )


def _postmortem_of(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iid: str) -> int:
    inc = incident(con, iid)
    if inc is None:
        return 0
    entries = [
        {"kind": kind, "actor": actor, "data": data}
        for kind, actor, data in con.execute(
            "SELECT kind, actor, data FROM timeline WHERE incident_id = ? ORDER BY seq", [iid]
        ).fetchall()
    ]
    noted = {
        json.loads(e["data"]).get("key")
        for e in entries
        if e["kind"] in ("postmortem_scheduled", "postmortem_overdue") and e["data"]
    }
    owner = timers.postmortem_owner(entries)
    written = 0
    for event in timers.postmortem_timers(inc, now, owner):
        if event.key in noted:
            continue
        quiet = (
            "noticed over 1 h later"
            if event.at < now - NOTICE_WINDOW
            else "SLACK_WEBHOOK_URL is not set"
            if not settings.slack_webhook_url
            else None
        )
        add_timeline(
            con,
            iid,
            event.at,
            event.kind,
            "timer",
            event.message + (f" (not announced: {quiet})" if quiet else ""),
            data={"key": event.key, "due": event.due.isoformat(), "owner": owner},
        )
        if quiet is None:
            overdue = event.kind == "postmortem_overdue"
            announce_notice(con, settings, iid, postmortem_notice(inc, overdue, event.due, owner), event.at)
        written += 1
    return written


def run_approvals(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    iso: Isolation,
    unfolded_since: dt.datetime | None = None,
) -> int:
    """Announce each remediation newly waiting for approval; withdraw those past their deadline (the
    incident is then marked for escalation). How many were withdrawn.

    `unfolded_since`: when the oldest inbox row the fold has not reached yet was received (None: the
    fold has caught up). A deadline is applied only once every row received before it is folded, so
    an approval accepted in time but waiting behind a backlog (an alert storm) is never withdrawn."""
    rows = con.execute(
        "SELECT id, incident_id, action, created_at FROM remediations WHERE status = 'awaiting_approval' "
        "ORDER BY created_at, id"
    ).fetchall()
    if not rows:
        return 0
    announced = {
        json.loads(r[0]).get("remediation_id")
        for r in con.execute(
            "SELECT data FROM timeline WHERE kind = 'approval_requested' AND incident_id IN "
            "(SELECT incident_id FROM remediations WHERE status = 'awaiting_approval')"
        ).fetchall()
        if r[0]
    }
    timeout = dt.timedelta(seconds=settings.approval_timeout_s)
    approvers: list[str] | None = None
    withdrawn = 0
    for rid, iid, action, created in rows:
        deadline = created + timeout
        if deadline <= now and (unfolded_since is None or unfolded_since > deadline):
            withdrawn += bool(
                iso.run("approval expiry", rid, iid, _withdraw, con, rid, iid, action, deadline, timeout)
            )
        elif deadline > now and rid not in announced:
            if approvers is None:
                approvers = _approvers(settings)
            inc = incident(con, iid)
            if inc is not None:
                at = max(now, created)
                remediation = (rid, action)
                iso.run(
                    "approval announcement", rid, iid, announce_approval, con, settings, inc, remediation, at,
                    deadline, approvers,
                )  # fmt: skip
    return withdrawn


def _withdraw(
    con: duckdb.DuckDBPyConnection,
    rid: str,
    iid: str,
    action: str,
    deadline: dt.datetime,
    timeout: dt.timedelta,
) -> bool:
    con.execute(
        "UPDATE remediations SET status = 'withdrawn', finished_at = ? WHERE id = ? AND status = "
        "'awaiting_approval'",
        [deadline, rid],
    )
    waited = timers.duration_text(timeout)
    row = con.execute("SELECT status FROM incidents WHERE id = ?", [iid]).fetchone()
    still_open = row is not None and row[0] in ("triggered", "acknowledged", "mitigated")
    add_timeline(
        con,
        iid,
        deadline,
        "approval_expired",
        "timer",
        f"remediation {rid} ({action}): no approval within {waited}; the approval request is withdrawn"
        + (
            " and the incident escalated"
            if still_open
            else " (the incident is no longer open: nobody is paged)"
        ),
        data={"remediation_id": rid},
    )
    if still_open:
        con.execute(
            "UPDATE incidents SET escalation_pending = ? WHERE id = ?",
            [f"remediation {rid} ({action}) had no approval within {waited}: withdrawn", iid],
        )
    return True


def _approvers(settings: Settings) -> list[str]:
    """Who may approve, by name, from the personal tokens (none when there are none, or they cannot be
    read: the API then refuses to start, and the announcement still names the role)."""
    try:
        return tokens_for(settings).names_allowed("approve_remediation")
    except SloError as exc:
        log.warning("approval announcement: cannot read the personal tokens: %s", exc)
        return []
