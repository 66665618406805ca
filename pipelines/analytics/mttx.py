"""Per incident TTD, TTA, TTM and TTR, and their distributions per quarter × severity × service.

    TTD = detected − impact_start   TTA = acknowledged − detected
    TTM = mitigated − impact_start  TTR = resolved − impact_start

An incident belongs to the quarter (UTC) of its impact_start. Open incidents (no resolved_at) are left out
of every duration and counted on their own; nothing is ever filled in with "now". Percentiles are
DuckDB's `quantile_cont`: linear interpolation between ranks, the same as numpy's default.
Quarter-over-quarter changes are judged by a bootstrap confidence interval of the difference in medians.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

METRICS = ("ttd", "tta", "ttm", "ttr")

# The table the cycle's analytics stage (`pipelines.analytics.tables.refresh`) fills from DURATIONS_SQL;
# every other analytics query, the report and the dashboard read it.
DURATIONS_TABLE = "incident_durations"
ROLLUP_TABLE = "mttx_rollup"

# Each duration as (from, to) incident times: TTD = detected − impact_start, and so on.
SPANS: dict[str, tuple[str, str]] = {
    "ttd": ("impact_start", "detected_at"),
    "tta": ("detected_at", "acknowledged_at"),
    "ttm": ("impact_start", "mitigated_at"),
    "ttr": ("impact_start", "resolved_at"),
}
_DURATION_COLUMNS = ",\n       ".join(
    f"CASE WHEN i.resolved_at IS NOT NULL THEN (epoch_ms(i.{end}) - epoch_ms(i.{start})) / 60000.0 END AS {m}"
    for m, (start, end) in SPANS.items()
)

# Per incident: the quarter it belongs to and its durations in minutes. A duration is NULL when one of
# its two times is unknown or the incident is still open. `placed_at` falls back on detected_at and
# created_at only to place an incident whose impact_start is unknown (its durations stay NULL).
DURATIONS_SQL = f"""
SELECT i.id, i.service, coalesce(i.severity, 'unknown') AS severity, i.status, i.source, i.imported,
       i.fingerprint, i.root_cause_category, i.slo_id, i.title, i.route,
       i.impact_start, i.detected_at, i.acknowledged_at, i.mitigated_at, i.resolved_at,
       i.postmortem_done_at, i.created_at,
       coalesce(i.impact_start, i.detected_at, i.created_at) AS placed_at,
       CAST(year(coalesce(i.impact_start, i.detected_at, i.created_at)) AS VARCHAR) || '-Q'
         || CAST(quarter(coalesce(i.impact_start, i.detected_at, i.created_at)) AS VARCHAR) AS quarter,
       i.resolved_at IS NULL AS open,
       {_DURATION_COLUMNS}
FROM incidents i
"""


def aggregate(column: str, prefix: str = "") -> str:
    """The one distribution of a duration column: count, p50 and p90 (linear interpolation
    between ranks, numpy's default) and the mean, as `<prefix>count, <prefix>p50, …`."""
    return (
        f"count({column}) AS {prefix}count, quantile_cont({column}, 0.5) AS {prefix}p50, "
        f"quantile_cont({column}, 0.9) AS {prefix}p90, avg({column}) AS {prefix}mean"
    )


def _aggregates(prefix: str = "") -> str:
    return ",\n       ".join(aggregate(m, f"{prefix}{m}_") for m in METRICS)


# Count, open count and each duration's count/p50/p90/mean per quarter, per quarter × severity, per
# quarter × service and per quarter × severity × service ('*' marks "all").
ROLLUP_SQL = f"""
WITH d AS (FROM {DURATIONS_TABLE})
SELECT quarter,
       CASE WHEN grouping(severity) = 1 THEN '*' ELSE severity END AS severity,
       CASE WHEN grouping(service) = 1 THEN '*' ELSE service END AS service,
       count(*) AS incidents, count(*) FILTER (WHERE open) AS open,
       {_aggregates()}
FROM d
GROUP BY GROUPING SETS ((quarter), (quarter, severity), (quarter, service), (quarter, severity, service))
ORDER BY quarter, severity, service
"""


def durations(con: duckdb.DuckDBPyConnection, quarter: str | None = None) -> list[dict[str, Any]]:
    """Every incident with its quarter and durations (optionally of one quarter), oldest first."""
    sql = f"SELECT * FROM {DURATIONS_TABLE} WHERE ? IS NULL OR quarter = ? ORDER BY placed_at, id"
    return records(con.execute(sql, [quarter, quarter]))


def rollup(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The quarterly roll-up (ROLLUP_SQL, materialised as ROLLUP_TABLE by the analytics stage) as dicts."""
    return records(con.execute(f"FROM {ROLLUP_TABLE} ORDER BY quarter, severity, service"))


def distribution(row: dict[str, Any], metric: str) -> dict[str, Any]:
    """`{count, p50, p90, mean}` of one metric from a rollup row (minutes, rounded to 0.001)."""
    return {
        "count": int(row.get(f"{metric}_count") or 0),
        "p50": round_figure(row.get(f"{metric}_p50")),
        "p90": round_figure(row.get(f"{metric}_p90")),
        "mean": round_figure(row.get(f"{metric}_mean")),
    }


@functools.cache
def _scratch() -> duckdb.DuckDBPyConnection:
    """An in-memory database for `summarise`, opened once: a connection costs ~70 ms, a cursor ~1 ms."""
    return duckdb.connect()


def summarise(values: Iterable[float]) -> dict[str, Any]:
    """`{count, p50, p90, mean}` of some durations (minutes, not rounded) by the roll-up's own SQL
    (`aggregate`), for a selection the roll-up has no row for (the dashboard's filters)."""
    clean = [float(v) for v in values if v is not None and not math.isnan(v)]
    with _scratch().cursor() as cur:
        row = cur.execute(
            f"SELECT {aggregate('x')} FROM (SELECT unnest(?::DOUBLE[]) AS x)", [clean]
        ).fetchone()
    count, p50, p90, mean = row or (0, None, None, None)
    return {"count": int(count), "p50": p50, "p90": p90, "mean": mean}


def percentiles(values: Iterable[float]) -> dict[str, Any]:
    """`{count, p50, p90, mean}` of some durations, rounded like `distribution`: every percentile the
    review, the Analytics page and the CLI show of a list of durations comes from here."""
    return {k: round_figure(v) for k, v in summarise(values).items()}


def empty_distribution() -> dict[str, Any]:
    return {"count": 0, "p50": None, "p90": None, "mean": None}


@dataclass(frozen=True)
class Comparison:
    """A quarter-over-quarter change in a median, with an honest verdict."""

    metric: str
    current_count: int
    previous_count: int
    current_p50: float | None
    previous_p50: float | None
    difference: float | None  # current − previous median, minutes
    ci_low: float | None
    ci_high: float | None
    verdict: str  # improved | worsened | inconclusive | too_few
    method: str

    def to_json(self) -> dict[str, Any]:
        return {k: round_figure(v) if isinstance(v, float) else v for k, v in self.__dict__.items()}


BOOTSTRAP_METHOD = (
    "bootstrap {level:.0%} CI of the difference in medians ({resamples:,} resamples, random seed {seed}); "
    "too_few when either quarter has fewer than {min_count} resolved incidents"
)


def compare_medians(
    metric: str,
    current: list[float],
    previous: list[float],
    *,
    min_count: int = 5,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Did the median duration change between two quarters? Lower is better for every MTTx.

    Resamples both quarters with replacement (fixed seed, so the verdict is reproducible), takes the
    percentile interval of the difference in medians, and calls it a change only when the interval
    excludes zero. With fewer than `min_count` values on either side the verdict is `too_few`.
    """
    method = BOOTSTRAP_METHOD.format(level=level, resamples=resamples, seed=seed, min_count=min_count)
    cur = np.asarray(current, dtype=float)
    prev = np.asarray(previous, dtype=float)
    cur_p50 = summarise(current)["p50"]
    prev_p50 = summarise(previous)["p50"]
    diff = cur_p50 - prev_p50 if cur_p50 is not None and prev_p50 is not None else None
    if len(cur) < min_count or len(prev) < min_count:
        return Comparison(metric, len(cur), len(prev), cur_p50, prev_p50, diff, None, None, "too_few", method)
    rng = np.random.default_rng(seed)
    boot_cur = np.median(rng.choice(cur, size=(resamples, len(cur)), replace=True), axis=1)
    boot_prev = np.median(rng.choice(prev, size=(resamples, len(prev)), replace=True), axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot_cur - boot_prev, [alpha, 1 - alpha])
    verdict = "inconclusive" if low <= 0 <= high else "improved" if high < 0 else "worsened"
    return Comparison(
        metric, len(cur), len(prev), cur_p50, prev_p50, diff, float(low), float(high), verdict, method
    )


def round_figure(value: Any, digits: int = 3) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, digits)
    return value


def records(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The rows of an executed query as dicts keyed by column name."""
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
