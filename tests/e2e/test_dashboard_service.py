"""With the service running (`slo serve`, issue 4/5), an acknowledge clicked in the dashboard shows up
on the incident's timeline: browser → inbox → the service's fold → published snapshot → browser.

Needs `slo serve` (another branch). Without it this test FAILS, on purpose: the service exiting with
"invalid choice: 'serve'" is printed with its log.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.cycle import open_writer as Writer
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Alert
from pipelines.store import Snapshot
from tests.e2e.conftest import Server, dashboard_server
from tests.e2e.test_dashboard_browser import open_page, wait_idle
from tests.support.dashboard_store import DemoStore
from tests.support.realparts import free_port

pytestmark = pytest.mark.e2e

INCIDENT_TABLES = (
    "alerts", "incidents", "incident_slos", "timeline", "triage", "remediations", "notifications",
    "action_items", "documents",
)  # fmt: skip


def fresh_store(store: DemoStore, data: Path) -> None:
    """The demo's metrics without any incident: the service builds incidents from its inbox."""
    data.mkdir()
    shutil.copy(store.data_dir / "work.duckdb", data / "work.duckdb")
    shutil.copytree(store.data_dir / "parts", data / "parts")  # the store's closed hours of buckets
    with Writer(data) as w:
        for table in INCIDENT_TABLES:
            w.db.execute(f"DELETE FROM {table}")
        w.db.execute("UPDATE inbox_cursor SET last_seq = 0")
        w.publish()


def wait_for_incident(data: Path, fingerprint: str, timeout: float) -> str:
    snapshot = Snapshot(data)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with snapshot.connection() as con:
                # the incident the alert opened or joined (the demo's present already burns
                # checkout-api/availability: its engine alert may have opened that SLO's incident first)
                row = con.execute(
                    "SELECT incident_id FROM alerts WHERE fingerprint = ? AND incident_id IS NOT NULL",
                    [fingerprint],
                ).fetchone()
            if row:
                return str(row[0])
            time.sleep(0.5)
    finally:
        snapshot.close()
    raise AssertionError(f"no incident for fingerprint {fingerprint} after {timeout}s")


def timeline_steps(page: Any) -> list[tuple[str, str]]:
    """(kind, actor) of every row of the incident's timeline table, as shown (outside text carries an
    invisible U+2060 word joiner so no renderer links it; pipelines/outside_text.py)."""
    table = page.locator("[data-testid='stTable']").first
    table.locator("thead th", has_text="actor").first.wait_for(timeout=15_000)
    head = [c.inner_text().strip() for c in table.locator("thead th").all()]
    assert "kind" in head and "actor" in head, head
    kind, actor = head.index("kind"), head.index("actor")
    rows = []
    for tr in table.locator("tbody tr").all():
        cells = [c.inner_text().replace("\u2060", "").strip() for c in tr.locator("th, td").all()]
        rows.append((cells[kind], cells[actor]))
    return rows


def test_acknowledge_shows_up_on_the_incident_timeline(
    chromium: Any, store: DemoStore, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    fresh_store(store, data)
    port = free_port()
    env = {**os.environ, "SLO_DATA_DIR": str(data)}
    service = Server(
        "service",
        [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)],
        env,
        tmp_path / "service.log",
        port,
    )
    try:
        service.wait_ready("/api/health", timeout=60)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        alert = Alert(
            source="generic", status="firing", service="checkout-api", fingerprint="e2e-ack",
            title="Checkout errors (e2e)", dedup_key="e2e-ack-1", starts_at=now - dt.timedelta(minutes=3),
            severity="SEV2", slo="checkout-api/availability",
        )  # fmt: skip
        inbox = Inbox(data)
        inbox.append([Entry(dedup_key=alert.dedup_key, kind="alert", source="generic", body=alert.to_json())])
        inbox.close()
        incident_id = wait_for_incident(data, "e2e-ack", timeout=30)

        with dashboard_server(data, tmp_path, {"SLO_SERVICE_URL": service.url}) as dash:
            context, page, errors = open_page(chromium, dash, f"incidents?incident={incident_id}")
            try:
                page.get_by_role("heading", name="Incidents").first.wait_for(timeout=30_000)
                wait_idle(page)
                # No sign-in configured: the single local user, said so on the page (issue 15).
                assert "single local user" in page.locator("[data-testid='stSidebar']").inner_text()
                assert page.get_by_label("Acting as").count() == 0  # no free-text actor any more
                page.get_by_role("button", name="Acknowledge").click()
                page.get_by_text("pending", exact=True).first.wait_for(timeout=15_000)
                # The service folds the inbox and publishes; the page polls and reruns when applied.
                page.get_by_text("done", exact=True).first.wait_for(timeout=45_000)
                wait_idle(page)
                timeline = page.locator("[data-testid='stTable']").first.inner_text()
                print(f"timeline of {incident_id}:\n{timeline}")
                assert ("acknowledged", "local") in timeline_steps(page)
                assert "acknowledg" in timeline.lower()
                assert errors == []
            finally:
                context.close()
    except AssertionError:
        print(f"--- service log ---\n{service.output()}")
        raise
    finally:
        service.stop()
