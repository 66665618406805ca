"""The incident page's post-mortem line in headless Chromium, on the demo store: for a resolved or
closed SEV1/SEV2 demo incident, the deadline is its resolution + 48 h, worked out here from the stored
times, and the page says "due by", "overdue since" or "done" accordingly; a SEV3 says it has none."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

from pipelines.store import SNAPSHOT_FILE
from tests.e2e.conftest import Server
from tests.e2e.test_dashboard_browser import open_page, wait_idle
from tests.support.dashboard_store import DemoStore

pytestmark = pytest.mark.e2e


def _expected(row: tuple[Any, ...]) -> tuple[str, str]:
    """(incident id, the line's start) for a SEV1/SEV2 incident, by hand: due 48 h after resolution."""
    iid, resolved, done = row
    due = f"{resolved + dt.timedelta(hours=48):%Y-%m-%d %H:%M} UTC"
    if done is not None:
        word = "within its 48 h" if done <= resolved + dt.timedelta(hours=48) else "after its deadline"
        return iid, f"Post-mortem done {done:%Y-%m-%d %H:%M} UTC, {word}"
    if resolved + dt.timedelta(hours=48) <= dt.datetime.now(dt.UTC).replace(tzinfo=None):
        return iid, f"Post-mortem overdue since {due}: none done yet"
    return iid, f"Post-mortem due by {due};"


def test_the_incident_page_shows_the_postmortem_deadline(
    chromium: Any, dashboard: Server, store: DemoStore
) -> None:
    con = duckdb.connect(str(store.data_dir / SNAPSHOT_FILE), read_only=True)
    try:
        row = con.execute(
            """SELECT id, resolved_at, postmortem_done_at FROM incidents
               WHERE NOT imported AND route IS NOT NULL AND severity IN ('SEV1', 'SEV2')
                 AND status IN ('resolved', 'closed') ORDER BY resolved_at DESC LIMIT 1"""
        ).fetchone()
    finally:
        con.close()
    assert row is not None, "the demo store has a resolved SEV1/SEV2 incident"
    cases = [_expected(row), ("DASH-2", "No post-mortem deadline (SEV3: only SEV1/SEV2 have one, 48 h).")]
    for iid, line in cases:
        context, page, errors = open_page(chromium, dashboard, f"incidents?incident={iid}")
        try:
            page.get_by_role("heading", name="Incidents").first.wait_for(timeout=30_000)
            wait_idle(page)
            page.get_by_text(line).first.wait_for(timeout=30_000)
            assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]
            assert errors == [], errors
        finally:
            context.close()
