"""Burst benchmark (issue 13, DESIGN §5): alerts into a running `slo serve` with 1,000 SLOs in its store.

Whole processes, as a user runs them: a fleet from `fleet.py` (BENCH_SLOS SLOs × BENCH_DAYS days), a
store built from it with `slo run --source csv` (once, copied fresh for every run), then `slo serve`
(worker every BENCH_CYCLE_SECONDS, default 5 s) driven over loopback HTTP from this process.

- **burst**: 200 alerts in 20 Alertmanager v4 deliveries of 10, each alert on its own SLO of the fleet
  (severity `ticket`, SEV3), sent back to back. Timed from the last delivery's 202 until every one of
  the 200 is listed by `GET /api/incidents` (target 15 s), and until every one is triaged and routed
  (its `triage` and `route` set; target 120 s).
- **storm**: 5,000 alerts (severity `warning`, SEV3; each its own fingerprint, on 200 of the fleet's
  SLOs, 50 services × 4, so 200 incidents that the other 4,800 alerts join) in 5 deliveries of 1,000
  (the per-delivery cap: a delivery of 5,000 is refused, 400 over the alert cap or 413 over the body
  limit, so an Alertmanager in front of `slo serve` sets `max_alerts: 1000`), then, a second later,
  one SEV1 alert on another service. Timed from the SEV1's 202 until its incident is listed (target
  15 s); also until the fold has caught up with all 5,000 (`/api/health` fold lag 0).

Each case runs BENCH_RUNS times (default 3) on a fresh copy of the store; medians are reported.

    .venv/bin/python tests/benchmarks/bench_burst.py          # about 10 minutes
    BENCH_RUNS=1 .venv/bin/python tests/benchmarks/bench_burst.py

Results: a table on stdout and tests/benchmarks/results/burst.json. `BENCH_TAG` names the result file
(`burst-<tag>.json`) so a baseline checkout's figures can sit beside this one's.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.service import Service, start_service, stop_service  # noqa: E402

SLOS = int(os.environ.get("BENCH_SLOS", "1000"))
DAYS = int(os.environ.get("BENCH_DAYS", "1"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CYCLE = os.environ.get("BENCH_CYCLE_SECONDS", "5")
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "300"))
TAG = os.environ.get("BENCH_TAG", "")
TOKEN = "bench-token"
INGEST = "/api/incidents/ingest"
RESULTS = Path(__file__).resolve().parent / "results"
PER_SERVICE = 10  # fleet.py: 10 SLOs (endpoint0…9) per service file


def delivery(alerts: list[dict[str, Any]], key: str) -> bytes:
    """An Alertmanager v4 webhook body holding `alerts`."""
    return json.dumps(
        {
            "receiver": "slo",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": key},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{key}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


def alert(
    title: str, fingerprint: str, severity: str, labels: dict[str, str], starts_at: str
) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "BenchAlert", "severity": severity, **labels},
        "annotations": {"summary": title},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))


def services(n_slos: int) -> list[str]:
    """The fleet's service names (fleet.py's own function, so the names always match)."""
    from tests.benchmarks.fleet import service_name

    return [service_name(i) for i in range(max(1, n_slos // PER_SERVICE))]


def quiet_slos(store: Path) -> list[str]:
    """The store's SLOs without an open incident, spread over its services (one per service in turn)."""
    from pipelines.store import Snapshot

    snapshot = Snapshot(store)
    try:
        with snapshot.connection() as con:
            rows = con.execute(
                """SELECT slo_id, row_number() OVER (PARTITION BY service ORDER BY slo_id) AS k FROM slos
                   WHERE active AND slo_id NOT IN (
                       SELECT s.slo_id FROM incident_slos s JOIN incidents i ON i.id = s.incident_id
                       WHERE i.status NOT IN ('resolved', 'closed'))
                   ORDER BY k, service"""
            ).fetchall()
    finally:
        snapshot.close()
    return [str(r[0]) for r in rows]


def build_store(work: Path) -> tuple[Path, Path, dict[str, Any]]:
    """fleet.py's files, then `slo run --source csv` on them; returns (specs dir, store dir, timings)."""
    fleet = work / "fleet"
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "benchmarks" / "fleet.py"),
            str(fleet),
            "--slos",
            str(SLOS),
            "--days",
            str(DAYS),
        ],
        check=True,
        cwd=ROOT,
    )
    generated = time.monotonic() - started
    store = work / "store"
    env = {**os.environ, "SLO_DATA_DIR": str(store), "SLO_SPECS_DIR": str(fleet / "specs")}
    env.pop("ANTHROPIC_API_KEY", None)
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--source",
            "csv",
            "--events",
            str(fleet / "events.csv"),
        ],
        check=True,
        cwd=ROOT,
        env=env,
    )
    return (
        fleet / "specs",
        store,
        {"fleet_s": round(generated, 1), "slo_run_s": round(time.monotonic() - started, 1)},
    )


def fresh_service(work: Path, specs: Path, store: Path, name: str) -> Service:
    tmp = work / name
    shutil.rmtree(tmp, ignore_errors=True)  # a kept BENCH_DIR holds the previous run's copy
    data = tmp / "data"
    shutil.copytree(store, data, ignore=shutil.ignore_patterns("writer.lock"))
    env = {"SLO_CYCLE_SECONDS": CYCLE, "SLO_SPECS_DIR": str(specs)}
    svc = start_service(tmp, token=TOKEN, env=env, data_dir=data, startup_timeout=60)
    # Steady state: the worker has finished one cycle on this store before anything is sent.
    deadline = time.monotonic() + TIMEOUT
    while svc.health()["worker"]["cycles"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no worker cycle within {TIMEOUT} s:\n{svc.log()}")
        time.sleep(0.2)
    return svc


def post(svc: Service, body: bytes) -> dict[str, Any]:
    status, answer = svc.post(INGEST, body)
    if status != 202:
        raise RuntimeError(f"delivery answered {status}: {answer}")
    return dict(answer)


def listing(svc: Service) -> list[dict[str, Any]]:
    """The incidents `GET /api/incidents` lists; none while it does not answer (a busy service may
    take longer than the request's timeout: that counts as not listed yet)."""
    try:
        status, rows = svc.request(
            "GET", "/api/incidents", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        )
    except OSError:
        return []
    return list(rows) if status == 200 else []


def worker_status(svc: Service) -> dict[str, Any]:
    try:
        return dict(svc.health()["worker"])
    except (OSError, KeyError, TypeError):
        return {}


def fold_lag(svc: Service) -> int | None:
    try:
        return int(svc.health()["fold"]["lag"])
    except (OSError, KeyError, TypeError):
        return None


def run_burst(work: Path, specs: Path, store: Path, run: int) -> dict[str, Any]:
    svc = fresh_service(work, specs, store, f"burst{run}")
    try:
        # One alert per SLO, on 200 SLOs spread over the fleet that have no open incident (an alert on
        # one that has joins that incident instead of being listed as its own).
        targets = quiet_slos(store)[:200]
        titles = {f"burst {run} alert {i}" for i in range(200)}
        starts = now_iso()
        bodies = [
            delivery(
                [
                    alert(
                        f"burst {run} alert {i}",
                        f"burst{run}-{i}",
                        "ticket",
                        {"service": targets[i].split("/")[0], "slo": targets[i].split("/")[1]},
                        starts,
                    )
                    for i in range(d * 10, d * 10 + 10)
                ],
                f"burst{d}",
            )
            for d in range(20)
        ]
        for body in bodies:
            post(svc, body)
        accepted = time.monotonic()
        listed_s = triaged_s = None
        while time.monotonic() - accepted < TIMEOUT:
            rows = [r for r in listing(svc) if r["title"] in titles]
            elapsed = time.monotonic() - accepted
            if listed_s is None and len(rows) == len(titles):
                listed_s = elapsed
            if listed_s is not None and all(r["triage"] and r["route"] for r in rows):
                triaged_s = elapsed
                break
            time.sleep(0.25)
        worker = worker_status(svc)
    finally:
        stop_service(svc)
    return {
        "listed_s": _round(listed_s),
        "triaged_routed_s": _round(triaged_s),
        "cycles": worker.get("cycles"),
    }


def run_storm(work: Path, specs: Path, store: Path, run: int) -> dict[str, Any]:
    svc = fresh_service(work, specs, store, f"storm{run}")
    try:
        names = services(SLOS)
        starts = now_iso()
        # Shaped like a storm: 50 services, 4 SLOs each, every alert its own fingerprint, so most alerts
        # join the open incident of their SLO (200 incidents).
        storm = [
            alert(
                f"storm {run} alert {i}",
                f"storm{run}-{i}",
                "warning",
                {"service": names[i % 50 % len(names)], "slo": f"endpoint{i // 50 % 4}"},
                starts,
            )
            for i in range(5000)
        ]
        too_big = delivery(storm, "storm")
        status, _ = svc.post(INGEST, too_big)
        if status not in (400, 413):  # over the alert cap, and over the 1 MB body limit too
            raise RuntimeError(f"a delivery of 5,000 alerts was answered {status}, not refused")
        sent = time.monotonic()
        for k in range(5):
            post(svc, delivery(storm[k * 1000 : (k + 1) * 1000], f"storm{k}"))
        storm_accepted_s = time.monotonic() - sent
        time.sleep(1.0)
        title = f"storm {run} SEV1"
        post(svc, delivery([alert(title, f"sev1-{run}", "sev1", {"service": names[-1]}, starts)], "sev1"))
        accepted = time.monotonic()
        listed_s = folded_s = None
        while time.monotonic() - accepted < TIMEOUT:
            elapsed = time.monotonic() - accepted
            if listed_s is None and any(r["title"] == title for r in listing(svc)):
                listed_s = elapsed
            if folded_s is None and fold_lag(svc) == 0:
                folded_s = elapsed
            if listed_s is not None and folded_s is not None:
                break
            time.sleep(0.25)
        worker = worker_status(svc)
    finally:
        stop_service(svc)
    return {
        "storm_accepted_s": _round(storm_accepted_s),
        "sev1_listed_s": _round(listed_s),
        "all_folded_s": _round(folded_s),
        "cycles": worker.get("cycles"),
        "last_cycle_s": worker.get("last_seconds"),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _median(values: list[float | None]) -> float | None:
    """Median of the runs; a run that never got there (None) counts as longer than any that did."""
    ordered = sorted(values, key=lambda v: float("inf") if v is None else v)
    if not ordered:
        return None
    middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    return None if None in middle else round(statistics.mean(v for v in middle if v is not None), 2)


def main() -> int:
    keep = os.environ.get("BENCH_DIR")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench-burst-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        specs, store, build = build_store(work)
        bursts, storms = [], []
        for run in range(RUNS):
            bursts.append(run_burst(work, specs, store, run))
            print("burst", run, bursts[-1], flush=True)
            storms.append(run_storm(work, specs, store, run))
            print("storm", run, storms[-1], flush=True)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    medians = {
        "burst_listed_s": _median([b["listed_s"] for b in bursts]),
        "burst_triaged_routed_s": _median([b["triaged_routed_s"] for b in bursts]),
        "storm_sev1_listed_s": _median([s["sev1_listed_s"] for s in storms]),
        "storm_all_folded_s": _median([s["all_folded_s"] for s in storms]),
    }
    targets = {"burst_listed_s": 15, "burst_triaged_routed_s": 120, "storm_sev1_listed_s": 15}
    print(
        f"\n{SLOS} SLOs × {DAYS} d in the store, worker every {CYCLE} s, median of {RUNS}"
        f" (None: not within {TIMEOUT:g} s)"
    )
    print(f"{'measure':<28}{'median s':>10}{'target s':>10}  runs")
    for key, value in medians.items():
        runs = (
            [b.get(key.removeprefix("burst_")) for b in bursts]
            if key.startswith("burst")
            else [s.get(key.removeprefix("storm_")) for s in storms]
        )
        print(f"{key:<28}{value!s:>10}{targets.get(key, '-')!s:>10}  {runs}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / (f"burst-{TAG}.json" if TAG else "burst.json")
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    out.write_text(
        json.dumps(
            {
                "slos": SLOS,
                "days": DAYS,
                "cycle_seconds": float(CYCLE),
                "runs": RUNS,
                "revision": revision.stdout.strip(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "build": build,
                "medians": medians,
                "targets": targets,
                "burst": bursts,
                "storm": storms,
            },
            indent=2,
        )
    )
    print(f"written: {out}")
    return 0


def test_burst() -> None:
    assert main() == 0


if __name__ == "__main__":
    raise SystemExit(main())
