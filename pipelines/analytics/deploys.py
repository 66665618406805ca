"""Deploy correlation: incidents that started within N hours after a deploy of the same service, and the
share of a quarter's deploys followed by such an incident (a change-failure rate)."""

from __future__ import annotations

from typing import Any

import duckdb

from pipelines.analytics.mttx import DURATIONS_TABLE, records

DEFAULT_HOURS = 4

# Each incident of the quarter with the latest deploy of its service in the N hours before it started.
AFTER_DEPLOY_SQL = f"""
WITH d AS (FROM {DURATIONS_TABLE})
SELECT d.id, d.service, d.severity, d.title, d.impact_start, p.version, p.description, p.deployed_at,
       (epoch_ms(d.impact_start) - epoch_ms(p.deployed_at)) / 60000.0 AS minutes_after_deploy
FROM d JOIN deploys p
  ON p.service = d.service AND p.deployed_at <= d.impact_start
 AND p.deployed_at > d.impact_start - to_hours(CAST(? AS INTEGER))
WHERE d.quarter = ?
QUALIFY row_number() OVER (PARTITION BY d.id ORDER BY p.deployed_at DESC) = 1
ORDER BY d.impact_start
"""

# Deploys of the quarter per service, and how many were followed by an incident within N hours.
DEPLOY_OUTCOMES_SQL = f"""
WITH d AS (FROM {DURATIONS_TABLE})
SELECT p.service, count(*) AS deploys,
       count(*) FILTER (WHERE EXISTS (
         SELECT 1 FROM d WHERE d.service = p.service AND d.impact_start >= p.deployed_at
           AND d.impact_start < p.deployed_at + to_hours(CAST(? AS INTEGER)))) AS followed_by_incident
FROM deploys p WHERE p.deployed_at >= ? AND p.deployed_at < ?
GROUP BY p.service ORDER BY p.service
"""


def deploy_correlation(
    con: duckdb.DuckDBPyConnection, quarter: Any, hours: int = DEFAULT_HOURS
) -> dict[str, Any]:
    after = records(con.execute(AFTER_DEPLOY_SQL, [hours, quarter.label]))
    total = con.execute(
        f"SELECT count(*) FROM {DURATIONS_TABLE} WHERE quarter = ?", [quarter.label]
    ).fetchone()[0]  # type: ignore[index]
    outcomes = records(con.execute(DEPLOY_OUTCOMES_SQL, [hours, quarter.start, quarter.end]))
    deploys = sum(o["deploys"] for o in outcomes)
    failed = sum(o["followed_by_incident"] for o in outcomes)
    return {
        "window_hours": hours,
        "incidents": int(total),
        "incidents_after_deploy": len(after),
        "share_after_deploy": None if not total else round(len(after) / total, 4),
        "deploys": deploys,
        "deploys_followed_by_incident": failed,
        "change_failure_rate": None if not deploys else round(failed / deploys, 4),
        "by_service": outcomes,
        "incidents_list": [
            {
                "id": a["id"],
                "service": a["service"],
                "severity": a["severity"],
                "title": a["title"],
                "deploy": a["version"],
                "deploy_description": a["description"],
                "minutes_after_deploy": round(a["minutes_after_deploy"], 1),
            }
            for a in after
        ],
    }
