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

The arithmetic is pure (`estimate_impact_start`, `budget_share`); the SQL adapters fetch the buckets.
`impact_starts` is the same estimate for any number of (SLO, alert start) pairs in a few set-based
queries (the baseline from the engine's hourly checkpoints plus at most an hour of buckets per end, the
walk as window functions over the look-back buckets); `impact_start_for` is its one-pair form, and the
pure function is the oracle it is tested against.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

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
    return impact_starts(con, [(slo_id, alert_start)])[0]


_MIN_MINUTE = -(2**31)
# Points whose bucket ranges lie within a day of each other share one bounded read of the buckets.
CLUSTER_GAP_MINUTES = 1440

# C(x) = Σ buckets before x, from the latest checkpoint at or before x (cumulative sums at hours).
_AT_CHECKPOINT_SQL = """
SELECT e.qid, e.slo_key, e.x, coalesce(c.minute, ?) AS h,
       coalesce(c.cum_good, 0) AS cg, coalesce(c.cum_valid, 0) AS cv
FROM (SELECT unnest(?::BIGINT[]) AS qid, unnest(?::INTEGER[]) AS slo_key, unnest(?::BIGINT[]) AS x) e
ASOF LEFT JOIN checkpoints c ON e.slo_key = c.slo_key AND e.x >= c.minute
"""

_CUMULATIVE_SQL = """
SELECT a.qid, a.cg + coalesce(sum(b.good), 0), a.cv + coalesce(sum(b.valid), 0)
FROM (SELECT unnest(?::BIGINT[]) AS qid, unnest(?::INTEGER[]) AS slo_key, unnest(?::BIGINT[]) AS x,
             unnest(?::BIGINT[]) AS h, unnest(?::BIGINT[]) AS cg, unnest(?::BIGINT[]) AS cv) a
LEFT JOIN (SELECT slo_key, minute, good, valid FROM buckets
           WHERE minute >= ? AND minute < ? AND slo_key IN (SELECT unnest(?::INTEGER[]))) b
  ON b.slo_key = a.slo_key AND b.minute >= a.h AND b.minute < a.x
GROUP BY a.qid, a.cg, a.cv
"""

# The walk back from the alert, for every request at once: over the look-back minutes with data,
# newest first (rn 1 = the minute before the alert), the walk stops at the first row that completes
# QUIET consecutive non-elevated rows; the impact starts at the earliest elevated minute before it.
_WALK_SQL = """
WITH w AS (
    SELECT r.qid, b.minute, (b.valid - b.good) / b.valid > r.threshold AS elevated,
           row_number() OVER (PARTITION BY r.qid ORDER BY b.minute DESC) AS rn
    FROM (SELECT unnest(?::BIGINT[]) AS qid, unnest(?::INTEGER[]) AS slo_key, unnest(?::BIGINT[]) AS m0,
                 unnest(?::BIGINT[]) AS lookback, unnest(?::DOUBLE[]) AS threshold) r
    JOIN (SELECT slo_key, minute, good, valid FROM buckets
          WHERE minute >= ? AND minute < ? AND valid > 0
            AND slo_key IN (SELECT unnest(?::INTEGER[]))) b
      ON b.slo_key = r.slo_key AND b.minute >= r.m0 - r.lookback AND b.minute < r.m0
), runs AS (
    SELECT *, sum(CASE WHEN elevated THEN 1 ELSE 0 END) OVER last_q AS elevated_in_run,
              count(*) OVER last_q AS run_length
    FROM w
    WINDOW last_q AS (PARTITION BY qid ORDER BY rn ROWS BETWEEN {quiet_before} PRECEDING AND CURRENT ROW)
), stops AS (
    SELECT qid, min(rn) FILTER (WHERE run_length = {quiet} AND elevated_in_run = 0) AS stop_rn
    FROM runs GROUP BY qid
)
SELECT r.qid, min(r.minute) FILTER (WHERE r.elevated AND (s.stop_rn IS NULL OR r.rn < s.stop_rn)),
       bool_and(s.stop_rn IS NULL)
FROM runs r JOIN stops s USING (qid)
GROUP BY r.qid
"""


def cumulative_sums(
    con: duckdb.DuckDBPyConnection, points: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """C(x) = (Σgood, Σvalid) of the buckets before minute x, for each (slo_key, x), in order.

    From the engine's latest checkpoint at or before x (cumulative sums at hour boundaries, rebuilt by
    every evaluation before the incident stage runs) plus the buckets from it to x: at most an hour of
    buckets per point, read in one bounded query per cluster of nearby points."""
    if not points:
        return []
    # Parameters, not registered tables: a caller's unfinished result never gets in the way.
    rows = con.execute(
        _AT_CHECKPOINT_SQL,
        [_MIN_MINUTE, list(range(len(points))), [k for k, _ in points], [x for _, x in points]],
    ).fetchall()
    out: list[tuple[int, int]] = [(0, 0)] * len(points)
    for group in _clusters([(int(r[3]), int(r[2])) for r in rows]):  # each reads buckets [h, x)
        cluster = [rows[i] for i in group]
        columns = [[int(r[i]) for r in cluster] for i in range(6)]  # qid, slo_key, x, h, cg, cv
        if all(h >= x for x, h in zip(columns[2], columns[3], strict=True)):
            for qid, cg, cv in zip(columns[0], columns[4], columns[5], strict=True):
                out[qid] = (cg, cv)  # every point on its checkpoint: no bucket to add
            continue
        lo, hi = min(columns[3]), max(columns[2])
        keys = sorted(set(columns[1]))
        for qid, g, v in con.execute(_CUMULATIVE_SQL, [*columns, lo, hi, keys]).fetchall():
            out[int(qid)] = (int(g), int(v))
    return out


def _clusters(spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The indexes of `spans` (minute ranges [first, end)), in order of their first minute, grouped so
    that each range starts within CLUSTER_GAP_MINUTES of the group's reach: one bounded read of the
    buckets serves a group."""
    groups: list[list[int]] = []
    reach = _MIN_MINUTE
    for i in sorted(range(len(spans)), key=lambda i: spans[i][0]):
        first, end = spans[i]
        if groups and first <= reach + CLUSTER_GAP_MINUTES:
            groups[-1].append(i)
            reach = max(reach, end)
        else:
            groups.append([i])
            reach = end
    return groups


DAY_MINUTES = 1440


class CumulativeSums:
    """`cumulative_sums`, remembered a day of buckets at a time: the first point in a day reads that
    day's buckets once (with the checkpoint before it), and every later point in it, or bucket range
    read through `rows`, is answered from memory. A budget share, a span's counts and the recovery
    watch each cycle mostly ask about the same few days again (an open incident's start, now, now − W).

    Only valid while the buckets do not change: the incident stage writes none, so one lives for a
    stage run (`stage.process`), or across every run of a replay of stored history, which writes none."""

    def __init__(self) -> None:
        # (slo_key, day) → the day's minutes with data, their good and valid counts, and C at each of
        # them (index i: the sums of every bucket before minutes[i]; the last entry: before the next day)
        self._days: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}

    def __call__(
        self, con: duckdb.DuckDBPyConnection, points: Sequence[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """C(x) for each (slo_key, x), in order: what `cumulative_sums` returns."""
        self._load(con, {(key, x // DAY_MINUTES) for key, x in points})
        out = []
        for key, x in points:
            minutes, _, _, cum_good, cum_valid = self._days[(key, x // DAY_MINUTES)]
            i = int(np.searchsorted(minutes, x))
            out.append((int(cum_good[i]), int(cum_valid[i])))
        return out

    def rows(
        self, con: duckdb.DuckDBPyConnection, key: int, start: int, stop: int
    ) -> list[tuple[int, int, int]]:
        """The buckets (minute, good, valid) of `key` in [start, stop), in minute order."""
        if stop <= start:
            return []
        days = range(start // DAY_MINUTES, (stop - 1) // DAY_MINUTES + 1)
        self._load(con, {(key, day) for day in days})
        out: list[tuple[int, int, int]] = []
        for day in days:
            minutes, good, valid, _, _ = self._days[(key, day)]
            lo, hi = np.searchsorted(minutes, [start, stop])
            out += zip(minutes[lo:hi].tolist(), good[lo:hi].tolist(), valid[lo:hi].tolist(), strict=True)
        return out

    def _load(self, con: duckdb.DuckDBPyConnection, wanted: set[tuple[int, int]]) -> None:
        """Read the days not remembered yet: C at each day's start from the latest checkpoint at or
        before it (one query), then every bucket from that checkpoint to the day's end, one bounded
        read per cluster of nearby days."""
        missing = sorted(wanted - self._days.keys(), key=lambda kd: (kd[1], kd[0]))
        if not missing:
            return
        starts = [day * DAY_MINUTES for _, day in missing]
        at_checkpoint = con.execute(
            _AT_CHECKPOINT_SQL,
            [_MIN_MINUTE, list(range(len(missing))), [key for key, _ in missing], starts],
        ).fetchall()
        # qid → (checkpoint minute h, C(h) good, C(h) valid)
        base = {int(r[0]): (int(r[3]), int(r[4]), int(r[5])) for r in at_checkpoint}
        spans = [(base[q][0], starts[q] + DAY_MINUTES) for q in range(len(missing))]  # buckets read
        for cluster in _clusters(spans):
            lo = min(base[q][0] for q in cluster)
            hi = max(starts[q] + DAY_MINUTES for q in cluster)
            keys = sorted({missing[q][0] for q in cluster})
            read = con.execute(
                "SELECT slo_key, minute, good, valid FROM buckets WHERE minute >= ? AND minute < ? "
                "AND slo_key IN (SELECT unnest(?::INTEGER[])) ORDER BY slo_key, minute",
                [lo, hi, keys],
            ).fetchnumpy()
            by_key = {
                key: (
                    read["minute"][mask].astype(np.int64),
                    read["good"][mask].astype(np.int64),
                    read["valid"][mask].astype(np.int64),
                )
                for key in keys
                for mask in [read["slo_key"] == key]
            }
            for qid in cluster:
                key, day = missing[qid]
                h, good0, valid0 = base[qid]
                minutes, good, valid = by_key[key]
                a, b, c = np.searchsorted(minutes, [h, starts[qid], starts[qid] + DAY_MINUTES])
                # C at the day's start: the checkpoint plus the buckets after it
                good0 += int(good[a:b].sum())
                valid0 += int(valid[a:b].sum())
                self._days[(key, day)] = (
                    minutes[b:c],
                    good[b:c],
                    valid[b:c],
                    np.concatenate(([good0], good0 + np.cumsum(good[b:c]))),
                    np.concatenate(([valid0], valid0 + np.cumsum(valid[b:c]))),
                )


def impact_starts(
    con: duckdb.DuckDBPyConnection,
    requests: Sequence[tuple[str | None, dt.datetime]],
    *,
    lookback: int = LOOKBACK_MINUTES,
    quiet: int = QUIET_MINUTES,
) -> list[ImpactEstimate]:
    """`impact_start_for` of each (slo_id, alert start), in request order, in a few set-based queries
    whatever the number of requests (the same definition as `estimate_impact_start`)."""
    out = [
        ImpactEstimate(start, "alert_start", "earliest alert start (no SLI signal before it)")
        for _, start in requests
    ]
    wanted = sorted({slo for slo, _ in requests if slo})
    slos = (
        {
            str(r[0]): (int(r[1]), float(r[2]))
            for r in con.execute(
                "SELECT slo_id, slo_key, target FROM slos WHERE slo_id IN (SELECT unnest(?::VARCHAR[]))",
                [wanted],
            ).fetchall()
        }
        if wanted
        else {}
    )
    reqs = [
        (q, slo, slos[slo][0], minute_of(start), slos[slo][1])
        for q, (slo, start) in enumerate(requests)
        if slo and slo in slos
    ]
    if not reqs:
        return out
    keys = sorted({key for _, _, key, _, _ in reqs})
    m0s = [m0 for _, _, _, m0, _ in reqs]
    # Baseline: the bad share over the BASELINE_MINUTES before the look-back window, as C(hi) − C(lo).
    ends = cumulative_sums(
        con,
        [(key, m0 - lookback - BASELINE_MINUTES) for _, _, key, m0, _ in reqs]
        + [(key, m0 - lookback) for _, _, key, m0, _ in reqs],
    )
    sums = {(q, side): ends[side * len(reqs) + i] for side in (0, 1) for i, (q, *_) in enumerate(reqs)}
    baselines: dict[int, float] = {}
    thresholds: dict[int, float] = {}
    for q, _, _, _, target in reqs:
        g0, v0 = sums[(q, 0)]
        g1, v1 = sums[(q, 1)]
        bad, valid = (v1 - v0) - (g1 - g0), v1 - v0
        baselines[q] = (bad / valid) if valid else 0.0
        thresholds[q] = max(2.0 * baselines[q], 1.0 - target)
    walked = {
        int(qid): (None if first is None else int(first), bool(unbounded))
        for qid, first, unbounded in con.execute(
            _WALK_SQL.format(quiet=int(quiet), quiet_before=int(quiet) - 1),
            [
                [q for q, *_ in reqs],
                [key for _, _, key, _, _ in reqs],
                m0s,
                [lookback] * len(reqs),
                [thresholds[q] for q, *_ in reqs],
                min(m0s) - lookback,
                max(m0s),
                keys,
            ],
        ).fetchall()
    }
    for q, slo, _, m0, _ in reqs:
        first, unbounded = walked.get(q, (None, False))
        if first is None:
            continue
        baseline, threshold = baselines[q], thresholds[q]
        method = (
            f"{slo}: first minute of the stretch with bad share > {threshold:.6g} "
            f"(max(2 × baseline {baseline:.6g}, 1 − target)) ending at the alert; "
            f"{m0 - first} min before the alert"
        )
        start = datetime_of(first).replace(tzinfo=None)
        if unbounded:
            out[q] = ImpactEstimate(
                start, "sli_estimate_bounded", method + f" (look-back bound {LOOKBACK_MINUTES} min)"
            )
        else:
            out[q] = ImpactEstimate(start, "sli_estimate", method)
    return out


def budgets_consumed(
    con: duckdb.DuckDBPyConnection,
    requests: Sequence[tuple[str, dt.datetime, dt.datetime]],
    sums: CumulativeSums | None = None,
) -> list[float | None]:
    """`budget_consumed_for(con, slo_id, start, end)` of each request, in order, from the cumulative
    sums at three minutes per request (`cumulative_sums`, or the remembered `sums`): bad in
    [start, end) = C(end) − C(start), the window's valid events = C(end) − C(end − W)."""
    ids = sorted({slo for slo, _, _ in requests})
    slos = (
        {
            str(r[0]): (int(r[1]), float(r[2]), int(r[3]))
            for r in con.execute(
                "SELECT slo_id, slo_key, target, window_minutes FROM slos "
                "WHERE slo_id IN (SELECT unnest(?::VARCHAR[]))",
                [ids],
            ).fetchall()
        }
        if ids
        else {}
    )
    out: list[float | None] = [None] * len(requests)
    todo = []
    for i, (slo, start, end) in enumerate(requests):
        if slo not in slos:
            continue
        m_start, m_end = minute_of(start), minute_of(end)
        if m_end <= m_start:
            out[i] = 0.0
            continue
        todo.append((i, slos[slo], m_start, m_end))
    points = [
        (key, x) for _, (key, _, window), m_start, m_end in todo for x in (m_start, m_end - window, m_end)
    ]
    at = (sums or cumulative_sums)(con, points) if points else []
    for n, (i, (_, target, _), _, _) in enumerate(todo):
        (g0, v0), (_, vw), (g1, v1) = at[3 * n : 3 * n + 3]
        out[i] = budget_share((v1 - v0) - (g1 - g0), v1 - vw, target)
    return out


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


def spans_counts(
    con: duckdb.DuckDBPyConnection,
    requests: Sequence[tuple[str, dt.datetime, dt.datetime]],
    sums: CumulativeSums | None = None,
) -> list[tuple[int, int] | None]:
    """`span_counts` of each (slo_id, start, end), in order: C(end) − C(start) for all at once (from
    the remembered `sums` when given)."""
    ids = sorted({slo for slo, _, _ in requests})
    keys = (
        {
            str(r[0]): int(r[1])
            for r in con.execute(
                "SELECT slo_id, slo_key FROM slos WHERE slo_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
            ).fetchall()
        }
        if ids
        else {}
    )
    out: list[tuple[int, int] | None] = [None] * len(requests)
    todo = []
    for i, (slo, start, end) in enumerate(requests):
        if slo not in keys:
            continue
        m_start, m_end = minute_of(start), minute_of(end)
        if m_end <= m_start:
            out[i] = (0, 0)
        else:
            todo.append((i, keys[slo], m_start, m_end))
    points = [(key, m) for _, key, m_start, m_end in todo for m in (m_start, m_end)]
    at = (sums or cumulative_sums)(con, points) if points else []
    for n, (i, _, _, _) in enumerate(todo):
        (g0, v0), (g1, v1) = at[2 * n], at[2 * n + 1]
        out[i] = ((v1 - v0) - (g1 - g0), v1 - v0)
    return out


def span_counts(
    con: duckdb.DuckDBPyConnection, slo_id: str, start: dt.datetime, end: dt.datetime
) -> tuple[int, int] | None:
    """(bad, valid) events of `slo_id` in [start, end): what users met during the incident."""
    return spans_counts(con, [(slo_id, start, end)])[0]
