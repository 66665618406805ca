"""History-load benchmark (issue 13): `slo run --source csv` as a whole process, at fleet size.

Every case is a whole process, timed from the parent (wall clock, CPU seconds and peak RSS from
`os.wait4`), median of `BENCH_RUNS` (3) runs, each into a fresh data directory:

- **slo run (CSV)**: `slo run --source csv --events events.csv` on N SLOs × D days (default
  1,000 × 30 = 43.2 M rows).
- **slo run (Parquet)**: the same rows as a Parquet file with real timestamps.
- **pandas reference**: the same job the plain pandas way, on the same file as the `slo run` it is set
  against (CSV: `read_csv`, pyarrow engine; Parquet: `read_parquet`, the SLO ids as a category either
  way): times floored to the minute, rows summed per SLO and minute, then DESIGN §2 evaluated by
  `bench_engine.pandas_chunk` (rolling sums, burn rates, policy states, alerts, the 15-minute series).
  Its results must agree with what `slo run` stored (series rows, alert intervals per condition):
  a reference that computes something else is no yardstick (pandas 3 parses times to microseconds,
  and a `// 10**9` taken for nanoseconds once put every row in January 1970, a fast wrong answer).
- **DuckDB scan**: `count(*)` and sums over each file: the floor for reading it.
- **one more minute**: after a load, `slo run --source csv` with one new minute for every SLO
  (`BENCH_MINUTES`, 5 runs), after D days and after `BENCH_LONG_DAYS` (180) days of history, the two
  stores in turn.
- **big fleet**: `slo run` on `BENCH_BIG_SLOS` (10,000) × `BENCH_BIG_DAYS` (7) days as Parquet
  (100.8 M rows), once.

The data comes from `fleet.py` (spec files and events, deterministic) and is kept in `BENCH_DIR`
(default `/tmp/bench-history`) between runs. The machine's load average is recorded beside each case:
on a shared machine compare the ratios of one run, not figures across runs.

    .venv/bin/python tests/benchmarks/bench_history.py          # everything, ≈ 20 min on 2 cores
    BENCH_SLOS=100 BENCH_LONG_DAYS=0 BENCH_BIG_SLOS=0 .venv/bin/python tests/benchmarks/bench_history.py

Results: a table on stdout and `tests/benchmarks/results/history.json`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402  (this directory)

SLO = [sys.executable, "-m", "pipelines.cli"]
FORMATS = ("csv", "parquet")  # the same rows in both: each `slo run` set against pandas on its own file


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def timed(cmd: list[str], env: dict[str, str] | None = None, out: Path | None = None) -> dict[str, float]:
    """Run one whole process; its wall seconds, CPU seconds and peak RSS (MB). `out`: where its standard
    output goes (else nowhere)."""
    started = time.perf_counter()
    # as on a user's machine, where Python keeps its bytecode caches (some sandboxes turn them off:
    # then every run compiles the whole product again, 0.2-0.3 s of a one-minute run)
    full = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with open(out or os.devnull, "w") as stdout:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**full, **(env or {})}, stdout=stdout)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "load": os.getloadavg()[0],
    }


def median(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "load": max(r["load"] for r in runs),
        "runs": runs,
    }


def dataset(base: Path, slos: int, days: int, fmt: str) -> tuple[Path, Path]:
    """(specs dir, events file) for N SLOs × D days, generated once and kept."""
    where = base / f"{slos}x{days}"
    specs, events = where / "specs", where / f"events.{fmt}"
    if not specs.exists():
        fleet.write_specs(specs, slos)
    if not events.exists():
        tmp = events.with_suffix(f".tmp.{fmt}")
        fleet.write_events(tmp, slos, days)
        tmp.rename(events)
    return specs, events


def one_minute_file(base: Path, slos: int, at: dt.datetime) -> Path:
    path = base / f"minute-{slos}-{at:%Y%m%dT%H%M}.csv"
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(
        "slo,timestamp,good,valid\n" + "".join(f"{i},{stamp},500,500\n" for i in fleet.slo_ids(slos))
    )
    return path


def slo_run(specs: Path, data: Path, events: Path) -> dict[str, float]:
    env = {"SLO_SPECS_DIR": str(specs), "SLO_DATA_DIR": str(data)}
    return timed([*SLO, "run", "--source", "csv", "--events", str(events)], env)


def load_runs(base: Path, specs: Path, events: Path, runs: int) -> dict[str, Any]:
    results = []
    stored: dict[str, Any] = {}
    for n in range(runs):
        data = base / f"data-{events.suffix[1:]}-{n}"
        shutil.rmtree(data, ignore_errors=True)
        os.sync()
        results.append(slo_run(specs, data, events))
        if not stored:
            stored = store_results(data)
        shutil.rmtree(data, ignore_errors=True)
    return {**median(results), "results": stored}


def store_results(data: Path) -> dict[str, Any]:
    """What a `slo run` stored, reduced as the pandas reference reports it: series rows, and alert
    intervals per condition bit."""
    from pipelines.store import Snapshot

    snapshot = Snapshot(data)
    try:
        with snapshot.connection() as con:
            ((series,),) = con.execute("SELECT count(*) FROM slo_series").fetchall()
            by_bit = dict(con.execute("SELECT bit, count(*) FROM alert_intervals GROUP BY bit").fetchall())
    finally:
        snapshot.close()
    return {"series_rows": int(series), "intervals": [int(by_bit.get(bit, 0)) for bit in range(4)]}


def more_minutes(
    base: Path, histories: dict[str, tuple[Path, Path]], slos: int, minutes: int
) -> dict[str, dict[str, Any]]:
    """Load each history (name → (specs, events)) once, then time `minutes` one-minute runs on each, in
    turn (30 d, 180 d, 30 d, …): the machine's drift touches both alike, so their ratio holds."""
    stores = {}
    for name, (specs, events) in histories.items():
        data = base / f"data-minutes-{events.parent.name}"
        shutil.rmtree(data, ignore_errors=True)
        stores[name] = (specs, data, slo_run(specs, data, events))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in histories}
    for m in range(minutes):
        one = one_minute_file(base, slos, fleet.END + dt.timedelta(minutes=m))
        for name, (specs, data, _) in stores.items():
            runs[name].append(slo_run(specs, data, one))
        one.unlink()
    out = {}
    for name, (_, data, load) in stores.items():
        size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
        shutil.rmtree(data, ignore_errors=True)
        out[name] = {**median(runs[name]), "history_load": load, "store_mb": size / 1e6}
    return out


def duckdb_scan(events: Path) -> dict[str, float]:
    reader = "read_parquet" if events.suffix == ".parquet" else "read_csv"
    code = (
        'import duckdb; duckdb.sql("SELECT count(*), sum(good), sum(valid), max(timestamp) '
        f"FROM {reader}('{events}')\").fetchall()"
    )
    return timed([sys.executable, "-c", code])


def pandas_reference(specs_slos: int, events: Path, days: int) -> None:
    """The whole job the plain pandas way, in this process (run as a child: see `main`)."""
    import bench_engine
    import numpy as np
    import pandas as pd

    if events.suffix == ".parquet":
        frame = pd.read_parquet(events, read_dictionary=["slo"])  # the ids as a category
        stamps = frame["timestamp"]
    else:
        frame = pd.read_csv(events, engine="pyarrow", dtype={"slo": "category"})
        stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    # whatever unit the times came in (pandas 3 parses to microseconds)
    minutes = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(minutes=1)
    ids = fleet.slo_ids(specs_slos)
    frame = pd.DataFrame(
        {
            "slo_key": pd.Categorical(frame["slo"], categories=ids).codes.astype("int64") + 1,
            "minute": minutes.astype("int64"),
            "good": frame["good"],
            "valid": frame["valid"],
        }
    )
    frame = frame.groupby(["slo_key", "minute"], as_index=False).sum()
    end = int(fleet.END.timestamp()) // 60
    start = end - days * 1440
    totals = bench_engine.PandasTotals(np.zeros(4, np.int64), np.zeros(4, np.int64), {}, 0, {})
    per_chunk = max(1, bench_engine.PANDAS_CHUNK_CELLS // (days * 1440))
    for lo in range(1, specs_slos + 1, per_chunk):
        keys = np.arange(lo, min(lo + per_chunk, specs_slos + 1), dtype=np.int64)
        chunk = frame[(frame["slo_key"] >= keys[0]) & (frame["slo_key"] <= keys[-1])]
        bench_engine.pandas_chunk(chunk, keys, start, end, totals, set())
    print(json.dumps({"series_rows": totals.series_rows, "intervals": totals.intervals.tolist()}))


def pandas_runs_on(
    base: Path, events: Path, slos: int, days: int, runs: int, stored: dict[str, Any]
) -> dict[str, Any]:
    """The pandas reference on `events`, `runs` times; each run's answer is compared with what `slo run`
    stored from the same file (`stored`)."""
    cmd = [sys.executable, str(Path(__file__)), "--pandas", str(slos), str(events), str(days)]
    answer = base / "pandas-answer.json"
    results, answers = [], []
    for _ in range(runs):
        results.append(timed(cmd, out=answer))
        answers.append(json.loads(answer.read_text()))
    agrees = all(a == stored for a in answers)
    if not agrees:
        print(
            f"pandas reference on {events.name} DISAGREES with slo run: {answers[0]} vs {stored}", flush=True
        )
    return {**median(results), "results": answers[0], "agrees_with_slo_run": agrees}


def main() -> dict[str, Any]:
    base = Path(os.environ.get("BENCH_DIR", "/tmp/bench-history"))
    base.mkdir(parents=True, exist_ok=True)
    slos, days = env_int("BENCH_SLOS", 1000), env_int("BENCH_DAYS", 30)
    runs, pandas_runs = env_int("BENCH_RUNS", 3), env_int("BENCH_PANDAS_RUNS", 3)
    long_days, minutes = env_int("BENCH_LONG_DAYS", 180), env_int("BENCH_MINUTES", 5)
    big_slos, big_days = env_int("BENCH_BIG_SLOS", 10_000), env_int("BENCH_BIG_DAYS", 7)
    rows = slos * days * 1440
    specs, _ = dataset(base, slos, days, "csv")
    files = {fmt: dataset(base, slos, days, fmt)[1] for fmt in FORMATS}
    res: dict[str, Any] = {"slos": slos, "days": days, "rows": rows, "cpus": os.cpu_count()}
    csv_mb = files["csv"].stat().st_size / 1e6
    print(f"{slos:,} SLOs × {days} days = {rows:,} rows; {files['csv']} ({csv_mb:.0f} MB)", flush=True)
    out = HERE / "results" / "history.json"
    out.parent.mkdir(exist_ok=True)

    def done(name: str, result: dict[str, Any], count: int | None = rows) -> None:
        res[name] = result
        print(line(name, result, count), flush=True)
        out.write_text(json.dumps(res, indent=2))  # kept as it goes: a later case may run out of memory

    print(HEADER, flush=True)
    for fmt, events in files.items():
        done(f"duckdb_scan_{fmt}", median([duckdb_scan(events) for _ in range(runs)]))
        done(f"slo_{fmt}", load_runs(base, specs, events, runs))
    for fmt, events in files.items() if pandas_runs else ():
        done(
            f"pandas_{fmt}",
            pandas_runs_on(base, events, slos, days, pandas_runs, res[f"slo_{fmt}"]["results"]),
        )
    histories = {f"minute_after_{days}d": (specs, files["parquet"])}
    if long_days:
        histories[f"minute_after_{long_days}d"] = dataset(base, slos, long_days, "parquet")
    for name, result in more_minutes(base, histories, slos, minutes).items():
        done(name, result, None)
    if big_slos:
        big_specs, big_events = dataset(base, big_slos, big_days, "parquet")
        data = base / "data-big"
        shutil.rmtree(data, ignore_errors=True)
        big = {"slos": big_slos, "days": big_days, **slo_run(big_specs, data, big_events)}
        done(f"slo_parquet_{big_slos}x{big_days}d", big, big_slos * big_days * 1440)
        shutil.rmtree(data, ignore_errors=True)
    ratios(res, days, long_days)
    out = HERE / "results" / "history.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    return res


HEADER = f"\n{'case':34s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s} {'M rows/s':>9s} {'load':>5s}"


def line(name: str, r: dict[str, Any], rows: int | None) -> str:
    rate = f"{rows / r['wall_s'] / 1e6:9.2f}" if rows else " " * 9
    return f"{name:34s} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['rss_mb']:8.0f} {rate} {r['load']:5.1f}"


def ratios(res: dict[str, Any], days: int, long_days: int) -> None:
    print()
    for fmt in FORMATS:
        run, scan = res[f"slo_{fmt}"], res[f"duckdb_scan_{fmt}"]
        if f"pandas_{fmt}" in res:
            ratio = res[f"pandas_{fmt}"]["wall_s"] / run["wall_s"]
            agreed = "results agree" if res[f"pandas_{fmt}"]["agrees_with_slo_run"] else "RESULTS DISAGREE"
            print(f"slo run ({fmt}) vs pandas reference on the same file: {ratio:.1f}× faster ({agreed})")
        print(f"slo run ({fmt}) / DuckDB scan of the file: {run['wall_s'] / scan['wall_s']:.1f}×")
    if long_days:
        short, long = res[f"minute_after_{days}d"]["wall_s"], res[f"minute_after_{long_days}d"]["wall_s"]
        print(f"one more minute, {long_days} d of history / {days} d: {long / short:.2f}")


def test_history_benchmark() -> None:
    res = main()
    for fmt in FORMATS:
        assert res[f"slo_{fmt}"]["results"]["series_rows"] == res["slos"] * res["days"] * 1440 // 15
        if f"pandas_{fmt}" in res:
            assert res[f"pandas_{fmt}"]["agrees_with_slo_run"], (
                res[f"pandas_{fmt}"],
                res[f"slo_{fmt}"]["results"],
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pandas"]:
        pandas_reference(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
