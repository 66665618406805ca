"""Publish benchmark (issue 13, deliverable 4): one more minute at 1,000 SLOs costs the same with 30
and 180 days of history, because a publish writes what changed, not the history.

For each history length D (default 30 and 180 days; `BENCH_DAYS=30,180`) a store of N SLOs (default
1,000; `BENCH_SLOS`) is built once by this tree's code: the fleet benchmark's spec files
(`fleet.write_specs`), D days of per-minute buckets bulk-inserted in SQL (hash-seeded counts with a
low error rate, so no burn-rate alert fires and the incident stage has nothing to do: what is measured
is the store, the engine and the publish), evaluated by `engine.evaluate` and published. The store
is then copied (`cp -a`) once per tree under test: this tree, and the tree in `BENCH_BASE` (a
checkout of main, for the before figures) when given. On each copy, every case is a whole process
(`python -m pipelines.cli` or this file as a child) with that tree first on `sys.path`:

1. **slo run** — `slo run --source csv --events <one minute for the N SLOs>`, `BENCH_RUNS` times
   (default 3), each the next minute: wall time and peak RSS of the process.
2. **service cycle** — one process that loads the specs once and then calls `cycle.run_cycle` for
   `BENCH_CYCLES` (default 5) consecutive minutes, as the service's worker does per cycle (without the
   Prometheus pull): the time of each `run_cycle`.
3. **publish alone** — a child that writes one more minute and evaluates it, then times
   `Writer.publish()` (`BENCH_RUNS` times).
4. **sizes** — the published snapshot file, the partition files, the work file.

Medians of the runs. Run: `.venv/bin/python tests/benchmarks/bench_publish.py` (`BENCH_BASE=/path/to/main`
for before/after; `BENCH_DIR` for the scratch directory, which needs ~10 GB at 180 days; `BENCH_KEEP=1`
keeps it). Results: a table on stdout and `tests/benchmarks/results/publish.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE / "results" / "publish.json"
END_DAY = 20_787  # 2026-11-30 (as tests/benchmarks/fleet.py): the history ends at its midnight + 12 h
HALF_DAY = 720


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Children (run as `python bench_publish.py <case> ...` with the tree under test first on sys.path)


def child_build(data: str, specs: str, slos_n: str, days: str) -> dict[str, Any]:
    """The store: N SLOs × D days of buckets, evaluated and published (this tree's code)."""
    from pipelines import engine
    from pipelines.catalog import sync_slos
    from pipelines.cycle import open_writer
    from pipelines.partitions import mark_changed
    from pipelines.specs import load_specs
    from tests.benchmarks import fleet

    n, d = int(slos_n), int(days)
    fleet.write_specs(Path(specs), n)
    slos, _ = load_specs([specs])
    end = END_DAY * 1440 + HALF_DAY
    start = end - d * 1440
    t0 = time.perf_counter()
    with open_writer(Path(data)) as writer:
        con = writer.db
        sync_slos(con, slos)
        for day in range(d):
            lo = start + day * 1440
            con.execute(BUCKETS_SQL, [lo, lo + 1440])
        con.execute(
            "INSERT INTO engine_state SELECT slo_key, ?, NULL, ? FROM slos ON CONFLICT DO NOTHING",
            [start, start],
        )
        mark_changed(con, "buckets", start, end - 1)
        t1 = time.perf_counter()
        engine.evaluate(con, slos, end)
        t2 = time.perf_counter()
        writer.publish()
        t3 = time.perf_counter()
    return {"insert_s": t1 - t0, "evaluate_s": t2 - t1, "first_publish_s": t3 - t2, "end": end}


# SQL: one day of buckets for every SLO: 100–999 valid a minute, a bad event in about one minute of
# ten (an error rate far below 0.1 %, so no alert fires), in minute order as the pipeline writes them.
BUCKETS_SQL = """
INSERT INTO buckets_open
SELECT slo_key, m, valid - (hash(slo_key, m, 2) % 10 = 0)::BIGINT AS good, valid
FROM (SELECT slo_key, m, 100 + (hash(slo_key, m, 1) % 900)::BIGINT AS valid
      FROM slos, range(?, ?) t(m))
ORDER BY m, slo_key
"""


def minute_csv(path: Path, specs: Path, minute: int) -> Path:
    """One minute of events for every SLO of the specs (the `slo run --source csv` input)."""
    from tests.benchmarks import fleet

    n = len(list(specs.glob("*.yaml"))) * fleet.PER_SERVICE
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute * 60))
    lines = ["slo,timestamp,good,valid"]
    lines += [f"{slo_id},{stamp},{500 - (i % 10 == 0)},500" for i, slo_id in enumerate(fleet.slo_ids(n))]
    path.write_text("\n".join(lines) + "\n")
    return path


def minute_frame(specs: str, minute: int) -> Any:
    import pandas as pd

    from tests.benchmarks import fleet

    n = len(list(Path(specs).glob("*.yaml"))) * fleet.PER_SERVICE
    ids = fleet.slo_ids(n)
    return pd.DataFrame(
        {
            "slo_id": ids,
            "minute": [minute] * n,
            "good": [500 - (i % 10 == 0) for i in range(n)],
            "valid": [500] * n,
        }
    )


def child_cycles(data: str, specs: str, first: str, count: str) -> dict[str, Any]:
    """Consecutive one-minute service cycles in one process (specs loaded once, as the worker does)."""
    from pipelines.config import Settings
    from pipelines.cycle import run_cycle
    from pipelines.sources import Pull
    from pipelines.specs import load_specs

    slos, _ = load_specs([specs])
    settings = Settings(data_dir=Path(data), specs_dir=Path(specs))
    times = []
    for minute in range(int(first), int(first) + int(count)):
        frame = minute_frame(specs, minute)
        t0 = time.perf_counter()
        run_cycle(settings, slos, Pull(buckets=frame, end=minute + 1, origin="bench"))
        times.append(time.perf_counter() - t0)
    return {"cycle_s": times}


def child_publish(data: str, specs: str, minute: str) -> dict[str, Any]:
    """One more minute written and evaluated, then the publish alone, timed."""
    from pipelines import engine
    from pipelines.buckets import write_buckets
    from pipelines.cycle import open_writer
    from pipelines.specs import load_specs

    slos, _ = load_specs([specs])
    m = int(minute)
    with open_writer(Path(data)) as writer:
        keys = dict(writer.db.execute("SELECT slo_id, slo_key FROM slos").fetchall())
        write_buckets(writer.db, minute_frame(specs, m), keys, "bench")
        engine.evaluate(writer.db, slos, m + 1)
        t0 = time.perf_counter()
        writer.publish()
        return {"publish_s": time.perf_counter() - t0}


CHILDREN = {"build": child_build, "cycles": child_cycles, "publish": child_publish}


# ---------------------------------------------------------------------------------------------
# The parent


def run(tree: Path, args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """A whole process with `tree` first on sys.path: (wall seconds, peak RSS MB, stdout)."""
    full = {**os.environ, "PYTHONPATH": str(tree), **(env or {})}
    full.pop("ANTHROPIC_API_KEY", None)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, cwd=tree, env=full, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def child(tree: Path, case: str, *args: object) -> dict[str, Any]:
    _, _, out = run(tree, [sys.executable, str(HERE / "bench_publish.py"), case, *map(str, args)])
    return dict(json.loads(out.strip().splitlines()[-1]))


def sizes(data: Path) -> dict[str, int]:
    """The published snapshot file, the partition files it lists (none before partitions), the work file."""
    import duckdb

    con = duckdb.connect(str(data / "slo.duckdb"), read_only=True)
    try:
        listed = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'snapshot_parts'"
        ).fetchall()[0][0]
        parts = (
            con.execute("SELECT coalesce(sum(bytes), 0) FROM snapshot_parts").fetchall()[0][0]
            if listed
            else 0
        )
    finally:
        con.close()
    return {
        "snapshot_bytes": (data / "slo.duckdb").stat().st_size,
        "parts_bytes": int(parts),
        "work_bytes": (data / "work.duckdb").stat().st_size,
    }


def measure(
    trees: dict[str, Path], where: Path, specs: Path, first: int, runs: int, cycles: int
) -> dict[str, Any]:
    """Every case on each tree's copy of the store, the trees taking turns run by run (the machine is
    shared: a burst of load then hits both alike)."""
    data = {name: where / name / "data" for name in trees}
    out: dict[str, dict[str, Any]] = {
        name: {"slo_run_s": [], "peak_mb": [], "publish_s": []} for name in trees
    }

    def slo_run(name: str, minute: int) -> tuple[float, float]:
        env = {"SLO_DATA_DIR": str(data[name]), "SLO_SPECS_DIR": str(specs)}
        csv = minute_csv(where / f"minute-{name}.csv", specs, minute)
        wall, peak, _ = run(
            trees[name],
            [sys.executable, "-m", "pipelines.cli", "run", "--source", "csv", "--events", str(csv)],
            env,
        )
        return wall, peak

    # Untimed: the first run migrates the store (and on main copies it whole); the second, an hour
    # later, closes the hour of the history's end. The history's dense evaluation wrote slo_series and
    # checkpoints SLO by SLO up to that instant, so until that hour has closed, picking the open hour's
    # rows of those tables reads all of them; afterwards DuckDB's zone maps skip the old row groups.
    # The timed runs are the steady state: the service an hour or more after a history load.
    minute = first
    for name in trees:
        slo_run(name, minute)
    minute = first + 60
    for name in trees:
        slo_run(name, minute)
    for _ in range(runs):
        minute += 1
        for name in trees:
            wall, peak = slo_run(name, minute)
            out[name]["slo_run_s"].append(wall)
            out[name]["peak_mb"].append(peak)
    minute += 1
    for name in trees:
        out[name]["cycle_s"] = child(trees[name], "cycles", data[name], specs, minute, cycles)["cycle_s"]
    minute += cycles
    for _ in range(runs):
        for name in trees:
            out[name]["publish_s"].append(
                child(trees[name], "publish", data[name], specs, minute)["publish_s"]
            )
        minute += 1
    for name in trees:
        r = out[name]
        r["slo_run_median_s"] = statistics.median(r["slo_run_s"])
        r["slo_run_peak_mb"] = max(r.pop("peak_mb"))
        r["cycle_median_s"] = statistics.median(r["cycle_s"])
        r["publish_median_s"] = statistics.median(r["publish_s"])
        r.update(sizes(data[name]))
    return out


def main() -> None:
    n = int(os.environ.get("BENCH_SLOS", 1000))
    days_list = [int(x) for x in os.environ.get("BENCH_DAYS", "30,180").split(",")]
    runs = int(os.environ.get("BENCH_RUNS", 3))
    cycles = int(os.environ.get("BENCH_CYCLES", 5))
    base = os.environ.get("BENCH_BASE")
    trees = {"this": ROOT, **({"base": Path(base).resolve()} if base else {})}
    scratch = Path(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bench-publish-"))
    keep = os.environ.get("BENCH_KEEP") == "1"
    results: dict[str, Any] = {
        "slos": n,
        "runs": runs,
        "cycles": cycles,
        "trees": {k: str(v) for k, v in trees.items()},
    }
    try:
        for days in days_list:
            where = scratch / f"{n}x{days}d"
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir(parents=True)
            specs = where / "specs"
            log(f"building {n} SLOs × {days} days …")
            t0 = time.perf_counter()
            built = child(ROOT, "build", where / "build", specs, n, days)
            log(f"  built in {time.perf_counter() - t0:.0f} s: {built}")
            first = int(built["end"])
            case: dict[str, Any] = {"build": built}
            for name in trees:
                (where / name).mkdir()
                subprocess.run(["cp", "-a", str(where / "build"), str(where / name / "data")], check=True)
            log(f"  measuring {', '.join(trees)} …")
            for name, figures in measure(trees, where, specs, first, runs, cycles).items():
                case[name] = figures
                log(f"  {name}: {json.dumps({k: v for k, v in figures.items() if not isinstance(v, list)})}")
                shutil.rmtree(where / name)
            results[f"{days}d"] = case
            shutil.rmtree(where / "build")
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    table(results, days_list, list(trees))


def table(results: dict[str, Any], days_list: list[int], trees: list[str]) -> None:
    print(f"\none more minute at {results['slos']} SLOs", end=" ")
    print(f"(medians of {results['runs']} runs and {results['cycles']} cycles)")
    head = ("history", "tree", "slo run s", "cycle s", "publish s", "snapshot MB", "parts MB", "work MB")
    print(" ".join(f"{h:>11}" for h in head))
    for days in days_list:
        for tree in trees:
            r = results[f"{days}d"][tree]
            cells = (
                f"{days}d",
                tree,
                f"{r['slo_run_median_s']:.2f}",
                f"{r['cycle_median_s']:.2f}",
                f"{r['publish_median_s']:.3f}",
                f"{r['snapshot_bytes'] / 1e6:.1f}",
                f"{r['parts_bytes'] / 1e6:.1f}",
                f"{r['work_bytes'] / 1e6:.1f}",
            )
            print(" ".join(f"{c:>11}" for c in cells))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        # a child: the tree under test is first on sys.path (PYTHONPATH)
        print(json.dumps(CHILDREN[sys.argv[1]](*sys.argv[2:])))
    else:
        sys.path.insert(0, str(ROOT))  # the parent imports tests.benchmarks.fleet
        main()
