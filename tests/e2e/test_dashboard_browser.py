"""Every dashboard page in headless Chromium on the demo: it shows data, no Streamlit exception, no
console error; a screenshot of each lands in data/screenshots/."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import SCREENSHOTS, Server

pytestmark = pytest.mark.e2e

# page path (with URL state) → (heading, what must be on the page when it has data).
# The fleet is the default page: its URL is the root.
PAGES: dict[str, tuple[str, list[str]]] = {
    "": ("Fleet error budgets", ["[data-testid='stDataFrame']", "[data-testid='stMetric']"]),
    "slo?slo=checkout-api%2Favailability": ("SLO detail", [".js-plotly-plot", "[data-testid='stMetric']"]),
    "alerts?since=129600": ("Alerts", ["[data-testid='stDataFrame']"]),
    "incidents?incident=DASH-2": ("Incidents", ["[data-testid='stTable']", "[data-testid='stDataFrame']"]),
    "analytics": ("Reliability analytics", [".js-plotly-plot", "[data-testid='stMetric']"]),
    "quarterly": (
        "Quarterly review",
        ["[data-testid='stDownloadButton']", "[data-testid='stTable']", ".js-plotly-plot"],
    ),
}


def wait_idle(page: Any, timeout: float = 30) -> None:
    """Until the script run is over: Streamlit shows its status widget ("Running…") while it runs."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        running = page.locator("[data-testid='stStatusWidget']").count()
        quiet = quiet + 1 if running == 0 else 0
        if quiet >= 3:
            return
        time.sleep(0.2)
    raise AssertionError("the page kept running")


def failed(url: str, status: int) -> bool:
    """A failed request, except Streamlit's own base-path probes: on /fleet the frontend first asks
    /fleet/_stcore/health and /fleet/_stcore/host-config (404) before the server root."""
    probe = url.endswith(("/_stcore/health", "/_stcore/host-config")) and status == 404
    return status >= 400 and not probe


def open_page(chromium: Any, server: Server, path: str) -> tuple[Any, Any, list[str]]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    # Failed requests are checked by URL below; the console's "Failed to load resource" has none.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if failed(r.url, r.status) else None)
    page.goto(f"{server.url}/{path}", wait_until="domcontentloaded")
    return context, page, errors


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_loads_with_data_and_no_error(chromium: Any, dashboard: Server, path: str) -> None:
    heading, selectors = PAGES[path]
    context, page, errors = open_page(chromium, dashboard, path)
    try:
        page.get_by_role("heading", name=heading).first.wait_for(timeout=30_000)
        for selector in selectors:
            page.locator(selector).first.wait_for(state="visible", timeout=30_000)
        wait_idle(page)
        assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]
        assert errors == [], errors
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"{path.split('?')[0] or 'fleet'}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot} ({shot.stat().st_size:,} bytes)")
        assert shot.stat().st_size > 10_000
    finally:
        context.close()


def test_fleet_filter_from_the_url_and_the_widget(chromium: Any, dashboard: Server) -> None:
    context, page, errors = open_page(chromium, dashboard, "?service=search")
    try:
        page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=30_000)
        wait_idle(page)
        page.get_by_text("showing 3 of 17 SLOs").wait_for(timeout=15_000)
        # Clearing the filter in the sidebar updates the table and the URL.
        page.locator("[data-testid='stSidebar'] [data-testid='stMultiSelect']").first.get_by_role(
            "button", name="Clear all"
        ).click()
        page.get_by_text("showing 17 of 17 SLOs").wait_for(timeout=15_000)
        assert "service=" not in page.url
        assert errors == []
    finally:
        context.close()
