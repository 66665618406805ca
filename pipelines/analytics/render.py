"""The quarterly review as Markdown or as one self-contained HTML file with interactive Plotly charts.

Markdown: every text and table cell goes through `outside_text.markdown` at render time (the blocks
stay raw text for the HTML and the dashboard), so a service name, fingerprint, deploy or model-written
summary from outside shows as literal text, never as a link, an image or HTML.

HTML: Plotly's JavaScript is inlined once (no CDN, no network), every chart is responsive, and the page
has a viewport meta and a single-column layout under 700 px so it reads on a phone.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from plotly.io import to_html

from pipelines.analytics.formats import minutes, number, pct, points, target_pct
from pipelines.analytics.review import ALERT_RECALL, BACKTEST_PRECISION, BACKTEST_RECALL, empty_message
from pipelines.analytics.verdicts import HEALTH_LABELS
from pipelines.outside_text import markdown as md

SECTIONS = (
    "Headline",
    "SLOs",
    "Budget burn-down",
    "Incidents",
    "Incident trends",
    "Repeat incidents",
    "Post-mortem and action-item compliance",
    "On-call load",
    "Alert quality",
    "Deploy correlation",
    "Top risks",
    "Recommendations",
)


def _met(m: bool | None) -> str:
    return "n/a" if m is None else ("met" if m else "missed")


def oncall_method(oc: dict[str, Any]) -> str:
    """Which method the on-call load used, in one sentence."""
    if oc.get("method") == "schedule":
        lost = oc.get("unattributed_pages") or 0
        return (
            f"Method: the on-call schedule ({', '.join(oc['schedules'])}): {oc['counting']}"
            + (f"; {lost} page(s) found nobody on call and are not attributed" if lost else "")
            + "."
        )
    why = f" ({oc['method_reason']})" if oc.get("method_reason") else ""
    return f"Method: {oc['counting']}{why}."


def oncall_rows(oc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per engineer: pages, on-call weeks, pages per on-call week and whether under the target."""
    header = ["schedule", "person", "pages", "on-call weeks", "pages/week", "under 5"]
    rows = [
        [
            p["schedule"],
            p["person"],
            str(p["pages"]),
            f"{p['on_call_weeks']:g}",
            "–" if p["pages_per_week"] is None else f"{p['pages_per_week']:g}",
            "yes" if p["under_target"] else "no",
        ]
        for p in oc.get("people") or []
    ]
    return header, rows


def _oncall_section(oc: dict[str, Any]) -> list[tuple[str, Any]]:
    weekly = (
        f"Pages per week of the quarter (source: {oc['page_source']}): "
        f"worst {max(oc['pages_per_week'], default=0)}, mean {number(oc['mean'], 2)}, "
        f"{oc['weeks_at_or_over_target']} week(s) at or over 5; {oc['distinct_responders']} distinct "
        "responder(s)."
    )
    section: list[tuple[str, Any]] = [
        ("chart", "pages_per_week"),
        ("text", weekly),
        ("text", oncall_method(oc)),
    ]
    if oc.get("method") == "schedule":
        section.append(("table", oncall_rows(oc)))
    return section


def _table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "_none_\n"
    lines = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_title(summary: dict[str, Any]) -> str:
    """The executive summary's heading: who wrote it and, when the model's was rejected, why."""
    if summary.get("model_written"):
        return "Executive summary (model-written)"
    rejected = summary.get("rejected_model_summary")
    if rejected:
        return f"Executive summary (rule-written; the model's summary was rejected: {rejected['reason']})"
    return "Executive summary (rule-written)"


def _hours(minutes_in_state: int) -> str:
    """Whole hours in a policy state; a state held for less than an hour reads `<1`, never `0`."""
    if minutes_in_state == 0:
        return "0"
    return "<1" if minutes_in_state < 60 else f"{minutes_in_state / 60:.0f}"


def _slo_rows(r: dict[str, Any]) -> list[list[str]]:
    return [
        [
            s["slo"],
            target_pct(s["target"]),
            pct(s["attainment"], 3, against=s["target"]),
            s["outcome"] or "n/a",
            pct(s["budget_spent"], against=1.0),
            pct(s["budget_remaining_at_end"]),
            HEALTH_LABELS.get(s["health"] or "", "n/a"),
            pct(s["previous_attainment"], 3, against=s["target"]),
            points(s["attainment_change"]),
            s["trend"] or "n/a",
            " / ".join(
                _hours(s["policy_minutes"][k])
                for k in ("normal", "freeze_review", "reliability_focus", "exhausted")
            ),
        ]
        for s in r["slos"]
    ]


def _backtest_table(r: dict[str, Any], truth: str) -> tuple[list[str], list[list[str]]]:
    """One table per ground truth, so each table has one recall (and precision) definition."""
    return (
        [
            "Backtest setting",
            "pages",
            BACKTEST_PRECISION[truth],
            BACKTEST_RECALL[truth],
            "detection p50 (min)",
        ],
        [
            [
                b["setting"],
                str(b["pages"]),
                pct(b[truth]["precision"]),
                pct(b[truth]["recall"]),
                minutes(b[truth]["detection_p50_minutes"], unit=False),
            ]
            for b in r["backtest"]
            if b[truth] is not None
        ],
    )


# ---------------------------------------------------------------------------------------------
# Section contents shared by both formats: (title, list of (kind, payload))


def blocks(r: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The review as sections of renderer-neutral blocks: (title, [(kind, payload)]), kind one of
    summary, bullets, list, table ((header, rows) of text), text, chart (a key of `figures`)."""
    h = r["headline"]
    inc = r["incidents"]
    out: list[tuple[str, list[tuple[str, Any]]]] = []

    mttd, mttr = h["mttd_sev1_sev2"], h["mttr_sev1"]
    sev = ", ".join(f"{k} {v}" for k, v in h["by_severity"].items())
    worst = h["budget_spent_worst"]
    health = h["slo_health"]
    same = sum(1 for s in r["slos"] if s["trend"] == "same")
    bullets = [
        f"SLOs met: {h['slos_met']} of {h['slos_measured']} ({h['slos_missed']} missed, "
        f"{h['slos_exhausted']} exhausted their budget during the quarter)",
        f"SLO health: {health['healthy']} healthy, {health['at_risk']} at risk, "
        f"{health['exhausted']} exhausted; against {r['previous_quarter']}: {h['slos_better']} better, "
        f"{h['slos_worse']} worse, {same} the same",
        f"Budget spent: median {pct(h['budget_spent_median'], against=1.0)} of the quarter's budget; most: "
        + (f"{worst['slo']} {pct(worst['budget_spent'], against=1.0)}" if worst else "—"),
        f"Incidents: {h['incidents']} ({sev}); previous quarter {h['incidents_previous_quarter']}",
        f"MTTD SEV1/SEV2: p50 {minutes(mttd['p50'])}, p90 {minutes(mttd['p90'])} (n={mttd['count']}) — "
        f"target {mttd['target']}: {_met(mttd['met'])}; previous quarter p50 {minutes(mttd['previous_p50'])}",
        f"MTTR SEV1: p50 {minutes(mttr['p50'])}, p90 {minutes(mttr['p90'])} (n={mttr['count']}) — "
        f"target {mttr['target']}: {_met(mttr['met'])}; previous quarter p50 {minutes(mttr['previous_p50'])}",
        f"TTR, all severities: p50 {minutes(inc['ttr_minutes']['p50'])}, p90 "
        f"{minutes(inc['ttr_minutes']['p90'])}, mean {minutes(inc['ttr_minutes']['mean'])} "
        f"(n={inc['ttr_minutes']['count']}); {inc['open']} open",
    ]
    headline: list[tuple[str, Any]] = [("bullets", bullets)]
    if r.get("executive_summary"):
        headline.insert(0, ("summary", r["executive_summary"]))
    if r.get("empty"):
        headline.insert(0, ("text", empty_message(r)))
    out.append(("Headline", headline))

    out.append(
        (
            "SLOs",
            [
                (
                    "table",
                    (
                        [
                            "SLO",
                            "Target",
                            "Attainment",
                            "Outcome",
                            "Budget spent",
                            "Budget left (end)",
                            "Health",
                            f"Attainment {r['previous_quarter']}",
                            "Change",
                            "Trend",
                            "Hours normal / freeze / focus / exhausted",
                        ],
                        _slo_rows(r),
                    ),
                ),
                (
                    "text",
                    f"Outcome — {r['slo_rules']['outcome']}. Health — {r['slo_rules']['health']}. "
                    f"Trend — {r['slo_rules']['trend']}.",
                ),
                (
                    "table",
                    (
                        ["Service", "healthy", "at risk", "exhausted", "SLOs at risk or exhausted"],
                        [
                            [
                                g["service"],
                                str(len(g["healthy"])),
                                str(len(g["at_risk"])),
                                str(len(g["exhausted"])),
                                ", ".join(g["exhausted"] + g["at_risk"]) or "—",
                            ]
                            for g in r["health_by_service"]
                        ],
                    ),
                ),
            ],
        )
    )
    shown = r["burn_down_shown"]
    out.append(
        (
            "Budget burn-down",
            [
                ("chart", "burn_down"),
                (
                    "text",
                    f"The {len(shown)} SLO(s) of {len(r['slos'])} that spent the most of the quarter's "
                    "budget: "
                    "budget remaining over each SLO's own window, every 6 h. Every SLO's budget left at the "
                    "quarter's end is in the SLOs table.",
                ),
            ],
        )
    )

    qoq = {c["metric"]: c for c in inc["quarter_over_quarter"]}
    out.append(
        (
            "Incidents",
            [
                (
                    "table",
                    (
                        ["", "count", "p50 (min)", "p90 (min)", "mean (min)"],
                        [
                            [
                                m.upper(),
                                str(inc[f"{m}_minutes"]["count"]),
                                minutes(inc[f"{m}_minutes"]["p50"], unit=False),
                                minutes(inc[f"{m}_minutes"]["p90"], unit=False),
                                minutes(inc[f"{m}_minutes"]["mean"], unit=False),
                            ]
                            for m in ("ttd", "tta", "ttm", "ttr")
                        ],
                    ),
                ),
                (
                    "text",
                    f"{inc['total']} incidents, {inc['open']} still open (left out of every duration). "
                    "Severity mix: " + ", ".join(f"{k} {pct(v, 0)}" for k, v in inc["severity_mix"].items()),
                ),
                (
                    "table",
                    (
                        [
                            "Change vs previous quarter",
                            "p50 now (min)",
                            "p50 before (min)",
                            "difference (min)",
                            "95% CI",
                            "verdict",
                        ],
                        [
                            [
                                m.upper(),
                                minutes(c["current_p50"], unit=False),
                                minutes(c["previous_p50"], unit=False),
                                minutes(c["difference"], unit=False),
                                "—" if c["ci_low"] is None else f"[{c['ci_low']:.1f}, {c['ci_high']:.1f}]",
                                c["verdict"],
                            ]
                            for m, c in qoq.items()
                        ],
                    ),
                ),
                (
                    "text",
                    "Method: "
                    + (inc["quarter_over_quarter"][0]["method"] if inc["quarter_over_quarter"] else ""),
                ),
                (
                    "table",
                    (
                        ["Service", "incidents", "open", "TTR p50 (min)", "TTR p90 (min)"],
                        [
                            [
                                s["service"],
                                str(s["incidents"]),
                                str(s["open"]),
                                minutes(s["ttr_minutes"]["p50"], unit=False),
                                minutes(s["ttr_minutes"]["p90"], unit=False),
                            ]
                            for s in inc["by_service"]
                        ],
                    ),
                ),
            ],
        )
    )
    out.append(
        (
            "Incident trends",
            [
                ("chart", "trend_counts"),
                ("chart", "trend_ttr"),
                (
                    "table",
                    (
                        [
                            "Quarter",
                            "total",
                            "SEV1",
                            "SEV2",
                            "SEV3",
                            "SEV4",
                            "TTR p50 (min)",
                            "TTR p90 (min)",
                        ],
                        [
                            [
                                t["quarter"],
                                str(t["total"]),
                                *(str(t["by_severity"][s]) for s in ("SEV1", "SEV2", "SEV3", "SEV4")),
                                minutes(t["ttr_minutes"]["p50"], unit=False),
                                minutes(t["ttr_minutes"]["p90"], unit=False),
                            ]
                            for t in r["trend"][-8:]
                        ],
                    ),
                ),
            ],
        )
    )
    rep = r["repeats"]
    out.append(
        (
            "Repeat incidents",
            [
                (
                    "text",
                    f"{rep['count']} repeat incident(s) (same service and fingerprint or root-cause "
                    "category, "
                    f"within {rep['window_days']} days of the previous one's resolution); "
                    f"{rep['with_open_action_items']} struck while the previous incident's action items "
                    "were open.",
                ),
                (
                    "table",
                    (
                        ["Incident", "service", "repeats", "days after", "open action items"],
                        [
                            [
                                x["id"],
                                x["service"],
                                x["repeat_of"],
                                number(x["days_after_previous_resolution"]),
                                f"{x['open_action_items']} of {x['action_items']}",
                            ]
                            for x in rep["repeats"]
                        ],
                    ),
                ),
                (
                    "table",
                    (
                        ["Chain", "service", "length"],
                        [[" → ".join(c["incidents"]), c["service"], str(c["length"])] for c in rep["chains"]],
                    ),
                ),
            ],
        )
    )
    metrics = {m["metric"]: m for m in r["success_metrics"]}
    pm, ai = metrics["postmortems_within_48h"], metrics["action_items_on_time"]
    out.append(
        (
            "Post-mortem and action-item compliance",
            [
                (
                    "table",
                    (
                        ["Success metric", "target", "value", "status"],
                        [
                            [m["title"], m["target"], metric_value(m), _met(m["met"])]
                            for m in r["success_metrics"]
                        ],
                    ),
                ),
                (
                    "text",
                    f"Post-mortems: {pm['detail']['on_time']} within 48 h, "
                    f"{pm['detail']['missed']} late or missing, "
                    f"{pm['detail']['pending']} pending. Action items due: {ai['detail']['due']}, "
                    f"{ai['detail']['done_on_time']} done on time, {ai['detail']['done_late']} late, "
                    f"{ai['detail']['still_open']} still open.",
                ),
            ],
        )
    )
    out.append(("On-call load", _oncall_section(r["oncall"])))
    aq = r["alert_quality"]
    quality: list[tuple[str, Any]] = [
        (
            "text",
            f"{aq['pages']} pages ({aq['page_source']}), {aq['pages_linked']} linked to an incident: "
            f"precision {pct(aq['precision'])}. {aq['incidents_preceded_by_alert']} of {aq['incidents']} "
            f"incidents preceded by a received alert or an engine page: {ALERT_RECALL} "
            f"{pct(aq['recall'])}. Detection time p50 {minutes(aq['detection_minutes']['p50'])}, "
            f"p90 {minutes(aq['detection_minutes']['p90'])}.",
        ),
    ]
    if r["backtest"]:
        quality.append(
            (
                "text",
                "Backtest: each page setting replayed over the quarter's stored minutes. Each table names "
                "its own recall (what a replayed page overlapped), which can differ from the recall "
                "(incidents preceded by a received alert or an engine page) above.",
            )
        )
        quality.append(("table", _backtest_table(r, "vs_incidents")))
        if any(b["vs_demo_events"] for b in r["backtest"]):
            quality.append(("table", _backtest_table(r, "vs_demo_events")))
        quality.append(("chart", "backtest"))
    out.append(("Alert quality", quality))
    d = r["deploys"]
    out.append(
        (
            "Deploy correlation",
            [
                (
                    "text",
                    f"{d['incidents_after_deploy']} of {d['incidents']} incidents started within "
                    f"{d['window_hours']} h "
                    f"after a deploy of the same service; "
                    f"{d['deploys_followed_by_incident']} of {d['deploys']} "
                    "deploys were followed by an incident "
                    f"(change-failure rate {pct(d['change_failure_rate'])}).",
                ),
                (
                    "table",
                    (
                        ["Incident", "service", "deploy", "minutes after"],
                        [
                            [
                                x["id"],
                                x["service"],
                                x["deploy"] or "",
                                minutes(x["minutes_after_deploy"], unit=False),
                            ]
                            for x in d["incidents_list"]
                        ],
                    ),
                ),
            ],
        )
    )
    out.append(("Top risks", [("list", [f"{x['risk']} — {x['why']}" for x in r["risks"]] or ["none found"])]))
    out.append(
        (
            "Recommendations",
            [("list", [f"{x['recommendation']} ({x['because']})" for x in r["recommendations"]])],
        )
    )
    return out


def metric_value(m: dict[str, Any]) -> str:
    """A success metric's value as every format writes it."""
    if m["unit"] == "share":
        return pct(m["value"], against=m["target_value"])
    if m["unit"] == "min":
        return minutes(m["value"])
    return number(m["value"])


# ---------------------------------------------------------------------------------------------
# Markdown


def render_markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# Quarterly reliability review — {r['quarter']}",
        "",
        f"Data as of {r['as_of']}; compared with {r['previous_quarter']}.",
        "",
    ]
    for title, section in blocks(r):
        lines += [f"## {title}", ""]
        for kind, payload in section:
            if kind == "summary":
                text = md(payload["text"], multiline=True).replace("\n", "\n> ")
                lines += [f"> **{md(summary_title(payload))}**", ">", f"> {text}", ""]
            elif kind in ("bullets", "list"):
                lines += [f"- {md(b)}" for b in payload] + [""]
            elif kind == "table":
                lines += [_table(*payload)]
            elif kind == "text":
                lines += [md(payload), ""]
            elif kind == "chart":
                lines += [f"_(chart `{payload}` in the HTML report)_", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1280px;margin:0 auto;padding:16px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;margin:12px 0}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:0}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:.85rem;width:100%}
th,td{border-bottom:1px solid #d8dee4;padding:4px 6px;text-align:left;vertical-align:top}
th{white-space:normal;vertical-align:bottom}
td{white-space:nowrap}
td:first-child,td:last-child{white-space:normal;overflow-wrap:anywhere}
.summary{background:#fff8c5;border-left:4px solid #bf8700;padding:8px 12px}
.chart{width:100%;min-height:320px}
@media (max-width:700px){main{padding:6px}section{padding:8px}table{font-size:.8rem}}
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def figures(r: dict[str, Any]) -> dict[str, go.Figure]:
    """The review's charts, by the key its `chart` blocks name."""
    figs: dict[str, go.Figure] = {}
    bd = go.Figure()
    shown = r["burn_down_shown"]
    series: dict[str, tuple[list[str], list[float | None]]] = {slo: ([], []) for slo in shown}
    for p in r["burn_down"]:
        if p["slo"] in series:
            xs, ys = series[p["slo"]]
            xs.append(p["at"])
            ys.append(p["budget_remaining"])
    for slo, (xs, ys) in series.items():
        bd.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=slo))
    bd.update_layout(
        title=f"Budget remaining: the {len(shown)} SLO(s) that spent the most", yaxis_tickformat=".0%"
    )
    figs["burn_down"] = bd

    trend = r["trend"][-8:]
    tc = go.Figure()
    for s in ("SEV1", "SEV2", "SEV3", "SEV4"):
        tc.add_trace(go.Bar(x=[t["quarter"] for t in trend], y=[t["by_severity"][s] for t in trend], name=s))
    tc.update_layout(barmode="stack", title="Incidents per quarter by severity")
    figs["trend_counts"] = tc
    tt = go.Figure()
    for key, name in (("p50", "TTR p50"), ("p90", "TTR p90")):
        tt.add_trace(
            go.Scatter(
                x=[t["quarter"] for t in trend],
                y=[t["ttr_minutes"][key] for t in trend],
                mode="lines+markers",
                name=name,
            )
        )
    tt.update_layout(title="Time to resolve (minutes)")
    figs["trend_ttr"] = tt
    weeks = r["oncall"]["pages_per_week"]
    pw = go.Figure(go.Bar(x=[f"W{i + 1}" for i in range(len(weeks))], y=weeks, name="pages"))
    pw.add_hline(y=5, line_dash="dash", annotation_text="target < 5")
    pw.update_layout(title="Pages per on-call week")
    figs["pages_per_week"] = pw
    bt = go.Figure(go.Bar(x=[b["setting"] for b in r["backtest"]], y=[b["pages"] for b in r["backtest"]]))
    bt.update_layout(title="Backtest: pages per alert setting")
    figs["backtest"] = bt
    for fig in figs.values():
        fig.update_layout(
            margin={"l": 40, "r": 10, "t": 40, "b": 40},
            legend={"orientation": "h"},
            autosize=True,
            template="plotly_white",
        )
    return figs


def render_html(r: dict[str, Any]) -> str:
    figs = figures(r)
    first = True
    parts = []
    for title, section in blocks(r):
        body = []
        for kind, payload in section:
            if kind == "summary":
                body.append(
                    f'<div class="summary"><strong>{html.escape(summary_title(payload))}</strong>'
                    f"<p>{html.escape(payload['text'])}</p></div>"
                )
            elif kind in ("bullets", "list"):
                body.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in payload) + "</ul>")
            elif kind == "table":
                body.append(_html_table(*payload))
            elif kind == "text":
                body.append(f"<p>{html.escape(payload)}</p>")
            elif kind == "chart":
                body.append(
                    to_html(
                        figs[payload],
                        full_html=False,
                        include_plotlyjs=first,
                        config={"responsive": True, "displaylogo": False},
                        default_height="360px",
                        div_id=f"chart-{payload}",
                    )
                )
                first = False
        slug = title.lower().replace(" ", "-")
        parts.append(
            f'<section id="{html.escape(slug)}"><h2>{html.escape(title)}</h2>{"".join(body)}</section>'
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Quarterly reliability review {html.escape(r['quarter'])}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>Quarterly reliability review — {html.escape(r['quarter'])}</h1>"
        f"<p>Data as of {html.escape(str(r['as_of']))}; "
        f"compared with {html.escape(r['previous_quarter'])}.</p>" + "".join(parts) + "</main></body></html>"
    )
