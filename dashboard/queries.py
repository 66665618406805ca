"""The dashboard's read queries, all against the latest published snapshot (DESIGN §1).

Each query is a plain function of a read-only DuckDB connection (tested without Streamlit); `read()`
runs one through `pipelines.store.Snapshot` and caches its result per snapshot file (device, inode,
time and size), so every session shares one result until the pipeline publishes again. The writer's work
file is never opened.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from pipelines.analytics import mttx
from pipelines.analytics.deploys import deploy_correlation
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.repeats import repeat_links
from pipelines.analytics.review import build_review
from pipelines.config import Settings
from pipelines.errors import NoSnapshot, SloError
from pipelines.fold_kernels import CALENDAR_NEXT_PERIOD, period_start
from pipelines.incidents.oncall import OnCallError, configured
from pipelines.incidents.read import detail_part, incident_frame
from pipelines.model import STANDARD_BURN_WINDOWS, SloWindow
from pipelines.staleness import STALE_FILE, read_marks
from pipelines.status import StatusQuery, status
from pipelines.store import SNAPSHOT_FILE, Snapshot
from pipelines.timeutil import minute_of

SERIES_SPARK_MINUTES = 24 * 60  # the fleet sparkline: burn rate over the last day
BURN_DOWN_STEP = 60  # minutes per burn-down point


def data_dir() -> Path:
    return Settings.load().data_dir


# ---------------------------------------------------------------------------------------------
# Snapshot access and the per-inode cache

_lock = threading.Lock()
_snapshots: dict[str, Snapshot] = {}


def snapshot_version(directory: Path) -> str | None:
    """Identity of the published file (device, inode, modification time, size); None when nothing is
    published yet. Not the inode alone: a file system hands a freed inode to a later file, and two
    publishes apart the new snapshot may get the number of an old one whose results are cached."""
    try:
        st_ = os.stat(directory / SNAPSHOT_FILE)
    except FileNotFoundError:
        return None
    return f"{st_.st_dev}:{st_.st_ino}:{st_.st_mtime_ns}:{st_.st_size}"


def data_version(directory: Path) -> str | None:
    """What the cached results depend on: the published file and the stale marks beside it (a
    failed pull publishes nothing but marks its SLOs stale, which `slo status` shows at once)."""
    version = snapshot_version(directory)
    if version is None:
        return None
    try:
        marks = os.stat(directory / STALE_FILE).st_mtime_ns
    except FileNotFoundError:
        marks = 0
    return f"{version}:{marks}"


def run_query(directory: Path, fn: Callable[..., Any], *args: Any, own_connection: bool = False) -> Any:
    """Run `fn(con, *args)` on the latest snapshot (uncached). One query at a time per process on the
    shared connection: a DuckDB connection is not shared across threads, and Streamlit runs each
    session in its own. `own_connection` attaches the snapshot afresh for this query alone instead."""
    if own_connection:
        snap = Snapshot(directory)
        try:
            with snap.connection() as con:
                return fn(con, *args)
        finally:
            snap.close()
    with _lock:
        snap = _snapshots.setdefault(str(directory), Snapshot(directory))
        with snap.connection() as con:
            return fn(con, *args)


# Queries that take seconds (the quarterly review replays every SLO's buckets for its backtest): each
# runs on a connection of its own, so the fleet's queries and other sessions never wait behind it.
SLOW_QUERIES = frozenset({"quarterly_review", "quarter_deploys"})


@st.cache_data(max_entries=256, show_spinner=False)
def _cached(name: str, directory: str, version: str, args: tuple[Any, ...]) -> Any:
    if name in STATUS_QUERIES:
        args = (directory, *args)
    return run_query(Path(directory), QUERIES[name], *args, own_connection=name in SLOW_QUERIES)


# Queries that evaluate `slo status` and so read the stale marks beside the snapshot, as the CLI does:
# they get the data directory as their first argument.
STATUS_QUERIES = frozenset({"fleet_status", "slo_detail"})


def read(name: str, *args: Any, directory: Path | None = None) -> Any:
    """The result of query `name` on the latest snapshot, cached until the next publish."""
    directory = directory or data_dir()
    version = data_version(directory)
    if version is None:
        raise NoSnapshot(
            f"{directory / SNAPSHOT_FILE}: no published snapshot yet; run `slo demo` (or `slo run`) first"
        )
    if name in SLOW_QUERIES:
        _asked[(str(directory), name, tuple(args))] = time.monotonic()
    return _cached(name, str(directory), version, tuple(args))


# The slow queries someone asked for lately (data directory, name, arguments → when): the prefetch
# computes them again for each new snapshot while someone may still be reading them, so a reader of
# the Analytics or Quarterly page after a publish finds the review done (the service publishes every
# cycle). One asked for no longer than RECENT_S is left until someone asks again.
_asked: dict[tuple[str, str, tuple[Any, ...]], float] = {}
RECENT_S = 600.0


def recently_asked(directory: str, now: float) -> list[tuple[str, tuple[Any, ...]]]:
    """The slow queries of `directory` asked for within RECENT_S of `now`, most recent first."""
    for key, at in list(_asked.items()):
        if now - at > RECENT_S:
            _asked.pop(key, None)
    fresh = sorted(((at, key) for key, at in list(_asked.items()) if key[0] == directory), reverse=True)
    return [(name, args) for _, (_, name, args) in fresh]


# The fleet page's queries, computed as soon as a snapshot is published, before anyone asks.
PREFETCH: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("fleet_status", ()),
    ("fleet_sparklines", ()),
    ("freshness", ()),
    ("alerts", (None,)),  # the firing ones
)
PREFETCH_POLL_S = 1.0


@st.cache_resource(show_spinner=False)
def start_prefetch(directory: str) -> threading.Thread:
    """One daemon thread per data directory and process: when a new snapshot appears, fill the cache
    with the fleet queries and the slow ones read lately (`recently_asked`), so the first visitor after
    a publish does not wait for them."""

    def loop() -> None:
        last: str | None = None
        while True:
            version = data_version(Path(directory))
            if version is not None and version != last:
                for name, args in (*PREFETCH, *recently_asked(directory, time.monotonic())):
                    try:
                        _cached(name, directory, version, args)
                    except Exception:  # a page that asks shows the error itself
                        break
                last = version
            time.sleep(PREFETCH_POLL_S)

    thread = threading.Thread(target=loop, name=f"prefetch {directory}", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------------
# Helpers


def ts(minute: int | None) -> pd.Timestamp | None:
    """Epoch minute → naive UTC timestamp (what the charts plot)."""
    return None if minute is None else pd.Timestamp(minute * 60, unit="s")


def latest_minute(con: duckdb.DuckDBPyConnection) -> int | None:
    # fetchall, never fetchone, on this shared connection: a half-read result makes DuckDB refuse
    # the next `register` (applied_commands)
    rows = con.execute("SELECT max(evaluated_to) FROM engine_state").fetchall()
    return rows[0][0] if rows else None


def period_bounds(minute: int, calendar: str) -> tuple[int, int]:
    """[start, end) in epoch minutes of the calendar month or quarter containing `minute`; any other
    calendar window (`SloWindow.period_key`: a day, week or year, a time zone, a start) is cut by
    the engine's own `period_start`."""
    if calendar not in ("month", "quarter"):
        first = int(period_start(np.array([minute]), calendar)[0])
        unit = calendar.split("|", 1)[0]
        return first, int(period_start(np.array([first + CALENDAR_NEXT_PERIOD[unit]]), calendar)[0])
    d = dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC)
    month = d.month if calendar == "month" else 3 * ((d.month - 1) // 3) + 1
    start = dt.datetime(d.year, month, 1, tzinfo=dt.UTC)
    step = 1 if calendar == "month" else 3
    end_month, end_year = month + step, d.year
    if end_month > 12:
        end_month, end_year = end_month - 12, end_year + 1
    end = dt.datetime(end_year, end_month, 1, tzinfo=dt.UTC)
    return int(start.timestamp() // 60), int(end.timestamp() // 60)


# ---------------------------------------------------------------------------------------------
# Fleet


def fleet_status(
    con: duckdb.DuckDBPyConnection, directory: str, at: str | None = None
) -> list[dict[str, Any]]:
    """Every SLO's `slo status --json` object at `at` (ISO 8601; None: the latest instant), as
    `slo status [--at]` computes it, stale marks read as the CLI reads them (from `directory`)."""
    return status(con, StatusQuery(at=parse_instant(at)), read_marks(Path(directory)))


def fleet_sparklines(con: duckdb.DuckDBPyConnection, at: str | None = None) -> dict[str, list[float | None]]:
    """Per SLO, the 1-hour burn rate over the day before `at` (None: the latest instant), one point
    per hour (small enough to send for a thousand SLOs on every page load)."""
    instant = parse_instant(at)
    latest = minute_of(instant) if instant else latest_minute(con)
    if latest is None:
        return {}
    # -- 1h burn rate per SLO over the day up to the instant, oldest first, as one list per SLO
    rows = con.execute(
        """SELECT s.slo_id, list(x.burn_1h ORDER BY x.minute)
           FROM slo_series x JOIN slos s USING (slo_key)
           WHERE s.active AND x.minute > ? AND x.minute <= ? AND x.minute % 60 = 0 GROUP BY s.slo_id""",
        [latest - SERIES_SPARK_MINUTES, latest],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def freshness(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """When the pipeline last ran and how far the data is evaluated."""
    runs = con.execute("SELECT finished_at, source FROM runs ORDER BY run_id DESC LIMIT 1").fetchall()
    run = runs[0] if runs else None
    latest = latest_minute(con)
    return {
        "last_run_at": run[0] if run else None,
        "last_run_source": run[1] if run else None,
        "evaluated_to": ts(latest),
    }


# ---------------------------------------------------------------------------------------------
# SLO detail


@dataclass
class SloDetail:
    slo: dict[str, Any]  # the `slo status --json` object at the evaluation instant
    meta: dict[str, Any]  # the `slos` row
    alert_rules: pd.DataFrame  # bit, severity, long_window, short_window, factor
    range_start: pd.Timestamp  # the SLO window at the evaluation instant
    range_end: pd.Timestamp  # the evaluation instant (rolling) or the period's end (calendar)
    evaluated_at: pd.Timestamp  # the evaluation instant: the latest, or the page's "as of"
    view_start: pd.Timestamp  # the time range the charts show: the SLO window by default
    view_end: pd.Timestamp
    series: pd.DataFrame  # slo_series within the view, up to the evaluation instant
    burn_down: pd.DataFrame  # at, budget_remaining
    ideal: pd.DataFrame  # at, budget_remaining: two points, 100 % → 0 %
    alert_intervals: pd.DataFrame  # overlapping the view; one still open at the instant ends there
    transitions: pd.DataFrame  # every policy state change up to the instant, with its policy text
    incidents: pd.DataFrame  # impact started by the instant; resolved later = still open then


def slo_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT slo_id FROM slos WHERE active ORDER BY slo_id").fetchall()]


def parse_instant(text: str | None) -> dt.datetime | None:
    """An "as of" instant from a URL or a form: ISO 8601, UTC unless it names its zone (what
    `slo status --at` accepts); None for empty. ValueError says what is expected."""
    if not text or not text.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 time; expected e.g. 2026-11-23T12:00:00Z") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def as_of_rejection(exc: Exception, as_of: str) -> str | None:
    """What to say when a page's "as of" is refused: not a time, or outside the evaluated range
    (`slo status --at` raises a plain SloError for that). None for any other error, which the caller
    re-raises (an unreadable or missing snapshot has its own message in app.py)."""
    if isinstance(exc, ValueError) or (as_of and type(exc) is SloError):
        return f"As of: {exc}"
    return None


def slo_detail(
    con: duckdb.DuckDBPyConnection,
    directory: str,
    slo_id: str,
    at: str | None = None,
    range_minutes: int | None = None,
) -> SloDetail | None:
    """One SLO evaluated at `at` (ISO 8601; None: the latest instant) by `slo status --at`'s own
    function, with its series over the last `range_minutes` before that instant (None: its window).
    SloError when `at` is outside the evaluated range, as the CLI says it."""
    meta_rel = con.execute("SELECT * FROM slos WHERE slo_id = ?", [slo_id])
    rows = meta_rel.fetchall()
    if not rows:
        return None
    row = rows[0]
    meta = dict(zip([d[0] for d in meta_rel.description], row, strict=True))
    key = meta["slo_key"]
    found = [
        r
        for r in status(
            con, StatusQuery(at=parse_instant(at), service=meta["service"]), read_marks(Path(directory))
        )
        if r["slo"] == slo_id
    ]
    slo = found[0]
    t = minute_of(dt.datetime.fromisoformat(slo["evaluated_at"].replace("Z", "+00:00")))
    if meta["window_kind"] == "calendar":
        window = SloWindow.stored("calendar", meta["window_minutes"], meta["window_text"], meta["calendar"])
        start, end = period_bounds(t - 1, window.period_key)
    else:
        start, end = t - int(meta["window_minutes"]), t
    view_start, view_end = (start, end) if range_minutes is None else (t - range_minutes, t)
    target = float(meta["target"])
    rules = con.execute(
        "SELECT bit, severity, long_window, short_window, factor FROM slo_alerts "
        "WHERE slo_key = ? ORDER BY bit",
        [key],
    ).df()
    # -- the 15-minute evaluation series within the view, up to the instant
    series = con.execute(
        """SELECT to_timestamp(minute * 60)::TIMESTAMP AS at, sli, budget_remaining, policy_state,
                  burn_5m, burn_30m, burn_1h, burn_2h, burn_6h, burn_1d, burn_3d, firing
           FROM slo_series WHERE slo_key = ? AND minute >= ? AND minute <= ? ORDER BY minute""",
        [key, view_start, t],
    ).df()
    burn_down = budget_burn_down(con, key, target, start, t)
    ideal = pd.DataFrame({"at": [ts(start), ts(end)], "budget_remaining": [1.0, 0.0]})
    # -- burn-rate alert intervals overlapping the view as of the instant (open then: end there)
    intervals = con.execute(
        """SELECT to_timestamp(i.start_minute * 60)::TIMESTAMP AS start_at,
                  to_timestamp(least(coalesce(i.end_minute, ?), ?) * 60)::TIMESTAMP AS end_at,
                  coalesce(i.end_minute, ?) > ? AS firing,
                  a.severity, a.long_window, a.short_window, a.factor
           FROM alert_intervals i JOIN slo_alerts a USING (slo_key, bit)
           WHERE i.slo_key = ? AND coalesce(i.end_minute, ?) > ? AND i.start_minute < ?
           ORDER BY i.start_minute""",
        [t, t, t, t, key, t, view_start, t],
    ).df()
    policy = json.loads(meta["policy"]) if meta.get("policy") else {}
    transitions = con.execute(
        """SELECT to_timestamp(minute * 60)::TIMESTAMP AS at, from_state, to_state, budget_remaining
           FROM policy_transitions WHERE slo_key = ? AND minute <= ? ORDER BY minute""",
        [key, t],
    ).df()
    transitions["policy_text"] = [policy.get(s, "") for s in transitions["to_state"]]
    # -- incidents on this SLO whose impact had started by the instant (resolved later: open then)
    incidents = con.execute(
        """SELECT id, title, severity, status, impact_start,
                  CASE WHEN resolved_at <= ? THEN resolved_at END AS resolved_at
           FROM incidents
           WHERE (slo_id = ? OR id IN (SELECT incident_id FROM incident_slos WHERE slo_id = ?))
             AND impact_start <= ?
           ORDER BY impact_start""",
        [ts(t), slo_id, slo_id, ts(t)],
    ).df()
    return SloDetail(
        slo=slo,
        meta=meta,
        alert_rules=rules,
        range_start=ts(start),
        range_end=ts(end),
        evaluated_at=ts(t),
        view_start=ts(view_start),
        view_end=ts(view_end),
        series=series,
        burn_down=burn_down,
        ideal=ideal,
        alert_intervals=intervals,
        transitions=transitions,
        incidents=incidents,
    )


def budget_burn_down(
    con: duckdb.DuckDBPyConnection, key: int, target: float, start: int, end: int
) -> pd.DataFrame:
    """Budget remaining as the window's bad events accumulate, hour by hour, from 100 % at `start`.

    At `end` it equals `budget_remaining` of `slo status`: the allowed bad events are
    `(1 − target) · Σvalid` over the whole window [start, end).
    """
    # -- bad and valid events per hour of the window, accumulated in time order
    rows = con.execute(
        """WITH h AS (
             SELECT minute // ? AS hour, sum(valid - good) AS bad, sum(valid) AS valid
             FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ? GROUP BY 1)
           SELECT least((hour + 1) * ?, ?) AS minute,
                  sum(bad) OVER (ORDER BY hour) AS cum_bad, sum(valid) OVER () AS total_valid
           FROM h ORDER BY hour""",
        [BURN_DOWN_STEP, key, start, end, BURN_DOWN_STEP, end],
    ).fetchall()
    points: list[tuple[pd.Timestamp | None, float | None]] = [(ts(start), 1.0)]
    for minute, cum_bad, total_valid in rows:
        allowed = (1.0 - target) * float(total_valid)
        points.append((ts(minute), 1.0 - float(cum_bad) / allowed if allowed > 0 else None))
    return pd.DataFrame(points, columns=["at", "budget_remaining"])


# ---------------------------------------------------------------------------------------------
# Alerts


def alerts(con: duckdb.DuckDBPyConnection, since_minutes: int | None) -> pd.DataFrame:
    """Firing alerts from every source, and (with `since_minutes`) those that fired within that many
    minutes before the latest instant: the engine's burn-rate alert intervals and the `alerts` table
    (Alertmanager, PagerDuty, generic, imported, and the engine's alerts once the incident flow has
    taken them in), firing first, newest first. An alert is in the range by its own times (ended, or
    started when it has no end, within it), never by when it was received: an import received today
    is not recent. An engine interval already in the `alerts` table (fingerprint `<slo>:<severity>`,
    covering the interval's start) is listed once, from there. The one source of "firing" for the
    fleet and alerts pages."""
    t = latest_minute(con) or 0
    since = ts(t - since_minutes) if since_minutes is not None else None
    # -- engine intervals and received alerts in one shape; firing = still open
    return con.execute(
        """SELECT 'engine' AS source, s.service, s.slo_id AS slo, a.severity,
                  'SLOBurnRateHigh ' || s.slo_id || ' ' || a.severity || ' burn(' ||
                    a.long_window || 'm,' || a.short_window || 'm) > ' || a.factor AS title,
                  s.slo_id || ':' || a.severity AS fingerprint,
                  to_timestamp(i.start_minute * 60)::TIMESTAMP AS starts_at,
                  to_timestamp(i.end_minute * 60)::TIMESTAMP AS ends_at,
                  i.end_minute IS NULL AS firing,
                  NULL::VARCHAR AS incident_id, NULL::VARCHAR AS dedup_key
           FROM alert_intervals i JOIN slo_alerts a USING (slo_key, bit) JOIN slos s USING (slo_key)
           WHERE (i.end_minute IS NULL OR to_timestamp(i.end_minute * 60)::TIMESTAMP >= $since)
             AND NOT EXISTS (
               SELECT 1 FROM alerts r
               WHERE r.source = 'engine' AND r.fingerprint = s.slo_id || ':' || a.severity
                 AND r.starts_at <= to_timestamp(i.start_minute * 60)::TIMESTAMP
                 AND coalesce(r.ends_at, TIMESTAMP '9999-12-31')
                     > to_timestamp(i.start_minute * 60)::TIMESTAMP)
           UNION ALL
           SELECT source, service, slo_id, severity, title, fingerprint, starts_at, ends_at,
                  firing, incident_id, dedup_key
           FROM (
             -- one row per alert: its latest notification (a resolve follows its firing)
             SELECT *, status = 'firing' AND ends_at IS NULL AS firing FROM alerts
             QUALIFY row_number() OVER (PARTITION BY source, service, fingerprint, starts_at
                                        ORDER BY received_at DESC, inbox_seq DESC NULLS LAST) = 1)
           WHERE firing OR coalesce(ends_at, starts_at) >= $since
           ORDER BY firing DESC, starts_at DESC""",
        {"since": since},
    ).df()


def firing_external(table: pd.DataFrame) -> dict[str, int]:
    """Firing alerts of `alerts()` from sources other than the engine (whose own alerts every
    status row already lists), counted per SLO id, or per service when the alert names no SLO."""
    rows = table[table["firing"] & (table["source"] != "engine")]
    keys = rows["slo"].where(rows["slo"].notna(), rows["service"])
    return {str(k): int(n) for k, n in keys.value_counts().items()}


# ---------------------------------------------------------------------------------------------
# Incidents


def incidents(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every incident, newest impact first: the one incident list (`pipelines.incidents.read`, the
    fields `slo incidents list --json` and `GET /api/incidents` give), as a DataFrame."""
    return incident_frame(con, "impact")


@dataclass
class IncidentDetail:
    incident: dict[str, Any]
    timeline: pd.DataFrame
    triage: pd.DataFrame
    remediations: pd.DataFrame
    notifications: pd.DataFrame
    action_items: pd.DataFrame
    documents: pd.DataFrame


def incident_detail(con: duckdb.DuckDBPyConnection, incident_id: str) -> IncidentDetail | None:
    rel = con.execute("SELECT * FROM incidents WHERE id = ?", [incident_id])
    rows = rel.fetchall()
    if not rows:
        return None
    row = rows[0]

    def part(name: str) -> pd.DataFrame:
        return detail_part(con, incident_id, name)

    return IncidentDetail(
        incident=dict(zip([d[0] for d in rel.description], row, strict=True)),
        timeline=part("timeline"),
        triage=part("triage_attempts").drop(columns=["raw"], errors="ignore"),
        remediations=part("remediations"),
        notifications=part("notifications"),
        action_items=part("action_items"),
        documents=part("documents"),
    )


def applied_commands(
    con: duckdb.DuckDBPyConnection, sent: tuple[tuple[str, str | None, str, str, dt.datetime], ...]
) -> dict[str, str | None]:
    """Which sent commands — (dedup_key, incident_id, command, actor, sent_at) — the published snapshot
    shows as applied: a timeline step naming the command's inbox key (in its data or message), else a
    step on that incident from the dashboard by that actor, at or after the sending, whose kind or
    message names the command; for an alert sent to open an incident, its row in `alerts` with an
    incident. Maps each applied key to None, or to the message when the fold rejected the command
    (a `command_rejected` step)."""
    if not sent:
        return {}
    rows = pd.DataFrame(
        [(k, i, c.split("_")[0][:6], a, at - dt.timedelta(seconds=5)) for k, i, c, a, at in sent],
        columns=["k", "incident_id", "word", "actor", "since"],
    )
    con.register("sent_commands", rows)
    try:
        # -- sent commands with evidence on the timeline or in the alerts table
        found = con.execute(
            """SELECT s.k, max(CASE WHEN t.kind = 'command_rejected' THEN t.message END)
               FROM sent_commands s JOIN timeline t
                 ON contains(coalesce(t.data::VARCHAR, ''), s.k) OR contains(t.message, s.k)
                 OR (t.incident_id = s.incident_id AND t.occurred_at >= s.since
                     AND t.source = 'dashboard' AND t.actor = s.actor
                     AND (contains(lower(t.kind), s.word) OR contains(lower(t.message), s.word)))
               GROUP BY s.k
               UNION ALL
               SELECT s.k, NULL FROM sent_commands s
               WHERE EXISTS (SELECT 1 FROM alerts a WHERE a.dedup_key = s.k AND a.incident_id IS NOT NULL)"""
        ).fetchall()
    finally:
        con.unregister("sent_commands")
    return {r[0]: r[1] for r in found}


# ---------------------------------------------------------------------------------------------
# Reliability analytics and the quarterly review: the analytics module's own tables and functions
# (pipelines/analytics), so the pages show the figures `slo report quarterly` prints.

DURATIONS = {m: m.upper() for m in mttx.SPANS}  # TTD, TTA, TTM, TTR: the labels of mttx's spans


def incident_durations(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per incident (the analytics stage's `incident_durations`): its quarter (of impact_start, else of
    detection), severity, TTD/TTA/TTM/TTR in minutes (null while the incident is open: DESIGN §2 never
    fills in "now"), and the incident it repeats (DESIGN §2's repeat rule, as the review counts it)."""
    df = con.execute(
        f"""SELECT id, service, severity, status, source, quarter, impact_start, route,
                  root_cause_category, ttd, tta, ttm, ttr, open
           FROM {mttx.DURATIONS_TABLE} ORDER BY placed_at, id"""
    ).df()
    repeats = {link["id"]: link["repeat_of"] for link in repeat_links(con)}
    df["repeat_of"] = df["id"].map(repeats)
    df["repeat"] = df["repeat_of"].notna()
    return df


class Recent(MutableMapping[str, Any]):
    """The `size` entries set last, safe across threads: a memory that outlives snapshots."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            self._items.move_to_end(key)
            return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._items[key]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)


# The backtest's replays (most of a review's time), kept across publishes while what they were computed
# from holds (`alert_quality.replayed_pages`): after a publish, a review costs its cheap parts only.
REPLAYS = Recent(16)


def oncall_version() -> str | None:
    """What the review depends on besides the snapshot: the on-call file (SLO_ONCALL_FILE) and when it
    changed, so an edited schedule shows without waiting for the next publish."""
    path = Settings.load().oncall_file
    if path is None:
        return None
    try:
        return f"{path}:{os.stat(path).st_mtime_ns}"
    except OSError:
        return f"{path}:missing"


def quarterly_review(
    con: duckdb.DuckDBPyConnection, quarter: str, oncall_version: str | None = None
) -> dict[str, Any]:
    """The quarterly review of `quarter` (`2026-Q3`), as `slo report quarterly --format json` builds it,
    with the on-call schedule when one is configured (`oncall_version` only keys the cache). A file that
    cannot be used leaves the weekly rule, and the review says why."""
    try:
        book, problem = configured(Settings.load()), None
    except OnCallError as exc:
        book, problem = None, f"the on-call file cannot be used: {exc}"
    return build_review(con, Quarter.parse(quarter), replays=REPLAYS, oncall=book, oncall_problem=problem)


def quarter_deploys(con: duckdb.DuckDBPyConnection, quarter: str, hours: int) -> dict[str, Any]:
    """The review's deploy correlation for another window than its default."""
    return deploy_correlation(con, Quarter.parse(quarter), hours)


def alert_sources(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Received alerts per source and whether they opened or joined an incident."""
    return con.execute(
        """SELECT source, count(*) AS alerts, count(incident_id) AS with_incident,
                  count(DISTINCT incident_id) AS incidents
           FROM alerts GROUP BY source ORDER BY alerts DESC"""
    ).df()


# ---------------------------------------------------------------------------------------------
# Quarterly review


def quarters(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Quarters with data (buckets or incidents), newest first, as `2026-Q3`."""
    rows = con.execute(
        f"""SELECT DISTINCT q FROM (
             SELECT year(to_timestamp(minute * 60)) || '-Q' || quarter(to_timestamp(minute * 60)) AS q
             FROM (SELECT min(minute) AS minute FROM buckets UNION ALL SELECT max(minute) FROM buckets
                   UNION ALL SELECT minute FROM checkpoints WHERE minute % 1440 = 0)
             WHERE minute IS NOT NULL
             UNION ALL
             SELECT quarter FROM {mttx.DURATIONS_TABLE})  -- as the analytics place incidents
           ORDER BY q DESC"""
    ).fetchall()
    return [r[0] for r in rows]


def percentile_summary(values: pd.Series) -> dict[str, float | int | None]:
    """count, p50, p90 (linear interpolation, numpy's default) and mean of the non-null values, by the
    analytics' own aggregate (`mttx.summarise`), so the page shows what the report computes."""
    return mttx.summarise(values.dropna().astype(float))


def fmt_minutes(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value >= 120:
        return f"{value / 60:.1f} h"
    return f"{value:.0f} min"


QUERIES: dict[str, Callable[..., Any]] = {
    "fleet_status": fleet_status,
    "fleet_sparklines": fleet_sparklines,
    "freshness": freshness,
    "slo_ids": slo_ids,
    "slo_detail": slo_detail,
    "alerts": alerts,
    "incidents": incidents,
    "incident_detail": incident_detail,
    "incident_durations": incident_durations,
    "alert_sources": alert_sources,
    "quarters": quarters,
    "quarterly_review": quarterly_review,
    "quarter_deploys": quarter_deploys,
}

BURN_WINDOWS = tuple(STANDARD_BURN_WINDOWS)
