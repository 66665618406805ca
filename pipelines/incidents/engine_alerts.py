"""The engine's own burn-rate alerts enter through the inbox, the same door as external alerts.

Per SLO and severity (page | ticket), the alert intervals of its conditions are merged into one alert:
it fires at the first minute any condition of that severity holds and resolves when none does. Each
becomes `Alert(source="engine", fingerprint=f"{slo}:{severity}")` with dedup key
`engine:<slo>:<severity>:<start>:firing|resolved`, so appending the same interval again is a no-op.

A live cycle only looks at intervals still firing or that ended within `LIVE_HORIZON_MINUTES` (a store
loaded with months of history must not page anyone about last spring); `slo demo` replays them all.
An interval that had already ended when it was emitted (a history load, or a pull catching up after an
outage) arrives as a firing and a resolved notification at once, the resolution no later than the
firing one's `received_at`: its incident is history (`steps.triage.triage_history`) — triaged by the
rules in bulk, resolved at the alert's end, never routed, paged or notified.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Alert, map_severity
from pipelines.status import duration_text
from pipelines.timeutil import datetime_of, minute_of

LIVE_HORIZON_MINUTES = 24 * 60


@dataclass(frozen=True)
class EngineAlert:
    slo: str
    service: str
    severity: str  # page | ticket
    start: int  # epoch minute
    end: int | None  # epoch minute, None while firing
    conditions: str  # e.g. "1h/5m>14.4, 6h/30m>6"


def merged_intervals(con: duckdb.DuckDBPyConnection, since: int | None) -> list[EngineAlert]:
    """Alert intervals per (SLO, severity), overlapping conditions merged; those ending after `since`."""
    rows = con.execute(
        """SELECT s.slo_id, s.service, sa.severity, a.start_minute, a.end_minute,
                  sa.long_window, sa.short_window, sa.factor
           FROM alert_intervals a JOIN slos s USING (slo_key)
           JOIN slo_alerts sa ON sa.slo_key = a.slo_key AND sa.bit = a.bit
           WHERE ? IS NULL OR a.end_minute IS NULL OR a.end_minute >= ?
           ORDER BY s.slo_id, sa.severity, a.start_minute, a.bit""",
        [since, since],
    ).fetchall()
    out: list[EngineAlert] = []
    current: dict[str, object] | None = None
    for slo, service, severity, start, end, lw, sw, factor in rows:
        cond = f"{_dur(lw)}/{_dur(sw)}>{factor:g}"
        if (
            current
            and current["slo"] == slo
            and current["severity"] == severity
            and (
                current["end"] is None or start <= int(current["end"])  # type: ignore[call-overload]
            )
        ):
            if current["end"] is not None:
                current["end"] = None if end is None else max(int(current["end"]), end)  # type: ignore[call-overload]
            if cond not in str(current["conditions"]):
                current["conditions"] = f"{current['conditions']}, {cond}"
            continue
        if current:
            out.append(EngineAlert(**current))  # type: ignore[arg-type]
        current = {
            "slo": slo,
            "service": service,
            "severity": severity,
            "start": start,
            "end": end,
            "conditions": cond,
        }
    if current:
        out.append(EngineAlert(**current))  # type: ignore[arg-type]
    return out


def _dur(minutes: int) -> str:
    return duration_text(minutes)


def to_alerts(a: EngineAlert, upto: int) -> list[Alert]:
    """The firing notification (if it started by `upto`) and the resolved one (if it ended by then)."""
    if a.start > upto:
        return []
    start = datetime_of(a.start).replace(tzinfo=None)
    key = f"engine:{a.slo}:{a.severity}:{start.isoformat()}"
    common = dict(
        source="engine",
        service=a.service,
        fingerprint=f"{a.slo}:{a.severity}",
        title=f"SLOBurnRateHigh {a.slo} ({a.severity}): error budget burning fast ({a.conditions})",
        starts_at=start,
        severity=map_severity(a.severity),
        slo=a.slo,
        description=f"Burn-rate alert {a.severity} on {a.slo}: {a.conditions} (long/short window > factor).",
        labels={"alertname": "SLOBurnRateHigh", "service": a.service, "slo": a.slo, "severity": a.severity},
    )
    out = [Alert(status="firing", dedup_key=key + ":firing", **common)]  # type: ignore[arg-type]
    if a.end is not None and a.end <= upto:
        ended = datetime_of(a.end).replace(tzinfo=None)
        out.append(Alert(status="resolved", dedup_key=key + ":resolved", ends_at=ended, **common))  # type: ignore[arg-type]
    return out


def emit(con: duckdb.DuckDBPyConnection, inbox: Inbox, now: dt.datetime) -> int:
    """Append the engine's alerts known at `now` (as far as evaluated) to the inbox; returns how many
    were new. Only intervals still firing or ended within the live horizon before `now` are considered."""
    row = con.execute("SELECT max(evaluated_to) FROM engine_state").fetchone()
    if not row or row[0] is None:
        return 0
    now_minute = minute_of(now)
    upto = min(now_minute, int(row[0]))
    entries = [
        Entry(dedup_key=al.dedup_key, kind="alert", source="engine", body=al.to_json())
        for a in merged_intervals(con, now_minute - LIVE_HORIZON_MINUTES)
        for al in to_alerts(a, upto)
    ]
    if not entries:
        return 0
    return len(inbox.append(entries).accepted)
