"""Alert quality, and a backtest of burn-rate alert settings over the stored per-minute buckets.

Alert quality in a quarter (DESIGN §1's alerts and incidents):
- a *page* is one firing alert episode at page level (SEV1/SEV2 as mapped from its source), counted once
  per source, fingerprint and start however many notifications it sent; when the quarter holds no alert
  rows at all (no alert feed yet), the engine's own page-level burn-rate alert intervals are the pages;
- precision: the share of pages linked to an incident (alerts: `incident_id` set; engine intervals: an
  incident of the same service overlapping the interval, with an hour's grace after it);
- recall: the share of (non-imported) incidents preceded by an alert (a linked alert, or an engine page
  of the same service overlapping the hour before impact_start up to its resolution);
- detection time: TTD (detected − impact_start) of the incidents an alert preceded.

The backtest replays page-level alert settings (the SLO's own, or candidates: other factors/windows)
over the stored buckets with the engine's own window sums and formula (`engine.dense_window_sums`,
`engine.formula_sql`), and scores the pages each setting would have sent against the incidents and,
in the demo, the injected ground truth (`demo_events`; metrics gaps are left out: a burn-rate alert
cannot see missing data by design).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from pipelines import engine, partitions
from pipelines.analytics.mttx import DURATIONS_TABLE, percentiles, records
from pipelines.analytics.quarter import Quarter
from pipelines.model import STANDARD_BURN_WINDOWS, BurnRateAlert, Sli, Slo, SloWindow
from pipelines.specs import parse_duration
from pipelines.timeutil import minute_of

GRACE_MINUTES = 60  # a page up to an hour after an incident's end still belongs to it (long windows lag)

# Page-level alert episodes that started in [start, end): one per source, fingerprint and start.
ALERT_PAGES_SQL = """
SELECT source, service, fingerprint, starts_at AS start_at, max(ends_at) AS end_at,
       bool_or(incident_id IS NOT NULL) AS linked, min(incident_id) AS incident_id
FROM alerts
WHERE severity IN ('SEV1', 'SEV2') AND starts_at >= ? AND starts_at < ?
GROUP BY source, service, fingerprint, starts_at
HAVING bool_or(status = 'firing')
ORDER BY start_at
"""

# The engine's page-level burn-rate alert intervals that started in [start, end) (epoch minutes).
ENGINE_PAGES_SQL = """
SELECT s.slo_id, s.service, ai.start_minute, ai.end_minute
FROM alert_intervals ai
JOIN slo_alerts sa ON sa.slo_key = ai.slo_key AND sa.bit = ai.bit
JOIN slos s ON s.slo_key = ai.slo_key
WHERE sa.severity = 'page' AND ai.start_minute >= ? AND ai.start_minute < ?
ORDER BY s.slo_id, ai.start_minute
"""

# Incidents of a quarter (not imported: their alerts are unknown) and whether an alert was linked.
QUARTER_INCIDENTS_SQL = f"""
WITH d AS (FROM {DURATIONS_TABLE})
SELECT d.id, d.service, d.slo_id, d.impact_start, d.detected_at, d.resolved_at, d.ttd,
       epoch_ms(d.impact_start) // 60000 AS start_minute,
       epoch_ms(d.resolved_at) // 60000 AS end_minute,
       EXISTS (SELECT 1 FROM alerts a WHERE a.incident_id = d.id) AS has_alert
FROM d WHERE d.quarter = ? AND NOT d.imported AND d.impact_start IS NOT NULL
ORDER BY d.impact_start
"""


def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of [start, end) intervals."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _overlaps(ps: int, pe: int, es: int, ee: int) -> bool:
    """A page [ps, pe) belongs to an event [es, ee) when they overlap, with grace after the event."""
    return ps < ee + GRACE_MINUTES and pe > es


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _median(values: Sequence[float]) -> float | None:
    return percentiles(values)["p50"]


def alert_quality(con: duckdb.DuckDBPyConnection, quarter: Quarter, as_of_minute: int) -> dict[str, Any]:
    qs, qe = minute_of(quarter.start), minute_of(quarter.end)
    horizon = min(qe, as_of_minute)
    incidents = records(con.execute(QUARTER_INCIDENTS_SQL, [quarter.label]))
    alert_pages = records(con.execute(ALERT_PAGES_SQL, [quarter.start, quarter.end]))
    if alert_pages or con.execute("SELECT count(*) FROM alerts").fetchone()[0]:  # type: ignore[index]
        source = "alerts"
        pages = [
            {"service": p["service"], "start_minute": minute_of(p["start_at"]), "linked": p["linked"]}
            for p in alert_pages
        ]
        preceded = [i for i in incidents if i["has_alert"]]
    else:
        source = "engine burn-rate alerts"
        by_slo: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for r in records(con.execute(ENGINE_PAGES_SQL, [qs, qe])):
            end = r["end_minute"] if r["end_minute"] is not None else horizon
            by_slo.setdefault((r["slo_id"], r["service"]), []).append((r["start_minute"], end))
        pages = []
        for (_, service), spans in by_slo.items():
            for s, e in merge_intervals(spans):
                is_linked = any(
                    i["service"] == service and _overlaps(s, e, i["start_minute"], i["end_minute"] or horizon)
                    for i in incidents
                )
                pages.append({"service": service, "start_minute": s, "end_minute": e, "linked": is_linked})
        preceded = [
            i
            for i in incidents
            if any(
                p["service"] == i["service"]
                and _overlaps(
                    p["start_minute"], p["end_minute"], i["start_minute"] - 60, i["end_minute"] or horizon
                )
                for p in pages
            )
        ]
    linked = sum(1 for p in pages if p["linked"])
    ttd = [float(i["ttd"]) for i in preceded if i["ttd"] is not None]
    return {
        "page_source": source,
        "pages": len(pages),
        "pages_linked": linked,
        "precision": _pct(linked, len(pages)),
        "incidents": len(incidents),
        "incidents_preceded_by_alert": len(preceded),
        "recall": _pct(len(preceded), len(incidents)),
        "detection_minutes": {k: v for k, v in percentiles(ttd).items() if k != "mean"},
        "pages_per_week": _weekly(pages, qs, horizon),
        # (service, start minute) of each page: the on-call load attributes them (review.py pops this)
        "page_starts": [(p["service"], p["start_minute"]) for p in pages],
    }


def _weekly(pages: list[dict[str, Any]], qs: int, horizon: int) -> list[int]:
    """Pages per week of the quarter (week w covers [qs + w·7d, qs + (w+1)·7d)), up to the horizon."""
    week = 7 * 1440
    weeks = max(0, -(-(horizon - qs) // week))
    counts = [0] * weeks
    for p in pages:
        w = (p["start_minute"] - qs) // week
        if 0 <= w < weeks:
            counts[w] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Backtest


@dataclass(frozen=True)
class Setting:
    """A candidate page-level alert setting. `alerts` None means each SLO's own page conditions;
    `scale` multiplies every factor (0.5: twice as sensitive)."""

    name: str
    alerts: tuple[BurnRateAlert, ...] | None = None
    scale: float = 1.0

    def for_slo(self, own: tuple[BurnRateAlert, ...]) -> tuple[BurnRateAlert, ...]:
        base = self.alerts if self.alerts is not None else tuple(a for a in own if a.severity == "page")
        return tuple(dataclasses.replace(a, factor=a.factor * self.scale) for a in base)


DEFAULT_SETTINGS: tuple[Setting, ...] = (
    Setting("spec (as configured)"),
    Setting("factors ×0.5 (more sensitive)", scale=0.5),
    Setting("factors ×2 (less sensitive)", scale=2.0),
    Setting("1h only, no short window, >14.4", alerts=(BurnRateAlert("page", 60, 60, 14.4),)),
)


def parse_setting(text: str) -> Setting:
    """A candidate from the command line: `LONG/SHORT>FACTOR[,LONG/SHORT>FACTOR…]`, e.g. `1h/5m>10,6h/30m>4`.

    Each condition pages while burn(LONG) > FACTOR and burn(SHORT) > FACTOR (DESIGN §2)."""
    alerts = []
    for part in text.split(","):
        windows, sep, factor = part.strip().partition(">")
        long_text, slash, short_text = windows.partition("/")
        if not sep or not slash:
            raise ValueError(
                f"{part.strip()!r} is not a condition; expected LONG/SHORT>FACTOR, e.g. 1h/5m>14.4"
            )
        try:
            long_w, short_w, value = parse_duration(long_text), parse_duration(short_text), float(factor)
        except ValueError as exc:
            raise ValueError(f"{part.strip()!r}: {exc}") from exc
        if value <= 0 or short_w > long_w:
            raise ValueError(f"{part.strip()!r}: expected a positive factor and SHORT no longer than LONG")
        alerts.append(BurnRateAlert("page", long_w, short_w, value))
    return Setting(text.strip(), alerts=tuple(alerts))


_SLOS_SQL = """
SELECT s.slo_key, s.slo_id, s.service, s.name, s.owner, s.category, s.sli_kind, s.target, s.window_text,
       s.window_kind, s.window_minutes, s.calendar, s.alerts_custom, e.evaluated_to
FROM slos s LEFT JOIN engine_state e USING (slo_key) WHERE s.active ORDER BY s.slo_id
"""


def stored_engine_slos(con: duckdb.DuckDBPyConnection) -> list[tuple[engine.EngineSlo, int | None]]:
    """The active SLOs as the engine's model, rebuilt from the `slos` and `slo_alerts` tables."""
    alerts: dict[int, list[BurnRateAlert]] = {}
    for key, severity, long_w, short_w, factor in con.execute(
        "SELECT slo_key, severity, long_window, short_window, factor FROM slo_alerts ORDER BY slo_key, bit"
    ).fetchall():
        alerts.setdefault(key, []).append(BurnRateAlert(severity, long_w, short_w, factor))
    out = []
    for r in records(con.execute(_SLOS_SQL)):
        slo = Slo(
            service=r["service"],
            name=r["name"],
            owner=r["owner"] or "",
            sli=Sli(name=r["name"], kind=r["sli_kind"] or "ratio", category=r["category"] or ""),
            target=r["target"],
            window=SloWindow.stored(r["window_kind"], r["window_minutes"], r["window_text"], r["calendar"]),
            alerts=tuple(alerts.get(r["slo_key"], [])),
            alerts_custom=bool(r["alerts_custom"]),
        )
        out.append((engine.EngineSlo(key=r["slo_key"], slo=slo), r["evaluated_to"]))
    return out


def _replay_windows(
    es: engine.EngineSlo, settings: Sequence[Setting]
) -> tuple[dict[str, tuple[BurnRateAlert, ...]], list[int]]:
    """Per setting, the SLO's page conditions under it; and every window (minutes) the replay sums."""
    variants = {s.name: s.for_slo(es.slo.alerts) for s in settings}
    windows = sorted(
        set(STANDARD_BURN_WINDOWS.values())
        | {w for alerts in variants.values() for a in alerts for w in (a.long_window, a.short_window)}
    )
    return variants, windows


def replay_pages(
    con: duckdb.DuckDBPyConnection,
    es: engine.EngineSlo,
    settings: Sequence[Setting],
    start: int,
    end: int,
) -> dict[str, list[tuple[int, int]]]:
    """Per setting, the page intervals [s, e) one SLO would have had for evaluation instants in
    (start, end], from the stored buckets, by the engine's window sums and formula."""
    variants, windows = _replay_windows(es, settings)
    lo = start - max(windows)
    raw = con.execute(
        "SELECT minute, good, valid FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ?",
        [es.key, lo, end],
    ).fetchnumpy()
    out: dict[str, list[tuple[int, int]]] = {name: [] for name in variants}
    if len(raw["minute"]) == 0:
        return out
    result = engine.dense_window_sums(
        [es],
        {es.key: lo},
        end,
        np.full(len(raw["minute"]), es.key, dtype=np.int64),
        np.asarray(raw["minute"]),
        np.asarray(raw["good"]),
        np.asarray(raw["valid"]),
        windows,
    )
    for name, alerts in variants.items():
        if not alerts:
            continue
        candidate = engine.EngineSlo(key=es.key, slo=dataclasses.replace(es.slo, alerts=alerts))
        params = engine.params_table([candidate], len(alerts))
        con.register("ws", result.ws)
        con.register("params", params)
        try:
            formula = engine.formula_sql(windows, len(alerts), exact=engine.exact_type(result.ws, params))
            # -- Runs of consecutive paging instants in (start, end] (gaps and islands).
            runs = con.execute(
                f"""SELECT min(t) AS s, max(t) + 1 AS e FROM (
                      SELECT t, t - row_number() OVER (ORDER BY t) AS island
                      FROM ({formula}) WHERE firing <> 0 AND t > ? AND t <= ?)
                    GROUP BY island ORDER BY s""",
                [start, end],
            ).fetchall()
        finally:
            con.unregister("ws")
            con.unregister("params")
        out[name] = [(int(s), int(e)) for s, e in runs]
    return out


def _score(
    pages: list[tuple[str, str, int, int]], truth: list[tuple[str, set[str], int, int]]
) -> dict[str, Any]:
    """Precision, recall and detection time of pages (slo, service, s, e) against truth events
    (service, slo ids or empty for "any SLO of the service", s, e)."""

    def match(page: tuple[str, str, int, int], event: tuple[str, set[str], int, int]) -> bool:
        slo, service, ps, pe = page
        ev_service, ev_slos, es, ee = event
        return service == ev_service and (not ev_slos or slo in ev_slos) and _overlaps(ps, pe, es, ee)

    matched_pages = sum(1 for p in pages if any(match(p, e) for e in truth))
    detections = []
    for e in truth:
        starts = [p[2] for p in pages if match(p, e)]
        if starts:
            detections.append(float(max(0, min(starts) - e[2])))
    return {
        "events": len(truth),
        "precision": _pct(matched_pages, len(pages)),
        "recall": _pct(len(detections), len(truth)),
        "detection_p50_minutes": _median(detections),
    }


Pages = dict[str, list[tuple[str, str, int, int]]]


def replayed_pages(
    con: duckdb.DuckDBPyConnection,
    quarter: Quarter,
    settings: Sequence[Setting],
    replays: MutableMapping[str, Pages] | None = None,
) -> Pages:
    """Per setting, the pages (slo id, service, start, end minute) every SLO would have had in `quarter`.
    The replay is most of a review's time (2.3 s of 2.4 on the demo) and its inputs rarely change: a
    quarter's buckets sit in files written once. With `replays` (a reader's memory, across snapshots),
    the pages are kept under the version of what they were computed from (the SLOs' definitions, how
    far each was evaluated in the quarter, the settings, `partitions.range_version` of the buckets read)
    and reused while it holds."""
    qs, qe = minute_of(quarter.start), minute_of(quarter.end)
    slos = [(es, min(qe, evaluated_to or qe)) for es, evaluated_to in stored_engine_slos(con)]
    slos = [(es, end) for es, end in slos if end > qs]
    key = None
    if replays is not None and slos:
        first = min(qs - max(_replay_windows(es, settings)[1]) for es, _ in slos)
        buckets = partitions.range_version(con, "buckets", first, qe)
        if buckets is not None:
            key = hashlib.sha256(repr((quarter.label, tuple(settings), slos, buckets)).encode()).hexdigest()
            remembered = replays.get(key)  # one look-up: another thread may drop it in between
            if remembered is not None:
                return remembered
    pages: Pages = {s.name: [] for s in settings}
    for es, end in slos:
        for name, spans in replay_pages(con, es, settings, qs, end).items():
            pages[name].extend((es.slo.id, es.slo.service, s, e) for s, e in spans)
    if key is not None and replays is not None:
        replays[key] = pages
    return pages


def backtest(
    con: duckdb.DuckDBPyConnection,
    quarter: Quarter,
    settings: Sequence[Setting] = DEFAULT_SETTINGS,
    replays: MutableMapping[str, Pages] | None = None,
) -> list[dict[str, Any]]:
    """Per setting: pages, and precision/recall/detection time against incidents and demo events
    (`replays`: see `replayed_pages`)."""
    qe = minute_of(quarter.end)
    pages = replayed_pages(con, quarter, settings, replays)
    incidents = [
        (r["service"], {r["slo_id"]} if r["slo_id"] else set(), r["start_minute"], r["end_minute"] or qe)
        for r in records(con.execute(QUARTER_INCIDENTS_SQL, [quarter.label]))
    ]
    events = [
        (service, set(slo_ids or []), minute_of(s), minute_of(e))
        for service, slo_ids, s, e in con.execute(
            "SELECT service, slo_ids, start_at, end_at FROM demo_events "
            "WHERE shape <> 'metrics_gap' AND start_at >= ? AND start_at < ? ORDER BY start_at",
            [quarter.start, quarter.end],
        ).fetchall()
    ]
    out = []
    for setting in settings:
        ps = pages[setting.name]
        out.append(
            {
                "setting": setting.name,
                "pages": len(ps),
                "vs_incidents": _score(ps, incidents),
                "vs_demo_events": _score(ps, events) if events else None,
            }
        )
    return out
