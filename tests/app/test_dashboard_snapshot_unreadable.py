"""The dashboard over an unreadable snapshot (issue 11, point 7): every page shows the one line
`snapshot unreadable (…); the next cycle rebuilds it` as an error and stops, no traceback; after the
pipeline's next cycle the same page renders the store's data again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipelines.config import Settings
from pipelines.service.worker import idle_cycle
from pipelines.store import SNAPSHOT_FILE
from tests.support.dashboard_store import ROOT
from tests.support.review_store import build_review_store

APP = ROOT / "dashboard" / "app.py"
PAGES = ["fleet", "slo", "alerts", "incidents", "analytics", "quarterly"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pristine")
    build_review_store(base / "data", base / "specs")
    return base


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if name != "fleet":
        at.switch_page(f"views/{name}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_every_page_says_the_snapshot_is_unreadable_until_the_next_cycle(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(pristine / "data", tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", specs_dir=pristine / "specs")
    monkeypatch.setenv("SLO_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SLO_SERVICE_URL", "http://127.0.0.1:9")  # nothing listens: no service needed
    snapshot = settings.data_dir / SNAPSHOT_FILE
    os.truncate(snapshot, 100)

    expected = (
        f"snapshot unreadable ({snapshot}: 100 bytes, shorter than a DuckDB header (12288 bytes)); "
        "the next cycle rebuilds it"
    )
    for name in PAGES:
        at = run_page(name)
        assert [e.value for e in at.error] == [expected], name

    idle_cycle(settings)()  # the service worker's cycle republishes it from the work file
    at = run_page("fleet")
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Fleet error budgets"
    shown = at.dataframe[0].value
    assert sorted(shown["slo"]) == ["checkout-api/availability", "search/availability"], shown.columns
    at = run_page("incidents")  # its own errors (an overdue stakeholder update) are the store's data
    assert at.title[0].value == "Incidents" and not [e for e in at.error if "unreadable" in e.value]
    assert {"INC-1", "INC-4"} <= set(at.dataframe[0].value["id"])
