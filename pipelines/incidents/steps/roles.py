"""Role step: a SEV1/SEV2 incident escalated with no incident commander asks for one (seeds 001, 002).

Once per incident: an `ic_requested` entry on the timeline (at the cycle's clock, never before the
escalation) and a Slack notice naming the command that assigns one. The request is keyed on the
timeline, so a replay or a restart never asks twice; an incident upgraded to SEV1/SEV2 later (a
severity trigger) is asked in the first cycle after the upgrade. Who holds which role is the
timeline's `role_assigned` entries (`incident_roles.py`); the CLI and the dashboard show the request
while nobody is the commander.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.config import Settings
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.incident_roles import NEEDS_IC
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.outbound import ic_request_message
from pipelines.incidents.steps.notify import announce_notice

# Open, escalated SEV1/SEV2 incidents with neither a commander nor a request for one yet.
WITHOUT_IC = f"""
SELECT i.id FROM incidents i
WHERE i.severity IN ({", ".join(f"'{s}'" for s in NEEDS_IC)})
  AND i.status IN ('triggered', 'acknowledged', 'mitigated') AND i.escalated_at IS NOT NULL AND NOT i.imported
  AND NOT EXISTS (SELECT 1 FROM timeline t WHERE t.incident_id = i.id AND t.kind = 'ic_requested')
  AND NOT EXISTS (SELECT 1 FROM timeline t WHERE t.incident_id = i.id AND t.kind = 'role_assigned'
                  AND json_extract_string(t.data, '$.role') = 'incident_commander')
ORDER BY i.created_at, i.id
"""


def ask_for_ic(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Ask for an incident commander on every incident that needs one and was not asked; how many."""
    asked = 0
    for (iid,) in con.execute(WITHOUT_IC).fetchall():
        asked += bool(iso.run("incident commander", iid, iid, _ask, con, settings, now, iid))
    return asked


def _ask(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iid: str) -> bool:
    inc = incident(con, iid)
    if inc is None:
        return False
    at = max(now, inc["escalated_at"])
    add_timeline(
        con,
        iid,
        at,
        "ic_requested",
        "router",
        f"{inc['severity']} escalated with no incident commander: assign one "
        f"(slo incidents assign {iid} --role ic --person NAME, or the incident page)",
        data={"severity": inc["severity"]},
    )
    announce_notice(con, settings, iid, ic_request_message(inc), at)
    return True

