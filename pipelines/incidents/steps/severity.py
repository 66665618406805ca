"""Scope step: seed 002's "impact scope doubles → upgrade one level" on open incidents.

An incident's scope is the number of distinct alerts that fired on it: by fingerprint (an Alertmanager
alert per region or instance is one more place hurting), except the engine's, which count once per SLO
(its page and ticket on one SLO are one problem, at two burn rates). Its baseline is
the scope when it was first triaged, or the scope recorded by its last scope upgrade; once the scope
reaches twice the baseline, the severity goes one level up (`severity_rules`), on the timeline as
`severity_upgraded` with both counts, at the time the doubling alert started. An incident raised to
SEV1/SEV2 that nobody was paged about is marked for escalation. Keyed on the timeline: a replay or a
restart raises nothing twice.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.incidents import severity_rules
from pipelines.incidents.fold import add_timeline, incident
from pipelines.incidents.isolation import Isolation

# What one alert counts as in the scope (see the module docstring).
SCOPE_KEY = "CASE WHEN source = 'engine' THEN 'slo ' || coalesce(slo_id, fingerprint) ELSE fingerprint END"
# The incidents whose scope is watched: open, triaged, not imported, below SEV1.
WATCHED = """status IN ('triggered', 'acknowledged', 'mitigated') AND NOT triage_pending AND NOT imported
    AND severity IN ('SEV2', 'SEV3', 'SEV4')"""
# Open, triaged incidents below SEV1 whose scope doubled, in one query (each cycle runs it: a query per
# open incident took 7 s a cycle at 750 of them): the scope now, the baseline (the last scope upgrade's,
# else the scope at the first triage, else at detection) and since when that baseline holds.
DOUBLED = f"""
WITH open_incidents AS (SELECT id, detected_at FROM incidents WHERE {WATCHED}),
keyed AS (
    SELECT incident_id, {SCOPE_KEY} AS k, min(starts_at) AS first FROM alerts
    WHERE status = 'firing' AND incident_id IN (SELECT id FROM open_incidents) GROUP BY 1, 2),
scope AS (SELECT incident_id, count(*) AS n FROM keyed GROUP BY 1 HAVING count(*) >= 2),
last AS (
    SELECT incident_id, arg_max(json_extract(data, '$.scope')::INTEGER, seq) AS base,
           arg_max(occurred_at, seq) AS since FROM timeline
    WHERE incident_id IN (SELECT incident_id FROM scope) AND kind = 'severity_upgraded'
      AND json_extract_string(data, '$.trigger') = 'scope_doubled'
      AND json_extract(data, '$.scope') IS NOT NULL
    GROUP BY 1),
triaged AS (
    SELECT incident_id, min(created_at) AS at FROM triage
    WHERE incident_id IN (SELECT incident_id FROM scope) GROUP BY 1),
judged AS (
    SELECT o.id, s.n, l.base IS NOT NULL AS raised_before,
           coalesce(l.since, t.at, o.detected_at) AS since,
           coalesce(l.base, (SELECT count(*) FROM keyed k WHERE k.incident_id = o.id
                                AND k.first <= coalesce(t.at, o.detected_at))) AS base
    FROM open_incidents o JOIN scope s ON s.incident_id = o.id
    LEFT JOIN last l ON l.incident_id = o.id LEFT JOIN triaged t ON t.incident_id = o.id)
SELECT id, n, base, raised_before, since FROM judged WHERE n >= 2 * greatest(base, 1) ORDER BY id
"""


# Whether any incident DOUBLED looks at has two alerts in its scope at all (a scope of one never
# doubles): one small query instead of DOUBLED's seven parts at every cycle (an idle cycle, a replay stop).
ANY_SCOPE_OF_TWO = f"""
SELECT 1 FROM alerts
WHERE status = 'firing' AND incident_id IN (SELECT id FROM incidents WHERE {WATCHED})
GROUP BY incident_id HAVING count(DISTINCT {SCOPE_KEY}) >= 2
LIMIT 1
"""


def scope_upgrades(con: duckdb.DuckDBPyConnection, now: dt.datetime, iso: Isolation) -> int:
    """Raise every open incident whose scope doubled one level; how many were raised."""
    if con.execute(ANY_SCOPE_OF_TWO).fetchone() is None:
        return 0
    raised = 0
    for iid, scope, baseline, before, since in con.execute(DOUBLED).fetchall():
        raised += bool(
            iso.run(
                "scope", iid, iid, _scope_one, con, str(iid), int(scope), int(baseline), bool(before), since
            )
        )
    return raised


def _scope_one(
    con: duckdb.DuckDBPyConnection,
    iid: str,
    scope: int,
    baseline: int,
    raised_before: bool,
    since: dt.datetime,
) -> bool:
    inc = incident(con, iid)
    if inc is None or not severity_rules.scope_doubled(baseline, scope):
        return False
    # when it doubled: the start of the alert that brought the scope to twice the baseline
    starts = [
        r[0]
        for r in con.execute(
            f"SELECT min(starts_at) AS first FROM alerts WHERE incident_id = ? AND status = 'firing'"
            f" GROUP BY {SCOPE_KEY} ORDER BY first",
            [iid],
        ).fetchall()
    ]
    at = max(starts[min(2 * max(baseline, 1), len(starts)) - 1], since)
    evidence = (
        f"{scope} distinct alerts firing, {baseline} when {'last raised' if raised_before else 'triaged'}"
    )
    severity, upgrades = severity_rules.apply(inc["severity"], {"scope_doubled": evidence})
    if not upgrades:
        return False
    up = upgrades[0]
    con.execute(
        "UPDATE incidents SET severity = ?, updated_at = greatest(updated_at, ?) WHERE id = ?",
        [severity, at, iid],
    )
    add_timeline(
        con,
        iid,
        at,
        "severity_upgraded",
        "rules",
        up.message(),
        data={
            "trigger": "scope_doubled",
            "from": up.before,
            "to": up.after,
            "by": "scope",
            "scope": scope,
            "baseline": baseline,
        },
    )
    if (
        severity in ("SEV1", "SEV2")
        and inc["status"] in ("triggered", "acknowledged")
        and not inc["escalated_at"]
    ):
        con.execute(
            "UPDATE incidents SET escalation_pending = ? WHERE id = ?",
            [f"severity raised to {severity}: {up.reason}", iid],
        )
    return True
