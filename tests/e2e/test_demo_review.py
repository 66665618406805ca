"""Done-when of the quarterly review: the demo's review has every section with non-trivial figures, and
its HTML opens in headless Chromium without console errors.

The store is the real `slo demo` (its metrics and its incident flow, nothing added), the quarter is the
last full one before today, as a person reading the demo would pick it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.analytics.render import SECTIONS
from tests.e2e.test_report_html import CHROMIUM_FLAGS
from tests.support.realparts import require_binary

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def last_full_quarter(today: dt.date) -> str:
    q = (today.month - 1) // 3  # 0-based index of this quarter
    year, prev = (today.year, q) if q > 0 else (today.year - 1, 4)
    return f"{year}-Q{prev}"


def test_last_full_quarter_by_hand() -> None:
    assert last_full_quarter(dt.date(2026, 11, 23)) == "2026-Q3"
    assert last_full_quarter(dt.date(2026, 1, 1)) == "2025-Q4"
    assert last_full_quarter(dt.date(2026, 4, 1)) == "2026-Q1"


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["SLO_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("demo-review")
    built = _cli(base / "data", "demo", "--json")
    assert built.returncode == 0, built.stderr
    quarter = last_full_quarter(dt.datetime.now(dt.UTC).date())
    for fmt in ("json", "html"):
        done = _cli(base / "data", "report", "quarterly", "--quarter", quarter, "--format", fmt,
                    "-o", str(base / f"review.{fmt}"))  # fmt: skip
        assert done.returncode == 0, done.stderr
    return base, quarter


def test_every_section_of_the_demo_review_has_figures(demo: tuple[Path, str]) -> None:
    base, quarter = demo
    review: dict[str, Any] = json.loads((base / "review.json").read_text())
    assert review["quarter"] == quarter
    assert len(review["slos"]) == 17  # every demo SLO has its row
    head = review["headline"]
    assert head["slos_measured"] == 17 and 0 < head["budget_spent_median"] < 1
    incidents = review["incidents"]
    assert incidents["total"] > 0
    assert incidents["total"] == sum(incidents["by_severity"].values())
    assert sum(1 for n in incidents["by_severity"].values() if n > 0) >= 2  # a severity mix, not one kind
    resolved = incidents["total"] - incidents["open"]
    for key in ("ttd_minutes", "ttr_minutes"):
        stats = incidents[key]
        assert stats["count"] == resolved > 0, key
        assert 0 <= stats["p50"] <= stats["p90"], key
    assert len(incidents["quarter_over_quarter"]) == 4  # TTD, TTA, TTM, TTR against last quarter
    assert review["repeats"]["count"] >= 1 and review["repeats"]["chains"]  # the demo's recurrence
    assert len(review["success_metrics"]) == 6  # seed 002's six targets
    assert review["oncall"]["weeks"] >= 12 and review["oncall"]["pages_per_week"]
    quality = review["alert_quality"]
    assert quality["pages"] > 0 and quality["incidents"] > 0
    assert 0 < quality["precision"] <= 1 and 0 < quality["recall"] <= 1
    assert len(review["backtest"]) >= 2  # the spec's settings and at least one alternative
    assert review["deploys"]["deploys"] > 0
    assert review["burn_down"] and review["risks"] and review["recommendations"]


def test_demo_review_html_opens_in_chromium_without_errors(demo: tuple[Path, str]) -> None:
    chromium = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    base, _ = demo
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((base / "review.html").as_uri(), wait_until="load", timeout=30_000)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15_000)
            titles = page.locator("section h2").all_inner_texts()
            charts = page.locator(".js-plotly-plot").count()
            burn_traces = page.evaluate("document.getElementById('chart-burn_down').data.length")
        finally:
            browser.close()
    assert errors == []
    assert titles == list(SECTIONS)
    assert charts >= 5
    assert burn_traces == 17  # one budget line per demo SLO
