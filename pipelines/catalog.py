"""Specs → the `slos` and `slo_alerts` tables, with stable integer keys for the hot tables."""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow

# The slos table's columns after slo_key, in order (what `_row` gives for a spec's SLO).
_COLUMNS = (
    "slo_id", "service", "name", "owner", "category", "sli_kind", "target", "window_text", "window_kind",
    "window_minutes", "calendar", "budget_minutes", "alerts_custom", "policy", "source_file", "source_line",
)  # fmt: skip
_TYPES = (
    pa.string(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string(), pa.float64(), pa.string(),
    pa.string(), pa.int32(), pa.string(), pa.float64(), pa.bool_(), pa.string(), pa.string(), pa.int32(),
)  # fmt: skip

# SQL: each SLO's burn-rate alert conditions as one comparable value.
_ALERT_SET = """SELECT slo_key, list((severity, long_window, short_window, factor) ORDER BY bit) AS alert_set
                FROM {table} GROUP BY slo_key"""


def sync_slos(con: duckdb.DuckDBPyConnection, slos: Sequence[Slo]) -> dict[str, int]:
    """Write the specs' SLOs; an SLO keeps its key forever, SLOs no longer in the specs go inactive.

    A changed target, window or alert set invalidates the SLO's evaluation (it is recomputed).
    Set-based: the specs are staged as two tables and merged in a handful of statements, whatever
    the number of SLOs.
    """
    rows = [_row(slo) for slo in slos]
    columns = zip(_COLUMNS, _TYPES, strict=True)
    spec = pa.table(
        {name: pa.array([row[i] for row in rows], kind) for i, (name, kind) in enumerate(columns)}
    )
    spec = spec.append_column("pos", pa.array(range(len(rows)), pa.int32()))
    alerts = [
        (slo.id, bit, a.severity, a.long_window, a.short_window, a.factor)
        for slo in slos
        for bit, a in enumerate(slo.alerts)
    ]
    spec_alerts = pa.table(
        {
            "slo_id": pa.array([a[0] for a in alerts], pa.string()),
            "bit": pa.array([a[1] for a in alerts], pa.int32()),
            "severity": pa.array([a[2] for a in alerts], pa.string()),
            "long_window": pa.array([a[3] for a in alerts], pa.int32()),
            "short_window": pa.array([a[4] for a in alerts], pa.int32()),
            "factor": pa.array([a[5] for a in alerts], pa.float64()),
        }
    )
    con.register("spec_view", spec)
    con.register("spec_alerts_view", spec_alerts)
    try:
        # -- The specs with their keys: a known id keeps its key, new ones follow the largest, in spec order.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE spec_slos AS
               SELECT coalesce(s.slo_key, (SELECT coalesce(max(slo_key), 0) FROM slos)
                        + row_number() OVER (PARTITION BY s.slo_key IS NULL ORDER BY v.pos))::INTEGER
                        AS slo_key,
                      s.slo_key IS NULL AS new, v.*
               FROM spec_view v LEFT JOIN slos s USING (slo_id)"""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE spec_slo_alerts AS
               SELECT k.slo_key, a.bit, a.severity, a.long_window, a.short_window, a.factor
               FROM spec_alerts_view a JOIN spec_slos k USING (slo_id)"""
        )
    finally:
        con.unregister("spec_view")
        con.unregister("spec_alerts_view")
    con.execute("BEGIN TRANSACTION")
    try:
        # -- A new definition (target, window or alert set): everything derived from it is recomputed.
        con.execute(
            f"""UPDATE engine_state SET evaluated_to = NULL WHERE slo_key IN (
                  WITH now AS ({_ALERT_SET.format(table="spec_slo_alerts")}),
                       was AS ({_ALERT_SET.format(table="slo_alerts")})
                  SELECT n.slo_key FROM spec_slos n JOIN slos o USING (slo_key)
                  LEFT JOIN now USING (slo_key) LEFT JOIN was USING (slo_key)
                  WHERE n.target <> o.target OR n.window_text <> o.window_text
                     OR now.alert_set IS DISTINCT FROM was.alert_set)"""
        )
        con.execute("UPDATE slos SET active = FALSE WHERE active")
        assignments = ", ".join(f"{c} = n.{c}" for c in _COLUMNS[1:])
        con.execute(
            f"""UPDATE slos SET {assignments}, active = TRUE FROM spec_slos n
                WHERE slos.slo_key = n.slo_key AND NOT n.new"""
        )
        con.execute(
            f"""INSERT INTO slos SELECT slo_key, {", ".join(_COLUMNS)}, TRUE FROM spec_slos
                WHERE new ORDER BY slo_key"""
        )
        con.execute("DELETE FROM slo_alerts WHERE slo_key IN (SELECT slo_key FROM spec_slos)")
        con.execute("INSERT INTO slo_alerts SELECT * FROM spec_slo_alerts ORDER BY slo_key, bit")
        keys = dict(con.execute("SELECT slo_id, slo_key FROM spec_slos ORDER BY pos").fetchall())
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS spec_slos")
        con.execute("DROP TABLE IF EXISTS spec_slo_alerts")
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
            window=SloWindow.stored(wkind, wmin, wtext, cal),
            alerts=tuple(alerts.get(key, ())),
            alerts_custom=bool(custom),
            policy=json.loads(policy) if policy else {},
            source_file=src or "",
            source_line=line or 0,
        )
        out.append((key, slo))
    return out
