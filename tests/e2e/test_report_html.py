"""The quarterly review's HTML opens in headless Chromium (DESIGN §4 flags) without console errors, without
any network request, with every section and its interactive charts, and fits a phone's width."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.analytics.render import SECTIONS
from tests.support.realparts import require_binary
from tests.support.review_store import build_review_store

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("html")
    build_review_store(base / "data", base / "specs")
    out = base / "review.html"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["SLO_DATA_DIR"] = str(base / "data")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "report",
            "quarterly",
            "--quarter",
            "2026-Q3",
            "--format",
            "html",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_html_is_self_contained(report: Path) -> None:
    text = report.read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert "<script src=" not in text  # no external script: Plotly's JavaScript is inlined
    assert text.count("plotly.js v") == 1  # and inlined once
    assert text.count("Plotly.newPlot") == 5


def test_html_opens_in_chromium_without_errors_on_desktop_and_phone(report: Path) -> None:
    chromium = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    seen: dict[str, dict[str, object]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, timeout=30_000)
        try:
            for name, viewport in (
                ("desktop", {"width": 1280, "height": 900}),
                ("phone", {"width": 390, "height": 844}),
            ):
                errors: list[str] = []
                requests: list[str] = []
                page = browser.new_page(viewport=viewport)
                page.on(
                    "console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None
                )
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.on(
                    "request",
                    lambda r, requests=requests: (
                        None if r.url.startswith(("file:", "data:")) else requests.append(r.url)
                    ),
                )
                page.goto(report.as_uri(), wait_until="load", timeout=30_000)
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15_000)
                seen[name] = {
                    "errors": errors,
                    "requests": requests,
                    "titles": page.locator("section h2").all_inner_texts(),
                    "charts": page.locator(".js-plotly-plot").count(),
                    "burn_traces": page.evaluate("document.getElementById('chart-burn_down').data.length"),
                    "overflow": page.evaluate("document.documentElement.scrollWidth - window.innerWidth"),
                }
                page.close()
        finally:
            browser.close()
    for name, got in seen.items():
        assert got["errors"] == [], name
        assert got["requests"] == [], name
        assert got["titles"] == list(SECTIONS), name
        assert got["charts"] == 5, name
        assert got["burn_traces"] == 2, name  # one budget line per SLO
        # nothing wider than the screen: wide tables scroll inside their own box
        assert isinstance(got["overflow"], int) and got["overflow"] <= 0, name
