"""SLO detail: one SLO over its window — SLI, budget burn-down, burn rates, alerts, policy, incidents."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, freshness, queries, url_state
from pipelines.errors import SloError

st.title("SLO detail")
if not freshness.require_snapshot():
    st.stop()

ids = queries.read("slo_ids")
slo_id = url_state.selectbox("SLO", "slo", ids, default=ids[0] if ids else None)
if slo_id is None:
    st.info("No SLOs in the snapshot yet.")
    st.stop()
# The time range and the "as of" instant live in the URL: a copied link shows the same view.
RANGES = {"window": "the SLO window", "1d": "last day", "7d": "last 7 days", "30d": "last 30 days",
          "90d": "last 90 days"}  # fmt: skip
RANGE_MINUTES = {"1d": 1440, "7d": 7 * 1440, "30d": 30 * 1440, "90d": 90 * 1440}
with st.sidebar:
    picked = url_state.selectbox(
        "Time range", "range", list(RANGES), default="window", format_func=RANGES.get
    )
    as_of = url_state.text(
        "As of (UTC)",
        "at",
        placeholder="latest, or e.g. 2026-11-23T12:00:00Z",
        help="Evaluate the SLO at this instant, as `slo status --at` does; empty for the latest.",
    )
try:
    queries.parse_instant(as_of)
    d: queries.SloDetail | None = queries.read(
        "slo_detail", slo_id, as_of or None, RANGE_MINUTES.get(picked or "")
    )
except (ValueError, SloError) as exc:
    refused = queries.as_of_rejection(exc, as_of)
    if refused is None:
        raise
    st.error(refused, icon=":material/error:")
    st.stop()
if d is None:
    st.error(f"{slo_id}: no such SLO in the published snapshot")
    st.stop()
s = d.slo
freshness.banner([s], queries.read("freshness"))
if as_of:
    st.info(
        f"As of {s['evaluated_at']}: the SLO as `slo status --at {as_of}` shows it, not the latest "
        "evaluation. Clear “As of” in the sidebar for now.",
        icon=":material/history:",
    )

state = s["policy_state"]
st.subheader(slo_id)
st.markdown(charts.state_badge(state) + (" :red-badge[alerting]" if s["alerts"] else ""))
st.caption(
    f"owner {s['owner'] or '—'} · target {s['target']:.4%} over {s['window']} · "
    f"budget {s['budget_minutes']:.1f} min per window · evaluated at {s['evaluated_at']} · "
    f"data: {s['data_status'].replace('_', ' ')} (last data {s['last_data_at'] or 'never'})"
)
cols = st.columns(5)
cols[0].metric("SLI (window)", charts.pct(s["sli"], 3), help=f"target {s['target']:.4%}")
cols[1].metric(
    "Budget remaining",
    charts.pct(s["budget_remaining"]),
    help=(
        f"{s['budget_remaining_minutes']:.1f} of {s['budget_minutes']:.1f} budget minutes"
        if s["budget_remaining_minutes"] is not None
        else None
    ),
)
cols[2].metric("Policy state", charts.state_label(state), help=f"since {s['policy_state_since']}")
cols[3].metric("Burn rate 1h", "—" if s["burn_rates"]["1h"] is None else f"{s['burn_rates']['1h']:.2f}×")
exhaustion = s["projected_exhaustion_at"]
cols[4].metric(
    "Projected exhaustion",
    exhaustion.replace("T", " ").replace("Z", "") if exhaustion else "none",
    help="now + budget remaining × window / 1-hour burn rate, when the 1-hour burn is above 1",
)
if state and s["policy_text"]:
    color = charts.STATE_COLORS.get(state)
    st.markdown(
        f"<div style='border-left:6px solid {color};padding:0.4em 0.8em'><b>Policy ({state}):</b> "
        f"{s['policy_text']}</div>",
        unsafe_allow_html=True,
    )
if s["alerts"]:
    st.error(
        "Firing: "
        + ", ".join(
            f"{a['severity'].upper()} {a['long_window']}/{a['short_window']} > {a['factor']:g} "
            f"since {a['since']}"
            for a in s["alerts"]
        ),
        icon=":material/notifications_active:",
    )

st.plotly_chart(charts.slo_figure(d), key="slo_figure", config={"displaylogo": False})
st.caption(
    "Burn-down: budget remaining as the window's bad events accumulate, from 100 % at the window's start; "
    "the ideal line spends the budget evenly by the window's end "
    + (
        "(the calendar period's end)."
        if d.meta["window_kind"] == "calendar"
        else "(now, for a rolling window)."
    )
    + " Shaded: burn-rate alert intervals (red page, amber ticket)."
)

left, right = st.columns(2)
with left:
    st.markdown("**Burn rates now** (× the rate that spends the budget exactly over the window)")
    burn = pd.DataFrame({"window": list(s["burn_rates"]), "burn rate": list(s["burn_rates"].values())})
    st.dataframe(
        burn, hide_index=True, column_config={"burn rate": st.column_config.NumberColumn(format="%.2f×")}
    )
    st.markdown("**Alert conditions**")
    rules = d.alert_rules.assign(
        condition=lambda x: [
            f"burn {charts.duration_label(int(r.long_window))} > {r.factor:g} and "
            f"burn {charts.duration_label(int(r.short_window))} > {r.factor:g}"
            for r in x.itertuples()
        ]
    )[["severity", "condition"]]
    st.dataframe(rules, hide_index=True)
with right:
    st.markdown("**Policy-state history**")
    hist = d.transitions.sort_values("at", ascending=False).assign(
        budget_remaining=lambda x: x["budget_remaining"] * 100,
    )
    st.dataframe(
        hist.style.map(charts.state_cell_style, subset=["to_state"]),
        hide_index=True,
        column_config={
            "at": st.column_config.DatetimeColumn("at (UTC)", format="YYYY-MM-DD HH:mm"),
            "budget_remaining": st.column_config.NumberColumn("budget", format="%.1f%%"),
            "policy_text": st.column_config.TextColumn("policy", width="large"),
        },
    )
st.markdown("**Alert intervals in the window**")
if d.alert_intervals.empty:
    st.caption("No burn-rate alert fired in this window.")
else:
    st.dataframe(d.alert_intervals, hide_index=True)
st.markdown("**Incidents on this SLO**")
if d.incidents.empty:
    st.caption("No incidents linked to this SLO yet.")
else:
    st.dataframe(d.incidents, hide_index=True)
    for inc in d.incidents["id"].head(10):
        st.page_link("views/incidents.py", label=f"Open {inc}", query_params={"incident": inc})
