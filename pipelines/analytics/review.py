"""The quarterly reliability review as data: one dict with every figure the report shows.

`build_review` reads only the given connection (a published snapshot in the CLI) and is pure otherwise;
`render` turns its result into Markdown or HTML. Risks and recommendations are rules over the figures,
each citing the figures that triggered it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import MutableMapping, Sequence
from typing import Any

import duckdb

from pipelines.analytics import mttx, verdicts
from pipelines.analytics.alert_quality import DEFAULT_SETTINGS, Pages, Setting, alert_quality, backtest
from pipelines.analytics.deploys import DEFAULT_HOURS, deploy_correlation
from pipelines.analytics.formats import minutes, pct, target_pct
from pipelines.analytics.oncall_load import review_load
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.repeats import DEFAULT_WINDOW_DAYS, quarter_repeats
from pipelines.analytics.slo_quarter import burn_down, slo_quarter
from pipelines.analytics.success_metrics import success_metrics
from pipelines.incidents.contract import SEVERITIES
from pipelines.incidents.oncall import OnCall
from pipelines.timeutil import datetime_of, iso, minute_of

BURN_DOWN_TOP = 5  # the burn-down chart shows the SLOs that spent the most budget, not every line

# What each recall counts, as every table and sentence names it.
ALERT_RECALL = "recall (incidents preceded by a received alert or an engine page)"
BACKTEST_RECALL = {
    "vs_incidents": "recall (incidents overlapped by a replayed page)",
    "vs_demo_events": "recall (injected demo events overlapped by a replayed page)",
}
BACKTEST_PRECISION = {
    "vs_incidents": "precision (replayed pages overlapping an incident)",
    "vs_demo_events": "precision (replayed pages overlapping an injected event)",
}


def data_as_of(con: duckdb.DuckDBPyConnection) -> dt.datetime:
    """The instant the stored data reaches: the latest evaluated minute, else now (UTC, naive)."""
    row = con.execute("SELECT max(data_to) FROM runs").fetchone()
    if row and row[0] is not None:
        return datetime_of(int(row[0])).replace(tzinfo=None)
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _by_severity(rows: list[dict[str, Any]], quarter: str) -> dict[str, int]:
    counts = {s: 0 for s in SEVERITIES}
    for r in rows:
        if r["quarter"] == quarter and r["severity"] != "*" and r["service"] == "*":
            counts[r["severity"]] = int(r["incidents"])
    return counts


def _total_row(rows: list[dict[str, Any]], quarter: str) -> dict[str, Any] | None:
    return next(
        (r for r in rows if r["quarter"] == quarter and r["severity"] == "*" and r["service"] == "*"), None
    )


def build_review(
    con: duckdb.DuckDBPyConnection,
    quarter: Quarter,
    *,
    as_of: dt.datetime | None = None,
    repeat_days: int = DEFAULT_WINDOW_DAYS,
    deploy_hours: int = DEFAULT_HOURS,
    settings: Sequence[Setting] = DEFAULT_SETTINGS,
    with_backtest: bool = True,
    replays: MutableMapping[str, Pages] | None = None,
    oncall: OnCall | None = None,
    oncall_problem: str | None = None,
) -> dict[str, Any]:
    """The review of `quarter`. `replays`: a reader's memory of backtest replays (`backtest`'s).
    `oncall`: the on-call file, whose schedules attribute the pages to engineers (None: the
    one-primary-per-week rule; `oncall_problem` says why, when the file is bad)."""
    as_of = as_of or data_as_of(con)
    label, previous = quarter.label, quarter.previous()
    rows = mttx.rollup(con)
    total = _total_row(rows, label)
    prev_total = _total_row(rows, previous.label)
    this_incidents = mttx.durations(con, label)
    prev_incidents = mttx.durations(con, previous.label)

    def dist(row: dict[str, Any] | None, m: str) -> dict[str, Any]:
        return mttx.distribution(row, m) if row else mttx.empty_distribution()

    by_sev = _by_severity(rows, label)
    n_total = int(total["incidents"]) if total else 0
    incidents: dict[str, Any] = {
        "total": n_total,
        "open": int(total["open"]) if total else 0,
        "by_severity": by_sev,
        "severity_mix": {s: (round(n / n_total, 4) if n_total else None) for s, n in by_sev.items()},
        **{f"{m}_minutes": dist(total, m) for m in mttx.METRICS},
        "by_severity_durations": {
            r["severity"]: {f"{m}_minutes": mttx.distribution(r, m) for m in ("ttd", "ttr")}
            for r in rows
            if r["quarter"] == label and r["severity"] != "*" and r["service"] == "*"
        },
        "by_service": [
            {
                "service": r["service"],
                "incidents": int(r["incidents"]),
                "open": int(r["open"]),
                "ttd_minutes": mttx.distribution(r, "ttd"),
                "ttr_minutes": mttx.distribution(r, "ttr"),
            }
            for r in sorted(rows, key=lambda r: (-int(r["incidents"]), r["service"]))
            if r["quarter"] == label and r["severity"] == "*" and r["service"] != "*"
        ],
        "by_severity_and_service": [
            {
                "severity": r["severity"],
                "service": r["service"],
                "incidents": int(r["incidents"]),
                "open": int(r["open"]),
                **{f"{m}_minutes": mttx.distribution(r, m) for m in mttx.METRICS},
            }
            for r in rows
            if r["quarter"] == label and r["severity"] != "*" and r["service"] != "*"
        ],
        "list": [
            {
                "id": i["id"],
                "service": i["service"],
                "severity": i["severity"],
                "status": i["status"],
                "open": i["open"],
                "impact_start": iso(i["impact_start"]),
                **{f"{m}_minutes": mttx.round_figure(i[m]) for m in mttx.METRICS},
            }
            for i in this_incidents
        ],
        "open_incidents": [
            {
                "id": i["id"],
                "service": i["service"],
                "severity": i["severity"],
                "title": i["title"],
                "impact_start": iso(i["impact_start"]),
            }
            for i in this_incidents
            if i["open"]
        ],
        "quarter_over_quarter": [
            mttx.compare_medians(
                m,
                [i[m] for i in this_incidents if i[m] is not None],
                [i[m] for i in prev_incidents if i[m] is not None],
            ).to_json()
            for m in mttx.METRICS
        ],
    }
    trend = []
    for r in rows:
        if r["severity"] == "*" and r["service"] == "*" and r["quarter"] <= label:
            trend.append(
                {
                    "quarter": r["quarter"],
                    "total": int(r["incidents"]),
                    "open": int(r["open"]),
                    "by_severity": _by_severity(rows, r["quarter"]),
                    "ttd_minutes": mttx.distribution(r, "ttd"),
                    "ttr_minutes": mttx.distribution(r, "ttr"),
                }
            )

    slos = slo_quarter(con, quarter)
    repeats = quarter_repeats(con, label, repeat_days)
    quality = alert_quality(con, quarter, minute_of(as_of))
    starts = [(s, datetime_of(m).replace(tzinfo=None)) for s, m in quality.pop("page_starts")]
    until = max(quarter.start, min(quarter.end, as_of))  # on-call weeks count up to the data's end
    load = review_load(oncall, starts, quarter.start, until, oncall_problem)
    metrics = success_metrics(con, quarter, as_of, quality["pages_per_week"], repeats["count"], load)
    prev_metrics = success_metrics(con, previous, as_of, [], 0)
    tests = backtest(con, quarter, settings, replays) if with_backtest else []
    deploys = deploy_correlation(con, quarter, deploy_hours)

    measured = [s for s in slos if s["outcome"] is not None]
    spent = [s["budget_spent"] for s in slos if s["budget_spent"] is not None]
    by_metric = {m["metric"]: m for m in metrics}
    prev_by_metric = {m["metric"]: m for m in prev_metrics}
    headline = {
        "slos_met": sum(1 for s in measured if s["outcome"] == "met"),
        "slos_missed": sum(1 for s in measured if s["outcome"] == "missed"),
        "slos_exhausted": sum(1 for s in measured if s["outcome"] == "exhausted"),
        "slos_measured": len(measured),
        "slo_health": {h: sum(1 for s in measured if s["health"] == h) for h in verdicts.HEALTH},
        "slos_better": sum(1 for s in measured if s["trend"] == "better"),
        "slos_worse": sum(1 for s in measured if s["trend"] == "worse"),
        "budget_spent_median": None if not spent else round(sorted(spent)[len(spent) // 2], 4),
        "budget_spent_worst": None
        if not spent
        else max(
            (
                {"slo": s["slo"], "budget_spent": s["budget_spent"]}
                for s in slos
                if s["budget_spent"] is not None
            ),
            key=lambda x: x["budget_spent"],
        ),
        "incidents": n_total,
        "incidents_previous_quarter": int(prev_total["incidents"]) if prev_total else 0,
        "by_severity": by_sev,
        "mttd_sev1_sev2": _vs(by_metric["mttd_sev1_sev2"], prev_by_metric["mttd_sev1_sev2"]),
        "mttr_sev1": _vs(by_metric["mttr_sev1"], prev_by_metric["mttr_sev1"]),
        "ttr_all": {"this_quarter": incidents["ttr_minutes"], "previous_quarter": dist(prev_total, "ttr")},
    }
    review: dict[str, Any] = {
        "quarter": label,
        "previous_quarter": previous.label,
        "as_of": iso(as_of),
        "generated_at": iso(dt.datetime.now(dt.UTC).replace(tzinfo=None)),
        "headline": headline,
        "slos": slos,
        "slo_rules": {
            "outcome": verdicts.OUTCOME_RULE,
            "health": verdicts.HEALTH_RULE,
            "trend": verdicts.TREND_RULE,
        },
        "health_by_service": verdicts.by_service(slos),
        "incidents": incidents,
        "trend": trend,
        "repeats": repeats,
        "success_metrics": metrics,
        "oncall": {
            "pages_per_week": quality["pages_per_week"],
            "page_source": quality["page_source"],
            **by_metric["pages_per_oncall_week"]["detail"],
        },
        "alert_quality": {k: v for k, v in quality.items() if k != "pages_per_week"},
        "backtest": tests,
        "deploys": deploys,
        "burn_down": [
            {
                "slo": r["slo_id"],
                "at": iso(datetime_of(int(r["minute"])).replace(tzinfo=None)),
                "budget_remaining": None
                if r["budget_remaining"] is None
                else round(r["budget_remaining"], 4),
            }
            for r in burn_down(con, quarter, step=360)
        ],
        "burn_down_shown": [
            s["slo"]
            for s in sorted(
                (s for s in slos if s["budget_spent"] is not None),
                key=lambda s: (-s["budget_spent"], s["slo"]),
            )[:BURN_DOWN_TOP]
        ],
    }
    review["empty"] = is_empty(review)
    review["risks"] = risks(review)
    review["recommendations"] = recommendations(review)
    return review


def is_empty(review: dict[str, Any]) -> bool:
    """No SLO measured and no incident in the quarter: there is nothing to review."""
    return review["headline"]["slos_measured"] == 0 and review["incidents"]["total"] == 0


def empty_message(review: dict[str, Any]) -> str:
    """What the review says of a quarter with nothing in it."""
    return (
        f"{review['quarter']} has no data: no SLO has events in it and no incident started in it "
        f"(the data reaches {review['as_of']})."
    )


def _vs(this: dict[str, Any], prev: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": this["target"],
        "met": this["met"],
        "p50": this["detail"]["p50"],
        "p90": this["detail"]["p90"],
        "count": this["detail"]["count"],
        "previous_p50": prev["detail"]["p50"],
        "previous_p90": prev["detail"]["p90"],
    }


def risks(review: dict[str, Any]) -> list[dict[str, Any]]:
    """The quarter's top risks, worst first: rules over the figures, each saying why."""
    found: list[tuple[int, dict[str, Any]]] = []
    for s in review["slos"]:
        attained = (
            f"attainment {pct(s['attainment'], 3, against=s['target'])} vs target {target_pct(s['target'])}"
        )
        if s["outcome"] == "exhausted":
            found.append(
                (
                    100,
                    {
                        "risk": f"{s['slo']} exhausted its error budget",
                        "why": f"{s['policy_minutes']['exhausted']} min in the exhausted state; {attained}",
                    },
                )
            )
        elif s["outcome"] == "missed":
            found.append(
                (
                    90,
                    {
                        "risk": f"{s['slo']} missed its target over the quarter",
                        "why": f"{attained}, {pct(s['budget_spent'], against=1.0)} of the quarter's "
                        "budget spent",
                    },
                )
            )
        elif s["health"] == "at_risk":
            found.append(
                (
                    70,
                    {
                        "risk": f"{s['slo']} is at risk",
                        "why": f"{pct(s['budget_spent'], against=1.0)} of the quarter's budget spent; "
                        f"{pct(s['budget_remaining_at_end'])} of its {s['window']} budget left at the "
                        "quarter's end",
                    },
                )
            )
    for c in review["repeats"]["chains"]:
        found.append(
            (
                80 + c["length"],
                {
                    "risk": f"Recurring {c['service']} problem ({c['fingerprint']})",
                    "why": f"chain of {c['length']} incidents: {', '.join(c['incidents'])}",
                },
            )
        )
    for r in review["repeats"]["repeats"]:
        if r["open_action_items"]:
            found.append(
                (
                    95,
                    {
                        "risk": f"{r['id']} repeated {r['repeat_of']} while its action items were open",
                        "why": f"{r['open_action_items']} of {r['action_items']} action items still open",
                    },
                )
            )
    for m in review["success_metrics"]:
        if m["metric"] == "action_items_on_time" and m["detail"]["still_open"]:
            found.append(
                (
                    60,
                    {
                        "risk": "Overdue post-mortem action items",
                        "why": f"{m['detail']['still_open']} past their due date and still open",
                    },
                )
            )
    open_incidents = review["incidents"]["open_incidents"]
    if open_incidents:
        found.append(
            (
                50,
                {
                    "risk": f"{len(open_incidents)} incident(s) still open",
                    "why": ", ".join(i["id"] for i in open_incidents[:5]),
                },
            )
        )
    found.sort(key=lambda x: -x[0])
    return [r for _, r in found[:8]]


def recommendations(review: dict[str, Any]) -> list[dict[str, Any]]:
    """Rule-based recommendations, each with the figures that triggered it."""
    out: list[dict[str, Any]] = []
    metrics = {m["metric"]: m for m in review["success_metrics"]}
    mttd = metrics["mttd_sev1_sev2"]
    if mttd["met"] is False:
        out.append(
            {
                "recommendation": "Speed up detection of SEV1/SEV2 incidents: add or tighten burn-rate "
                "page alerts on the services involved, and check the backtest before changing factors.",
                "because": f"MTTD p50 {minutes(mttd['value'])} against a target of {mttd['target']}",
            }
        )
    mttr = metrics["mttr_sev1"]
    if mttr["met"] is False:
        out.append(
            {
                "recommendation": "Cut SEV1 resolution time: rehearse the runbooks of the slowest services "
                "and extend allow-listed remediations.",
                "because": f"MTTR p50 {minutes(mttr['value'])} against a target of {mttr['target']}",
            }
        )
    pm = metrics["postmortems_within_48h"]
    if pm["met"] is False:
        out.append(
            {
                "recommendation": "Hold post-mortems within 48 h of every SEV1/SEV2 resolution.",
                "because": f"{pm['detail']['missed']} post-mortem(s) late or missing",
            }
        )
    ai = metrics["action_items_on_time"]
    if ai["met"] is False:
        out.append(
            {
                "recommendation": "Review open post-mortem action items weekly with their owners.",
                "because": f"{pct(ai['value'], against=ai['target_value'])} done by their due date "
                f"against {ai['target']}",
            }
        )
    pages = metrics["pages_per_oncall_week"]
    quality = review["alert_quality"]
    if pages["met"] is False or (quality["precision"] is not None and quality["precision"] < 0.5):
        out.append(
            {
                "recommendation": "Reduce on-call noise: demote or retune pages that open no incident.",
                "because": (
                    f"worst engineer {pages['value']} pages per on-call week"
                    if pages["detail"]["method"] == "schedule"
                    else f"worst week {pages['value']} pages"
                )
                + f"; precision (pages linked to an incident) {pct(quality['precision'])}",
            }
        )
    if review["repeats"]["count"]:
        out.append(
            {
                "recommendation": "Prioritise the action items of repeat-incident chains before new work.",
                "because": f"{review['repeats']['count']} repeat incident(s), "
                f"{review['repeats']['with_open_action_items']} with action items still open",
            }
        )
    exhausted = [s["slo"] for s in review["slos"] if s["outcome"] == "exhausted"]
    if exhausted:
        out.append(
            {
                "recommendation": "Apply the error-budget policy (feature freeze, reliability focus) to "
                + ", ".join(exhausted)
                + ".",
                "because": "budget exhausted during the quarter",
            }
        )
    deploys = review["deploys"]
    if deploys["change_failure_rate"] is not None and deploys["incidents_after_deploy"] >= 2:
        out.append(
            {
                "recommendation": "Guard deploys of the services with post-deploy incidents (canary, "
                "automatic rollback on burn rate).",
                "because": f"{deploys['incidents_after_deploy']} of {deploys['incidents']} incidents started "
                f"within {deploys['window_hours']} h of a deploy",
            }
        )
    tests = review["backtest"]
    if tests:
        current = tests[0]
        truth_kind = "vs_demo_events" if current["vs_demo_events"] else "vs_incidents"
        for t in tests[1:]:
            cur_truth = current[truth_kind]
            truth = t[truth_kind]
            if (truth["recall"] or 0) >= (cur_truth["recall"] or 0) and t["pages"] < current["pages"]:
                out.append(
                    {
                        "recommendation": f"Consider the alert setting '{t['setting']}'.",
                        "because": f"backtest: {t['pages']} pages instead of {current['pages']} "
                        f"at {BACKTEST_RECALL[truth_kind]} {pct(truth['recall'])}",
                    }
                )
    if not out:
        out.append(
            {
                "recommendation": "Keep the current course: every success metric with data is met.",
                "because": "no rule fired",
            }
        )
    return out
