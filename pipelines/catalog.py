"""Specs → the `slos` and `slo_alerts` tables, with stable integer keys for the hot tables."""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb

from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow


def sync_slos(con: duckdb.DuckDBPyConnection, slos: Sequence[Slo]) -> dict[str, int]:
    """Write the specs' SLOs; an SLO keeps its key forever, SLOs no longer in the specs go inactive.

    A changed target, window or alert set invalidates the SLO's evaluation (it is recomputed).
    """
    known = {
        row[0]: row[1:]
        for row in con.execute("SELECT slo_id, slo_key, target, window_text, policy FROM slos").fetchall()
    }
    next_key = (con.execute("SELECT coalesce(max(slo_key), 0) FROM slos").fetchone() or (0,))[0] + 1
    keys: dict[str, int] = {}
    old_alerts = {
        (row[0], row[1]): row[2:]
        for row in con.execute(
            "SELECT slo_key, bit, severity, long_window, short_window, factor FROM slo_alerts"
        ).fetchall()
    }
    con.execute("UPDATE slos SET active = FALSE")
    for slo in slos:
        row = _row(slo)
        if slo.id in known:
            key = known[slo.id][0]
            alerts_now = {
                (key, bit): (a.severity, a.long_window, a.short_window, a.factor)
                for bit, a in enumerate(slo.alerts)
            }
            alerts_then = {k: v for k, v in old_alerts.items() if k[0] == key}
            changed = (
                known[slo.id][1] != slo.target
                or known[slo.id][2] != slo.window.text
                or alerts_now != alerts_then
            )
            con.execute(
                """UPDATE slos SET service=?, name=?, owner=?, category=?, sli_kind=?, target=?,
                   window_text=?, window_kind=?, window_minutes=?, calendar=?, budget_minutes=?,
                   alerts_custom=?, policy=?, source_file=?, source_line=?, active=TRUE
                   WHERE slo_key=?""",
                [*row[1:], key],
            )
            if changed:
                # A new definition: everything derived from the old one is recomputed.
                con.execute("UPDATE engine_state SET evaluated_to = NULL WHERE slo_key = ?", [key])
        else:
            key = next_key
            next_key += 1
            con.execute(
                "INSERT INTO slos VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, TRUE)",
                [key, *row],
            )
        con.execute("DELETE FROM slo_alerts WHERE slo_key = ?", [key])
        for bit, alert in enumerate(slo.alerts):
            con.execute(
                "INSERT INTO slo_alerts VALUES (?, ?, ?, ?, ?, ?)",
                [key, bit, alert.severity, alert.long_window, alert.short_window, alert.factor],
            )
        keys[slo.id] = key
    return keys


def _row(slo: Slo) -> list[object]:
    return [
        slo.id,
        slo.service,
        slo.name,
        slo.owner,
        slo.sli.category,
        slo.sli.kind,
        slo.target,
        slo.window.text,
        slo.window.kind,
        slo.window.minutes,
        slo.window.calendar,
        slo.budget_minutes,
        slo.alerts_custom,
        json.dumps(slo.policy),
        slo.source_file,
        slo.source_line,
    ]


def stored_slos(con: duckdb.DuckDBPyConnection, service: str | None = None) -> list[tuple[int, Slo]]:
    """The active SLOs as stored in a snapshot, rebuilt as model records, with their keys."""
    alerts: dict[int, list[BurnRateAlert]] = {}
    for key, severity, long_w, short_w, factor in con.execute(
        "SELECT slo_key, severity, long_window, short_window, factor FROM slo_alerts ORDER BY slo_key, bit"
    ).fetchall():
        alerts.setdefault(key, []).append(BurnRateAlert(severity, long_w, short_w, factor))
    rows = con.execute(
        """SELECT slo_key, service, name, owner, category, sli_kind, target, window_text, window_kind,
                  window_minutes, calendar, alerts_custom, policy, source_file, source_line
           FROM slos WHERE active AND (? IS NULL OR service = ?) ORDER BY slo_id""",
        [service, service],
    ).fetchall()
    out = []
    for (
        key,
        svc,
        name,
        owner,
        category,
        kind,
        target,
        wtext,
        wkind,
        wmin,
        cal,
        custom,
        policy,
        src,
        line,
    ) in rows:
        slo = Slo(
            service=svc,
            name=name,
            owner=owner or "",
            sli=Sli(name=name, kind=kind or "ratio", category=category or ""),
            target=target,
            window=SloWindow(kind=wkind, minutes=wmin, text=wtext, calendar=cal),
            alerts=tuple(alerts.get(key, ())),
            alerts_custom=bool(custom),
            policy=json.loads(policy) if policy else {},
            source_file=src or "",
            source_line=line or 0,
        )
        out.append((key, slo))
    return out
