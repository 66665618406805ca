"""Reliability analytics: MTTD/MTTA/MTTM/MTTR distributions, severity mix, repeats, alert quality and
the alert backtest, on-call load and deploy correlation.

The incident figures come from the analytics module (`pipelines/analytics`): the distributions from
the `incident_durations` table every publish materialises (summarised here with the same linear
percentiles), the per-quarter sections from the quarterly review itself, so this page, the Quarterly
review page and `slo report quarterly` agree. Only "received alerts by source" is the page's own query.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, freshness, queries, url_state
from pipelines.analytics import mttx, render
from pipelines.analytics.formats import minutes, number
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.review import ALERT_RECALL, BACKTEST_PRECISION, BACKTEST_RECALL
from pipelines.analytics.success_metrics import PAGES_PER_WEEK_TARGET
from pipelines.outside_text import markdown as md


def share(score: dict[str, float | None] | None, name: str) -> str:
    """A backtest score's precision or recall as the page writes shares ("—" when there is none)."""
    return charts.pct((score or {}).get(name))


st.title("Reliability analytics")
if not freshness.require_snapshot():
    st.stop()

durations: pd.DataFrame = queries.read("incident_durations")
quarters = sorted(durations["quarter"].dropna().unique()) if not durations.empty else []
with st.sidebar:
    pick_quarters = url_state.multiselect("Quarter", "quarter", quarters, placeholder="all quarters")
    pick_sev = url_state.multiselect(
        "Severity",
        "severity",
        sorted(durations["severity"].unique()) if not durations.empty else [],
        placeholder="all severities",
    )
df = durations
if pick_quarters:
    df = df[df["quarter"].isin(pick_quarters)]
if pick_sev:
    df = df[df["severity"].isin(pick_sev)]

st.header("Time to detect, acknowledge, mitigate, resolve")
if df.empty:
    st.info(
        "No incident data yet: the distributions appear once incidents exist (opened from alerts by the "
        "incident flow, or imported with `slo import incidents`)."
    )
else:
    summary = []
    for key, label in queries.DURATIONS.items():
        for quarter, part in df.groupby("quarter"):
            # the review's own percentiles and the review's own way of writing them (6.5, never 7)
            row = mttx.percentiles(part[key])
            summary.append(
                {
                    "measure": label,
                    "quarter": quarter,
                    "count": row["count"],
                    **{k: minutes(row[k], unit=False) for k in ("p50", "p90", "mean")},
                }
            )
    st.caption(
        "Per incident, in minutes: TTD = detected − impact start, TTA = acknowledged − detected, "
        "TTM = mitigated − impact start, TTR = resolved − impact start. Open incidents are left out of "
        f"the durations and counted on their own: {int(df['open'].sum())} open."
    )
    # Small tables are plain tables on this page: a grid widget each cost the browser more than its rows.
    st.table(pd.DataFrame(summary), hide_index=True)
    # One distribution at a time (in the URL, so a link shows it): four box plots drawn at once, as
    # tabs draw them, were most of the browser's work on this page.
    labels = {label: key for key, label in queries.DURATIONS.items()}
    label = url_state.selectbox("Distribution", "measure", list(labels), default="TTR", where=st) or "TTR"
    key = labels[label]
    if df[key].notna().any():
        st.plotly_chart(charts.duration_box(df, key, label), key=f"box_{key}")
    else:
        st.caption(f"No {label} values yet.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.severity_mix(df), key="severity_mix")
    with right:
        rep = df.groupby("quarter").agg(incidents=("id", "count"), repeats=("repeat", "sum")).reset_index()
        rep["repeat share"] = [
            charts.pct(r / n) for r, n in zip(rep["repeats"], rep["incidents"], strict=True)
        ]
        st.markdown("**Repeat incidents** (same service and fingerprint or root cause within 30 days)")
        st.table(rep, hide_index=True)

quarters_all: list[str] = queries.read("quarters")
st.divider()
# As the Quarterly review: the last full quarter first (the current one is not over).
evaluated_to = queries.read("freshness")["evaluated_to"]
last_full = None if evaluated_to is None else Quarter.last_full(evaluated_to.to_pydatetime()).label
focus = url_state.selectbox(
    "Quarter for alert quality, on-call load and deploys",
    "focus",
    quarters_all,
    default=last_full if last_full in quarters_all else (quarters_all[0] if quarters_all else None),
    where=st,
)
if focus is None:
    st.stop()
with st.spinner(f"Computing {focus} (the alert backtest replays the quarter's buckets)…"):
    review = queries.read("quarterly_review", focus, queries.oncall_version())
review_charts = render.figures(review)

st.header("Alert quality")
quality = review["alert_quality"]
cols = st.columns(4)
cols[0].metric("pages", quality["pages"])
cols[1].metric("precision (pages with an incident)", charts.pct(quality["precision"]))
cols[2].metric(ALERT_RECALL, charts.pct(quality["recall"]))
detect = quality["detection_minutes"]
cols[3].metric("detection p50", minutes(detect["p50"]), help=f"p90 {minutes(detect['p90'])}")
st.caption(
    f"{focus}, pages from {quality['page_source']}: {quality['pages_linked']} of {quality['pages']} pages "
    f"were linked to an incident; {quality['incidents_preceded_by_alert']} of {quality['incidents']} "
    "incidents were preceded by an alert."
)
st.subheader("Backtest: the burn-rate alert settings replayed over the stored history")
if review["backtest"]:
    st.plotly_chart(review_charts["backtest"], key="backtest")
    st.table(
        pd.DataFrame(
            [
                {
                    "setting": b["setting"],
                    "pages": b["pages"],
                    BACKTEST_PRECISION["vs_incidents"]: share(b["vs_incidents"], "precision"),
                    BACKTEST_RECALL["vs_incidents"]: share(b["vs_incidents"], "recall"),
                    "detection p50 (min)": minutes(b["vs_incidents"]["detection_p50_minutes"], unit=False),
                    BACKTEST_PRECISION["vs_demo_events"]: share(b["vs_demo_events"], "precision"),
                    BACKTEST_RECALL["vs_demo_events"]: share(b["vs_demo_events"], "recall"),
                }
                for b in review["backtest"]
            ]
        ),
        hide_index=True,
    )
    st.caption(
        "Each setting's page conditions are replayed with the engine's own window sums over the quarter's "
        "buckets and scored against the incidents (and, on the demo, its injected events). Try your own "
        f'with `slo report quarterly --quarter {focus} --candidate "1h/5m>10,6h/30m>4"`.'
    )
else:
    st.info("No SLO with stored buckets in this quarter to replay.")
sources: pd.DataFrame = queries.read("alert_sources")
if not sources.empty:
    st.markdown("**Received alerts by source** (and how many opened or joined an incident)")
    st.table(sources, hide_index=True)

st.header("On-call load")
oncall = review["oncall"]
if oncall["pages_per_week"]:
    st.plotly_chart(review_charts["pages_per_week"], key="oncall")
    st.caption(
        f"{focus}: {oncall['weeks']} weeks, mean {number(oncall['mean'], 2)} pages per week, "
        f"{oncall['weeks_at_or_over_target']} week(s) at or over the target of {PAGES_PER_WEEK_TARGET}; "
        f"{oncall['distinct_responders']} distinct responders."
    )
else:
    st.info("No pages in this quarter.")
st.caption(md(render.oncall_method(oncall)))
if oncall["people"]:  # the schedule's figures, per engineer
    header, rows = render.oncall_rows(oncall)
    st.table(pd.DataFrame(rows, columns=header), hide_index=True)

st.header("Deploy correlation")
hours = url_state.number(
    "Deploy within",
    "deploy_hours",
    [1, 2, 4, 6, 24],
    4,
    where=st,
    format_func=lambda h: f"{h} h before the start",
)
deploys = queries.read("quarter_deploys", focus, hours)
deploy_cols = st.columns(3)
deploy_cols[0].metric(
    "incidents after a deploy", f"{deploys['incidents_after_deploy']} of {deploys['incidents']}"
)
deploy_cols[1].metric("deploys", deploys["deploys"])
deploy_cols[2].metric("change failure rate", charts.pct(deploys["change_failure_rate"]))
if deploys["incidents_list"]:
    st.dataframe(pd.DataFrame(deploys["incidents_list"]), hide_index=True, width="stretch")
if deploys["by_service"]:
    st.table(pd.DataFrame(deploys["by_service"]), hide_index=True)
