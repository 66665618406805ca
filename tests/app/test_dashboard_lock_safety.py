"""The dashboard never gets in the pipeline's way (DESIGN §1): while a writer process publishes a new
snapshot every second, pages keep rendering and neither side sees a lock error. Bounded to ~15 s."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.queries import snapshot_version
from tests.support.dashboard_store import ROOT, DemoStore, build_demo_store

APP = ROOT / "dashboard" / "app.py"

# The pipeline's side: the product's Writer (exclusive lock, work file, atomic publish), once a second,
# recording each cycle in `runs` as `slo run` does. Any StoreError (a lock error) ends it with code 3.
PUBLISHER = """
import datetime as dt, sys, time
from pathlib import Path
from pipelines.errors import StoreError
from pipelines.cycle import open_writer as Writer
data, seconds = Path(sys.argv[1]), float(sys.argv[2])
deadline, published = time.monotonic() + seconds, 0
while time.monotonic() < deadline:
    try:
        with Writer(data) as w:
            w.db.execute(
                "INSERT INTO runs SELECT max(run_id) + 1, now()::TIMESTAMP, now()::TIMESTAMP, 'lock-test', "
                "NULL, NULL, 0, 0 FROM runs")
            w.publish()
            published += 1
    except StoreError as exc:
        print(f"lock error: {exc}", flush=True)
        sys.exit(3)
    time.sleep(1.0)
print(f"published {published}", flush=True)
"""


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    return build_demo_store(tmp_path_factory)


def test_pages_render_while_the_pipeline_publishes(
    store: DemoStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(store.data_dir / "work.duckdb", tmp_path / "work.duckdb")
    shutil.copy(store.data_dir / "slo.duckdb", tmp_path / "slo.duckdb")
    shutil.copytree(store.data_dir / "parts", tmp_path / "parts")  # the snapshot's closed days
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path))
    writer = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(tmp_path), "12"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    versions: set[str | None] = set()
    renders = 0
    try:
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        deadline = time.monotonic() + 12
        pages = ["views/slo.py", "views/incidents.py", "views/alerts.py", "views/fleet.py"]
        while time.monotonic() < deadline and writer.poll() is None:
            at.switch_page(pages[renders % len(pages)]).run()
            assert not at.exception, [e.value for e in at.exception]
            assert not [e.value for e in at.error if "lock" in e.value.lower()]
            versions.add(snapshot_version(tmp_path))
            renders += 1
        out, _ = writer.communicate(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    print(f"{renders} page renders over {len(versions)} snapshots; writer: {out.strip()}")
    assert writer.returncode == 0, out
    published = int(out.strip().split()[-1])
    assert published >= 5 and len(versions) >= 3 and renders >= 8
