"""How much an incident hurt: when the impact started, and how much error budget it consumed.

`impact_start` (DESIGN §2: estimated from the SLI data where an incident is tied to an SLO):
walk back from the alert's start over the linked SLO's one-minute bad-event rate.
  1. baseline = Σbad / Σvalid over the `BASELINE_MINUTES` (7 days) before the look-back window;
     a minute is *elevated* when its bad share exceeds `max(2 × baseline, 1 − target)`, i.e. it burns
     budget faster than the SLO allows and clearly above the usual background.
  2. Starting at the last bucket before the alert start, go back minute by minute; the impact started at
     the earliest elevated minute reached before `QUIET_MINUTES` (10) consecutive non-elevated minutes
     with data (minutes without data neither extend nor end the stretch).
  3. The walk is bounded by `LOOKBACK_MINUTES` (24 h, longer than the slowest default ticket alert
     needs to fire); reaching the bound gives the bound itself (`sli_estimate_bounded`).
  4. No elevated minute at all (e.g. no data) → the earliest alert start (`alert_start`).

`budget_consumed` of a linked SLO = bad events (Σvalid − Σgood) in [impact_start, end), where end is
`resolved_at` (or now while open), divided by the SLO's allowed bad events `(1 − target) × Σvalid` over
the SLO window (its length W: 30d, or the nominal 30d/90d of a calendar month/quarter) ending at `end`.
1.0 means one whole window's budget. Background errors inside the span count too: they are part of
what the budget paid during the incident.

The arithmetic is pure (`estimate_impact_start`, `budget_share`); `*_sql` helpers fetch the buckets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from pipelines.timeutil import datetime_of, minute_of

BASELINE_MINUTES = 7 * 1440
LOOKBACK_MINUTES = 24 * 60
QUIET_MINUTES = 10


@dataclass(frozen=True)
class ImpactEstimate:
    start: dt.datetime
    source: str  # sli_estimate | sli_estimate_bounded | alert_start
    method: str  # one line a person can check: threshold, baseline, how far the walk went


def estimate_impact_start(
    minutes: Sequence[tuple[int, int, int]],
    alert_minute: int,
    target: float,
    baseline: float,
    *,
    lookback: int = LOOKBACK_MINUTES,
    quiet: int = QUIET_MINUTES,
) -> tuple[int | None, bool, float]:
    """(first impact minute or None, bounded?, threshold) from (minute, good, valid) buckets.

    Only buckets in [alert_minute − lookback, alert_minute) are considered.
    """
    threshold = max(2.0 * baseline, 1.0 - target)
    by_minute = {m: (g, v) for m, g, v in minutes if alert_minute - lookback <= m < alert_minute}
    earliest: int | None = None
    calm = 0
    m = alert_minute - 1
    while m >= alert_minute - lookback:
        bucket = by_minute.get(m)
        if bucket is not None and bucket[1] > 0:
            good, valid = bucket
            if (valid - good) / valid > threshold:
                earliest = m
                calm = 0
            else:
                calm += 1
                if earliest is not None and calm >= quiet:
                    return earliest, False, threshold
                if earliest is None and calm >= quiet:
                    # Nothing elevated right before the alert: the impact is not visible in this SLI.
                    return None, False, threshold
        m -= 1
    return earliest, earliest is not None, threshold


def budget_share(bad: int, window_valid: int, target: float) -> float | None:
    """bad / ((1 − target) × window_valid); None when the window holds no valid events."""
    allowed = (1.0 - target) * window_valid
    return None if allowed <= 0 else bad / allowed


# --- SQL adapters ---------------------------------------------------------------------------------


def _slo_row(con: duckdb.DuckDBPyConnection, slo_id: str) -> tuple[int, float, int] | None:
    row = con.execute(
        "SELECT slo_key, target, window_minutes FROM slos WHERE slo_id = ?", [slo_id]
    ).fetchone()
    return None if row is None else (int(row[0]), float(row[1]), int(row[2]))


def impact_start_for(
    con: duckdb.DuckDBPyConnection, slo_id: str | None, alert_start: dt.datetime
) -> ImpactEstimate:
    """The documented estimate for one SLO, or the alert start when there is no SLO or no signal."""
    fallback = ImpactEstimate(alert_start, "alert_start", "earliest alert start (no SLI signal before it)")
    slo = _slo_row(con, slo_id) if slo_id else None
    if slo is None:
        return fallback
    key, target, _ = slo
    m0 = minute_of(alert_start)
    lo = m0 - LOOKBACK_MINUTES
    # Baseline: the bad share over the week before the look-back window.
    base = con.execute(
        "SELECT coalesce(sum(valid - good), 0), coalesce(sum(valid), 0) FROM buckets"
        " WHERE slo_key = ? AND minute >= ? AND minute < ?",
        [key, lo - BASELINE_MINUTES, lo],
    ).fetchone()
    baseline = (base[0] / base[1]) if base and base[1] else 0.0
    # The one-minute buckets of the look-back window.
    rows = con.execute(
        "SELECT minute, good, valid FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ? "
        "ORDER BY minute",
        [key, lo, m0],
    ).fetchall()
    first, bounded, threshold = estimate_impact_start(
        [(int(m), int(g), int(v)) for m, g, v in rows], m0, target, baseline
    )
    if first is None:
        return fallback
    start = datetime_of(first).replace(tzinfo=None)
    method = (
        f"{slo_id}: first minute of the stretch with bad share > {threshold:.6g} "
        f"(max(2 × baseline {baseline:.6g}, 1 − target)) ending at the alert; "
        f"{m0 - first} min before the alert"
    )
    if bounded:
        return ImpactEstimate(
            start, "sli_estimate_bounded", method + f" (look-back bound {LOOKBACK_MINUTES} min)"
        )
    return ImpactEstimate(start, "sli_estimate", method)


def budget_consumed_for(
    con: duckdb.DuckDBPyConnection, slo_id: str, start: dt.datetime, end: dt.datetime
) -> float | None:
    """Share of `slo_id`'s window budget spent by bad events in [start, end) (see the module docstring)."""
    slo = _slo_row(con, slo_id)
    if slo is None:
        return None
    key, target, window = slo
    m_start, m_end = minute_of(start), minute_of(end)
    if m_end <= m_start:
        return 0.0
    # Bad events in the incident span, and valid events over the SLO window ending at the span's end.
    row = con.execute(
        """SELECT coalesce(sum(valid - good) FILTER (WHERE minute >= ?), 0),
                  coalesce(sum(valid), 0)
           FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ?""",
        [m_start, key, m_end - window, m_end],
    ).fetchone()
    if row is None:
        return None
    bad = int(row[0])
    if m_start < m_end - window:  # an incident longer than the window: count its whole span
        extra = con.execute(
            "SELECT coalesce(sum(valid - good), 0) FROM buckets WHERE slo_key = ? AND minute >= ? "
            "AND minute < ?",
            [key, m_start, m_end - window],
        ).fetchone()
        bad += int(extra[0]) if extra else 0
    return budget_share(bad, int(row[1]), target)


def span_counts(
    con: duckdb.DuckDBPyConnection, slo_id: str, start: dt.datetime, end: dt.datetime
) -> tuple[int, int] | None:
    """(bad, valid) events of `slo_id` in [start, end): what users met during the incident."""
    slo = _slo_row(con, slo_id)
    if slo is None:
        return None
    row = con.execute(
        "SELECT coalesce(sum(valid - good), 0), coalesce(sum(valid), 0) FROM buckets"
        " WHERE slo_key = ? AND minute >= ? AND minute < ?",
        [slo[0], minute_of(start), minute_of(end)],
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))
