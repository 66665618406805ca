"""Ingest benchmark (DESIGN §5: 1,000 alerts/s sustained on loopback, p99 under 50 ms, none lost).

Starts `slo serve` as a subprocess (worker on, default 5 s cycle) and drives it from this process with
asyncio keep-alive HTTP/1.1 connections on loopback. Every request is an Alertmanager v4 webhook with
`BENCH_ALERTS_PER_REQUEST` new alerts (unique fingerprints), authenticated with a bearer token.

Two load shapes, each for `BENCH_SECONDS`, repeated `BENCH_RUNS` times (medians reported):
- **open loop** at `BENCH_RATE` alerts/s: requests are started on a fixed schedule whatever the answers
  do, and latency is measured from the scheduled start (no coordinated omission), so a stall shows up
  as latency instead of as fewer requests;
- **closed loop**: `BENCH_CONNECTIONS` connections send back to back: the most the service takes.

Each configuration runs with the inbox's group commit on (the default) and off
(SLO_INGEST_GROUP_COMMIT=0: one transaction and fsync per request), to show what it buys.
"None lost": every answer must be 202, and the inbox must hold exactly the accepted alerts.

    .venv/bin/python tests/benchmarks/bench_ingest.py            # full: about 3 minutes
    BENCH_SECONDS=5 BENCH_RUNS=1 .venv/bin/python tests/benchmarks/bench_ingest.py   # quick look

Results: a table on stdout and tests/benchmarks/results/ingest.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.service import start_service, stop_service  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
RATE = float(os.environ.get("BENCH_RATE", "1000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
PER_REQUEST = int(os.environ.get("BENCH_ALERTS_PER_REQUEST", "1"))
MODES = os.environ.get("BENCH_MODES", "group,single").split(",")
TOKEN = "bench-token"
RESULTS = Path(__file__).resolve().parent / "results"


def payload(tag: str, n: int) -> bytes:
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "SLOBurnRateHigh",
                "service": f"svc-{n % 50}",
                "slo": "availability",
                "severity": "page",
                "long_window": "1h",
                "short_window": "5m",
            },
            "annotations": {"summary": "burning its error budget 14.4x too fast"},
            "startsAt": "2026-11-23T12:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": f"{tag}-{n}-{k}",
        }
        for k in range(PER_REQUEST)
    ]
    return json.dumps(
        {
            "receiver": "slo",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": "SLOBurnRateHigh"},
            "commonLabels": {"alertname": "SLOBurnRateHigh"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": f'{{}}:{{n="{n}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


def request_bytes(port: int, body: bytes) -> bytes:
    head = (
        f"POST /api/incidents/ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(request_bytes(self.port, body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(v)
            for k, _, v in (line.partition(": ") for line in lines[1:])
            if k.lower() == "content-length"
        )
        data = await self.reader.readexactly(length)
        return status, json.loads(data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def drive(port: int, tag: str, shape: str) -> dict[str, Any]:
    """Run one load shape for SECONDS; returns counts and latencies (ms)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted = 0
    counter = 0
    pool = [Connection(port) for _ in range(CONNECTIONS)]
    await asyncio.gather(*(c.open() for c in pool))
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for c in pool:
        idle.put_nowait(c)
    loop = asyncio.get_running_loop()
    started = loop.time()
    end = started + SECONDS

    async def one(scheduled: float) -> None:
        nonlocal accepted, counter
        conn = await idle.get()
        n = counter
        counter += 1
        try:
            status, answer = await conn.post(payload(tag, n))
        finally:
            idle.put_nowait(conn)
        latencies.append((loop.time() - scheduled) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 202:
            accepted += len(answer["accepted"])

    tasks: list[asyncio.Task[None]] = []
    if shape == "open":
        interval = PER_REQUEST / RATE
        i = 0
        while True:
            scheduled = started + i * interval
            if scheduled >= end:
                break
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(scheduled)))
            i += 1
        await asyncio.gather(*tasks)
    else:

        async def worker() -> None:
            while loop.time() < end:
                await one(loop.time())

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    elapsed = loop.time() - started
    for c in pool:
        c.close()
    latencies.sort()
    return {
        "shape": shape,
        "requests": len(latencies),
        "alerts_accepted": accepted,
        "seconds": round(elapsed, 2),
        "alerts_per_s": round(accepted / elapsed, 1),
        "p50_ms": round(_pct(latencies, 0.50), 2),
        "p99_ms": round(_pct(latencies, 0.99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "statuses": statuses,
    }


def disk_commit_latency(seconds: float = 5.0) -> dict[str, float]:
    """What the disk gives one durable commit, alone (the floor under any ingest latency)."""
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as tmp:
        con = sqlite3.connect(Path(tmp) / "probe.sqlite3", isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE t (k TEXT UNIQUE, body TEXT)")
        latencies = []
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            started = time.perf_counter()
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO t VALUES (?, ?)", (str(i), "x" * 600))
            con.execute("COMMIT")
            latencies.append((time.perf_counter() - started) * 1000)
            i += 1
            time.sleep(0.005)
        con.close()
    latencies.sort()
    return {
        "commits": len(latencies),
        "p50": round(_pct(latencies, 0.5), 2),
        "p99": round(_pct(latencies, 0.99), 2),
        "max": round(latencies[-1], 2),
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), to report cost independent of machine load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def run_mode(mode: str) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {"open": [], "closed": []}
    for run in range(RUNS):
        for shape in ("open", "closed"):
            with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
                svc = start_service(
                    Path(tmp),
                    token=TOKEN,
                    env={
                        "SLO_CYCLE_SECONDS": os.environ.get("BENCH_CYCLE_SECONDS", "5"),
                        "SLO_INGEST_GROUP_COMMIT": "1" if mode == "group" else "0",
                    },
                )
                try:
                    cpu_before = process_cpu_seconds(svc.proc.pid)
                    r = asyncio.run(drive(svc.port, f"{mode}{run}{shape}", shape))
                    cpu_used = process_cpu_seconds(svc.proc.pid) - cpu_before
                    with sqlite3.connect(svc.data_dir / "inbox.sqlite3") as con:
                        stored = con.execute("SELECT count(*) FROM inbox").fetchone()[0]
                    health = svc.health()
                    worker = health["worker"]
                finally:
                    code = stop_service(svc)
                r["inbox_rows"] = stored
                r["lost"] = r["alerts_accepted"] - stored
                r["non_202"] = sum(v for k, v in r["statuses"].items() if k != 202)
                r["server_cpu_ms_per_request"] = round(cpu_used / max(r["requests"], 1) * 1000, 3)
                r["worker_cycles"] = worker.get("cycles", 0)
                r["gc"] = health.get("gc")
                r["exit_code"] = code
                print(
                    f"  {mode:6} run {run + 1} {shape:6}: {r['alerts_per_s']:8.1f} alerts/s  "
                    f"p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
                    f"server CPU {r['server_cpu_ms_per_request']:.3f} ms/request  "
                    f"gc max pause {(r['gc'] or {}).get('max_pause_ms')} ms  "
                    f"({r['requests']} requests, {r['non_202']} not 202, lost {r['lost']})",
                    flush=True,
                )
                results[shape].append(r)
    summary = {}
    for shape, runs in results.items():
        summary[shape] = {
            "alerts_per_s": statistics.median(r["alerts_per_s"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "server_cpu_ms_per_request": statistics.median(r["server_cpu_ms_per_request"] for r in runs),
            "lost": sum(r["lost"] for r in runs),
            "non_202": sum(r["non_202"] for r in runs),
            "runs": runs,
        }
    return summary


def main() -> int:
    print(
        f"ingest benchmark: {RUNS} run(s) × {SECONDS:g}s per shape; open loop at {RATE:g} alerts/s; "
        f"closed loop with {CONNECTIONS} connections; {PER_REQUEST} alert(s) per request; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    report: dict[str, Any] = {
        "seconds": SECONDS,
        "runs": RUNS,
        "rate": RATE,
        "connections": CONNECTIONS,
        "alerts_per_request": PER_REQUEST,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
        "modes": {},
    }
    disk = disk_commit_latency()
    report["disk_commit_ms"] = disk
    print(
        f"the disk itself: one durable SQLite commit (WAL, synchronous=FULL) takes p50 {disk['p50']:.2f} ms, "
        f"p99 {disk['p99']:.2f} ms, max {disk['max']:.2f} ms ({disk['commits']} commits)",
        flush=True,
    )
    for mode in MODES:
        report["modes"][mode] = run_mode(mode)
    report["load_after"] = os.getloadavg()
    print()
    print(
        f"{'commit':8} {'shape':7} {'alerts/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10} "
        f"{'lost':>5} {'not 202':>8}"
    )
    for mode, summary in report["modes"].items():
        for shape in ("open", "closed"):
            s = summary[shape]
            print(
                f"{mode:8} {shape:7} {s['alerts_per_s']:10.1f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} "
                f"{s['server_cpu_ms_per_request']:10.3f} {s['lost']:5d} {s['non_202']:8d}"
            )
    print(f"load average before {report['load_before'][0]:.1f}, after {report['load_after'][0]:.1f}")
    RESULTS.mkdir(exist_ok=True)
    name = "ingest.json" if PER_REQUEST == 1 else f"ingest-{PER_REQUEST}per.json"
    out = Path(os.environ.get("BENCH_OUT", RESULTS / name))
    out.write_text(json.dumps(report, indent=2))
    lost = any(s[shape]["lost"] or s[shape]["non_202"] for s in report["modes"].values() for shape in s)
    return 1 if lost else 0


def test_ingest_benchmark() -> None:
    """Through pytest (conftest collects bench_*.py): fails only when an alert was lost or refused."""
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
