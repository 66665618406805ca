"""The triage context of a whole cycle at once (issue 13, deliverable 3) equals the per-incident one.

On a demo store (three services, seven SLOs, the demo's incidents replayed through the real stage):
`contexts_for` (one evaluation of the services' SLOs per instant) gives, field by field, what
`build_context` (one `status()` per incident) gives, at the cycle instants a triage uses — after the
data's end (the live case: every incident at the latest evaluated minute) and inside the data (the
demo's replay: each incident at its own detection). `status_by_service` equals `status` per service,
and `last_data_at` (read from the last day first) equals the whole-history maximum, also for an SLO
whose data stopped days before.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict
from pathlib import Path

import duckdb
import pytest

from pipelines import partitions
from pipelines.config import Settings
from pipelines.cycle import run_cycle
from pipelines.demo.source import demo_pull
from pipelines.incidents.context import build_context, contexts_for, evaluated_to
from pipelines.incidents.rows import incidents_where
from pipelines.status import StatusQuery, status, status_by_service
from pipelines.store import SNAPSHOT_FILE, WORK_FILE
from pipelines.timeutil import minute_of

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
SERVICES = {"search", "notifications", "reports"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    data = tmp_path_factory.mktemp("context-demo") / "data"
    settings = Settings.load({"SLO_DATA_DIR": str(data)})
    slos, pull, replay = demo_pull(NOW, None)
    slos = [s for s in slos if s.service in SERVICES]
    keep = {s.id for s in slos}
    pull.buckets = pull.buckets[pull.buckets["slo_id"].isin(keep)]
    replay.events = [e for e in replay.events if set(e[2]) & keep]
    pull.deploys = [d for d in pull.deploys if d[0] in SERVICES]
    run_cycle(settings, slos, pull, stage=replay, reset=True)
    return data / SNAPSHOT_FILE, settings


@pytest.fixture
def con(demo: tuple[Path, Settings]) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(str(demo[0]), read_only=True)
    yield c
    c.close()


def test_batched_contexts_equal_per_incident_contexts(demo, con) -> None:
    _, settings = demo
    incs = incidents_where(con, "NOT imported", [])
    assert len(incs) >= 10 and {i["service"] for i in incs} == SERVICES
    latest = evaluated_to(con)
    assert latest is not None
    detections = sorted({i["detected_at"] for i in incs})
    # After the data's end (a live cycle), and inside it (the replay), where instants differ per incident.
    instants = [latest + dt.timedelta(hours=1), detections[len(detections) // 2]]
    with_status = 0
    for now in instants:
        batched = contexts_for(con, settings, incs, now)
        assert set(batched) == {i["id"] for i in incs}
        for inc in incs:
            single = asdict(build_context(con, settings, inc, max(now, inc["detected_at"])))
            got = asdict(batched[inc["id"]])
            for field in single:
                assert got[field] == single[field], (inc["id"], now, field)
            with_status += bool(got["slo_status"])
            assert len(got["slo_status"]) in (0, 2, 3)  # every SLO of the service, or none (before data)
    assert with_status >= len(instants) * len(incs) - len(incs)  # the comparison saw SLO status


def test_status_by_service_equals_status_per_service(con) -> None:
    latest = evaluated_to(con)
    assert latest is not None
    for at in (latest, latest - dt.timedelta(days=20, minutes=7), latest - dt.timedelta(days=61)):
        aware = at.replace(tzinfo=dt.UTC)
        together = status_by_service(con, aware, [*SERVICES, "no-such-service"])
        assert together["no-such-service"] == []
        for service in SERVICES:
            assert together[service] == status(con, StatusQuery(at=aware, service=service))


def test_last_data_at_falls_back_to_the_whole_history(demo, tmp_path: Path) -> None:
    # A copy of the store where one SLO's data stops three days before the instant asked about.
    copy = tmp_path / "copy.duckdb"
    shutil.copy(demo[0].parent / WORK_FILE, copy)  # the whole store (the snapshot reads closed days as files)
    c = duckdb.connect(str(copy))
    try:
        latest = evaluated_to(c)
        assert latest is not None
        key, slo_id = c.execute(
            "SELECT slo_key, slo_id FROM slos WHERE service = 'search' ORDER BY 1 LIMIT 1"
        ).fetchone()
        cut = minute_of(latest.replace(tzinfo=dt.UTC)) - 3 * 1440
        # closed hours of buckets are files of the store (read in place): leave that SLO's rows out
        paths = [str(demo[0].parent / part.file) for part in partitions.stored_parts(c, "buckets")]
        c.execute(
            f"""CREATE OR REPLACE TEMP VIEW buckets AS
                SELECT * FROM (SELECT * FROM read_parquet({paths!r})
                               UNION ALL SELECT * FROM main.buckets_open)
                WHERE NOT (slo_key = {int(key)} AND minute >= {int(cut)})"""
        )
        search = status_by_service(c, latest.replace(tzinfo=dt.UTC), ["search"])["search"]
        rows = {r["slo"]: r for r in search}
        t = minute_of(latest.replace(tzinfo=dt.UTC))
        for slo, row in rows.items():
            (last,) = c.execute(
                "SELECT max(b.minute) + 1 FROM buckets b JOIN slos s USING (slo_key) "
                "WHERE s.slo_id = ? AND b.minute < ?",
                [slo, t],
            ).fetchone()
            expected = dt.datetime.fromtimestamp(last * 60, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert row["last_data_at"] == expected
        assert rows[slo_id]["last_data_at"] == dt.datetime.fromtimestamp(cut * 60, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        assert rows[slo_id]["data_status"] == "no_recent_data"
    finally:
        c.close()
