"""Role step: a SEV1/SEV2 incident escalated with no incident commander asks for one (seeds 001, 002).

Once per incident: an `ic_requested` entry on the timeline (at the cycle's clock, never before the
escalation) and a Slack notice naming the command that assigns one. The request is keyed on the
timeline, so a replay or a restart never asks twice; an incident upgraded to SEV1/SEV2 later (a
severity trigger) is asked in the first cycle after the upgrade. Who holds which role is the
timeline's `role_assigned` entries (`incident_roles.py`); the CLI and the dashboard show the request
while nobody is the commander.

The declaration (seed 002: "declare the incident in the designated channel with severity, impact and
who's commanding"): once a SEV1/SEV2 incident has an incident commander, one `declared` entry and one
Slack notice "INC-… declared SEVn: <title>; incident commander: <person>", and again whenever the
commander changes to someone else (an incident raised to SEV1/SEV2 later is declared at the first cycle
after the raise). Keyed on the latest `declared` entry's person, so a replay never declares twice.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.config import Settings
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.incident_roles import NEEDS_IC
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.outbound import declaration_message, declaration_text, ic_request_message
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


# Whether any incident could need one (WITHOUT_IC's incidents not asked yet, before its look-up of the
# assignments): a cycle with no such incident, most of them, asks nothing more.
ANY_ESCALATED_NEEDING_IC = f"""
SELECT 1 FROM incidents
WHERE severity IN ({", ".join(f"'{s}'" for s in NEEDS_IC)})
  AND status IN ('triggered', 'acknowledged', 'mitigated') AND escalated_at IS NOT NULL AND NOT imported
  AND id NOT IN (SELECT incident_id FROM timeline WHERE kind = 'ic_requested')
LIMIT 1
"""


def ask_for_ic(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Ask for an incident commander on every incident that needs one and was not asked; how many."""
    if con.execute(ANY_ESCALATED_NEEDING_IC).fetchone() is None:
        return 0
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


# Open SEV1/SEV2 incidents whose current incident commander was not declared yet: their latest IC
# assignment (person, when); the person of their latest declaration is another one, or there is none.
UNDECLARED = f"""
WITH candidates AS (
    SELECT id, created_at FROM incidents
    WHERE severity IN ({", ".join(f"'{s}'" for s in NEEDS_IC)})
      AND status IN ('triggered', 'acknowledged', 'mitigated') AND NOT imported
), ic AS (
    SELECT incident_id, json_extract_string(data, '$.person') AS person, occurred_at,
           row_number() OVER (PARTITION BY incident_id ORDER BY seq DESC) AS n
    FROM timeline WHERE kind = 'role_assigned' AND incident_id IN (SELECT id FROM candidates)
      AND json_extract_string(data, '$.role') = 'incident_commander'
), declared AS (
    SELECT incident_id, json_extract_string(data, '$.commander') AS person,
           row_number() OVER (PARTITION BY incident_id ORDER BY seq DESC) AS n
    FROM timeline WHERE kind = 'declared' AND incident_id IN (SELECT id FROM candidates)
)
SELECT c.id, ic.person, ic.occurred_at FROM candidates c
JOIN ic ON ic.incident_id = c.id AND ic.n = 1
LEFT JOIN declared d ON d.incident_id = c.id AND d.n = 1
WHERE d.person IS DISTINCT FROM ic.person
ORDER BY c.created_at, c.id
"""


def declare_ic(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, iso: Isolation) -> int:
    """Declare every SEV1/SEV2 incident whose (new) incident commander was not declared yet; how many."""
    # UNDECLARED needs an incident commander's assignment: without any role assigned at all (a store where
    # nobody assigns roles), one look at the timeline instead of its three-part query every cycle
    if con.execute("SELECT 1 FROM timeline WHERE kind = 'role_assigned' LIMIT 1").fetchone() is None:
        return 0
    declared = 0
    for iid, person, assigned_at in con.execute(UNDECLARED).fetchall():
        declared += bool(
            iso.run("declaration", iid, iid, _declare, con, settings, max(now, assigned_at), iid, str(person))
        )
    return declared


def _declare(
    con: duckdb.DuckDBPyConnection, settings: Settings, at: dt.datetime, iid: str, person: str
) -> bool:
    inc = incident(con, iid)
    if inc is None:
        return False
    add_timeline(
        con,
        iid,
        at,
        "declared",
        "router",
        declaration_text(inc, person),
        data={"severity": inc["severity"], "commander": person},
    )
    announce_notice(con, settings, iid, declaration_message(inc, person), at)
    return True
