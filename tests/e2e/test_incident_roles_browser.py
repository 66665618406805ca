"""The incident page's role control (issue 17, item 4) in headless Chromium, with `slo serve` folding
what the dashboard appends: a SEV2 escalated with no incident commander says so; assigning one with the
*Assign a role* form lands on the timeline as `role_assigned` by the acting identity, and the page then
names the commander and stops asking."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.cycle import open_writer
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Alert
from tests.e2e.conftest import Server, dashboard_server
from tests.e2e.test_dashboard_browser import open_page, wait_idle
from tests.e2e.test_dashboard_service import INCIDENT_TABLES, timeline_steps, wait_for_incident
from tests.support.dashboard_store import DemoStore
from tests.support.realparts import free_port

pytestmark = pytest.mark.e2e


def fresh_store(store: DemoStore, data: Path) -> None:
    """The demo's metrics (its DuckDB file and its parquet parts) without any incident."""
    data.mkdir()
    shutil.copy(store.data_dir / "work.duckdb", data / "work.duckdb")
    if (store.data_dir / "parts").exists():
        shutil.copytree(store.data_dir / "parts", data / "parts")
    with open_writer(data) as w:
        for table in INCIDENT_TABLES:
            w.db.execute(f"DELETE FROM {table}")
        w.db.execute("UPDATE inbox_cursor SET last_seq = 0")
        w.publish()


def test_an_incident_commander_is_assigned_on_the_incident_page(
    chromium: Any, store: DemoStore, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    fresh_store(store, data)
    port = free_port()
    env = {**os.environ, "SLO_DATA_DIR": str(data), "SLACK_WEBHOOK_URL": "", "PAGERDUTY_ROUTING_KEY": ""}
    service = Server(
        "service", [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)], env,
        tmp_path / "service.log", port,
    )  # fmt: skip
    try:
        service.wait_ready("/api/health", timeout=60)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        alert = Alert(
            source="generic", status="firing", service="checkout-api", fingerprint="e2e-roles",
            title="Checkout errors (roles)", dedup_key="e2e-roles-1", starts_at=now - dt.timedelta(minutes=3),
            severity="SEV2", slo="checkout-api/availability",
        )  # fmt: skip
        inbox = Inbox(data)
        inbox.append([Entry(dedup_key=alert.dedup_key, kind="alert", source="generic", body=alert.to_json())])
        inbox.close()
        incident_id = wait_for_incident(data, "e2e-roles", timeout=30)

        with dashboard_server(data, tmp_path, {"SLO_SERVICE_URL": service.url}) as dash:
            context, page, errors = open_page(chromium, dash, f"incidents?incident={incident_id}")
            try:
                page.get_by_role("heading", name="Incidents").first.wait_for(timeout=30_000)
                wait_idle(page)
                page.get_by_text("SEV2 with no incident commander").first.wait_for(timeout=30_000)
                form = page.locator("[data-testid='stForm']", has_text="Assign a role")
                form.get_by_label("Person").fill("alice")
                form.get_by_role("button", name="Assign").click()
                page.get_by_text("done", exact=True).first.wait_for(timeout=45_000)
                wait_idle(page)
                assert ("role_assigned", "local") in timeline_steps(page)
                body = page.locator("[data-testid='stMain']").inner_text().replace("\u2060", "")
                assert "incident commander alice" in body
                assert "SEV2 with no incident commander" not in body  # the warning is gone
                assert "SEV2 escalated with no incident commander" in body  # the request: on the timeline
                assert errors == []
            finally:
                context.close()
    except AssertionError:
        print(f"--- service log ---\n{service.output()}")
        raise
    finally:
        service.stop()
