"""Hostile outside text in the real dashboard (Streamlit + headless Chromium): shown as literal text, no
remote image or link in the DOM, and no request leaves 127.0.0.1 while the pages load."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from pipelines.config import Settings
from pipelines.incidents.contract import Alert
from pipelines.outside_text import JOINER
from tests.e2e.conftest import Server, dashboard_server
from tests.e2e.test_dashboard_browser import wait_idle
from tests.support.cli import os_user
from tests.support.dashboard_store import ROOT
from tests.support.incident_rows import publish_alert
from tests.support.realparts import free_port

pytestmark = pytest.mark.e2e

T0 = dt.datetime(2026, 6, 1, 10, 0)
TITLE = ":red[RESOLVED] <img src=http://evil.test/t.png> ![a](http://evil.test/a.png)"
ROOT_CAUSE = "[click me](http://evil.test/rc) :material/home: www.evil.test $x$"
ACTOR = "mallory <a href=http://evil.test/actor>x</a>"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("hostile-dashboard")
    data = base / "data"
    # LOGNAME/USER do not name the CLI's actor (the effective uid's login does): the hostile name is ignored
    env = {**os.environ, "SLO_DATA_DIR": str(data), "LOGNAME": ACTOR, "USER": ACTOR}
    env.pop("ANTHROPIC_API_KEY", None)
    settings = Settings.load({**os.environ, "SLO_DATA_DIR": str(data)})
    alert = Alert(
        source="alertmanager", status="firing", service="shop", fingerprint="Hostile", title=TITLE,
        dedup_key="am:hostile", starts_at=T0, severity="SEV2",
    )  # fmt: skip
    publish_alert(settings, alert, T0 + dt.timedelta(minutes=1))
    for step in (
        ["ack", "INC-0001"],
        ["root-cause", "INC-0001", "--category", "deploy", "--text", ROOT_CAUSE],
        ["resolve", "INC-0001"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "incidents", *step],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    with dashboard_server(data, base, {"SLO_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}) as server:
        yield server


def off_machine(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme not in ("data", "blob", "about") and parsed.hostname != "127.0.0.1"


def load(chromium: Any, server: Server, path: str, wait_text: str) -> tuple[Any, Any, list[str]]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{server.url}/{path}", wait_until="domcontentloaded")
    page.get_by_text(wait_text).first.wait_for(timeout=30_000)
    wait_idle(page)
    return context, page, requests


def assert_nothing_remote(page: Any, requests: list[str]) -> None:
    images = page.evaluate("[...document.querySelectorAll('img')].map(i => i.src)")
    assert [src for src in images if "evil.test" in src or off_machine(src)] == [], images
    links = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    assert [h for h in links if "evil.test" in h or h.startswith("javascript:")] == [], links
    assert [u for u in requests if off_machine(u)] == []
    assert requests, "no request recorded at all"


def test_incident_page_shows_hostile_text_as_text(chromium: Any, hostile: Server) -> None:
    context, page, requests = load(chromium, hostile, "incidents?incident=INC-0001", "Timeline")
    try:
        page.locator("[data-testid='stTable']").first.wait_for(state="visible", timeout=30_000)
        # The post-mortem draft's expander is open once there is one: its Markdown is rendered.
        page.get_by_role("heading", name="Post-Mortem:").first.wait_for(timeout=30_000)
        wait_idle(page)
        body = page.inner_text("body").replace(JOINER, "")
        # (a) literally on the page, as received: the title (heading line and timeline) and root cause
        assert TITLE in body, body[:3000]
        assert ROOT_CAUSE in body, body[:3000]
        # the generated post-mortem, rendered as Markdown: its heading carries the title as text
        heading = page.get_by_role("heading", name="Post-Mortem:").first.inner_text().replace(JOINER, "")
        assert TITLE in heading, heading
        assert os_user() in body, body[:3000]  # the CLI's actor: the effective uid's login
        assert "mallory" not in body, [line for line in body.splitlines() if "mallory" in line]
        # no Streamlit colour directive was applied to it
        assert page.locator("span[style*='color']", has_text="RESOLVED").count() == 0
        # (b), (c)
        assert_nothing_remote(page, requests)
    finally:
        context.close()


def test_every_page_loads_without_a_request_off_the_machine(chromium: Any, hostile: Server) -> None:
    """The favicon included: a ":material/…:" page icon would have the browser fetch it from a CDN."""
    for path, text in (("", "Fleet error budgets"), ("alerts?since=129600", "Alerts")):
        context, page, requests = load(chromium, hostile, path, text)
        try:
            icons = page.evaluate("[...document.querySelectorAll('link[rel*=icon]')].map(l => l.href)")
            assert icons and not [i for i in icons if off_machine(i)], icons
            assert_nothing_remote(page, requests)
        finally:
            context.close()


def test_the_icon_is_a_png_in_the_package() -> None:
    icon = Path(ROOT / "dashboard" / "icon.png").read_bytes()
    assert icon.startswith(b"\x89PNG\r\n\x1a\n")
