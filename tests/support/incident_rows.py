"""Incident rows written straight into a test DuckDB with the migration-2 schema (analytics fixtures),
and `publish_alert`: one alert through the real inbox, incident stage and publish.

The incident fold (another part of the product) fills these tables from the inbox; analytics tests only
need rows with known values, so they insert them here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from pipelines.analytics import tables as analytics
from pipelines.config import Settings
from pipelines.cycle import open_writer as Writer
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Alert
from pipelines.incidents.lifecycle import process
from pipelines.store import connect, migrate


def store() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with every migration applied and the (empty) analytics tables."""
    con = connect()
    migrate(con)
    analytics.refresh(con)
    return con


def t(text: str) -> dt.datetime:
    """'2026-07-01T00:00' → naive UTC datetime."""
    return dt.datetime.fromisoformat(text)


def add_incident(
    con: duckdb.DuckDBPyConnection,
    id: str,
    *,
    start: str | dt.datetime,
    service: str = "checkout-api",
    severity: str | None = "SEV2",
    detect: float | None = None,
    ack: float | None = None,
    mitigate: float | None = None,
    resolve: float | None = None,
    fingerprint: str | None = None,
    root_cause_category: str | None = None,
    postmortem_hours: float | None = None,
    source: str = "alertmanager",
    imported: bool = False,
    slo_id: str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """One incident; detect/ack/mitigate/resolve are minutes after impact_start (ack: after detection).
    postmortem_hours: hours after resolution."""
    s = t(start) if isinstance(start, str) else start
    detected = None if detect is None else s + dt.timedelta(minutes=detect)
    acked = None if ack is None or detected is None else detected + dt.timedelta(minutes=ack)
    mitigated = None if mitigate is None else s + dt.timedelta(minutes=mitigate)
    resolved = None if resolve is None else s + dt.timedelta(minutes=resolve)
    pm = (
        None
        if postmortem_hours is None or resolved is None
        else resolved + dt.timedelta(hours=postmortem_hours)
    )
    status = (
        "resolved" if resolved else "mitigated" if mitigated else "acknowledged" if acked else "triggered"
    )
    con.execute(
        """INSERT INTO incidents (id, service, title, severity, status, source, fingerprint, slo_id,
             impact_start, impact_start_source, detected_at, detected_at_source, acknowledged_at,
             mitigated_at, resolved_at, postmortem_done_at, root_cause_category, imported, created_at,
             updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'test', ?, 'test', ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            id,
            service,
            title or f"{service} incident {id}",
            severity,
            status,
            source,
            fingerprint or f"{service}/{id}",
            slo_id,
            s,
            detected,
            acked,
            mitigated,
            resolved,
            pm,
            root_cause_category,
            imported,
            detected or s,
            detected or s,
        ],
    )
    analytics.refresh(con)  # as Writer.publish does before every snapshot
    return {"id": id, "impact_start": s, "resolved_at": resolved}


def add_action_item(
    con: duckdb.DuckDBPyConnection,
    id: str,
    incident_id: str,
    *,
    created: str,
    due: str,
    done: str | None = None,
    owner: str = "sre",
) -> None:
    con.execute(
        "INSERT INTO action_items VALUES (?, ?, ?, ?, 'P2', ?, ?, ?, ?)",
        [
            id,
            incident_id,
            f"action {id}",
            owner,
            dt.date.fromisoformat(due),
            "done" if done else "open",
            t(done) if done else None,
            t(created),
        ],
    )


def add_alert(
    con: duckdb.DuckDBPyConnection,
    key: str,
    *,
    service: str,
    starts: str,
    incident_id: str | None,
    severity: str = "SEV2",
    fingerprint: str | None = None,
    status: str = "firing",
    source: str = "alertmanager",
) -> None:
    con.execute(
        """INSERT INTO alerts (dedup_key, source, status, service, fingerprint, severity, title,
             starts_at, received_at, incident_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            key,
            source,
            status,
            service,
            fingerprint or key,
            severity,
            f"alert {key}",
            t(starts),
            t(starts),
            incident_id,
        ],
    )


def publish_alert(settings: Settings, alert: Alert, now: dt.datetime) -> None:
    """The real path for one alert: into the inbox, through the incident stage at `now`, published."""
    inbox = Inbox(settings.data_dir)
    inbox.append([Entry(alert.dedup_key, "alert", alert.source, alert.to_json())])
    with Writer(settings.data_dir) as writer:
        process(writer.db, settings, now, inbox=inbox)
        writer.publish()
    inbox.close()
