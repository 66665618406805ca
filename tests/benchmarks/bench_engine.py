"""Engine benchmark (DESIGN §5): full history, a pandas baseline and one-minute updates, in one run.

What is measured, on N SLOs (default 1,000; `BENCH_SLOS`) × D days (default 30; `BENCH_DAYS`) of
per-minute buckets — 43.2 M buckets at the default size:

1. **engine full history** — `pipelines.engine.evaluate(con, slos, end)` on a file DuckDB opened through
   `pipelines.store.Writer`, everything derived (checkpoints, 15-minute series, policy transitions,
   alert intervals) written into the store. Ingest is *not* timed: the first minute goes through
   `pipelines.buckets.write_buckets` (so `engine_state` is set up by the product's own code), the rest
   is bulk-inserted from Arrow tables, day by day, in minute order as the pipeline writes it.
2. **pandas baseline** — DESIGN §2 written the straightforward pandas way (dense minute index,
   `groupby().rolling(window=W, min_periods=1).sum()` for 5m, 30m, 1h, 2h, 6h, 1d, 3d and 30d, burn
   rates, budget remaining, policy state, the four default multiwindow conditions, alert runs, policy
   transitions and the 15-minute series), on the same buckets read from the same file, a chunk of
   SLOs at a time. Its results stay in memory (the engine writes its own into DuckDB).
3. **incremental update** — one more minute for every SLO (`write_buckets`, then
   `evaluate(con, slos, end + 1)`), repeated, after a 30-day and after a 10-day history.

Every measured case runs in its own subprocess; peak memory is that process's `ru_maxrss`, read in
the child before and after the measured step (and cross-checked with `os.wait4` in the parent).
A separate, instrumented engine run attributes the engine's wall time to its stages (SQL statements
classified by text, numpy functions wrapped) without touching the engine's code. The engine and the
baseline must agree on per-condition firing minutes and alert intervals, policy transitions, and the
full evaluation (`engine.evaluate_at`) at sample instants.

Run: `.venv/bin/python tests/benchmarks/bench_engine.py` or
`.venv/bin/python -m pytest tests/benchmarks -o addopts="" -s`; `BENCH_SLOS=50` for a quick check.
Results: a table on stdout and `tests/benchmarks/results/engine.json` (other sizes: `engine-<N>x<D>d.json`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

# Run as a script (every child case is), sys.path[0] is this directory and `pipelines` would come
# from the editable install, i.e. another checkout: measure the engine of the tree this file is in.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from pipelines import engine
from pipelines.buckets import write_buckets
from pipelines.catalog import sync_slos
from pipelines.cycle import open_writer as Writer
from pipelines.model import Sli, Slo, SloWindow
from pipelines.specs import default_alerts
from pipelines.store import WORK_FILE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS_DIR = HERE / "results"

SEED = 20250101
START = 28_928_160  # 2025-01-01T00:00Z as an epoch minute
DAY = 1440
TARGET = "0.999"
SLO_WINDOW = 43_200  # rolling 30d
HORIZON_DAYS = 32  # incidents are drawn over this horizon, whatever the history length
SERIES_STEP = 15
PANDAS_CHUNK_CELLS = 4_000_000  # like the engine's default chunk_minutes
STATE_NAMES = ("normal", "freeze_review", "reliability_focus", "exhausted")
BURN_WINDOWS = {"5m": 5, "30m": 30, "1h": 60, "2h": 120, "6h": 360, "1d": 1440, "3d": 4320}
# DESIGN §2 default multiwindow alerts at 30d: (long, short, factor), bit = position.
ALERT_RULES = ((60, 5, "14.4"), (360, 30, "6"), (1440, 120, "3"), (4320, 360, "1"))
SEVERITY_OF_BIT = ("page", "page", "ticket", "ticket")
TARGET_BUCKETS_PER_S = 5_000_000
TARGET_PEAK_MB = 4096
INCR_PROFILED = 5  # instrumented one-minute updates after the timed ones


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Config:
    slos: int
    days: int
    short_days: int
    runs: int
    pandas_runs: int
    incr_reps: int
    profile: bool
    keep: bool
    workdir: str | None

    @classmethod
    def from_env(cls) -> Config:
        def num(name: str, default: int) -> int:
            return int(os.environ.get(name, default))

        return cls(
            slos=num("BENCH_SLOS", 1000),
            days=num("BENCH_DAYS", 30),
            short_days=num("BENCH_SHORT_DAYS", 10),
            runs=num("BENCH_RUNS", 3),
            pandas_runs=num("BENCH_PANDAS_RUNS", 3),
            incr_reps=num("BENCH_INCR_REPS", 11),
            profile=num("BENCH_PROFILE", 1) != 0,
            keep=num("BENCH_KEEP", 0) != 0,
            workdir=os.environ.get("BENCH_DIR") or None,
        )

    @property
    def is_default_size(self) -> bool:
        return self.slos == 1000 and self.days == 30


# ---------------------------------------------------------------------------------------------
# Synthetic data: deterministic, numpy only


def make_slos(n: int) -> list[Slo]:
    """N identical-shape SLOs: 99.9 % over a rolling 30d with the default alerts."""
    window = SloWindow(kind="rolling", minutes=SLO_WINDOW, text="30d")
    alerts = default_alerts(SLO_WINDOW)
    return [
        Slo(
            service=f"svc{i // 10:04d}",
            name=f"slo{i % 10}",
            owner="bench",
            sli=Sli(name=f"slo{i % 10}", kind="ratio", category="availability"),
            target=float(TARGET),
            window=window,
            alerts=alerts,
            alerts_custom=False,
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class DataModel:
    """Per SLO traffic and baseline error rate, plus injected bad stretches (minute offsets)."""

    rate: np.ndarray  # mean valid events per minute, 100…1000
    phase: np.ndarray  # diurnal phase
    p0: np.ndarray  # baseline error probability
    inc_slo: np.ndarray
    inc_start: np.ndarray
    inc_end: np.ndarray
    inc_p: np.ndarray

    @classmethod
    def build(cls, n: int) -> DataModel:
        rng = np.random.default_rng([SEED, 1])
        rate = rng.uniform(100, 1000, n)
        phase = rng.uniform(0, 2 * np.pi, n)
        p0 = rng.uniform(0.00002, 0.0006, n)
        counts = rng.poisson(1.5, n)
        total = int(counts.sum())
        inc_slo = np.repeat(np.arange(n), counts)
        spike = rng.random(total) < 0.6
        # spikes: 10–90 min at 2–40 % errors (pages); slow burns: 6 h–2 d at 0.2–1 % (tickets)
        length = np.where(spike, rng.integers(10, 91, total), rng.integers(360, 2881, total))
        inc_p = np.where(spike, rng.uniform(0.02, 0.4, total), rng.uniform(0.002, 0.01, total))
        inc_start = (rng.random(total) * (HORIZON_DAYS * DAY - length)).astype(np.int64)
        return cls(rate, phase, p0, inc_slo, inc_start, inc_start + length, inc_p)

    def day(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """(valid, good) of day `day`, shape (1440, N), minute-major."""
        rng = np.random.default_rng([SEED, 2, day])
        m = day * DAY + np.arange(DAY)
        lam = self.rate[None, :] * (1 + 0.2 * np.sin(2 * np.pi * m[:, None] / DAY + self.phase[None, :]))
        valid = rng.poisson(lam).astype(np.int64)
        p = np.repeat(self.p0[None, :], DAY, axis=0)
        lo, hi = day * DAY, (day + 1) * DAY
        for i in np.flatnonzero((self.inc_start < hi) & (self.inc_end > lo)):
            a, b = max(int(self.inc_start[i]) - lo, 0), min(int(self.inc_end[i]) - lo, DAY)
            s = int(self.inc_slo[i])
            p[a:b, s] = np.maximum(p[a:b, s], self.inc_p[i])
        bad = rng.binomial(valid, p)
        return valid, valid - bad

    def table(self, day: int, keys: np.ndarray, skip_first: int = 0) -> pa.Table:
        valid, good = self.day(day)
        minutes = START + day * DAY + np.arange(skip_first, DAY, dtype=np.int64)
        return pa.table(
            {
                "slo_key": pa.array(np.tile(keys, DAY - skip_first).astype(np.int32)),
                "minute": pa.array(np.repeat(minutes, len(keys)).astype(np.int32)),
                "good": pa.array(good[skip_first:].ravel()),
                "valid": pa.array(valid[skip_first:].ravel()),
            }
        )

    def minute_frame(self, slos: Sequence[Slo], minute: int) -> pd.DataFrame:
        """One minute (epoch minute) for every SLO, as `write_buckets` takes it."""
        off = minute - START
        valid, good = self.day(off // DAY)
        return pd.DataFrame(
            {
                "slo_id": [s.id for s in slos],
                "minute": minute,
                "good": good[off % DAY],
                "valid": valid[off % DAY],
            }
        )


def sample_points(model: DataModel, slos: Sequence[Slo], days: int) -> dict[str, list[Any]]:
    """SLO ids × instants where the engine and pandas are compared value by value."""
    end = START + days * DAY
    inside = np.flatnonzero(model.inc_end < days * DAY - 1)[:6]
    ids = sorted({slos[int(model.inc_slo[i])].id for i in inside} | {slos[0].id, slos[-1].id})
    instants = {START + 1, START + 61, START + DAY, end - 1, end}
    for i in inside:  # the middle and the minute after each stretch
        instants.add(START + int(model.inc_start[i] + model.inc_end[i]) // 2)
        instants.add(START + int(model.inc_end[i]) + 1)
    return {"slo_ids": ids, "instants": sorted(t for t in instants if START < t <= end)}


# ---------------------------------------------------------------------------------------------
# Small helpers


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def slo_keys(con: duckdb.DuckDBPyConnection, slos: Sequence[Slo]) -> np.ndarray:
    keys = dict(con.execute("SELECT slo_id, slo_key FROM slos").fetchall())
    return np.array([keys[s.id] for s in slos], dtype=np.int64)


def _num(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return None if math.isnan(f) else f


class Profiler:
    """Exclusive (self) time per label, nested-aware, for the instrumented engine run."""

    def __init__(self) -> None:
        self.self_time: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.per_call: dict[str, list[float]] = {}  # inclusive seconds of every call
        self._stack: list[list[float]] = []  # [start, time spent in children]
        # Work on worker threads (the dense kernels): summed over threads, overlapping the rest,
        # so reported apart and not subtracted from the main thread's time.
        self.threaded: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, label: str) -> Iterator[None]:
        self._stack.append([time.perf_counter(), 0.0])
        try:
            yield
        finally:
            start, children = self._stack.pop()
            elapsed = time.perf_counter() - start
            self.self_time[label] = self.self_time.get(label, 0.0) + elapsed - children
            self.calls[label] = self.calls.get(label, 0) + 1
            self.per_call.setdefault(label, []).append(elapsed)
            if self._stack:
                self._stack[-1][1] += elapsed

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self.stage(label):
                return fn(*args, **kwargs)

        return wrapped

    def wrap_threaded(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.threaded[label] = self.threaded.get(label, 0.0) + time.perf_counter() - start

        return wrapped


def classify(sql: str) -> str:
    """Which engine stage a statement belongs to, from its text."""
    s = " ".join(sql.split())
    if "FROM dense_rows" in s:  # the dense path's results, computed by the numpy kernels
        return "dense results: INSERT INTO " + s.split()[2]
    if s.startswith("SELECT slo_key, minute, valid - good AS bad, valid FROM buckets"):
        return "fetch buckets: Arrow batches + scatter"
    if s.startswith("SELECT slo_key, minute, good, valid FROM buckets WHERE slo_key IN"):
        return "fetch buckets (query)"
    if s.startswith("SELECT slo_key, minute, good, valid FROM buckets WHERE minute"):
        return "point lookups: raw buckets"
    if s.startswith("SELECT slo_key, cum_good"):
        return "point lookups: checkpoints"
    if "TEMP TABLE ev" in s:
        return "formula SQL → temp table ev"
    if s.startswith("INSERT INTO new_series_rows"):
        return "slo_series insert (formula again, every 15 min)"
    if s.startswith("INSERT INTO policy_transitions"):
        return "policy_transitions insert"
    if s.startswith("INSERT INTO checkpoints"):
        return "checkpoints insert"
    if s.startswith("DELETE FROM"):
        return "delete superseded derived rows"
    if s.startswith("UPDATE alert_intervals SET end_minute = NULL"):
        return "reopen alert intervals"
    if "firing_runs" in s or "alert_intervals" in s:
        return "_fold_intervals (SQL)"
    if s.startswith("UPDATE engine_state"):
        return "mark evaluated (engine_state)"
    return "other SQL (engine_state, slos)"


class TimedResult:
    def __init__(self, res: duckdb.DuckDBPyConnection, prof: Profiler, label: str):
        self._res, self._prof, self._label = res, prof, label

    def fetchnumpy(self) -> Any:
        with self._prof.stage(self._label.replace("(query)", "(fetchnumpy)")):
            return self._res.fetchnumpy()

    def fetchall(self) -> Any:
        with self._prof.stage(self._label):
            return self._res.fetchall()

    def fetchone(self) -> Any:
        with self._prof.stage(self._label):
            return self._res.fetchone()


class TimedConnection:
    """Delegates to a DuckDB connection, timing every statement under its stage."""

    def __init__(self, con: duckdb.DuckDBPyConnection, prof: Profiler):
        self._con, self._prof = con, prof

    def execute(self, sql: str, params: Any = None) -> TimedResult:
        label = classify(sql)
        with self._prof.stage(label):
            res = self._con.execute(sql) if params is None else self._con.execute(sql, params)
        return TimedResult(res, self._prof, label)

    def register(self, name: str, obj: Any) -> Any:
        with self._prof.stage("register/unregister Arrow tables"):
            return self._con.register(name, obj)

    def unregister(self, name: str) -> Any:
        with self._prof.stage("register/unregister Arrow tables"):
            return self._con.unregister(name)

    def sql(self, query: str, params: Any = None) -> TimedRelation:
        return TimedRelation(self._con.sql(query, params=params), self._prof, classify(query))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class TimedRelation:
    """A relation whose Arrow batches are timed as they are read (and scattered by the caller:
    the loop body runs between two reads, so the stage holds the whole fetch loop)."""

    def __init__(self, rel: duckdb.DuckDBPyRelation, prof: Profiler, label: str):
        self._rel, self._prof, self._label = rel, prof, label

    def to_arrow_reader(self, batch_size: int) -> Iterator[Any]:
        with self._prof.stage(self._label):
            yield from self._rel.to_arrow_reader(batch_size)


@contextmanager
def instrumented(prof: Profiler) -> Iterator[None]:
    """Wrap the engine's numpy functions (module globals, looked up at call time) with timers."""
    names = {
        "dense_window_sums": "numpy fold (dense_window_sums)",
        "point_window_sums": "point_window_sums (numpy part)",
        "params_table": "params_table",
        "exact_type": "exact_type (Arrow max of counts)",
        "_fold_intervals": "_fold_intervals (python part)",
    }
    names = {name: label for name, label in names.items() if hasattr(engine, name)}  # engine evolves
    saved = {name: getattr(engine, name) for name in names}
    kernel = getattr(engine, "fold_kernels", None)
    saved_kernel = getattr(kernel, "evaluate_block", None)
    try:
        for name, label in names.items():
            setattr(engine, name, prof.wrap(label, saved[name]))
        if kernel is not None and saved_kernel is not None:
            kernel.evaluate_block = prof.wrap_threaded("numpy kernels", saved_kernel)
        yield
    finally:
        for name, fn in saved.items():
            setattr(engine, name, fn)
        if kernel is not None and saved_kernel is not None:
            kernel.evaluate_block = saved_kernel


# ---------------------------------------------------------------------------------------------
# Child cases (each runs in its own process)


def case_prepare(args: dict[str, Any]) -> dict[str, Any]:
    """Create the store: SLOs through sync_slos, buckets as described in the module docstring."""
    data_dir, n, days = Path(args["data_dir"]), int(args["slos"]), int(args["days"])
    slos = make_slos(n)
    model = DataModel.build(n)
    t0 = time.perf_counter()
    gen_s = 0.0
    with Writer(data_dir) as writer:
        con = writer.db
        keys = sync_slos(con, slos)
        key_arr = np.array([keys[s.id] for s in slos], dtype=np.int64)
        write_buckets(con, model.minute_frame(slos, START), keys, "bench")
        rows = n
        for day in range(days):
            g0 = time.perf_counter()
            tbl = model.table(day, key_arr, skip_first=1 if day == 0 else 0)
            gen_s += time.perf_counter() - g0
            con.register("day_buckets", tbl)
            con.execute("INSERT INTO buckets_open SELECT * FROM day_buckets")
            con.unregister("day_buckets")
            rows += tbl.num_rows
        con.execute("CHECKPOINT")
    total = time.perf_counter() - t0
    size = (data_dir / WORK_FILE).stat().st_size
    return {"buckets": rows, "seconds": total, "generate_s": gen_s, "file_mb": size / 2**20}


def engine_summary(
    con: duckdb.DuckDBPyConnection, slos: Sequence[Slo], end: int, samples: dict[str, list[Any]]
) -> dict[str, Any]:
    """What the engine stored, reduced for the comparison, plus evaluate_at at the sample points."""
    intervals = {
        int(bit): {"intervals": int(c), "firing_minutes": int(m)}
        for bit, c, m in con.execute(
            "SELECT bit, count(*), sum(coalesce(end_minute, ? + 1) - start_minute) FROM alert_intervals "
            "GROUP BY bit",
            [end],
        ).fetchall()
    }
    transitions = dict(
        con.execute("SELECT to_state, count(*) FROM policy_transitions GROUP BY to_state").fetchall()
    )
    series = (con.execute("SELECT count(*) FROM slo_series").fetchone() or (0,))[0]
    checkpoints = (con.execute("SELECT count(*) FROM checkpoints").fetchone() or (0,))[0]
    by_id = {s.id: s for s in slos}
    sample_slos = engine.engine_slos(con, [by_id[i] for i in samples["slo_ids"]])
    points: dict[str, dict[str, Any]] = {}
    for t in samples["instants"]:
        rel = engine.evaluate_at(con, sample_slos, int(t))
        assert rel is not None
        cols = rel.columns
        for row in rel.fetchall():
            r = dict(zip(cols, row, strict=True))
            points[f"{r['slo_key']}@{r['t']}"] = _point(r)
    return {
        "intervals": {str(b): intervals.get(b, {"intervals": 0, "firing_minutes": 0}) for b in range(4)},
        "transitions": {str(k): int(v) for k, v in transitions.items()},
        "series_rows": int(series),
        "checkpoint_rows": int(checkpoints),
        "points": points,
    }


def _point(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "budget_remaining": _num(r["budget_remaining"]),
        "state": None if r["state"] is None else int(r["state"]),
        "prev_state": None if r["prev_state"] is None else int(r["prev_state"]),
        "firing": int(r["firing"]),
    }
    for name in BURN_WINDOWS:
        out[f"burn_{name}"] = _num(r[f"burn_{name}"])
    return out


def case_engine_full(args: dict[str, Any]) -> dict[str, Any]:
    data_dir, n, days = Path(args["data_dir"]), int(args["slos"]), int(args["days"])
    slos = make_slos(n)
    end = START + days * DAY
    rss_start = maxrss_mb()
    prof = Profiler()
    with Writer(data_dir) as writer:
        con = writer.db
        con.execute("SELECT 1").fetchall()
        rss_before = maxrss_mb()
        target = cast(duckdb.DuckDBPyConnection, TimedConnection(con, prof)) if args["profile"] else con
        with instrumented(prof) if args["profile"] else _nothing():
            t0, c0 = time.perf_counter(), time.process_time()
            report = engine.evaluate(target, slos, end)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rss_after = maxrss_mb()
        k0 = time.perf_counter()
        con.execute("CHECKPOINT")
        checkpoint_s = time.perf_counter() - k0
        summary = engine_summary(con, slos, end, args["samples"]) if args.get("summary") else None
    out: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": cpu,
        "minutes_evaluated": report.minutes_evaluated,
        "slos_dense": report.slos_dense,
        "rss_start_mb": rss_start,
        "rss_before_mb": rss_before,
        "rss_peak_mb": rss_after,
        "db_checkpoint_s": checkpoint_s,
        "summary": summary,
    }
    if args["profile"]:
        out["profile"] = {k: round(v, 4) for k, v in sorted(prof.self_time.items(), key=lambda kv: -kv[1])}
        out["profile_threads"] = {k: round(v, 4) for k, v in prof.threaded.items()}
        out["profile_calls"] = prof.calls
        out["profile_per_call"] = {
            k: [round(x, 3) for x in v] for k, v in prof.per_call.items() if sum(v) > 0.05 * wall
        }
    return out


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def case_incremental(args: dict[str, Any]) -> dict[str, Any]:
    """On an evaluated store (in a fresh process), add one minute for every SLO, `reps` times."""
    data_dir, n, days, reps = Path(args["data_dir"]), int(args["slos"]), int(args["days"]), int(args["reps"])
    slos = make_slos(n)
    model = DataModel.build(n)
    end = START + days * DAY
    out: dict[str, Any] = {}
    with Writer(data_dir) as writer:
        con = writer.db
        keys = dict(con.execute("SELECT slo_id, slo_key FROM slos").fetchall())
        write_ms: list[float] = []
        eval_ms: list[float] = []
        eval_cpu_ms: list[float] = []
        minutes: list[int] = []
        for i in range(reps):
            frame = model.minute_frame(slos, end + i)
            t0 = time.perf_counter()
            write_buckets(con, frame, keys, "bench")
            t1, c1 = time.perf_counter(), time.process_time()
            rep = engine.evaluate(con, slos, end + i + 1)
            t2, c2 = time.perf_counter(), time.process_time()
            write_ms.append((t1 - t0) * 1000)
            eval_ms.append((t2 - t1) * 1000)
            eval_cpu_ms.append((c2 - c1) * 1000)
            minutes.append(rep.minutes_evaluated)
        # More minutes, instrumented, to see where the time of an update goes (median per stage).
        profiles: list[dict[str, float]] = []
        for i in range(reps, reps + INCR_PROFILED):
            prof = Profiler()
            write_buckets(con, model.minute_frame(slos, end + i), keys, "bench")
            timed = cast(duckdb.DuckDBPyConnection, TimedConnection(con, prof))
            with instrumented(prof):
                engine.evaluate(timed, slos, end + i + 1)
            profiles.append(prof.self_time)
        labels = {label for p in profiles for label in p}
        stage_ms = {label: statistics.median(p.get(label, 0.0) for p in profiles) * 1000 for label in labels}
        out.update(
            {
                "reps": reps,
                "write_ms": write_ms,
                "evaluate_ms": eval_ms,
                "minutes_evaluated": minutes,
                "median_write_ms": statistics.median(write_ms),
                "median_evaluate_ms": statistics.median(eval_ms),
                "median_total_ms": statistics.median(w + e for w, e in zip(write_ms, eval_ms, strict=True)),
                "median_evaluate_cpu_ms": statistics.median(eval_cpu_ms),
                "profile_ms_per_update": {
                    k: round(v, 2) for k, v in sorted(stage_ms.items(), key=lambda kv: -kv[1])
                },
                "rss_peak_mb": maxrss_mb(),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# The pandas baseline


@dataclass
class PandasTotals:
    firing_minutes: np.ndarray
    intervals: np.ndarray
    transitions: dict[str, int]
    series_rows: int
    points: dict[str, dict[str, Any]]


def _rolled(grouped: Any, window: int) -> tuple[np.ndarray, np.ndarray]:
    r = grouped.rolling(window=window, min_periods=1).sum()
    return r["good"].to_numpy().round().astype(np.int64), r["valid"].to_numpy().round().astype(np.int64)


def pandas_chunk(
    frame: pd.DataFrame, keys: np.ndarray, start: int, end: int, totals: PandasTotals, samples: set[str]
) -> None:
    """DESIGN §2 for `keys` over instants T in (start, end], the plain pandas way."""
    bf = 1 - Fraction(TARGET)
    minutes = np.arange(start, end, dtype=np.int64)
    index = pd.MultiIndex.from_product([keys, minutes], names=["slo_key", "minute"])
    frame = frame.astype({"slo_key": "int64", "minute": "int64"})
    dense = frame.set_index(["slo_key", "minute"])[["good", "valid"]].reindex(index, fill_value=0)
    grouped = dense.groupby(level="slo_key")
    ev = pd.DataFrame({"slo_key": index.get_level_values(0), "t": index.get_level_values(1) + 1})
    sums = {w: _rolled(grouped, w) for w in sorted({*BURN_WINDOWS.values(), SLO_WINDOW})}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, w in BURN_WINDOWS.items():
            g, v = sums[w]
            ev[f"burn_{name}"] = np.where(v > 0, (v - g) * bf.denominator / (v * bf.numerator), np.nan)
        g, v = sums[SLO_WINDOW]
        ev["sli"] = np.where(v > 0, g / v, np.nan)
        ev["budget_remaining"] = np.where(v > 0, 1 - (v - g) * bf.denominator / (v * bf.numerator), np.nan)
    b, a = (v - g) * bf.denominator, v * bf.numerator  # r = 1 − B/A, compared exactly
    ev["state"] = np.select([v == 0, 2 * b < a, 4 * b <= 3 * a, b < a], [-1, 0, 1, 2], 3).astype(np.int8)
    ev["prev_state"] = ev.groupby("slo_key")["state"].shift(1, fill_value=-1)
    firing = np.zeros(len(ev), dtype=np.int64)
    for bit, (long_w, short_w, factor) in enumerate(ALERT_RULES):
        thr = Fraction(factor) * bf  # burn > factor ⇔ bad·den > num·valid
        gl, vl = sums[long_w]
        gs, vs = sums[short_w]
        cond = ((vl - gl) * thr.denominator > thr.numerator * vl) & (
            (vs - gs) * thr.denominator > thr.numerator * vs
        )
        firing |= cond.astype(np.int64) << bit
    ev["firing"] = firing

    # Alert runs per condition, policy transitions, the 15-minute series.
    for bit in range(len(ALERT_RULES)):
        fire = pd.Series((firing >> bit) & 1 == 1, index=ev.index)
        before = fire.groupby(ev["slo_key"]).shift(1, fill_value=False)
        totals.firing_minutes[bit] += int(fire.sum())
        totals.intervals[bit] += int((fire & ~before).sum())
    names = pd.Series([*STATE_NAMES, None], index=[0, 1, 2, 3, -1])
    changed = ev[ev["state"] != ev["prev_state"]]
    transitions = pd.DataFrame(
        {
            "slo_key": changed["slo_key"],
            "minute": changed["t"],
            "from_state": changed["prev_state"].map(names),
            "to_state": changed["state"].map(names),
        }
    )
    for state, count in transitions["to_state"].value_counts().items():
        totals.transitions[str(state)] = totals.transitions.get(str(state), 0) + int(count)
    series = ev[ev["t"] % SERIES_STEP == 0].copy()
    series["policy_state"] = series["state"].map(names)
    totals.series_rows += len(series)

    if samples:
        key_pos = {int(k): i for i, k in enumerate(keys)}
        for point in samples:
            key, t = (int(x) for x in point.split("@"))
            if key in key_pos:
                row = ev.iloc[key_pos[key] * len(minutes) + (t - start - 1)]
                totals.points[point] = {
                    "budget_remaining": _num(row["budget_remaining"]),
                    "state": None if row["state"] < 0 else int(row["state"]),
                    "prev_state": None if row["prev_state"] < 0 else int(row["prev_state"]),
                    "firing": int(row["firing"]),
                    **{f"burn_{n}": _num(row[f"burn_{n}"]) for n in BURN_WINDOWS},
                }


def case_pandas(args: dict[str, Any]) -> dict[str, Any]:
    data_dir, n, days = Path(args["data_dir"]), int(args["slos"]), int(args["days"])
    slos = make_slos(n)
    end = START + days * DAY
    rss_start = maxrss_mb()
    con = duckdb.connect(str(data_dir / WORK_FILE), read_only=True)
    keys = slo_keys(con, slos)
    samples = args["samples"]
    wanted = {s.id for s in slos if s.id in set(samples["slo_ids"])}
    want_keys = [int(k) for k, s in zip(keys, slos, strict=True) if s.id in wanted]
    points = {f"{k}@{t}" for k in want_keys for t in samples["instants"]}
    rss_before = maxrss_mb()
    totals = PandasTotals(np.zeros(4, np.int64), np.zeros(4, np.int64), {}, 0, {})
    per_chunk = max(1, PANDAS_CHUNK_CELLS // (days * DAY))
    t0, c0 = time.perf_counter(), time.process_time()
    read_s = 0.0
    ordered = np.sort(keys)
    for i in range(0, len(ordered), per_chunk):
        chunk = ordered[i : i + per_chunk]
        r0 = time.perf_counter()
        frame = con.execute(
            "SELECT slo_key, minute, good, valid FROM buckets WHERE slo_key BETWEEN ? AND ? "
            "AND minute >= ? AND minute < ?",
            [int(chunk[0]), int(chunk[-1]), START, end],
        ).df()
        read_s += time.perf_counter() - r0
        pandas_chunk(frame, chunk, START, end, totals, points)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_after = maxrss_mb()
    con.close()
    summary = {
        "intervals": {
            str(b): {"intervals": int(totals.intervals[b]), "firing_minutes": int(totals.firing_minutes[b])}
            for b in range(4)
        },
        "transitions": totals.transitions,
        "series_rows": totals.series_rows,
        "points": totals.points,
    }
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "read_s": read_s,
        "chunk_slos": per_chunk,
        "rss_start_mb": rss_start,
        "rss_before_mb": rss_before,
        "rss_peak_mb": rss_after,
        "summary": summary if args.get("summary") else None,
    }


CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "prepare": case_prepare,
    "engine_full": case_engine_full,
    "incremental": case_incremental,
    "pandas": case_pandas,
}


# ---------------------------------------------------------------------------------------------
# The orchestrator


ENGINE_SEEN: dict[str, list[str]] = {}  # engine source hash → cases that ran it
RUNNING: list[subprocess.Popen[bytes]] = []  # the child being waited for


def _on_sigterm(signum: int, frame: object) -> None:
    """Stop our own child and unwind, so the work directory is removed."""
    for proc in RUNNING:
        proc.terminate()
        proc.wait()
    raise SystemExit(128 + signum)


def run_child(case: str, args: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run one case in a fresh interpreter; returns its result plus the OS's view of its peak RSS."""
    args_path = workdir / f"{case}-{time.monotonic_ns()}.args.json"
    out_path = args_path.with_suffix(".out.json")
    args_path.write_text(json.dumps(args))
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", case,
                             str(args_path), str(out_path)], cwd=ROOT)
    RUNNING[:] = [proc]
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        RUNNING.clear()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {case} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["rss_wait4_mb"] = usage.ru_maxrss / 1024.0
    ENGINE_SEEN.setdefault(result["engine_sha"], []).append(case)
    return result


def copy_store(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / WORK_FILE, dst / WORK_FILE)
    os.sync()  # the copy's write-back must not compete with the measured run


def compare(eng: dict[str, Any], pdn: dict[str, Any]) -> dict[str, Any]:
    """Where the engine and the pandas baseline disagree (empty lists: they agree)."""
    problems: list[str] = []
    for bit in map(str, range(4)):
        if eng["intervals"][bit] != pdn["intervals"][bit]:
            problems.append(f"bit {bit}: engine {eng['intervals'][bit]} vs pandas {pdn['intervals'][bit]}")
    if eng["transitions"] != pdn["transitions"]:
        problems.append(f"transitions: engine {eng['transitions']} vs pandas {pdn['transitions']}")
    if eng["series_rows"] != pdn["series_rows"]:
        problems.append(f"series rows: engine {eng['series_rows']} vs pandas {pdn['series_rows']}")
    if set(eng["points"]) != set(pdn["points"]):
        problems.append("sample points differ")
    for point, e in sorted(eng["points"].items()):
        p = pdn["points"].get(point)
        if p is None:
            continue
        for field, ev in e.items():
            pv = p[field]
            same = (
                (ev is None and pv is None)
                if ev is None or pv is None
                else math.isclose(ev, pv, rel_tol=1e-9, abs_tol=1e-12)
            )
            if not same:
                problems.append(f"{point} {field}: engine {ev} vs pandas {pv}")
    firing_points = sum(1 for e in eng["points"].values() if e["firing"])
    states = sorted({e["state"] for e in eng["points"].values() if e["state"] is not None})
    return {
        "agree": not problems,
        "problems": problems[:20],
        "points_compared": len(eng["points"]),
        "points_firing": firing_points,
        "point_states": [STATE_NAMES[s] for s in states],
        "firing_minutes_by_bit": {b: eng["intervals"][b]["firing_minutes"] for b in eng["intervals"]},
        "intervals_by_bit": {b: eng["intervals"][b]["intervals"] for b in eng["intervals"]},
        "transitions_by_state": eng["transitions"],
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main(cfg: Config | None = None) -> dict[str, Any]:
    cfg = cfg or Config.from_env()
    ENGINE_SEEN.clear()
    signal.signal(signal.SIGTERM, _on_sigterm)
    began = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    if load_start[0] > 0.5:
        print(f"note: load average {load_start} before the benchmark: other work shares the CPUs, "
              "wall times will be inflated (CPU seconds are reported too)", flush=True)
    workdir = Path(cfg.workdir or tempfile.mkdtemp(prefix="slo-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    n_buckets = cfg.slos * cfg.days * DAY
    print(f"engine benchmark: {cfg.slos} SLOs × {cfg.days} d = {n_buckets:,} buckets; work dir {workdir}",
          flush=True)
    model = DataModel.build(cfg.slos)
    slos = make_slos(cfg.slos)
    samples = sample_points(model, slos, cfg.days)
    base = {"slos": cfg.slos, "samples": samples}
    try:
        long_dir, short_dir = workdir / "base-long", workdir / "base-short"
        prepared = run_child("prepare", {**base, "data_dir": str(long_dir), "days": cfg.days}, workdir)
        print(f"  prepared {prepared['buckets']:,} buckets in {prepared['seconds']:.1f} s "
              f"(not timed as engine), file {prepared['file_mb']:.0f} MB", flush=True)
        if prepared["buckets"] != n_buckets:
            raise RuntimeError(f"prepared {prepared['buckets']} buckets, expected {n_buckets}")

        engine_runs: list[dict[str, Any]] = []
        first_evaluated = workdir / "engine-0"
        for r in range(cfg.runs):
            run_dir = workdir / f"engine-{r}"
            copy_store(long_dir, run_dir)
            res = run_child("engine_full", {**base, "data_dir": str(run_dir), "days": cfg.days,
                                            "profile": False, "summary": r == 0}, workdir)
            engine_runs.append(res)
            print(f"  engine run {r + 1}/{cfg.runs}: {res['wall_s']:.2f} s, "
                  f"peak RSS {res['rss_peak_mb']:.0f} MB", flush=True)
            if r > 0:
                shutil.rmtree(run_dir, ignore_errors=True)

        profile: dict[str, Any] | None = None
        if cfg.profile:
            run_dir = workdir / "engine-profile"
            copy_store(long_dir, run_dir)
            profile = run_child("engine_full", {**base, "data_dir": str(run_dir), "days": cfg.days,
                                                "profile": True, "summary": False}, workdir)
            shutil.rmtree(run_dir, ignore_errors=True)
            print(f"  engine instrumented run: {profile['wall_s']:.2f} s", flush=True)

        pandas_runs: list[dict[str, Any]] = []
        for r in range(cfg.pandas_runs):
            res = run_child("pandas", {**base, "data_dir": str(long_dir), "days": cfg.days,
                                       "summary": r == 0}, workdir)
            pandas_runs.append(res)
            print(f"  pandas run {r + 1}/{cfg.pandas_runs}: {res['wall_s']:.2f} s, "
                  f"peak RSS {res['rss_peak_mb']:.0f} MB", flush=True)

        incr_long = run_child("incremental", {**base, "data_dir": str(first_evaluated), "days": cfg.days,
                                              "reps": cfg.incr_reps}, workdir)
        print(f"  incremental after {cfg.days} d: median {incr_long['median_evaluate_ms']:.1f} ms evaluate, "
              f"{incr_long['median_write_ms']:.1f} ms write_buckets", flush=True)
        # The short history: evaluated in one process, updated in another, like the long one.
        run_child("prepare", {**base, "data_dir": str(short_dir), "days": cfg.short_days}, workdir)
        short_full = run_child("engine_full", {**base, "data_dir": str(short_dir), "days": cfg.short_days,
                                               "profile": False, "summary": False}, workdir)
        incr_short = run_child("incremental", {**base, "data_dir": str(short_dir), "days": cfg.short_days,
                                               "reps": cfg.incr_reps}, workdir)
        incr_short["full_wall_s"] = short_full["wall_s"]
        print(f"  incremental after {cfg.short_days} d: median {incr_short['median_evaluate_ms']:.1f} ms "
              f"evaluate, {incr_short['median_write_ms']:.1f} ms write_buckets", flush=True)

        agreement = compare(engine_runs[0]["summary"], pandas_runs[0]["summary"])
    finally:
        if not cfg.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    results = build_results(cfg, n_buckets, prepared, engine_runs, pandas_runs, profile, incr_long,
                            incr_short, agreement, time.perf_counter() - began, [load_start])
    print_report(results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = "engine.json" if cfg.is_default_size else f"engine-{cfg.slos}x{cfg.days}d.json"
    (RESULTS_DIR / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {RESULTS_DIR / name}")
    return results


def build_results(
    cfg: Config,
    n_buckets: int,
    prepared: dict[str, Any],
    engine_runs: list[dict[str, Any]],
    pandas_runs: list[dict[str, Any]],
    profile: dict[str, Any] | None,
    incr_long: dict[str, Any],
    incr_short: dict[str, Any],
    agreement: dict[str, Any],
    total_s: float,
    load: list[list[float]],
) -> dict[str, Any]:
    def row(runs: list[dict[str, Any]]) -> dict[str, Any]:
        wall = median_of(runs, "wall_s")
        return {
            "buckets": n_buckets,
            "runs": len(runs),
            "wall_s_median": round(wall, 3),
            "wall_s_all": [round(r["wall_s"], 3) for r in runs],
            "cpu_s_median": round(median_of(runs, "cpu_s"), 3),
            "buckets_per_s": round(n_buckets / wall),
            "peak_rss_mb": round(max(r["rss_peak_mb"] for r in runs), 1),
            "rss_before_step_mb": round(max(r["rss_before_mb"] for r in runs), 1),
            "peak_rss_wait4_mb": round(max(r["rss_wait4_mb"] for r in runs), 1),
        }

    eng, pdn = row(engine_runs), row(pandas_runs)
    eng["db_checkpoint_after_s"] = round(median_of(engine_runs, "db_checkpoint_s"), 3)
    pdn["read_s_median"] = round(median_of(pandas_runs, "read_s"), 3)
    pdn["chunk_slos"] = pandas_runs[0]["chunk_slos"]
    out: dict[str, Any] = {
        "config": {
            "slos": cfg.slos, "days": cfg.days, "short_days": cfg.short_days, "target": TARGET,
            "window": "rolling 30d", "cpus": os.cpu_count(), "duckdb": duckdb.__version__,
            "pandas": pd.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
        },
        "ingest_not_timed": {"buckets": prepared["buckets"], "seconds": round(prepared["seconds"], 2),
                             "file_mb": round(prepared["file_mb"], 1)},
        "engine": eng,
        "pandas": pdn,
        "engine_speedup_vs_pandas": round(pdn["wall_s_median"] / eng["wall_s_median"], 2),
        "incremental": {
            f"{cfg.short_days}d": _incr(incr_short),
            f"{cfg.days}d": _incr(incr_long),
        },
        "short_history_full_wall_s": round(incr_short["full_wall_s"], 3),
        "agreement": agreement,
        "targets": {
            "buckets_per_s": TARGET_BUCKETS_PER_S,
            "peak_rss_mb": TARGET_PEAK_MB,
            "throughput_met": eng["buckets_per_s"] >= TARGET_BUCKETS_PER_S,
            "memory_met": eng["peak_rss_mb"] < TARGET_PEAK_MB,
        },
        "total_benchmark_s": round(total_s, 1),
        "load_average": {"start": load[0], "end": [round(x, 2) for x in os.getloadavg()]},
        "code": {**git_state(), "engine_sha_by_case": ENGINE_SEEN},
    }
    if profile is not None:
        stages = profile["profile"]
        tracked = sum(stages.values())
        out["engine_profile"] = {
            "wall_s": round(profile["wall_s"], 3),
            "stages_s": stages,
            "untracked_python_s": round(profile["wall_s"] - tracked, 4),
            "worker_threads_s": profile.get("profile_threads", {}),
            "calls": profile["profile_calls"],
            "per_call_s": profile["profile_per_call"],
        }
    return out


def _incr(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "reps": r["reps"],
        "median_evaluate_ms": round(r["median_evaluate_ms"], 2),
        "median_write_buckets_ms": round(r["median_write_ms"], 2),
        "median_total_ms": round(r["median_total_ms"], 2),
        "median_evaluate_cpu_ms": round(r["median_evaluate_cpu_ms"], 2),
        "evaluate_ms_all": [round(x, 2) for x in r["evaluate_ms"]],
        "minutes_evaluated": r["minutes_evaluated"],
        "profile_ms_per_update": r["profile_ms_per_update"],
    }


def print_report(res: dict[str, Any]) -> None:
    eng, pdn = res["engine"], res["pandas"]
    print("\n== Engine benchmark (DESIGN §5) ==")
    print(f"{res['config']['slos']} SLOs × {res['config']['days']} d, {res['config']['cpus']} CPUs, "
          f"duckdb {res['config']['duckdb']}, pandas {res['config']['pandas']}")
    header = (f"{'case':<22}{'buckets':>12}{'runs':>6}{'wall s (med)':>14}{'buckets/s':>14}"
              f"{'peak RSS MB':>13}{'CPU s (med)':>13}")
    print(header)
    print("-" * len(header))
    for name, r in (("engine full history", eng), ("pandas baseline", pdn)):
        print(f"{name:<22}{r['buckets']:>12,}{r['runs']:>6}{r['wall_s_median']:>14.2f}"
              f"{r['buckets_per_s']:>14,}{r['peak_rss_mb']:>13.0f}{r['cpu_s_median']:>13.1f}")
    print(f"engine speed / pandas speed: {res['engine_speedup_vs_pandas']:.2f}×")
    met = {k: "met" if v else "MISSED" for k, v in res["targets"].items() if k.endswith("_met")}
    print(f"targets: ≥ {TARGET_BUCKETS_PER_S:,} buckets/s: {met['throughput_met']}; "
          f"peak < {TARGET_PEAK_MB} MB: {met['memory_met']}")
    short = res["config"]["short_days"]
    short_buckets = res["config"]["slos"] * short * DAY
    print(f"engine full history at {short} d: {res['short_history_full_wall_s']:.2f} s "
          f"({short_buckets / res['short_history_full_wall_s']:,.0f} buckets/s, 1 run)")
    print("\nincremental one-minute update (all SLOs), median:")
    for hist, r in res["incremental"].items():
        print(f"  {hist:>4} history: evaluate {r['median_evaluate_ms']:8.1f} ms, write_buckets "
              f"{r['median_write_buckets_ms']:7.1f} ms, total {r['median_total_ms']:8.1f} ms "
              f"({r['reps']} reps; evaluate CPU {r['median_evaluate_cpu_ms']:.1f} ms)")
    hists = list(res["incremental"])
    stages = sorted({s for h in hists for s in res["incremental"][h]["profile_ms_per_update"]},
                    key=lambda s: -res["incremental"][hists[-1]]["profile_ms_per_update"].get(s, 0.0))
    print(f"  per-stage median ms per update (instrumented):{''.join(f'{h:>10}' for h in hists)}")
    for stage in stages:
        vals = "".join(
            f"{res['incremental'][h]['profile_ms_per_update'].get(stage, 0.0):>10.1f}" for h in hists
        )
        print(f"    {stage:<46}{vals}")
    if "engine_profile" in res:
        prof = res["engine_profile"]
        print(f"\nengine full-history profile (instrumented run, {prof['wall_s']:.2f} s):")
        for stage, secs in prof["stages_s"].items():
            print(f"  {stage:<52}{secs:>9.2f} s {100 * secs / prof['wall_s']:>6.1f} %")
        print(f"  {'untracked python (evaluate glue, kernels waited for)':<52}"
              f"{prof['untracked_python_s']:>9.2f} s")
        for stage, secs in prof.get("worker_threads_s", {}).items():
            print(f"  {stage + ' on worker threads':<52}{secs:>9.2f} s (summed; overlaps the rest)")
    ag = res["agreement"]
    print(f"\nengine vs pandas: {'AGREE' if ag['agree'] else 'DISAGREE'} — firing minutes by bit "
          f"{ag['firing_minutes_by_bit']}, intervals {ag['intervals_by_bit']}, transitions "
          f"{ag['transitions_by_state']}, {ag['points_compared']} sample points "
          f"({ag['points_firing']} firing, states {ag['point_states']})")
    for p in ag["problems"]:
        print(f"  ! {p}")
    code = res["code"]
    print(f"total benchmark time {res['total_benchmark_s']:.0f} s; git {code['head']}, uncommitted in "
          f"pipelines/: {code['pipelines_uncommitted'] or 'none'}; "
          f"engine.py sha {list(code['engine_sha_by_case'])}")
    if len(code["engine_sha_by_case"]) > 1:
        print("  ! pipelines/engine.py changed during the benchmark: cases ran different engine versions")


def test_engine_benchmark() -> None:
    """Pytest entry: runs the benchmark at the configured size; fails only when results disagree."""
    results = main()
    assert results["agreement"]["agree"], results["agreement"]["problems"]


def engine_fingerprint() -> str:
    """Short hash of the engine source this process imported (it may be edited between runs)."""
    return hashlib.sha256(Path(cast(str, engine.__file__)).read_bytes()).hexdigest()[:12]


def git_state() -> dict[str, Any]:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)

    dirty = git("status", "--porcelain", "--", "pipelines").stdout.split("\n")
    return {
        "head": git("rev-parse", "--short", "HEAD").stdout.strip(),
        "pipelines_uncommitted": sorted(line[3:] for line in dirty if line.strip()),
    }


def _child_main(argv: list[str]) -> int:
    case, args_path, out_path = argv
    result = CASES[case](json.loads(Path(args_path).read_text()))
    result["engine_sha"] = engine_fingerprint()
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(_child_main(sys.argv[2:]))
    sys.exit(0 if main()["agreement"]["agree"] else 1)
