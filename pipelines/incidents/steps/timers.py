"""Timer step: record (and notify) every escalation timer that fell due.

The timer rules themselves are pure (`pipelines.incidents.timers`); this step reads the candidates,
records each due timer once on the timeline, raises the escalation tier and pages while the incident
is still open.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.incidents import timers
from pipelines.incidents.fold import add_timeline
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.rows import incidents_where
from pipelines.incidents.steps.notify import notify


def run_timers(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Record (and notify) every timer that fell due; incidents resolved over a day ago are done."""
    candidates = incidents_where(
        con,
        "NOT imported AND severity IS NOT NULL AND (resolved_at IS NULL OR resolved_at >= ?)"
        " AND status <> 'closed' OR (status = 'closed' AND closed_at >= ?)",
        [now - dt.timedelta(days=1), now - dt.timedelta(days=1)],
    )
    return sum(
        iso.run("timers", inc["id"], inc["id"], _timers_of, con, settings, now, inc) or 0
        for inc in candidates
    )


def _timers_of(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, inc: dict[str, Any]
) -> int:
    """Record the timers of one incident that fell due; how many."""
    fired = 0
    due = timers.due_timers(inc, now)
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
            add_timeline(
                con,
                iid,
                event.at,
                "timer",
                "timer",
                event.message,
                data={"key": event.key, "tier": event.tier},
            )
            con.execute(
                "UPDATE incidents SET escalation_tier = greatest(coalesce(escalation_tier, 0), ?) "
                "WHERE id = ?",
                [event.tier, iid],
            )
            if inc["status"] in ("triggered", "acknowledged", "mitigated"):  # nobody is paged after the fact
                notify(con, settings, {**inc, "escalation_tier": event.tier}, event.at, event.message)
            fired += 1
    return fired
