"""Reliability analytics: MTTD/MTTA/MTTM/MTTR distributions, severity mix, repeats, alert quality and
the alert backtest, on-call load and deploy correlation.

Read straight from the incident and engine tables of the published snapshot.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, freshness, queries, url_state

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
            row = queries.percentile_summary(part[key])
            summary.append({"measure": label, "quarter": quarter, **row})
    st.caption(
        "Per incident, in minutes: TTD = detected − impact start, TTA = acknowledged − detected, "
        "TTM = mitigated − impact start, TTR = resolved − impact start. Open incidents are left out of "
        f"the durations and counted on their own: {int(df['open'].sum())} open."
    )
    st.dataframe(
        pd.DataFrame(summary),
        hide_index=True,
        column_config={
            "p50": st.column_config.NumberColumn("p50 (min)", format="%.0f"),
            "p90": st.column_config.NumberColumn("p90 (min)", format="%.0f"),
            "mean": st.column_config.NumberColumn("mean (min)", format="%.0f"),
        },
    )
    tabs = st.tabs([label for label in queries.DURATIONS.values()])
    for tab, (key, label) in zip(tabs, queries.DURATIONS.items(), strict=True):
        with tab:
            if df[key].notna().any():
                st.plotly_chart(charts.duration_box(df, key, label), key=f"box_{key}")
            else:
                st.caption(f"No {label} values yet.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.severity_mix(df), key="severity_mix")
    with right:
        rep = df.groupby("quarter").agg(incidents=("id", "count"), repeats=("repeat", "sum")).reset_index()
        rep["repeat share"] = rep["repeats"] / rep["incidents"]
        st.markdown("**Repeat incidents** (same service and fingerprint or root cause within 30 days)")
        st.dataframe(
            rep,
            hide_index=True,
            column_config={"repeat share": st.column_config.NumberColumn(format="percent")},
        )

st.header("Alert quality")
backtest: pd.DataFrame = queries.read("alert_backtest")
sources: pd.DataFrame = queries.read("alert_sources")
if backtest.empty:
    st.info("No burn-rate alerts and no ground-truth events to score yet.")
else:
    totals = backtest.groupby("severity")[["true_alerts", "false_alerts"]].sum()
    caught = (
        int(totals.loc[["page", "ticket"], "true_alerts"].sum())
        if {"page", "ticket"} & set(totals.index)
        else 0
    )
    false = int(totals.drop(index="missed", errors="ignore")["false_alerts"].sum())
    missed = int(backtest.loc[backtest["severity"] == "missed", "false_alerts"].sum())
    cols = st.columns(3)
    cols[0].metric("alerts on a real event", caught)
    cols[1].metric("alerts with no event (false)", false)
    cols[2].metric("events no alert caught", missed)
    st.caption(
        "Backtest of the burn-rate alerts against the demo's injected events (`demo_events`): an alert "
        "interval is true when it overlaps an event on the same SLO (up to an hour after it ends); an event "
        "is missed when no alert overlaps it (metrics gaps are not counted as events to catch)."
    )
    plot = backtest.melt(
        id_vars=["slo_id", "severity"],
        value_vars=["true_alerts", "false_alerts"],
        var_name="outcome",
        value_name="count",
    )
    plot = plot[plot["count"] > 0].assign(
        outcome=lambda x: [
            ("missed event" if s == "missed" else f"{s}: {o.replace('_alerts', '')}")
            for s, o in zip(x["severity"], x["outcome"], strict=True)
        ]
    )
    st.plotly_chart(
        charts.stacked_bars(plot, "slo_id", "count", "outcome", "Alert backtest per SLO"),
        key="backtest",
    )
if not sources.empty:
    st.markdown("**Received alerts by source** (and how many opened or joined an incident)")
    st.dataframe(sources, hide_index=True)

st.header("On-call load")
load: pd.DataFrame = queries.read("oncall_load")
if load.empty:
    st.info("No pages yet.")
else:
    st.plotly_chart(
        charts.stacked_bars(load, "week", "pages", "service", "Pages per week by service"), key="oncall"
    )
    st.caption(
        f"{int(load['out_of_hours'].sum())} of {int(load['pages'].sum())} pages began out of hours "
        "(before 08:00, after 18:00 UTC or at weekends)."
    )

st.header("Deploy correlation")
hours = url_state.number(
    "Deploy within",
    "deploy_hours",
    [1, 2, 6, 24],
    2,
    where=st,
    format_func=lambda h: f"{h} h before the start",
)
corr: pd.DataFrame = queries.read("deploy_correlation", hours)
if corr.empty:
    st.info("No incidents or pages to correlate with deploys yet.")
else:
    by_kind = (
        corr.assign(after_deploy=corr["last_deploy"].notna())
        .groupby("kind")
        .agg(starts=("ref", "count"), after_deploy=("after_deploy", "sum"))
        .reset_index()
    )
    by_kind["share"] = by_kind["after_deploy"] / by_kind["starts"]
    st.dataframe(
        by_kind, hide_index=True, column_config={"share": st.column_config.NumberColumn(format="percent")}
    )
    st.dataframe(corr, hide_index=True, width="stretch")
