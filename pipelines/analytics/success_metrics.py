"""The product's success metrics for one quarter, each against its target.

- MTTD under 5 min for SEV1/SEV2 and MTTR under 30 min for SEV1: judged on the median (p50), because
  incident durations are heavy-tailed and a mean misleads; p90 and the mean are reported beside it.
- Every SEV1/SEV2 gets a post-mortem within 48 h of resolution (post-mortem time: `postmortem_done_at`,
  set when the incident is closed after its review, or carried by an imported incident; the draft the
  product writes at resolution is not a post-mortem held, so it does not count); one resolved less than
  48 h before `as_of` without one yet is pending, not missed. The incident's `postmortem_overdue` timer
  (`incidents/timers.py`) uses the same time and the same 48 h.
- 90 % of action items done by their due date: items due in the quarter and already due at `as_of`;
  on time when done on or before the due date (UTC day).
- Under 5 pages per on-call engineer per week. With an on-call schedule (`SLO_ONCALL_FILE`), each page
  counts for whoever was on call for its service when it started, divided by their on-call weeks
  (`oncall_load`); met when every engineer stayed under 5, the value is the worst engineer's. Without
  one, the stated fallback: one primary engineer is on call per week, so a week's pages are that
  engineer's pages; met when no week of the quarter reached 5. The weekly counts and the number of
  distinct responders (actors on incident timelines) are shown as context either way.
- No repeats: no repeat incident (`repeats`) started in the quarter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from pipelines.analytics import oncall_load
from pipelines.analytics.mttx import DURATIONS_TABLE, aggregate, distribution, records

MTTD_TARGET_MINUTES = 5.0
MTTR_TARGET_MINUTES = 30.0
POSTMORTEM_HOURS = 48
ACTION_ITEMS_TARGET = 0.90
PAGES_PER_WEEK_TARGET = oncall_load.PAGES_PER_WEEK_TARGET

# Count, p50, p90 and mean of one duration (the analytics' one aggregate) over the resolved incidents of
# a quarter with given severities, as `<metric>_count, <metric>_p50, …`.
_DURATION_SQL = f"""
WITH d AS (FROM {DURATIONS_TABLE})
SELECT {{aggregate}}
FROM d WHERE quarter = ? AND list_contains(?, severity)
"""

# SEV1/SEV2 incidents resolved in the quarter with when their post-mortem was done (if it was).
POSTMORTEMS_SQL = f"""
WITH d AS (FROM {DURATIONS_TABLE})
SELECT d.id, d.severity, d.resolved_at, d.postmortem_done_at AS postmortem_at
FROM d WHERE d.quarter = ? AND d.severity IN ('SEV1', 'SEV2') AND d.resolved_at IS NOT NULL
ORDER BY d.resolved_at
"""

# Action items due in [start, end) and already due at as_of, and whether each was done on time.
ACTION_ITEMS_SQL = """
SELECT id, incident_id, title, owner, due_date, status, done_at,
       done_at IS NOT NULL AND CAST(done_at AS DATE) <= due_date AS on_time
FROM action_items
WHERE due_date >= CAST(? AS DATE) AND due_date < CAST(? AS DATE) AND due_date < CAST(? AS DATE)
ORDER BY due_date, id
"""

# Distinct people who acted on incident timelines in the quarter (context for the on-call load).
RESPONDERS_SQL = """
SELECT count(DISTINCT actor) FROM timeline
WHERE actor IS NOT NULL AND occurred_at >= ? AND occurred_at < ?
  AND source NOT IN ('engine', 'triage', 'router', 'statuspage', 'csv')
"""


def _duration(
    con: duckdb.DuckDBPyConnection, metric: str, quarter: str, severities: list[str]
) -> dict[str, Any]:
    sql = _DURATION_SQL.format(aggregate=aggregate(metric, f"{metric}_"))
    return distribution(records(con.execute(sql, [quarter, severities]))[0], metric)


def success_metrics(
    con: duckdb.DuckDBPyConnection,
    quarter: Any,
    as_of: dt.datetime,
    pages_per_week: list[int],
    repeats: int,
    load: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The success metrics; `load` is `oncall_load.review_load`'s (None: no schedule, the weekly rule)."""
    load = load or oncall_load.review_load(None, [], quarter.start, quarter.start)
    label = quarter.label
    out: list[dict[str, Any]] = []

    ttd = _duration(con, "ttd", label, ["SEV1", "SEV2"])
    out.append(
        {
            "metric": "mttd_sev1_sev2",
            "title": "MTTD (SEV1/SEV2)",
            "target": f"p50 < {MTTD_TARGET_MINUTES:g} min",
            "target_value": MTTD_TARGET_MINUTES,
            "value": ttd["p50"],
            "unit": "min",
            "detail": ttd,
            "met": None if ttd["count"] == 0 else ttd["p50"] < MTTD_TARGET_MINUTES,
        }
    )
    ttr = _duration(con, "ttr", label, ["SEV1"])
    out.append(
        {
            "metric": "mttr_sev1",
            "title": "MTTR (SEV1)",
            "target": f"p50 < {MTTR_TARGET_MINUTES:g} min",
            "target_value": MTTR_TARGET_MINUTES,
            "value": ttr["p50"],
            "unit": "min",
            "detail": ttr,
            "met": None if ttr["count"] == 0 else ttr["p50"] < MTTR_TARGET_MINUTES,
        }
    )

    on_time = missed = pending = 0
    missed_ids = []
    for r in records(con.execute(POSTMORTEMS_SQL, [label])):
        due = r["resolved_at"] + dt.timedelta(hours=POSTMORTEM_HOURS)
        if r["postmortem_at"] is not None and r["postmortem_at"] <= due:
            on_time += 1
        elif r["postmortem_at"] is None and as_of < due:
            pending += 1
        else:
            missed += 1
            missed_ids.append(r["id"])
    judged = on_time + missed
    out.append(
        {
            "metric": "postmortems_within_48h",
            "title": "Post-mortems within 48 h (SEV1/SEV2)",
            "target": "100%",
            "target_value": 1.0,
            "value": None if judged == 0 else round(on_time / judged, 4),
            "unit": "share",
            "detail": {"on_time": on_time, "missed": missed, "pending": pending, "missed_ids": missed_ids},
            "met": None if judged == 0 else missed == 0,
        }
    )

    items = records(con.execute(ACTION_ITEMS_SQL, [quarter.start, quarter.end, as_of]))
    done_on_time = sum(1 for i in items if i["on_time"])
    overdue_open = [i["id"] for i in items if i["done_at"] is None]
    out.append(
        {
            "metric": "action_items_on_time",
            "title": "Action items done by their due date",
            "target": f"≥ {ACTION_ITEMS_TARGET:.0%}",
            "target_value": ACTION_ITEMS_TARGET,
            "value": None if not items else round(done_on_time / len(items), 4),
            "unit": "share",
            "detail": {
                "due": len(items),
                "done_on_time": done_on_time,
                "done_late": sum(1 for i in items if i["done_at"] is not None and not i["on_time"]),
                "still_open": len(overdue_open),
                "still_open_ids": overdue_open,
            },
            "met": None if not items else done_on_time / len(items) >= ACTION_ITEMS_TARGET,
        }
    )

    responders = con.execute(RESPONDERS_SQL, [quarter.start, quarter.end]).fetchone()[0]  # type: ignore[index]
    worst = max(pages_per_week, default=0)
    detail = {
        "weeks": len(pages_per_week),
        "mean": None if not pages_per_week else round(sum(pages_per_week) / len(pages_per_week), 2),
        "weeks_at_or_over_target": sum(1 for n in pages_per_week if n >= PAGES_PER_WEEK_TARGET),
        "distinct_responders": int(responders),
        "counting": oncall_load.COUNTING[load["method"]],
        **load,
    }
    pages_metric: dict[str, Any]
    if load["method"] == oncall_load.SCHEDULE:
        rates = [p["pages_per_week"] for p in load["people"] if p["pages_per_week"] is not None]
        pages_metric = {
            "value": max(rates, default=None),
            "unit": "pages per on-call week (worst engineer)",
            "target": f"< {PAGES_PER_WEEK_TARGET} per on-call week, every engineer",
            "met": None if not rates else all(p["under_target"] for p in load["people"]),
        }
        detail["engineers_at_or_over_target"] = sum(1 for p in load["people"] if not p["under_target"])
    else:
        pages_metric = {
            "value": worst,
            "unit": "pages (worst week)",
            "target": f"< {PAGES_PER_WEEK_TARGET} every week",
            "met": None if not pages_per_week else worst < PAGES_PER_WEEK_TARGET,
        }
        detail["engineers_at_or_over_target"] = None
    out.append(
        {
            "metric": "pages_per_oncall_week",
            "title": "Pages per on-call engineer per week",
            "target": pages_metric["target"],
            "target_value": PAGES_PER_WEEK_TARGET,
            "value": pages_metric["value"],
            "unit": pages_metric["unit"],
            "detail": detail,
            "met": pages_metric["met"],
        }
    )
    out.append(
        {
            "metric": "no_repeats",
            "title": "Repeat incidents",
            "target": "0",
            "target_value": 0,
            "value": repeats,
            "unit": "incidents",
            "detail": {},
            "met": repeats == 0,
        }
    )
    return out
