"""Budget step: the error budget each incident consumed, per linked SLO (all shares in one batch:
`impact.budgets_consumed`)."""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.incidents import impact
from pipelines.incidents.isolation import Isolation


def update_budgets(
    con: duckdb.DuckDBPyConnection,
    now: dt.datetime,
    iso: Isolation,
    sums: impact.CumulativeSums | None = None,
) -> None:
    """Budget consumed per linked SLO: recomputed while open, computed once after resolution (from the
    stage's remembered cumulative sums `sums` when given)."""
    rows = con.execute(
        """SELECT s.incident_id, s.slo_id, i.impact_start, i.resolved_at, i.slo_id FROM incident_slos s
           JOIN incidents i ON i.id = s.incident_id
           WHERE i.impact_start IS NOT NULL AND (i.resolved_at IS NULL OR s.budget_consumed IS NULL)"""
    ).fetchall()

    # Every share in one batch (the buckets do not change in this step), then one isolated update each.
    shares = impact.budgets_consumed(
        con, [(slo, start, min(resolved or now, now)) for _, slo, start, resolved, _ in rows], sums
    )

    def update(iid: str, slo: str, share: float | None, main: str | None) -> None:
        con.execute(
            "UPDATE incident_slos SET budget_consumed = ? WHERE incident_id = ? AND slo_id = ?",
            [share, iid, slo],
        )
        if slo == main:
            con.execute("UPDATE incidents SET budget_consumed = ? WHERE id = ?", [share, iid])

    for (iid, slo, _, _, main), share in zip(rows, shares, strict=True):
        iso.run("budgets", f"{iid} {slo}", iid, update, iid, slo, share, main)
