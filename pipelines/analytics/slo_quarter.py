"""Per SLO per quarter: attainment, budget spent, time in each policy state, its verdicts (met / missed /
exhausted, health, better or worse than the previous quarter: `verdicts`), and the budget burn-down
series for charts.

Attainment is the SLI over the quarter's buckets (Σgood / Σvalid); budget spent is the share of the
quarter's own error budget, bad / ((1 − target) · Σvalid). The policy state and the burn-down use
the SLO's own window (what `slo status` shows), from `policy_transitions` and `slo_series`.
"""

from __future__ import annotations

from typing import Any

import duckdb

from pipelines.analytics.mttx import records
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.verdicts import judge
from pipelines.model import POLICY_STATES
from pipelines.timeutil import minute_of

# Σgood and Σvalid of every active SLO over the buckets that start in [start, end).
QUARTER_SUMS_SQL = """
SELECT s.slo_key, s.slo_id, s.service, s.name, s.target, s.window_text,
       coalesce(sum(b.good), 0) AS good, coalesce(sum(b.valid), 0) AS valid,
       e.evaluated_to
FROM slos s
LEFT JOIN buckets b ON b.slo_key = s.slo_key AND b.minute >= ? AND b.minute < ?
LEFT JOIN engine_state e ON e.slo_key = s.slo_key
WHERE s.active
GROUP BY ALL
ORDER BY s.slo_id
"""

# Minutes each SLO spent in each policy state between the quarter's start and min(end, evaluated_to):
# the state in force at the start (the last transition at or before it), then every transition inside.
POLICY_TIME_SQL = """
WITH bounds AS (
  SELECT s.slo_key, ?::INTEGER AS qs, least(?::INTEGER, coalesce(e.evaluated_to, ?::INTEGER)) AS qe
  FROM slos s LEFT JOIN engine_state e USING (slo_key)
),
at_start AS (
  SELECT p.slo_key, b.qs AS s, arg_max(p.to_state, p.minute) AS state
  FROM policy_transitions p JOIN bounds b USING (slo_key)
  WHERE p.minute <= b.qs GROUP BY p.slo_key, b.qs
),
segments AS (
  SELECT slo_key, s, state FROM at_start
  UNION ALL
  SELECT p.slo_key, p.minute, p.to_state FROM policy_transitions p JOIN bounds b USING (slo_key)
  WHERE p.minute > b.qs AND p.minute < b.qe
),
spans AS (
  SELECT g.slo_key, g.state, g.s, lead(g.s, 1, b.qe) OVER (PARTITION BY g.slo_key ORDER BY g.s) AS e
  FROM segments g JOIN bounds b USING (slo_key)
)
SELECT slo_key, coalesce(state, 'no_data') AS state, sum(e - s)::BIGINT AS minutes
FROM spans WHERE e > s GROUP BY ALL
"""

# The budget remaining (SLO window) every `step` minutes of the quarter, for burn-down charts.
BURN_DOWN_SQL = """
SELECT s.slo_id, x.minute, x.budget_remaining, x.policy_state
FROM slo_series x JOIN slos s USING (slo_key)
WHERE x.minute >= ? AND x.minute < ? AND x.minute % ? = 0 AND s.active
ORDER BY s.slo_id, x.minute
"""


def slo_quarter(con: duckdb.DuckDBPyConnection, quarter: Quarter) -> list[dict[str, Any]]:
    """One row per active SLO: attainment vs target, budget spent, policy-state minutes, and the verdicts
    of `verdicts.judge` (outcome, met, exhausted, health, previous quarter's attainment and the trend)."""
    previous = {r["slo"]: r for r in _measure(con, quarter.previous())}
    return [{**r, **judge(r, previous.get(r["slo"]))} for r in _measure(con, quarter)]


def _measure(con: duckdb.DuckDBPyConnection, quarter: Quarter) -> list[dict[str, Any]]:
    """Attainment, budget spent and policy-state minutes per active SLO over one quarter."""
    qs, qe = minute_of(quarter.start), minute_of(quarter.end)
    sums = records(con.execute(QUARTER_SUMS_SQL, [qs, qe]))
    times: dict[int, dict[str, int]] = {}
    for row in records(con.execute(POLICY_TIME_SQL, [qs, qe, qe])):
        times.setdefault(row["slo_key"], {})[row["state"]] = int(row["minutes"])
    end_budget = {
        r["slo_key"]: r["budget_remaining"]
        for r in records(
            con.execute(
                "SELECT slo_key, arg_max(budget_remaining, minute) AS budget_remaining FROM slo_series "
                "WHERE minute >= ? AND minute <= ? GROUP BY slo_key",
                [qs, qe],
            )
        )
    }
    out = []
    for r in sums:
        valid, good = int(r["valid"]), int(r["good"])
        allowed = (1 - r["target"]) * valid
        attainment = good / valid if valid else None
        state_minutes = {s: times.get(r["slo_key"], {}).get(s, 0) for s in (*POLICY_STATES, "no_data")}
        out.append(
            {
                "slo": r["slo_id"],
                "service": r["service"],
                "target": r["target"],
                "window": r["window_text"],
                "good": good,
                "valid": valid,
                "attainment": None if attainment is None else _rounded(attainment, r["target"], 6),
                "budget_spent": None if not allowed else _rounded((valid - good) / allowed, 1.0, 4),
                "budget_remaining_at_end": None
                if end_budget.get(r["slo_key"]) is None
                else round(end_budget[r["slo_key"]], 4),
                "policy_minutes": state_minutes,
            }
        )
    return out


def _rounded(value: float, limit: float, digits: int) -> float:
    """`value` to `digits` decimals, unless rounding would carry it onto or across `limit` (a target,
    or the whole budget): 0.99949996 against 0.9995 stays as it is, below its target."""
    short = round(value, digits)
    if (short >= limit) != (value >= limit) or (short == limit) != (value == limit):
        return value
    return short


def burn_down(con: duckdb.DuckDBPyConnection, quarter: Quarter, step: int = 240) -> list[dict[str, Any]]:
    qs, qe = minute_of(quarter.start), minute_of(quarter.end)
    return records(con.execute(BURN_DOWN_SQL, [qs, qe, step]))
