"""The SLO engine: SLIs, burn rates, error budgets, policy states and alert intervals (DESIGN §2).

`FORMULA_SQL` (built by `formula_sql`) is the definition in one place: SLI, burn rate, budget
remaining, policy state and firing alert conditions, from *window sums* (Σgood, Σvalid over
`[T−W, T)` for every evaluation instant T). Threshold comparisons are exact integer arithmetic on
the fractions of the target and factors, so "exactly 50 % left" or "burn exactly 14.4" land on the
side DESIGN §2 says, not on a rounding error's side. Three ways use it:

* Whole histories (demo, backfills, new SLOs): buckets are read once as Arrow batches and scattered
  into a dense per-minute grid (never sorted), then `fold_kernels.evaluate_block` computes what the
  formula computes with cumulative sums in numpy, only where it is stored, with the same exact
  int64 comparisons and the same floating-point operations (tests/unit/test_fold_kernels.py
  checks every stored row against the SQL). When int64 could overflow, the SQL formula runs on
  `dense_window_sums` instead.
* `point_window_sums` — cumulative sums looked up from hourly checkpoints plus at most an hour of
  raw buckets, for a few new minutes (the steady state) and for `slo status --at T`, through the
  SQL formula. Its cost is proportional to the minutes evaluated, not to the history.
"""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import fold_kernels
from pipelines.fold_kernels import CHECKPOINT_STEP, SERIES_STEP, period_start
from pipelines.model import STANDARD_BURN_WINDOWS, Slo
from pipelines.partitions import database_dir, mark_changed, open_rows, store_rows, store_view

INCREMENTAL_LIMIT = 1440  # re-evaluate more minutes than this with the dense fold instead
STATE_NAMES = ("normal", "freeze_review", "reliability_focus", "exhausted")
# The same names as a SQL list, indexed by state code + 1 (DuckDB lists are 1-based).
STATE_LIST_SQL = "[" + ", ".join(f"'{name}'" for name in STATE_NAMES) + "]"

Progress = Callable[[int, int], None]


@functools.lru_cache(maxsize=4096)  # a fleet shares a few targets and factors
def exact(value: float) -> Fraction:
    """The fraction a spec number stands for (0.9995 → 1999/2000, 0.9333… → 14/15)."""
    frac = Fraction(repr(value))
    return frac.limit_denominator(10**6) if frac.denominator > 10**6 else frac


@dataclass(frozen=True)
class EngineSlo:
    """What the engine needs of one SLO, with the target and factors as exact fractions."""

    key: int
    slo: Slo

    @property
    def budget_fraction(self) -> Fraction:
        return 1 - exact(self.slo.target)

    def thresholds(self) -> list[tuple[int, int, int, int]]:
        """Per alert condition: (long, short, num, den) with bad/valid > num/den meaning firing."""
        out = []
        for alert in self.slo.alerts:
            thr = exact(alert.factor) * self.budget_fraction
            out.append((alert.long_window, alert.short_window, thr.numerator, thr.denominator))
        return out


def burn_windows(slos: Iterable[EngineSlo]) -> list[int]:
    """The windows whose sums are needed: the seven standard ones and every alert's windows."""
    windows = set(STANDARD_BURN_WINDOWS.values())
    for es in slos:
        for alert in es.slo.alerts:
            windows.update((alert.long_window, alert.short_window))
    return sorted(windows)


def max_conditions(slos: Iterable[EngineSlo]) -> int:
    return max((len(es.slo.alerts) for es in slos), default=0)


def params_table(slos: Sequence[EngineSlo], k: int) -> pa.Table:
    """One row per SLO: budget fraction and its alert conditions as columns c0…c{k-1}."""
    cols: dict[str, list[object]] = {"slo_key": [], "bf_num": [], "bf_den": []}
    for i in range(k):
        for part in ("long", "short", "num", "den"):
            cols[f"c{i}_{part}"] = []
    for es in slos:
        bf = es.budget_fraction
        cols["slo_key"].append(es.key)
        cols["bf_num"].append(bf.numerator)
        cols["bf_den"].append(bf.denominator)
        conds = es.thresholds()
        for i in range(k):
            values = conds[i] if i < len(conds) else (None, None, None, None)
            for part, value in zip(("long", "short", "num", "den"), values, strict=True):
                cols[f"c{i}_{part}"].append(value)
    types = {name: pa.int64() for name in cols}
    types["slo_key"] = pa.int32()
    return pa.table({name: pa.array(vals, type=types[name]) for name, vals in cols.items()})


def _state_sql(g: str, v: str, exact_type: str) -> str:
    # budget_remaining r = 1 − B/A with B = bad·bf_den and A = valid·bf_num (exact integers):
    # r > ½ ⇔ 2B < A;  ¼ ≤ r ≤ ½ ⇔ 4B ≤ 3A;  0 < r < ¼ ⇔ B < A;  r ≤ 0 otherwise.
    b = f"(({v} - {g})::{exact_type} * p.bf_den)"
    a = f"({v}::{exact_type} * p.bf_num)"
    return (
        f"CASE WHEN coalesce({v}, 0) = 0 THEN NULL WHEN 2 * {b} < {a} THEN 0 "
        f"WHEN 4 * {b} <= 3 * {a} THEN 1 WHEN {b} < {a} THEN 2 ELSE 3 END"
    )


def _condition_sql(i: int, side: str, windows: Sequence[int], exact_type: str) -> str:
    # bad/valid > num/den ⇔ bad·den > num·valid; false when the window holds no valid events.
    cases = " ".join(
        f"WHEN {w} THEN (w.v_{w} - w.g_{w})::{exact_type} * p.c{i}_den > p.c{i}_num::{exact_type} * w.v_{w}"
        for w in windows
    )
    return f"(CASE p.c{i}_{side} {cases} ELSE FALSE END)"


def exact_type(ws: pa.Table, params: pa.Table) -> str:
    """DOUBLE when every product in the threshold comparisons stays below 2^53 (so is exact),
    else HUGEINT: the comparisons are exact either way, DOUBLE is several times faster."""
    biggest_count = max(
        (pc.max(ws.column(c)).as_py() or 0 for c in ws.column_names if c.startswith("v_")),
        default=0,
    )
    biggest_coef = max(
        (
            pc.max(params.column(c)).as_py() or 0
            for c in params.column_names
            if c.startswith(("bf_", "c")) and not c.endswith(("_long", "_short"))
        ),
        default=0,
    )
    return "DOUBLE" if 4 * biggest_count * max(biggest_coef, 1) < 2**53 else "HUGEINT"


def formula_sql(
    windows: Sequence[int], k: int, source: str = "ws", where: str = "", exact: str = "HUGEINT"
) -> str:
    """SQL turning window sums (`source`) into the evaluation of every row (DESIGN §2).

    `exact` is the type of the integer products in threshold comparisons (see `exact_type`).
    """
    burns = ",\n  ".join(
        f"CASE WHEN w.v_{m} > 0 THEN ((w.v_{m} - w.g_{m})::DOUBLE * p.bf_den) "
        f"/ (w.v_{m}::DOUBLE * p.bf_num) END AS burn_{name}"
        for name, m in STANDARD_BURN_WINDOWS.items()
    )
    firing = (
        " + ".join(
            f"(CASE WHEN {_condition_sql(i, 'long', windows, exact)} "
            f"AND {_condition_sql(i, 'short', windows, exact)} "
            f"THEN {1 << i} ELSE 0 END)"
            for i in range(k)
        )
        or "0"
    )
    return f"""
-- Evaluation at each instant t: SLI, budget remaining, policy state (now and one minute earlier),
-- burn rates over the standard windows, and the bitmask of firing alert conditions.
SELECT w.slo_key, w.t,
  CASE WHEN w.v_slo > 0 THEN w.g_slo::DOUBLE / w.v_slo END AS sli,
  CASE WHEN w.v_slo > 0 THEN 1 - ((w.v_slo - w.g_slo)::DOUBLE * p.bf_den) / (w.v_slo::DOUBLE * p.bf_num)
  END AS budget_remaining,
  w.g_slo AS good_slo, w.v_slo AS valid_slo,
  ({_state_sql("w.g_slo", "w.v_slo", exact)})::TINYINT AS state,
  ({_state_sql("w.g_prev", "w.v_prev", exact)})::TINYINT AS prev_state,
  {burns},
  ({firing})::INTEGER AS firing
FROM {source} w JOIN params p USING (slo_key)
{where}
"""


# ---------------------------------------------------------------------------------------------
# Dense fold: whole histories


@dataclass
class DenseResult:
    ws: pa.Table  # window sums per evaluation instant
    checkpoints: pa.Table  # slo_key, minute, cum_good, cum_valid


def dense_window_sums(
    slos: Sequence[EngineSlo],
    first_minute: dict[int, int],
    end: int,
    key: np.ndarray,
    minute: np.ndarray,
    good: np.ndarray,
    valid: np.ndarray,
    windows: Sequence[int],
) -> DenseResult:
    """Window sums for every instant T in (first, end] of each SLO, from its raw buckets.

    `key, minute, good, valid` are the SLOs' buckets in any order (unique per key and minute).
    Bucket m is the minute [m, m+1); the row for bucket m is the evaluation at T = m + 1.
    """
    keys = np.array([es.key for es in slos], dtype=np.int64)
    lo = np.array([first_minute[es.key] for es in slos], dtype=np.int64)
    n = np.maximum(end - lo, 0)
    starts = np.concatenate(([0], np.cumsum(n)[:-1])).astype(np.int64)
    total = int(n.sum())

    order = np.argsort(keys)
    slot = np.searchsorted(keys[order], key)
    slot = order[np.clip(slot, 0, len(keys) - 1)]
    rel = minute.astype(np.int64) - lo[slot]
    keep = (keys[slot] == key) & (rel >= 0) & (rel < n[slot])
    pos = starts[slot[keep]] + rel[keep]
    g = np.zeros(total, dtype=np.int64)
    v = np.zeros(total, dtype=np.int64)
    g[pos] = good[keep]
    v[pos] = valid[keep]

    cg = np.cumsum(g)
    cv = np.cumsum(v)
    del g, v
    block = np.repeat(np.arange(len(slos), dtype=np.int32), n)
    bases_g = np.where(starts > 0, cg[np.maximum(starts - 1, 0)], 0)
    bases_v = np.where(starts > 0, cv[np.maximum(starts - 1, 0)], 0)
    spans = [(int(s0), int(s0 + nb)) for s0, nb in zip(starts, n, strict=True)]

    def window_sum(c: np.ndarray, bases: np.ndarray, widths: Sequence[int]) -> np.ndarray:
        # C(T) − C(T − W) block by block with slices: the first W instants of a block reach back
        # before its first bucket, where C is the block's base.
        out = np.empty_like(c)
        for (s0, e0), base, w in zip(spans, bases, widths, strict=True):
            seg, dst = c[s0:e0], out[s0:e0]
            np.subtract(seg, base, out=dst)
            if w < e0 - s0:
                np.subtract(seg[w:], seg[:-w], out=dst[w:])
        return out

    offset = np.arange(total, dtype=np.int64) - starts[block]
    cols: dict[str, np.ndarray] = {
        "slo_key": keys[block].astype(np.int32),
        "t": (lo[block] + offset + 1).astype(np.int32),
    }
    for w in windows:
        cols[f"g_{w}"] = window_sum(cg, bases_g, [w] * len(slos))
        cols[f"v_{w}"] = window_sum(cv, bases_v, [w] * len(slos))

    # The SLO window: rolling (per SLO length) or calendar (since the start of the period that
    # contains the latest bucket, T − 1m).
    slo_w = [es.slo.window.minutes for es in slos]
    g_slo = window_sum(cg, bases_g, slo_w)
    v_slo = window_sum(cv, bases_v, slo_w)
    for cal in sorted({es.slo.window.period_key for es in slos} - {""}):
        sel_blocks = np.array([es.slo.window.period_key == cal for es in slos])
        if not sel_blocks.any():
            continue
        rows = sel_blocks[block]
        index = np.flatnonzero(rows)
        first_pos = starts[block[rows]]
        bucket_minute = lo[block[rows]] + offset[rows]
        ps_off = period_start(bucket_minute, cal) - lo[block[rows]]
        at = first_pos + ps_off - 1  # position of the bucket just before the period starts
        base_g_rows, base_v_rows = bases_g[block[rows]], bases_v[block[rows]]
        g_slo[rows] = cg[index] - np.where(ps_off > 0, cg[np.maximum(at, 0)], base_g_rows)
        v_slo[rows] = cv[index] - np.where(ps_off > 0, cv[np.maximum(at, 0)], base_v_rows)
    cols["g_slo"], cols["v_slo"] = g_slo, v_slo
    first = starts[n > 0]
    g_prev = np.empty_like(g_slo)
    v_prev = np.empty_like(v_slo)
    g_prev[1:], v_prev[1:] = g_slo[:-1], v_slo[:-1]
    g_prev[first], v_prev[first] = 0, 0
    cols["g_prev"], cols["v_prev"] = g_prev, v_prev

    # Hourly checkpoints C(h) = Σ buckets < h, for every hour boundary h in (first, end].
    at_hour = np.flatnonzero(cols["t"] % CHECKPOINT_STEP == 0)
    checkpoints = pa.table(
        {
            "slo_key": cols["slo_key"][at_hour],
            "minute": cols["t"][at_hour],
            "cum_good": cg[at_hour] - bases_g[block[at_hour]],
            "cum_valid": cv[at_hour] - bases_v[block[at_hour]],
        }
    )
    return DenseResult(ws=pa.table(cols), checkpoints=checkpoints)


# ---------------------------------------------------------------------------------------------
# Point lookups: a few minutes, or one instant


def cumulative_range(
    con: duckdb.DuckDBPyConnection, keys: np.ndarray, lo: int, hi: int, trusted_to: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """C(x) = Σ buckets < x for every x in [lo, hi], per key: arrays of shape (len(keys), hi-lo+1).

    Reads the checkpoint at the hour boundary at or before `lo` and the raw buckets from there to
    `hi`: at most an hour plus the range, whatever the length of the history. Checkpoints after
    `trusted_to` (being rebuilt because buckets before them changed) are never read.
    """
    start = lo if trusted_to is None else min(lo, trusted_to)
    h0 = start - start % CHECKPOINT_STEP
    width = hi - h0 + 1
    order = np.argsort(keys)
    cg = np.zeros((len(keys), width), dtype=np.int64)
    cv = np.zeros((len(keys), width), dtype=np.int64)
    key_list = [int(k) for k in keys]
    # -- Checkpointed cumulative sums at hour h0 for the requested SLOs.
    base = con.execute(
        "SELECT slo_key, cum_good, cum_valid FROM checkpoints WHERE minute = ? AND slo_key IN "
        "(SELECT unnest(?::INTEGER[]))",
        [h0, key_list],
    ).fetchnumpy()
    # -- Raw buckets in [h0, hi) for the requested SLOs.
    raw = con.execute(
        "SELECT slo_key, minute, good, valid FROM buckets WHERE minute >= ? AND minute < ? "
        "AND slo_key IN (SELECT unnest(?::INTEGER[]))",
        [h0, hi, key_list],
    ).fetchnumpy()
    # buckets hold one row per SLO and minute (write_buckets), so plain assignment is exact
    rows = order[np.searchsorted(keys[order], raw["slo_key"])]
    cols = raw["minute"].astype(np.int64) - h0 + 1
    cg[rows, cols] = raw["good"]
    cv[rows, cols] = raw["valid"]
    cg = np.cumsum(cg, axis=1)
    cv = np.cumsum(cv, axis=1)
    brows = order[np.searchsorted(keys[order], base["slo_key"])]
    cg[brows] += base["cum_good"].astype(np.int64)[:, None]
    cv[brows] += base["cum_valid"].astype(np.int64)[:, None]
    return cg[:, lo - h0 :], cv[:, lo - h0 :]


def point_window_sums(
    con: duckdb.DuckDBPyConnection,
    slos: Sequence[EngineSlo],
    a: int,
    b: int,
    windows: Sequence[int],
) -> tuple[pa.Table, tuple[np.ndarray, np.ndarray]]:
    """Window sums for every instant T in [a, b] of the given SLOs, by checkpoint lookups.

    Also returns C(T) for T in [a − 1, b] (shape (len(slos), b − a + 2)) to extend checkpoints.
    """
    keys = np.array([es.key for es in slos], dtype=np.int64)
    span = b - a + 1
    trusted = a - 1  # checkpoints after a − 1 may be stale (buckets from a − 1 on were rewritten)
    cg_t, cv_t = cumulative_range(con, keys, a - 1, b, trusted)  # C(T) for T in [a−1, b]
    now_g, now_v = cg_t[:, 1:], cv_t[:, 1:]
    cols: dict[str, np.ndarray] = {
        "slo_key": np.repeat(keys, span).astype(np.int32),
        "t": np.tile(np.arange(a, b + 1, dtype=np.int64), len(keys)).astype(np.int32),
    }
    for w in windows:
        lg, lv = cumulative_range(con, keys, a - w, b - w, trusted)
        cols[f"g_{w}"] = (now_g - lg).ravel()
        cols[f"v_{w}"] = (now_v - lv).ravel()

    # SLO window over [a−1, b] (the extra leading instant gives the previous state of T = a).
    g_slo = np.zeros((len(keys), span + 1), dtype=np.int64)
    v_slo = np.zeros((len(keys), span + 1), dtype=np.int64)
    rolling: dict[int, list[int]] = {}
    for i, es in enumerate(slos):
        if es.slo.window.kind == "rolling":
            rolling.setdefault(es.slo.window.minutes, []).append(i)
        else:
            ts = np.arange(a - 1, b + 1, dtype=np.int64)
            starts = period_start(ts - 1, es.slo.window.period_key)
            for ps in np.unique(starts):
                cg_p, cv_p = cumulative_range(con, keys[i : i + 1], int(ps), int(ps), trusted)
                sel = starts == ps
                g_slo[i, sel] = cg_t[i, sel] - cg_p[0, 0]
                v_slo[i, sel] = cv_t[i, sel] - cv_p[0, 0]
    for w, rows in rolling.items():
        lg, lv = cumulative_range(con, keys[rows], a - 1 - w, b - w, trusted)
        g_slo[rows] = cg_t[rows] - lg
        v_slo[rows] = cv_t[rows] - lv
    cols["g_slo"], cols["v_slo"] = g_slo[:, 1:].ravel(), v_slo[:, 1:].ravel()
    cols["g_prev"], cols["v_prev"] = g_slo[:, :-1].ravel(), v_slo[:, :-1].ravel()
    return pa.table(cols), (cg_t, cv_t)


# ---------------------------------------------------------------------------------------------
# Reductions: per-minute evaluation → stored alert intervals, policy transitions, chart series


def _apply_evaluation(
    con: duckdb.DuckDBPyConnection,
    ws: pa.Table,
    params: pa.Table,
    windows: Sequence[int],
    k: int,
    first_t: int,
    last_t: int,
) -> int:
    """Evaluate `ws` (instants first_t…last_t) and fold the result into the stored tables."""
    exact = exact_type(ws, params)
    t = ws.column("t").to_numpy()
    con.register("ws", ws)
    con.register("ws_series", ws.filter(pa.array(t % SERIES_STEP == 0)))
    con.register("params", params)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE ev AS SELECT slo_key, t, state, prev_state, firing, "
            f"budget_remaining "
            f"FROM ({formula_sql(windows, k, exact=exact)})"
        )
        # -- Chart series: every SERIES_STEP minutes, the full evaluation.
        con.execute(
            f"""INSERT INTO {SERIES_ROWS} SELECT slo_key, t, sli, budget_remaining,
                 {STATE_LIST_SQL}[state + 1],
                 burn_5m, burn_30m, burn_1h, burn_2h, burn_6h, burn_1d, burn_3d, firing
               FROM ({formula_sql(windows, k, source="ws_series", exact=exact)})"""
        )
        # -- Policy state changes, the first known state included.
        con.execute(
            f"""INSERT INTO policy_transitions
               SELECT e.slo_key, e.t, {STATE_LIST_SQL}[e.prev_state + 1], {STATE_LIST_SQL}[e.state + 1],
                 e.budget_remaining
               FROM ev e WHERE e.state IS DISTINCT FROM e.prev_state"""
        )
        _fold_intervals(con, k, first_t, last_t)
        return int(ws.num_rows)
    finally:
        for name in ("ws", "ws_series", "params"):
            con.unregister(name)


def _fold_intervals(con: duckdb.DuckDBPyConnection, k: int, first_t: int, last_t: int) -> None:
    """Turn firing bits of `ev` (instants first_t…last_t) into [start, end) alert intervals.

    An interval left open by an earlier run (end NULL) continues when its condition still holds
    at first_t, and is closed at first_t otherwise. Intervals reaching last_t stay open.
    """
    for bit in range(k):
        mask = 1 << bit
        # -- Runs of consecutive firing instants per SLO for this condition (gaps and islands).
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE firing_runs AS
                SELECT slo_key, min(t) AS s, max(t) + 1 AS e FROM (
                  SELECT slo_key, t, t - row_number() OVER (PARTITION BY slo_key ORDER BY t) AS island
                  FROM ev WHERE firing & {mask} <> 0)
                GROUP BY slo_key, island"""
        )
        # -- Open intervals that continue at first_t absorb the run starting there.
        con.execute(
            f"""UPDATE alert_intervals ai SET end_minute = CASE WHEN r.e > {last_t} THEN NULL ELSE r.e END
                FROM firing_runs r WHERE ai.slo_key = r.slo_key AND ai.bit = {bit} AND ai.end_minute IS NULL
                  AND r.s = {first_t}"""
        )
        # -- Open intervals that did not continue end at first_t.
        con.execute(
            f"""UPDATE alert_intervals SET end_minute = {first_t}
                WHERE bit = {bit} AND end_minute IS NULL AND start_minute < {first_t}
                  AND slo_key IN (SELECT DISTINCT slo_key FROM ev)
                  AND slo_key NOT IN (SELECT slo_key FROM firing_runs WHERE s = {first_t})"""
        )
        con.execute(
            f"""INSERT INTO alert_intervals
                SELECT r.slo_key, {bit}, r.s, CASE WHEN r.e > {last_t} THEN NULL ELSE r.e END
                FROM firing_runs r
                WHERE NOT (r.s = {first_t} AND EXISTS (
                  SELECT 1 FROM alert_intervals ai WHERE ai.slo_key = r.slo_key AND ai.bit = {bit}
                    AND ai.start_minute < {first_t}
                    AND (ai.end_minute IS NULL OR ai.end_minute > {first_t})))"""
        )


# ---------------------------------------------------------------------------------------------
# The engine step of a pipeline cycle


@dataclass
class EngineReport:
    slos_dense: int = 0
    slos_incremental: int = 0
    minutes_evaluated: int = 0


def engine_slos(con: duckdb.DuckDBPyConnection, slos: Sequence[Slo]) -> list[EngineSlo]:
    keys = dict(con.execute("SELECT slo_id, slo_key FROM slos").fetchall())
    return [EngineSlo(key=keys[s.id], slo=s) for s in slos if s.id in keys]


def evaluate(
    con: duckdb.DuckDBPyConnection,
    slos: Sequence[Slo],
    end: int,
    progress: Progress | None = None,
    chunk_minutes: int = 4_000_000,
) -> EngineReport:
    """Bring every SLO's evaluation up to instant `end` (exclusive bucket bound), in place.

    SLOs whose stored evaluation is behind by at most INCREMENTAL_LIMIT minutes (or whose new data
    starts that close) are advanced by point lookups; the rest are recomputed by the dense fold,
    reading at most GRID_CELLS minutes of buckets at a time to bound memory (`chunk_minutes`
    bounds the chunks of the SQL formula where the numpy kernels cannot be exact).
    """
    all_slos = engine_slos(con, slos)
    windows = burn_windows(all_slos)
    k = max_conditions(all_slos)
    state = {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT slo_key, first_minute, evaluated_to, dirty_from FROM engine_state"
        ).fetchall()
    }
    dense: list[EngineSlo] = []
    incremental: dict[int, list[EngineSlo]] = {}
    for es in all_slos:
        first, evaluated_to, dirty_from = state.get(es.key, (None, None, None))
        if first is None or first >= end:
            continue
        if evaluated_to is None:
            dense.append(es)
            continue
        resume = evaluated_to if dirty_from is None else min(evaluated_to, dirty_from)
        if resume >= end:
            continue
        if end - resume > INCREMENTAL_LIMIT:
            dense.append(es)
        else:
            incremental.setdefault(max(resume, first) + 1, []).append(es)

    report = EngineReport()
    if not dense and not incremental:
        return report
    total = len(dense) + sum(len(v) for v in incremental.values())
    done = 0
    kernel_series = _collect_series(con)
    # One transaction: an evaluation is stored whole or not at all (engine_state says an SLO is evaluated
    # only with its series stored, which is written last; files written by a rolled-back evaluation are
    # listed nowhere, and `partitions.collect_garbage` deletes them).
    con.execute("BEGIN TRANSACTION")
    try:
        # Checkpoints are rewritten from these minutes on: the next publish rewrites those days.
        rewritten = [*incremental, *(int(state[es.key][0]) for es in dense)]
        mark_changed(con, "checkpoints", min(rewritten), end)
        for a, group in sorted(incremental.items()):
            report.minutes_evaluated += _advance(con, group, a, end, windows, k)
            report.slos_incremental += len(group)
            done += len(group)
            if progress:
                progress(done, total)
        if dense:
            report.minutes_evaluated += _recompute_dense(
                con, dense, state, end, windows, k, chunk_minutes, progress, done, total, kernel_series
            )
            report.slos_dense += len(dense)
        _store_series(con, kernel_series)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        store_view(con, database_dir(con))
        for name in (SERIES_ROWS, SERIES_DROPS):
            con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
        con.execute(f"DROP VIEW IF EXISTS temp.main.{SERIES_ROWS}_batch")
        with contextlib.suppress(duckdb.Error):
            con.unregister(f"{SERIES_ROWS}_kernels")
    return report


# The series is a sealed table (`partitions.SEALED`): its closed hours are files, written once. What an
# evaluation derives is collected — the kernels' rows as Arrow tables (a DuckDB table would cost an
# insert of every row: a second of a 1,000-SLO month), the SQL formula's in SERIES_ROWS — with which
# stored rows it replaces (SERIES_DROPS: an SLO's rows from a minute on), then stored in one step
# (`_store_series`): a history load writes each row once, straight into its file.
# Checkpoints stay in the work database (a fifth of the rows, and every impact estimate of the incident
# stage reads them by an ASOF join, which a view over files makes twice as slow); a publish copies out
# their closed hours.
SERIES_ROWS = "new_series_rows"
SERIES_DROPS = "series_drops"


def _collect_series(con: duckdb.DuckDBPyConnection) -> list[pa.Table]:
    """Temporary tables for the SQL formula's series rows and the drops; the list for the kernels'."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SERIES_ROWS} AS SELECT * FROM {open_rows(con, 'slo_series')} LIMIT 0"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SERIES_DROPS} (slo_key INTEGER NOT NULL, since INTEGER NOT NULL)"
    )
    return []


def _drop_series(con: duckdb.DuckDBPyConnection, keys: Sequence[int], since: Sequence[int]) -> None:
    """The stored series rows of each of `keys` at minutes ≥ its `since` are replaced. A full evaluation
    drops from the SLO's first minute, not everything: its rows are all after it (instants start at the
    first minute + 1, and the first minute only moves earlier), and the files of the hours before it
    are not written again (adding one SLO to a long history would otherwise rewrite all of it)."""
    sql = f"INSERT INTO {SERIES_DROPS} SELECT unnest(?::INTEGER[]), unnest(?::INTEGER[])"
    con.execute(sql, [list(keys), list(since)])


def _store_series(con: duckdb.DuckDBPyConnection, kernel_series: list[pa.Table]) -> None:
    """Store the collected series in place of the rows dropped (in the caller's transaction)."""
    # the batch: both collections, as the table's columns and types
    columns = [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE temp.main.{SERIES_ROWS}").fetchall()]
    names = ", ".join(f'"{name}"' for name, _ in columns)
    batch = [f"SELECT {names} FROM temp.main.{SERIES_ROWS}"]
    if kernel_series:
        con.register(f"{SERIES_ROWS}_kernels", pa.concat_tables(kernel_series))
        typed = ", ".join(f'"{name}"::{kind} AS "{name}"' for name, kind in columns)
        batch.append(f"SELECT {typed} FROM {SERIES_ROWS}_kernels")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {SERIES_ROWS}_batch AS {' UNION ALL '.join(batch)}")
    batch_view, drops = f"temp.main.{SERIES_ROWS}_batch", f"temp.main.{SERIES_DROPS}"
    store_rows(con, database_dir(con), "slo_series", batch_view, drops=drops)


GRID_CELLS = 64_000_000  # minutes held per pass of the dense fold (16 bytes each: bad, valid)
BLOCK_CELLS = 1 << 18  # minutes per numpy block: a few MB per array, so a block's work stays in cache
INSERT_SLOS = 256  # SLOs per INSERT while the next blocks are computed (fewer, larger INSERTs are cheaper)
KERNEL_THREADS = min(4, os.cpu_count() or 1)
FETCH_ROWS = 1 << 17  # buckets per Arrow batch read from DuckDB (its temporaries stay in cache)


def _recompute_dense(
    con: duckdb.DuckDBPyConnection,
    dense: list[EngineSlo],
    state: dict[int, tuple[int | None, int | None, int | None]],
    end: int,
    windows: Sequence[int],
    k: int,
    chunk_minutes: int,
    progress: Progress | None,
    done: int,
    total: int,
    kernel_series: list[pa.Table],
) -> int:
    """Dense fold over the whole history of `dense`, replacing everything derived from it.

    Buckets are read once per pass (Arrow batches scattered into a dense per-minute grid), then
    evaluated by `fold_kernels.evaluate_block` in cache-sized blocks of SLOs sharing their first
    minute and windows. SLOs the int64 kernel cannot evaluate exactly go through the SQL formula.
    """
    lo_of = {es.key: int(state[es.key][0] or 0) for es in dense}

    def shape_of(es: EngineSlo) -> tuple[int, int | None, str | None, tuple[tuple[int, int], ...]]:
        window = es.slo.window
        rolling = window.minutes if window.kind == "rolling" else None
        calendar = None if rolling is not None else window.period_key
        alert_windows = tuple((a.long_window, a.short_window) for a in es.slo.alerts)
        return (lo_of[es.key], rolling, calendar, alert_windows)

    by_shape: dict[tuple[int, int | None, str | None, tuple[tuple[int, int], ...]], list[EngineSlo]] = {}
    for es in dense:
        by_shape.setdefault(shape_of(es), []).append(es)
    ordered = [es for group in by_shape.values() for es in group]
    evaluated = 0
    passes: list[list[EngineSlo]] = [[]]
    cells = 0
    for es in ordered:
        n = end - lo_of[es.key]
        if passes[-1] and cells + n > GRID_CELLS:
            passes.append([])
            cells = 0
        passes[-1].append(es)
        cells += n

    def advanced(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    for group in passes:
        # SLOs whose buckets are not read here: none when one read covers every SLO with data.
        others = any(state[key][0] is not None for key in set(state) - {es.key for es in group})
        evaluated += _dense_pass(
            con, group, shape_of, lo_of, state, end, windows, k, chunk_minutes, advanced, not others,
            kernel_series,
        )  # fmt: skip
    return evaluated


def _dense_pass(
    con: duckdb.DuckDBPyConnection,
    slos: list[EngineSlo],
    shape_of: Callable[[EngineSlo], tuple[int, int | None, str | None, tuple[tuple[int, int], ...]]],
    lo_of: dict[int, int],
    state: dict[int, tuple[int | None, int | None, int | None]],
    end: int,
    windows: Sequence[int],
    k: int,
    chunk_minutes: int,
    advanced: Callable[[int], None],
    everything: bool,
    kernel_series: list[pa.Table],
) -> int:
    """One read of the buckets of `slos` (at most GRID_CELLS minutes), evaluated and written;
    `advanced(count)` is called as SLOs are done. When `everything` (no other SLO has buckets),
    the read has no key filter: the scan is cheaper, and rows of unknown keys are dropped here."""
    keys = np.array([es.key for es in slos], dtype=np.int64)
    lo = np.array([lo_of[es.key] for es in slos], dtype=np.int64)
    n = end - lo
    starts = np.concatenate(([0], np.cumsum(n)[:-1])).astype(np.int64)
    # (bad, valid) pairs side by side: one scatter of 16-byte items (viewed as complex128, a plain
    # copy of the bits) writes both counts of a bucket, 3-4x faster than two int64 scatters.
    grid = np.zeros((int(n.sum()), 2), dtype=np.int64)
    pairs = grid.view(np.complex128).reshape(-1)
    bad, valid = grid[:, 0], grid[:, 1]
    batch_pairs = np.empty((FETCH_ROWS, 2), dtype=np.int64)
    # Bucket (key, minute) goes to base_of[key] + minute when lo ≤ minute < end for its SLO.
    base_of = np.zeros(int(keys.max()) + 1, dtype=np.int64)
    base_of[keys] = starts - lo
    lo_of_key = np.zeros(int(keys.max()) + 1, dtype=np.int64)
    lo_of_key[keys] = lo
    member = np.zeros(int(keys.max()) + 1, dtype=np.bool_)
    member[keys] = True
    latest_lo = int(lo.max())
    negative = False
    # -- Buckets of these SLOs, as bad and valid counts (scattered into place, never sorted).
    query = "SELECT slo_key, minute, valid - good AS bad, valid FROM buckets"
    if everything:
        reader = con.sql(query).to_arrow_reader(FETCH_ROWS)
    else:
        reader = con.sql(
            query + " WHERE slo_key IN (SELECT unnest(?::INTEGER[]))", params=[keys.tolist()]
        ).to_arrow_reader(FETCH_ROWS)
    for batch in reader:
        if batch.num_rows == 0:
            continue
        key = batch.column(0).to_numpy()
        minute = batch.column(1).to_numpy()
        b, v = batch.column(2).to_numpy(), batch.column(3).to_numpy()
        if everything and (int(key.min()) < 0 or int(key.max()) >= len(member) or not member[key].all()):
            known = np.zeros(len(key), dtype=np.bool_)  # keys of no SLO here (no engine_state row)
            inside = (key >= 0) & (key < len(member))
            known[inside] = member[key[inside]]
            key, minute, b, v = key[known], minute[known], b[known], v[known]
            if len(key) == 0:
                continue
        pos = base_of[key] + minute
        if int(minute.min()) < latest_lo or int(minute.max()) >= end:  # some rows may be out of range
            keep = (minute >= lo_of_key[key]) & (minute < end)
            pos, b, v = pos[keep], b[keep], v[keep]
        incoming = batch_pairs[: len(pos)]
        incoming[:, 0] = b
        incoming[:, 1] = v
        pairs[pos] = incoming.view(np.complex128).reshape(-1)
        negative = negative or (len(b) > 0 and (int(b.min()) < 0 or int(v.min()) < 0))

    for table in ("checkpoints", "alert_intervals", "policy_transitions"):
        con.execute(f"DELETE FROM {table} WHERE slo_key IN (SELECT unnest(?::INTEGER[]))", [keys.tolist()])
    _drop_series(con, keys.tolist(), lo.tolist())
    # Blocks of up to BLOCK_CELLS minutes: consecutive SLOs of one shape (same first minute).
    blocks: list[tuple[int, int, fold_kernels.BlockParams | None]] = []
    i = 0
    while i < len(slos):
        shape = shape_of(slos[i])
        j = i
        rows = max(1, BLOCK_CELLS // int(n[i]))
        while j < len(slos) and j - i < rows and shape_of(slos[j]) == shape:
            j += 1
        blocks.append((i, j, _block_params(slos[i:j])))
        i = j

    def run(block: tuple[int, int, fold_kernels.BlockParams | None]) -> fold_kernels.BlockResult | None:
        i, j, params = block
        if params is None or negative:
            return None
        shape = shape_of(slos[i])
        span = slice(int(starts[i]), int(starts[i] + (j - i) * n[i]))
        return fold_kernels.evaluate_block(
            bad[span].reshape(j - i, int(n[i])),
            valid[span].reshape(j - i, int(n[i])),
            fold_kernels.BlockShape(shape[0], end, shape[1], shape[2], shape[3]),
            params,
        )

    # numpy releases the GIL in its loops: blocks are evaluated on every core, while this thread
    # writes finished blocks into DuckDB (which releases it too).
    by_sql: list[int] = []  # positions in `slos` left to the SQL formula
    finished: list[fold_kernels.BlockResult] = []
    rows_done = 0
    checkpoints: list[pa.Table] = []

    def write(results: list[fold_kernels.BlockResult]) -> None:
        written = _insert_results(con, results, kernel_series)
        if written is not None:
            checkpoints.append(written)

    with ThreadPoolExecutor(max_workers=KERNEL_THREADS) as pool:
        for (i, j, _), result in zip(blocks, pool.map(run, blocks), strict=True):
            if result is None:
                by_sql.extend(range(i, j))
                continue
            finished.append(result)
            rows_done += j - i
            if rows_done >= INSERT_SLOS:
                write(finished)
                advanced(rows_done)
                finished, rows_done = [], 0
    write(finished)
    if checkpoints:
        # In minute order: the kernels' rows come SLO after SLO, each over its whole history, so row
        # groups written as they come would each span every minute, and a lookup of one minute (the
        # incremental fold's, at every cycle; the publish's of the open hour) would read them all — a
        # cost growing with the history. Sorted, each row group's zone map covers a slice of it.
        _insert_table(con, "checkpoints", pa.concat_tables(checkpoints), order="minute, slo_key")
    advanced(rows_done)
    if by_sql:
        rest = [slos[p] for p in by_sql]
        spans = [slice(int(starts[p]), int(starts[p] + n[p])) for p in by_sql]
        raw = {
            "slo_key": np.concatenate([np.full(int(n[p]), keys[p]) for p in by_sql]),
            "minute": np.concatenate([lo[p] + np.arange(int(n[p])) for p in by_sql]),
            "good": np.concatenate([valid[span] - bad[span] for span in spans]),
            "valid": np.concatenate([valid[span] for span in spans]),
        }
        for chunk in _chunks(rest, lo_of, end, chunk_minutes):
            take = np.isin(raw["slo_key"], [es.key for es in chunk])
            _recompute(con, chunk, state, end, windows, k, {name: col[take] for name, col in raw.items()})
            advanced(len(chunk))
    _mark_evaluated(con, keys.tolist(), end)
    return int(n.sum())


def _block_params(block: list[EngineSlo]) -> fold_kernels.BlockParams | None:
    """The block's fractions as int64 arrays, or None when one does not fit (the SQL handles it)."""
    bf = [es.budget_fraction for es in block]
    conds = [es.thresholds() for es in block]
    values = [f.numerator for f in bf] + [f.denominator for f in bf]
    values += [x for c in conds for (_, _, num, den) in c for x in (num, den)]
    if any(f.numerator <= 0 for f in bf) or max(values) >= 2**62 or min(values) < 0:
        return None
    return fold_kernels.BlockParams(
        keys=np.array([es.key for es in block], dtype=np.int32),
        bf_num=np.array([f.numerator for f in bf], dtype=np.int64),
        bf_den=np.array([f.denominator for f in bf], dtype=np.int64),
        num=np.array([[c[2] for c in cs] for cs in conds], dtype=np.int64).reshape(len(block), -1),
        den=np.array([[c[3] for c in cs] for cs in conds], dtype=np.int64).reshape(len(block), -1),
    )


def _column(values: list[np.ndarray], nulls: list[np.ndarray] | None = None) -> pa.Array:
    data = np.concatenate(values)
    mask = np.concatenate(nulls) if nulls is not None else None
    # without a null the array is the numpy buffer itself (a mask costs a bitmap built from it)
    return pa.array(data, mask=mask if mask is not None and mask.any() else None)


def _states(codes: list[np.ndarray]) -> pa.Array:
    data = np.concatenate(codes)
    return pa.DictionaryArray.from_arrays(pa.array(data, mask=data < 0), pa.array(STATE_NAMES))


def _insert_results(
    con: duckdb.DuckDBPyConnection,
    results: list[fold_kernels.BlockResult],
    kernel_series: list[pa.Table],
) -> pa.Table | None:
    """Write the kernels' transitions and intervals into the store, collect their series in
    `kernel_series` (`_store_series` stores it), and return their checkpoints, which the caller writes
    once for the whole pass, in minute order."""
    if not results:
        return None
    ck = [r.checkpoints for r in results]
    se = [r.series for r in results]
    tr = [r.transitions for r in results]
    iv = [r.intervals for r in results]
    burns = [f"burn_{name}" for name in STANDARD_BURN_WINDOWS]
    tables = {
        "checkpoints": pa.table({name: _column([c[name] for c in ck]) for name in ck[0]}),
        "slo_series": pa.table(
            {
                "slo_key": _column([s["slo_key"] for s in se]),
                "minute": _column([s["minute"] for s in se]),
                **{
                    name: _column([s[name] for s in se], [s[f"{name}_null"] for s in se])
                    for name in ("sli", "budget_remaining")
                },
                "policy_state": _states([s["policy_state"] for s in se]),
                **{name: _column([s[name] for s in se], [s[f"{name}_null"] for s in se]) for name in burns},
                "firing": _column([s["firing"] for s in se]),
            }
        ),
        "policy_transitions": pa.table(
            {
                "slo_key": _column([t["slo_key"] for t in tr]),
                "minute": _column([t["minute"] for t in tr]),
                "from_state": _states([t["from_state"] for t in tr]),
                "to_state": _states([t["to_state"] for t in tr]),
                "budget_remaining": _column(
                    [t["budget_remaining"] for t in tr], [t["budget_remaining_null"] for t in tr]
                ),
            }
        ),
        "alert_intervals": pa.table(
            {
                "slo_key": _column([t["slo_key"] for t in iv]),
                "bit": _column([t["bit"] for t in iv]),
                "start_minute": _column([t["start_minute"] for t in iv]),
                "end_minute": _column([t["end_minute"] for t in iv], [t["end_minute_null"] for t in iv]),
            }
        ),
    }
    for table, data in tables.items():
        if table == "slo_series":
            kernel_series.append(data)
        elif table != "checkpoints":
            _insert_table(con, table, data)
    return tables["checkpoints"]


def _insert_table(
    con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, order: str | None = None
) -> None:
    con.register("dense_rows", data)
    try:
        names = ", ".join(data.column_names)
        by = f" ORDER BY {order}" if order else ""
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM dense_rows{by}")
    finally:
        con.unregister("dense_rows")


def _chunks(slos: list[EngineSlo], first: dict[int, int], end: int, cells: int) -> Iterable[list[EngineSlo]]:
    chunk: list[EngineSlo] = []
    size = 0
    for es in slos:
        n = end - first[es.key]
        if chunk and size + n > cells:
            yield chunk
            chunk, size = [], 0
        chunk.append(es)
        size += n
    if chunk:
        yield chunk


def _recompute(
    con: duckdb.DuckDBPyConnection,
    chunk: list[EngineSlo],
    state: dict[int, tuple[int | None, int | None, int | None]],
    end: int,
    windows: Sequence[int],
    k: int,
    raw: dict[str, np.ndarray],
) -> int:
    """Dense fold over the whole history of `chunk` (its buckets in `raw`), writing everything derived
    from it (`_dense_pass`, the caller, has cleared what was derived before)."""
    keys = [es.key for es in chunk]
    first = {es.key: int(state[es.key][0] or 0) for es in chunk}
    result = dense_window_sums(
        chunk,
        first,
        end,
        raw["slo_key"],
        raw["minute"],
        raw["good"],
        raw["valid"],
        windows,
    )
    con.register("new_checkpoints", result.checkpoints)
    con.execute("INSERT INTO checkpoints SELECT * FROM new_checkpoints")
    con.unregister("new_checkpoints")
    lo = min(first.values()) + 1
    evaluated = _apply_evaluation(con, result.ws, params_table(chunk, k), windows, k, lo, end)
    _mark_evaluated(con, keys, end)
    return evaluated


def _advance(
    con: duckdb.DuckDBPyConnection,
    group: list[EngineSlo],
    a: int,
    end: int,
    windows: Sequence[int],
    k: int,
) -> int:
    """Re-evaluate instants [a, end] of `group` by point lookups and fold them in."""
    keys = [es.key for es in group]
    for table, column in (("policy_transitions", "minute"), ("alert_intervals", "start_minute")):
        con.execute(
            f"DELETE FROM {table} WHERE {column} >= ? AND slo_key IN (SELECT unnest(?::INTEGER[]))",
            [a, keys],
        )
    con.execute(
        "UPDATE alert_intervals SET end_minute = NULL WHERE end_minute >= ? "
        "AND slo_key IN (SELECT unnest(?::INTEGER[]))",
        [a, keys],
    )
    _drop_series(con, keys, [a] * len(keys))
    # Checkpoints after bucket a−1 may have changed (late data): they are rebuilt from C(T).
    con.execute(
        "DELETE FROM checkpoints WHERE minute >= ? AND slo_key IN (SELECT unnest(?::INTEGER[]))",
        [a, keys],
    )
    ws, (cg_t, cv_t) = point_window_sums(con, group, a, end, windows)
    ts = np.arange(a - 1, end + 1, dtype=np.int64)
    hours = (ts % CHECKPOINT_STEP == 0) & (ts >= a)
    if hours.any():
        karr = np.array(keys, dtype=np.int32)
        ckpt = pa.table(
            {
                "slo_key": np.repeat(karr, int(hours.sum())),
                "minute": np.tile(ts[hours], len(keys)).astype(np.int32),
                "cum_good": cg_t[:, hours].ravel(),
                "cum_valid": cv_t[:, hours].ravel(),
            }
        )
        con.register("new_checkpoints", ckpt)
        con.execute("INSERT INTO checkpoints SELECT * FROM new_checkpoints")
        con.unregister("new_checkpoints")
    evaluated = _apply_evaluation(con, ws, params_table(group, k), windows, k, a, end)
    _mark_evaluated(con, keys, end)
    return evaluated


def _mark_evaluated(con: duckdb.DuckDBPyConnection, keys: list[int], end: int) -> None:
    con.execute(
        "UPDATE engine_state SET evaluated_to = ?, dirty_from = NULL WHERE slo_key IN "
        "(SELECT unnest(?::INTEGER[]))",
        [end, keys],
    )


# ---------------------------------------------------------------------------------------------
# Status at one instant


def evaluate_at(
    con: duckdb.DuckDBPyConnection, slos: Sequence[EngineSlo], t: int
) -> duckdb.DuckDBPyRelation | None:
    """The full evaluation of every SLO at instant t (computed on demand; nothing is written)."""
    if not slos:
        return None
    windows = burn_windows(slos)
    k = max_conditions(slos)
    ws, _ = point_window_sums(con, slos, t, t, windows)
    params = params_table(slos, k)
    con.register("ws", ws)
    con.register("params", params)
    return con.sql(formula_sql(windows, k, exact=exact_type(ws, params)))
