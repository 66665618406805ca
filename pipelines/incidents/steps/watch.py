"""Recovery-watch step: after a person's mitigation, did the recovery hold for the watch (seeds 001, 002)?

The rules are pure (`pipelines.incidents.recovery_watch`); this step reads each incident mitigated by a
person in the last day whose mitigation has no watch entry yet, and records the outcome once
(`recovery_held` or `recovery_not_held`, keyed on the mitigation's time). A recovery that did not hold
is told to Slack and, while the incident is open, marked for escalation the way a failed verification
is (`escalation_pending`, which `send_escalations` pages).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.inbox import Inbox
from pipelines.incidents.fold import OPEN_STATES, add_timeline, incident, stored_seq
from pipelines.incidents.impact import CumulativeSums
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.outbound import watch_notice
from pipelines.incidents.recovery_watch import NewAlert, PageBurn, first_page_burn, watch_outcome
from pipelines.incidents.steps.notify import NOTICE_WINDOW, announce_notice
from pipelines.timeutil import datetime_of, minute_of

LOOK_BACK = dt.timedelta(days=1)  # mitigations older than this (plus the watch) are not looked at again

# Incidents a person mitigated recently (not a verified auto-remediation, not implied by a resolve),
# whose watch may still have something to say: not resolved during it, or resolved within the last
# `LATE_DATA` (evidence from before the resolution may still come in).
MITIGATED_BY_A_PERSON = """
SELECT i.id, i.mitigated_at FROM incidents i
WHERE NOT i.imported AND i.mitigated_at IS NOT NULL AND i.mitigated_at >= $since
  AND coalesce(i.mitigated_at_source, '') <> 'verification'
  AND coalesce(i.mitigated_at_source, '') NOT LIKE '%(implied by resolve)'
  AND (i.resolved_at IS NULL OR i.resolved_at >= i.mitigated_at + $watch OR i.resolved_at >= $late)
ORDER BY i.mitigated_at, i.id
"""
LATE_DATA = dt.timedelta(hours=1)


def watch_recoveries(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    iso: Isolation,
    inbox: Inbox | None = None,
    sums: CumulativeSums | None = None,
) -> int:
    """Record the watch's outcome for every mitigation whose watch has one now; how many recoveries did
    not hold while their incident was open (those are marked for escalation). With the `inbox`, a watch
    is called clean only once every row received before its deadline is folded. `sums`: the stage's
    remembered buckets (a watch reads the same minutes again each cycle until it ends)."""
    watch = dt.timedelta(minutes=settings.recovery_watch_minutes)
    rows = con.execute(
        MITIGATED_BY_A_PERSON, {"since": now - LOOK_BACK - watch, "watch": watch, "late": now - LATE_DATA}
    ).fetchall()
    if not rows:
        return 0
    unfolded = inbox.read_since(stored_seq(con), limit=1) if inbox is not None else []
    unfolded_since = unfolded[0].received_at.replace(tzinfo=None) if unfolded else None
    done = {
        (str(iid), json.loads(data).get("mitigated_at"))
        for iid, data in con.execute(
            "SELECT incident_id, data FROM timeline WHERE kind IN ('recovery_held', 'recovery_not_held')"
            " AND data IS NOT NULL AND list_contains(?, incident_id)",
            [[str(r[0]) for r in rows]],
        ).fetchall()
    }
    escalated = 0
    for iid, mitigated_at in rows:
        if (str(iid), mitigated_at.isoformat()) in done:
            continue
        escalated += bool(
            iso.run(
                "recovery watch", iid, iid, _watch_one, con, settings, now, iid, watch, unfolded_since, sums
            )
        )
    return escalated


def _watch_one(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    iid: str,
    watch: dt.timedelta,
    unfolded_since: dt.datetime | None,
    sums: CumulativeSums | None = None,
) -> bool:
    """The watch of one incident's mitigation; True when it did not hold and the incident escalates."""
    inc = incident(con, iid)
    if inc is None or inc["mitigated_at"] is None:
        return False
    mitigated: dt.datetime = inc["mitigated_at"]
    deadline = mitigated + watch
    resolved: dt.datetime | None = inc["resolved_at"]
    end = min(now, deadline, resolved) if resolved is not None else min(now, deadline)
    burn, data_until = _page_burn(con, inc.get("slo_id"), mitigated, deadline, end, sums)
    alerts = [
        NewAlert(starts_at, str(fingerprint), str(title))
        for fingerprint, title, starts_at in con.execute(
            """SELECT fingerprint, min(title), starts_at FROM alerts
               WHERE incident_id = ? AND status = 'firing' AND starts_at > ? AND starts_at <= ?
               GROUP BY fingerprint, starts_at ORDER BY starts_at, fingerprint""",
            [iid, mitigated, end],
        ).fetchall()
    ]
    folded = unfolded_since is None or unfolded_since > deadline
    settled = folded and (data_until is None or data_until >= deadline)
    slo = inc.get("slo_id") if data_until is not None else None
    outcome = watch_outcome(
        mitigated, watch, now, resolved_at=resolved, burn=burn, alerts=alerts, settled=settled, slo=slo
    )
    if outcome is None:
        return False
    still_open = inc["status"] in OPEN_STATES
    message = outcome.message
    if outcome.kind == "recovery_not_held":
        message += "; escalated" if still_open else " (the incident is no longer open: nobody is paged)"
    add_timeline(con, iid, outcome.at, outcome.kind, "watch", message, data=outcome.data(mitigated))
    if outcome.kind != "recovery_not_held":
        return False
    if outcome.at >= now - NOTICE_WINDOW:  # old news (a store that had no watch before) is not posted
        announce_notice(con, settings, iid, watch_notice(inc, outcome.message, still_open), outcome.at)
    if still_open:
        evidence = "; ".join(e.text() for e in outcome.evidence)
        con.execute(
            "UPDATE incidents SET escalation_pending = ?, updated_at = greatest(updated_at, ?) WHERE id = ?",
            [f"recovery not held after the mitigation: {evidence}", outcome.at, iid],
        )
        if inc["status"] == "mitigated":
            # The mitigation did not hold: the incident is not mitigated (status page, stakeholder updates
            # and MTTM say so), and the next `mitigate` starts a new watch. It is acknowledged: someone was
            # on it (a person's mitigation, when nobody had acknowledged, counts as the acknowledgement).
            con.execute(
                """UPDATE incidents SET status = 'acknowledged',
                          acknowledged_at = coalesce(acknowledged_at, mitigated_at),
                          acknowledged_at_source = coalesce(acknowledged_at_source, 'mitigation'),
                          mitigated_at = NULL, mitigated_at_source = NULL
                   WHERE id = ? AND status = 'mitigated'""",
                [iid],
            )
            add_timeline(
                con, iid, outcome.at, "mitigation_undone", "watch",
                "not mitigated any more: the recovery did not hold (status back to acknowledged)",
            )  # fmt: skip
    return still_open


def _page_burn(
    con: duckdb.DuckDBPyConnection,
    slo_id: Any,
    mitigated: dt.datetime,
    deadline: dt.datetime,
    end: dt.datetime,
    sums: CumulativeSums | None = None,
) -> tuple[PageBurn | None, dt.datetime | None]:
    """The first page-level burn of the incident's SLO in the watch up to `end`, and how far the SLO's
    data is evaluated (None, None: no SLO, or one without page alerts: the watch reads alerts only)."""
    if not slo_id:
        return None, None
    row = con.execute(
        """SELECT s.slo_key, s.target, e.evaluated_to FROM slos s LEFT JOIN engine_state e USING (slo_key)
           WHERE s.slo_id = ?""",
        [slo_id],
    ).fetchone()
    thresholds = (
        [
            (int(w), float(f))
            for w, f in con.execute(
                "SELECT short_window, factor FROM slo_alerts WHERE slo_key = ? AND severity = 'page'"
                " ORDER BY bit",
                [row[0]],
            ).fetchall()
        ]
        if row is not None
        else []
    )
    if row is None or not thresholds:
        return None, None
    key, target, evaluated_to = row
    if evaluated_to is None:
        return None, datetime_of(0).replace(tzinfo=None)  # nothing evaluated yet: not settled
    start = minute_of(mitigated) + 1  # the first whole minute after the mitigation
    last = min(minute_of(end), int(evaluated_to))
    found = first_page_burn(
        (sums or CumulativeSums()).rows(con, int(key), start, last),
        start,
        last,
        minute_of(deadline) - start,
        thresholds,
        float(target),
    )
    data_until = datetime_of(int(evaluated_to)).replace(tzinfo=None)
    if found is None:
        return None, data_until
    m, window, burn_rate, factor = found
    return PageBurn(datetime_of(m).replace(tzinfo=None), str(slo_id), window, burn_rate, factor), data_until
