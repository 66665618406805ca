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
# Open, triaged incidents below SEV1 with at least two distinct alerts: the only ones whose scope can
# have doubled (a scope of one never doubled from one).
CANDIDATES = f"""
SELECT i.id, s.n FROM incidents i
JOIN (SELECT incident_id, count(DISTINCT {SCOPE_KEY}) AS n FROM alerts WHERE status = 'firing'
      GROUP BY incident_id HAVING count(DISTINCT {SCOPE_KEY}) >= 2) s ON s.incident_id = i.id
WHERE i.status IN ('triggered', 'acknowledged', 'mitigated') AND NOT i.triage_pending AND NOT i.imported
  AND i.severity IN ('SEV2', 'SEV3', 'SEV4')
ORDER BY i.created_at, i.id
"""


def scope_upgrades(con: duckdb.DuckDBPyConnection, now: dt.datetime, iso: Isolation) -> int:
    """Raise every open incident whose scope doubled one level; how many were raised."""
    raised = 0
    for iid, scope in con.execute(CANDIDATES).fetchall():
        raised += bool(iso.run("scope", iid, iid, _scope_one, con, str(iid), int(scope)))
    return raised


def _scope_one(con: duckdb.DuckDBPyConnection, iid: str, scope: int) -> bool:
    inc = incident(con, iid)
    if inc is None:
        return False
    last = con.execute(
        """SELECT json_extract(data, '$.scope')::INTEGER, occurred_at FROM timeline
           WHERE incident_id = ? AND kind = 'severity_upgraded'
             AND json_extract_string(data, '$.trigger') = 'scope_doubled'
             AND json_extract(data, '$.scope') IS NOT NULL
           ORDER BY seq DESC LIMIT 1""",
        [iid],
    ).fetchone()
    if last is not None:
        baseline, since = int(last[0]), last[1]
    else:
        row = con.execute("SELECT min(created_at) FROM triage WHERE incident_id = ?", [iid]).fetchone()
        since = row[0] if row and row[0] is not None else inc["detected_at"]
        baseline = _firing(con, iid, since)
    if not severity_rules.scope_doubled(baseline, scope):
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
    evidence = f"{scope} distinct alerts firing, {baseline} when {'last raised' if last else 'triaged'}"
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


def _firing(con: duckdb.DuckDBPyConnection, iid: str, by: dt.datetime) -> int:
    """Distinct alerts that had started firing on `iid` by `by`."""
    row = con.execute(
        f"SELECT count(DISTINCT {SCOPE_KEY}) FROM alerts WHERE incident_id = ? AND status = 'firing'"
        " AND starts_at <= ?",
        [iid, by],
    ).fetchone()
    return int(row[0]) if row else 0
