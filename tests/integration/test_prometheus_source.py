"""`slo run --source prometheus` against a real Prometheus (Debian's package) holding backfilled data.

A new random dataset each run (seed printed) is written as OpenMetrics counters, backfilled with
promtool and served by /usr/bin/prometheus on a free loopback port; the same per-minute increases
go to a CSV file. Then:

- both sources give the same `slo status --json`: equal good/valid counts, and `sli`, budget and
  every burn rate within 0.1% (the issue's bound). With samples on the minute, `increase(x[1m])` at
  `t+1m` sees exactly the two samples at the window's edges, so Prometheus does not extrapolate and
  treats a reset (a drop) as a restart from zero, the same increase the CSV holds; what is left is
  float arithmetic in Prometheus (an increase of 117 may come back as 116.99999999999999, rounded to
  whole events) — the measured difference is printed and is 0. Scrape jitter or missing samples in
  production would make Prometheus extrapolate; that is what a tolerance would be for.
- Prometheus killed mid-pull, a query it rejects, a server too slow for the timeout: exit 1 with
  the SLO and the reason, the published snapshot byte-identical, those SLOs `stale` in `slo status`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import PrometheusSettings
from pipelines.sources.prometheus import Client, PrometheusError
from pipelines.staleness import read_marks
from pipelines.status import StatusQuery
from pipelines.status import status as slo_status
from pipelines.store import Snapshot
from tests.support import sli_dataset
from tests.support.prometheus_server import (
    TEST_PASSWORD,
    TEST_USER,
    RunningPrometheus,
    backfill,
    prometheus_server,
)
from tests.support.realparts import free_port, require_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAYS = 3
TOLERANCE = 0.001  # relative, on sli, budget_remaining and every burn rate


def iso(minute: int) -> str:
    return dt.datetime.fromtimestamp(minute * 60, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> sli_dataset.Dataset:
    require_binary("prometheus")
    require_binary("promtool")
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = int((today - dt.timedelta(days=DAYS + 1)).timestamp()) // 60
    data = sli_dataset.generate(sli_dataset.seed(), start, DAYS)
    assert data.resets > 0, "the dataset should exercise counter resets"
    return data


@pytest.fixture(scope="module")
def tsdb(dataset: sli_dataset.Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prometheus")
    files = dataset.write_openmetrics(root / "openmetrics")
    assert len(files) == DAYS + 1  # the last file holds the sample closing the last minute
    backfill(files, root / "tsdb")
    return root / "tsdb"


@pytest.fixture(scope="module")
def server(tsdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    log = tmp_path_factory.mktemp("prometheus-log") / "prometheus.log"
    with prometheus_server(tsdb, log) as running:
        yield running


@pytest.fixture
def own_server(tsdb: Path, tmp_path: Path) -> Iterator[RunningPrometheus]:
    """A server of its own on a copy of the data, for tests that kill it."""
    copy = tmp_path / "tsdb"
    shutil.copytree(tsdb, copy)
    with prometheus_server(copy, tmp_path / "prometheus.log") as running:
        yield running


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    directory = tmp_path / "specs"
    directory.mkdir()
    for name, text in sli_dataset.SPECS.items():
        (directory / name).write_text(text)
    return directory


def slo(
    args: list[str], data: Path, specs: Path, url: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "SLO_"))} | {
        "SLO_DATA_DIR": str(data),
        "SLO_SPECS_DIR": str(specs),
        **env,
    }
    if url:
        environ["PROMETHEUS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def status_cli(data: Path, specs: Path) -> dict[str, dict[str, Any]]:
    """`slo status --json`, run as a person would."""
    done = slo(["status", "--json"], data, specs)
    assert done.returncode == 0, done.stderr
    return {row["slo"]: row for row in json.loads(done.stdout)}


def status(data: Path) -> dict[str, dict[str, Any]]:
    """What `slo status --json` prints (the same calls as its handler), without a process per read."""
    snapshot = Snapshot(data)
    try:
        with snapshot.connection() as con:
            rows = json.loads(json.dumps(slo_status(con, StatusQuery(), read_marks(data))))
    finally:
        snapshot.close()
    return {row["slo"]: row for row in rows}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def relative(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a is b else float("inf")
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


@pytest.fixture(scope="module")
def baseline(
    dataset: sli_dataset.Dataset, server: RunningPrometheus, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A data dir with a snapshot published from Prometheus up to the start of the last day."""
    root = tmp_path_factory.mktemp("baseline")
    specs, data = root / "specs", root / "data"
    specs.mkdir()
    for name, text in sli_dataset.SPECS.items():
        (specs / name).write_text(text)
    to = dataset.end - 1440
    first = slo(
        ["run", "--source", "prometheus", "--from", iso(to - 1440), "--to", iso(to)], data, specs, server.url
    )
    assert first.returncode == 0, first.stderr + server.log_tail()
    return data, status(data)


@pytest.fixture
def published(baseline: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path) -> Path:
    """A copy of the baseline data dir for one test to fail on."""
    data = tmp_path / "data"
    shutil.copytree(baseline[0], data)
    return data


def test_prometheus_and_csv_agree_on_unseen_data(
    dataset: sli_dataset.Dataset, server: RunningPrometheus, specs: Path, tmp_path: Path
) -> None:
    csv = tmp_path / "events.csv"
    dataset.write_csv(csv)
    via_csv = slo(
        ["run", "--source", "csv", "--events", str(csv), "--to", iso(dataset.end)], tmp_path / "csv", specs
    )
    assert via_csv.returncode == 0, via_csv.stderr

    # A backfill of the first two days, then an incremental pull: from the high-water mark minus
    # the 10-minute overlap, which re-reads minutes already stored (they must replace, not add).
    middle = dataset.start + 2 * 1440
    prom = tmp_path / "prom"
    first = slo(
        ["run", "--source", "prometheus", "--from", iso(dataset.start), "--to", iso(middle), "--json"],
        prom,
        specs,
        server.url,
        PROMETHEUS_MAX_POINTS="1000",  # several chunks per query: their boundaries are exercised
        PROMETHEUS_TIMEOUT="7.5",  # also sent to Prometheus, which must accept a fractional timeout
    )
    assert first.returncode == 0, first.stderr + server.log_tail()
    second = slo(
        ["run", "--source", "prometheus", "--to", iso(dataset.end), "--json"], prom, specs, server.url
    )
    assert second.returncode == 0, second.stderr + server.log_tail()
    pulled = json.loads(second.stdout)["prometheus"]["ranges"]
    assert pulled == {s: [iso(middle - 10), iso(dataset.end)] for s in sli_dataset.SLO_IDS}

    expected, actual = status_cli(tmp_path / "csv", specs), status_cli(prom, specs)
    assert sorted(actual) == sorted(sli_dataset.SLO_IDS)
    worst = 0.0
    for slo_id, want in sorted(expected.items()):
        got = actual[slo_id]
        assert got["evaluated_at"] == want["evaluated_at"] == iso(dataset.end)
        assert (got["good"], got["valid"]) == (want["good"], want["valid"]), slo_id
        pairs = [
            ("sli", got["sli"], want["sli"]),
            ("budget_remaining", got["budget_remaining"], want["budget_remaining"]),
        ]
        pairs += [(f"burn_{w}", got["burn_rates"][w], want["burn_rates"][w]) for w in want["burn_rates"]]
        for name, a, b in pairs:
            assert relative(a, b) <= TOLERANCE, f"{slo_id} {name}: prometheus {a} vs csv {b}"
            worst = max(worst, relative(a, b))
        assert [a["severity"] for a in got["alerts"]] == [a["severity"] for a in want["alerts"]]
        assert got["stale"] is False and got["stale_reason"] is None
        burn = got["burn_rates"]["1h"]
        print(f"{slo_id:<18} sli {got['sli']:.6f} budget {got['budget_remaining']:.4f} burn_1h {burn}")
    # The dataset is not trivial: some SLO spent budget and some minutes failed.
    assert any(row["budget_remaining"] < 0.9 for row in expected.values())
    print(f"largest relative difference prometheus vs csv: {worst:.3g} (tolerance {TOLERANCE})")


def test_prometheus_killed_mid_pull_leaves_the_snapshot_and_marks_stale(
    dataset: sli_dataset.Dataset,
    own_server: RunningPrometheus,
    specs: Path,
    published: Path,
    baseline: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    data = published
    before_hash = digest(data / "slo.duckdb")
    before = baseline[1]
    baseline = own_server.query_range_requests()

    # One request at a time, 30 minutes each: about 430 requests; the server dies after 150.
    env = {"PROMETHEUS_MAX_POINTS": "30", "PROMETHEUS_PARALLEL": "1", "PROMETHEUS_RETRIES": "1"}
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        "--source",
        "prometheus",
        "--to",
        iso(dataset.end),
        "--json",
    ]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "SLO_"))}
    environ |= {
        "SLO_DATA_DIR": str(data),
        "SLO_SPECS_DIR": str(specs),
        "PROMETHEUS_URL": own_server.url,
        **env,
    }
    run = subprocess.Popen(
        cmd, cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while own_server.query_range_requests() - baseline < 150:
            assert run.poll() is None, "the pull finished before Prometheus could be killed"
            assert time.monotonic() < deadline, "the pull did not start"
            time.sleep(0.02)
        os.kill(own_server.process.pid, signal.SIGKILL)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 1, err
    assert "nothing was published (the snapshot is unchanged)" in err
    assert f"cannot reach Prometheus at {own_server.url}" in err
    stale = {row["slo"]: row["reason"] for row in json.loads(out)["stale"]}
    # One request at a time in SLO order: the SLOs done before the kill are a prefix, the rest failed.
    order = sorted(sli_dataset.SLO_IDS)
    assert stale and list(stale) == order[len(order) - len(stale) :], stale
    for slo_id, reason in stale.items():
        assert f"{slo_id}: " in err
        assert "cannot reach Prometheus" in reason or "not pulled" in reason, reason

    assert digest(data / "slo.duckdb") == before_hash
    after = status(data)
    for slo_id, row in after.items():
        assert row["stale"] is (slo_id in stale), slo_id
        assert row["stale_reason"] == stale.get(slo_id)
        # The last good data is kept: the same evaluation as before the failed pull.
        unchanged = {k: v for k, v in before[slo_id].items() if not k.startswith("stale")}
        assert {k: v for k, v in row.items() if not k.startswith("stale")} == unchanged
    text = slo(["status"], data, specs).stdout
    assert f"· {len(stale)} STALE" in text.splitlines()[0], text
    assert sum(line.count(" STALE ") for line in text.splitlines()[2:]) == len(stale), text
    print(f"killed after 150 requests; stale: {', '.join(stale)}")


def test_a_query_prometheus_rejects_names_the_slo_and_spec(
    dataset: sli_dataset.Dataset, server: RunningPrometheus, specs: Path, published: Path
) -> None:
    data = published
    before_hash = digest(data / "slo.duckdb")
    shop = specs / "shop.yaml"
    shop.write_text(shop.read_text().replace("sum(increase(shop_wrong_total", "sum(increse(shop_wrong_total"))

    done = slo(["run", "--source", "prometheus", "--to", iso(dataset.end)], data, specs, server.url)
    assert done.returncode == 1
    line = next(i for i, text in enumerate(shop.read_text().splitlines(), 1) if "- sli: correctness" in text)
    assert (
        "shop/correctness: Prometheus rejected the query (HTTP 400) — bad_data: 1:5: parse error: "
        'unknown function with name "increse"' in done.stderr
    ), done.stderr
    assert f"{shop}:{line}: slis.correctness.bad, sent as: sum(increse(shop_wrong_total[1m]))" in done.stderr
    assert digest(data / "slo.duckdb") == before_hash
    after = status(data)
    assert [s for s, row in after.items() if row["stale"]] == ["shop/correctness"]
    print(done.stderr.strip().splitlines()[-1])

    # Fixed, the next pull catches up from the high-water mark and clears the mark.
    shop.write_text(shop.read_text().replace("increse(", "increase("))
    again = slo(["run", "--source", "prometheus", "--to", iso(dataset.end)], data, specs, server.url)
    assert again.returncode == 0, again.stderr
    recovered = status(data)
    assert all(
        row["stale"] is False and row["evaluated_at"] == iso(dataset.end) for row in recovered.values()
    )


def test_a_server_slower_than_the_timeout_fails_in_bounded_time(
    dataset: sli_dataset.Dataset, server: RunningPrometheus, specs: Path, published: Path
) -> None:
    data = published
    before_hash = digest(data / "slo.duckdb")
    os.kill(server.process.pid, signal.SIGSTOP)  # accepts connections (kernel backlog), never answers
    try:
        started = time.monotonic()
        done = slo(
            ["run", "--source", "prometheus", "--to", iso(dataset.end)],
            data,
            specs,
            server.url,
            PROMETHEUS_TIMEOUT="1",
            PROMETHEUS_RETRIES="1",
        )
        elapsed = time.monotonic() - started
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert done.returncode == 1
    assert (
        f"Prometheus at {server.url} did not answer within 1s (PROMETHEUS_TIMEOUT) (after 2 attempts)"
        in done.stderr
    )
    # Two 1 s attempts and a 0.5 s backoff, then the rest of the pull is abandoned.
    assert elapsed < 15, elapsed
    assert digest(data / "slo.duckdb") == before_hash
    after = status(data)
    assert all(row["stale"] for row in after.values()), after
    print(f"timed out and gave up after {elapsed:.1f}s")


def test_unreachable_prometheus_is_a_clear_error_and_publishes_nothing(specs: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = slo(["run", "--source", "prometheus"], tmp_path / "data", specs, url, PROMETHEUS_RETRIES="0")
    assert done.returncode == 1
    assert f"cannot reach Prometheus at {url} (Connection refused)" in done.stderr, done.stderr
    assert not (tmp_path / "data" / "slo.duckdb").exists()
    marks = json.loads((tmp_path / "data" / "stale.json").read_text())["slos"]
    assert sorted(marks) == sorted(sli_dataset.SLO_IDS)


def test_tls_and_basic_auth_against_a_secured_prometheus(
    dataset: sli_dataset.Dataset, tsdb: Path, tmp_path: Path
) -> None:
    """Prometheus's own --web.config.file: HTTPS with a self-signed certificate and basic auth."""
    shutil.copytree(tsdb, tmp_path / "tsdb")
    with prometheus_server(tmp_path / "tsdb", tmp_path / "prometheus.log", secure=True) as server:
        assert server.url.startswith("https://") and server.ca_file is not None
        minute = dataset.start + 100
        # the increase of every shop_requests_total series in that minute, from the dataset
        want = sum(int(v[100]) for (name, _), v in dataset.increases.items() if name == "shop_requests_total")
        base = {
            "PROMETHEUS_URL": server.url,
            "PROMETHEUS_USER": TEST_USER,
            "PROMETHEUS_PASSWORD": TEST_PASSWORD,
            "PROMETHEUS_RETRIES": "0",
        }

        def ask(**env: str) -> list[dict]:
            client = Client(PrometheusSettings.from_env(base | env))
            try:
                at = (minute + 1) * 60
                return client.query_range("sum(increase(shop_requests_total[1m]))", at, at)
            finally:
                client.close()

        answer = ask(PROMETHEUS_CA_FILE=str(server.ca_file))
        assert float(answer[0]["values"][0][1]) == want
        assert ask(PROMETHEUS_INSECURE_SKIP_VERIFY="true") == answer
        with pytest.raises(PrometheusError) as wrong:
            ask(PROMETHEUS_CA_FILE=str(server.ca_file), PROMETHEUS_PASSWORD="wrong")
        assert (wrong.value.kind, str(wrong.value)) == (
            "auth",
            f"{server.url} refused the credentials (HTTP 401); check PROMETHEUS_TOKEN or "
            "PROMETHEUS_USER/PROMETHEUS_PASSWORD",
        )
        with pytest.raises(PrometheusError) as untrusted:
            ask()  # the system's CAs do not know the self-signed certificate
        assert (untrusted.value.kind, str(untrusted.value)) == (
            "tls",
            f"TLS with {server.url} failed (certificate verify failed: self-signed certificate); "
            "check PROMETHEUS_CA_FILE or PROMETHEUS_INSECURE_SKIP_VERIFY",
        )
        print(f"https + basic auth: {want} requests in minute {iso(minute)}")
