"""Budget step: the error budget each incident consumed, per linked SLO."""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.incidents import impact
from pipelines.incidents.isolation import Isolation


def update_budgets(con: duckdb.DuckDBPyConnection, now: dt.datetime, iso: Isolation) -> None:
    """Budget consumed per linked SLO: recomputed while open, computed once after resolution."""
    rows = con.execute(
        """SELECT s.incident_id, s.slo_id, i.impact_start, i.resolved_at, i.slo_id FROM incident_slos s
           JOIN incidents i ON i.id = s.incident_id
           WHERE i.impact_start IS NOT NULL AND (i.resolved_at IS NULL OR s.budget_consumed IS NULL)"""
    ).fetchall()

    def update(
        iid: str, slo: str, start: dt.datetime, resolved: dt.datetime | None, main: str | None
    ) -> None:
        share = impact.budget_consumed_for(con, slo, start, min(resolved or now, now))
        con.execute(
            "UPDATE incident_slos SET budget_consumed = ? WHERE incident_id = ? AND slo_id = ?",
            [share, iid, slo],
        )
        if slo == main:
            con.execute("UPDATE incidents SET budget_consumed = ? WHERE id = ?", [share, iid])

    for iid, slo, start, resolved, main in rows:
        iso.run("budgets", f"{iid} {slo}", iid, update, iid, slo, start, resolved, main)
