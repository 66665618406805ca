"""`slo status`: every SLO's evaluation at one instant, read from the published snapshot."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from pipelines import engine
from pipelines.catalog import stored_slos
from pipelines.errors import SloError
from pipelines.model import STANDARD_BURN_WINDOWS, Slo
from pipelines.staleness import StaleMark, current_marks, source_states
from pipelines.timeutil import datetime_of, iso, minute_of

# `last_data_at` is looked up in the last day first (a bounded read), then in the whole history.
RECENT_DATA_MINUTES = 1440


def duration_text(minutes: int) -> str:
    """5 → 5m, 60 → 1h, 1440 → 1d, 40320 → 4w (the largest unit that divides exactly)."""
    for unit, size in (("w", 10080), ("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def _iso(minute: int | None) -> str | None:
    if minute is None:
        return None
    return iso(datetime_of(minute))


@dataclass
class StatusQuery:
    at: dt.datetime | None = None
    service: str | None = None


def status(
    con: duckdb.DuckDBPyConnection, query: StatusQuery, stale_marks: Mapping[str, StaleMark] | None = None
) -> list[dict[str, Any]]:
    """One object per SLO (DESIGN §3 `slo status --json`), evaluated at `query.at` or the latest instant.

    `stale_marks` are the source failures recorded beside the snapshot (staleness.read_marks); an
    SLO whose source failed after its last published pull is `stale`, with the reason.
    """
    pairs = stored_slos(con, query.service)
    if query.service and not pairs:
        known = [r[0] for r in con.execute("SELECT DISTINCT service FROM slos ORDER BY 1").fetchall()]
        raise SloError(f"--service {query.service!r}: no such service; known: {', '.join(known)}")
    state = _engine_state(con)
    return _status_rows(con, pairs, state, _instant(state, query.at), stale_marks)


def status_by_service(
    con: duckdb.DuckDBPyConnection, at: dt.datetime, services: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """`status(con, StatusQuery(at, service))` for several services at once: one evaluation of all
    their SLOs at `at` instead of one per service (the incident stage's triage context). A service
    without SLOs maps to [] (where `status` raises); an instant outside the evaluated range raises
    SloError as `status` does."""
    wanted = set(services)
    if not wanted:
        return {}
    pairs = [(k, s) for k, s in stored_slos(con) if s.service in wanted]
    state = _engine_state(con)
    rows = _status_rows(con, pairs, state, _instant(state, at))
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in wanted}
    for row in rows:
        out[row["service"]].append(row)
    return out


def _engine_state(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[int | None, int | None]]:
    return {
        row[0]: (row[1], row[2])
        for row in con.execute("SELECT slo_key, first_minute, evaluated_to FROM engine_state").fetchall()
    }


def _instant(state: Mapping[int, tuple[int | None, int | None]], at: dt.datetime | None) -> int:
    """The evaluation instant for `at` (None: the latest); SloError outside the evaluated range."""
    latest = max((s[1] for s in state.values() if s[1] is not None), default=None)
    if latest is None:
        raise SloError("the snapshot holds no evaluated data yet; run `slo demo` or `slo run`")
    t = minute_of(at) if at else latest
    if t > latest:
        raise SloError(f"--at {_iso(t)}: after the latest evaluated instant {_iso(latest)}")
    earliest = min((s[0] + 1 for s in state.values() if s[0] is not None and s[1] is not None), default=t)
    if t < earliest:
        raise SloError(
            f"--at {_iso(t)}: before the first evaluated instant {_iso(earliest)} "
            "(one minute after the first bucket)"
        )
    return t


def _last_data(con: duckdb.DuckDBPyConnection, keys: Sequence[int], t: int) -> dict[int, int]:
    """slo_key → one past its last bucket before t, for `keys`: the last day first (a bounded read),
    then the whole history only for the SLOs with no bucket in that day."""
    if not keys:
        return {}
    sql = (
        "SELECT slo_key, max(minute) + 1 FROM buckets WHERE minute < ? AND minute >= ? "
        "AND slo_key IN (SELECT unnest(?::INTEGER[])) GROUP BY slo_key"
    )
    found = dict(con.execute(sql, [t, t - RECENT_DATA_MINUTES, list(keys)]).fetchall())
    missing = [k for k in keys if k not in found]
    if missing:
        found.update(con.execute(sql, [t, -(2**31), missing]).fetchall())
    return found


def _status_rows(
    con: duckdb.DuckDBPyConnection,
    pairs: Sequence[tuple[int, Slo]],
    state: Mapping[int, tuple[int | None, int | None]],
    t: int,
    stale_marks: Mapping[str, StaleMark] | None = None,
) -> list[dict[str, Any]]:
    ready = [
        engine.EngineSlo(key=k, slo=s)
        for k, s in pairs
        if k in state
        and state[k][0] is not None
        and state[k][1] is not None
        and state[k][0] < t <= state[k][1]  # type: ignore[operator]
    ]
    rows: dict[int, dict[str, Any]] = {}
    rel = engine.evaluate_at(con, ready, t)
    if rel is not None:
        for rec in rel.fetchall():
            rows[rec[0]] = dict(zip(rel.columns, rec, strict=True))
    last_data = _last_data(con, [k for k, _ in pairs], t)
    since_state = dict(
        con.execute(
            "SELECT slo_key, max(minute) FROM policy_transitions WHERE minute <= ? GROUP BY slo_key", [t]
        ).fetchall()
    )
    alert_since = {
        (r[0], r[1]): r[2]
        for r in con.execute(
            """SELECT slo_key, bit, max(start_minute) FROM alert_intervals
               WHERE start_minute <= ? AND (end_minute IS NULL OR end_minute > ?) GROUP BY ALL""",
            [t, t],
        ).fetchall()
    }
    stale = current_marks(stale_marks or {}, source_states(con))
    out = []
    for key, slo in pairs:
        ev = rows.get(key)
        budget = ev["budget_remaining"] if ev else None
        policy_state = engine.STATE_NAMES[ev["state"]] if ev and ev["state"] is not None else None
        burn = {name: (ev[f"burn_{name}"] if ev else None) for name in STANDARD_BURN_WINDOWS}
        firing = ev["firing"] if ev else 0
        alerts = [
            {
                "severity": a.severity,
                "long_window": duration_text(a.long_window),
                "short_window": duration_text(a.short_window),
                "factor": a.factor,
                "since": _iso(alert_since.get((key, bit))),
            }
            for bit, a in enumerate(slo.alerts)
            if firing & (1 << bit)
        ]
        data_status = "ok"
        if ev is None or ev["valid_slo"] == 0:
            data_status = "no_data"
        elif last_data.get(key) is None or t - last_data[key] >= 5:
            data_status = "no_recent_data"
        exhaustion = None
        b1h = burn.get("1h")
        if budget is not None and budget > 0 and b1h is not None and b1h > 1:
            exhaustion = _iso(t + math.ceil(budget * slo.window.minutes / b1h))
        out.append(
            {
                "slo": slo.id,
                "service": slo.service,
                "owner": slo.owner,
                "target": slo.target,
                "window": slo.window.text,
                "evaluated_at": _iso(t),
                "sli": ev["sli"] if ev else None,
                "good": int(ev["good_slo"]) if ev else 0,
                "valid": int(ev["valid_slo"]) if ev else 0,
                "budget_remaining": budget,
                "budget_minutes": slo.budget_minutes,
                "budget_remaining_minutes": (budget * slo.budget_minutes) if budget is not None else None,
                "policy_state": policy_state,
                "policy_text": slo.policy.get(policy_state) if policy_state else None,
                "policy_state_since": _iso(since_state.get(key)),
                "burn_rates": burn,
                "alerts": alerts,
                "projected_exhaustion_at": exhaustion,
                "data_status": data_status,
                "last_data_at": _iso(last_data.get(key)),
                "stale": slo.id in stale,
                "stale_reason": stale[slo.id].reason if slo.id in stale else None,
                "stale_since": stale[slo.id].since if slo.id in stale else None,
            }
        )
    return out


@dataclass(frozen=True)
class StatusSummary:
    """The headline of a set of `status` rows, computed here once for every place that shows it:
    `slo status`, the fleet page, the alerts page and the dashboard's stale banner."""

    slos: int
    alerting: int  # SLOs with a firing burn-rate alert
    paging: int  # of them, those with a page alert
    stale: dict[tuple[str, str | None], list[str]]  # (stale_reason, stale_since) → stale SLO ids


def summarise(rows: Sequence[Mapping[str, Any]]) -> StatusSummary:
    stale: dict[tuple[str, str | None], list[str]] = {}
    for r in rows:
        if r.get("stale"):
            key = (str(r.get("stale_reason") or "the last pull failed"), r.get("stale_since"))
            stale.setdefault(key, []).append(r["slo"])
    return StatusSummary(
        slos=len(rows),
        alerting=sum(1 for r in rows if r["alerts"]),
        paging=sum(1 for r in rows if any(a["severity"] == "page" for a in r["alerts"])),
        stale={k: sorted(v) for k, v in stale.items()},
    )
