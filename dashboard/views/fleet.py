"""Fleet: every SLO with its budget, policy state, burn and alerts; worst budget first."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, freshness, queries, url_state
from pipelines.errors import SloError
from pipelines.status import summarise

st.title("Fleet error budgets")
if not freshness.require_snapshot():
    st.stop()

with st.sidebar:
    as_of = url_state.text(
        "As of (UTC)",
        "at",
        placeholder="latest, or e.g. 2026-11-23T12:00:00Z",
        help="The fleet at this instant, as `slo status --at` shows it; empty for the latest.",
    )
# At the latest instant the prefetched results (no arguments) answer; an "as of" is computed on demand.
at_args = (as_of,) if as_of else ()
try:
    queries.parse_instant(as_of)
    rows = queries.read("fleet_status", *at_args)
except (ValueError, SloError) as exc:
    refused = queries.as_of_rejection(exc, as_of)
    if refused is None:
        raise
    st.error(refused, icon=":material/error:")
    st.stop()
sparks = queries.read("fleet_sparklines", *at_args)
fresh = queries.read("freshness")
# Every source's firing alerts, as the Alerts page lists them: a "now" figure, not shown "as of".
firing_alerts = None if as_of else queries.read("alerts", None)
external = queries.firing_external(firing_alerts) if firing_alerts is not None else {}
head = summarise(rows)  # `slo status`'s own headline: N alerting (M paging)
freshness.banner(rows, fresh)
if as_of:
    st.info(
        f"As of {rows[0]['evaluated_at'] if rows else as_of}: the fleet as `slo status --at {as_of}` "
        "shows it, not the latest evaluation. Clear “As of” in the sidebar for now.",
        icon=":material/history:",
    )

services = sorted({r["service"] for r in rows})
owners = sorted({r["owner"] or "—" for r in rows})
states = [*charts.STATE_ORDER, "no data"]
with st.sidebar:
    st.subheader("Filters")
    pick_services = url_state.multiselect("Service", "service", services, placeholder="all services")
    pick_owners = url_state.multiselect("Owner", "owner", owners, placeholder="all owners")
    pick_states = url_state.multiselect(
        "Policy state",
        "state",
        states,
        placeholder="all states",
        format_func=lambda s: charts.state_label(None if s == "no data" else s),
    )


def keep(r: dict) -> bool:
    return (
        (not pick_services or r["service"] in pick_services)
        and (not pick_owners or (r["owner"] or "—") in pick_owners)
        and (not pick_states or (r["policy_state"] or "no data") in pick_states)
    )


shown = sorted(
    (r for r in rows if keep(r)),
    key=lambda r: (r["budget_remaining"] is not None, r["budget_remaining"] or 0.0),
)

by_state = pd.Series([r["policy_state"] or "no data" for r in rows]).value_counts()
cols = st.columns(7)
cols[0].metric("SLOs", head.slos)
for col, state in zip(cols[1:5], charts.STATE_ORDER, strict=True):
    col.metric(charts.state_label(state), int(by_state.get(state, 0)))
cols[5].metric(
    "SLOs alerting",
    head.alerting,
    delta=f"{head.paging} paging" if head.paging else None,
    delta_color="inverse",
    help="SLOs with a firing burn-rate alert (`slo status`: N alerting)",
)
cols[6].metric(
    "firing alerts",
    "—" if firing_alerts is None else int(firing_alerts["firing"].sum()),
    help="Firing alerts from every source (burn rate, Alertmanager, PagerDuty, …) now: the Alerts "
    "page's list",
)
evaluated = rows[0]["evaluated_at"] if rows else "—"
st.caption(
    f"Evaluated at {evaluated} · showing {len(shown)} of {len(rows)} SLOs, lowest budget first · "
    "budget remaining = 1 − bad/allowed over the SLO window · sparkline: 1-hour burn rate over the last day"
)

# Key columns first and pinned (what state, which SLO, what fires, what the policy says), so they stay
# on screen however wide the rest is.
table = pd.DataFrame(
    {
        # A one-option multiselect cell renders as a coloured pill: colour per state at no cost
        # (a pandas Styler over 1,000 rows would take a quarter of a second per page load).
        "state": [[charts.state_label(r["policy_state"])] for r in shown],
        "slo": [r["slo"] for r in shown],
        "budget": [None if r["budget_remaining"] is None else r["budget_remaining"] * 100 for r in shown],
        "budget_bar": [charts.budget_bar(r["budget_remaining"], r["policy_state"]) for r in shown],
        "alerts": [
            ", ".join(
                f"{a['severity'].upper()} {a['long_window']}/{a['short_window']}>{a['factor']:g}"
                for a in r["alerts"]
            )
            + (f" +{external[r['slo']]} external" if external.get(r["slo"]) else "")
            for r in shown
        ],
        "policy": [r["policy_text"] or "" for r in shown],
        "burn_1h": [r["burn_rates"]["1h"] for r in shown],
        # Minutes without data have no burn rate; the sparkline draws them at 0.
        "burn_trend": [[v or 0.0 for v in sparks.get(r["slo"], [])] for r in shown],
        "sli": [None if r["sli"] is None else r["sli"] * 100 for r in shown],
        "target": [r["target"] * 100 for r in shown],
        "window": [r["window"] for r in shown],
        "service": [r["service"] for r in shown],
        "owner": [r["owner"] for r in shown],
        "data": [r["data_status"].replace("_", " ") for r in shown],
    }
)
event = st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=min(38 + 35 * max(len(table), 1), 720),
    on_select="rerun",
    selection_mode="single-row",
    key="fleet_table",
    # The numeric budget stays in the data (sorting, tests); the bar in its state's colour shows it.
    column_order=[c for c in table.columns if c != "budget"],
    column_config={
        "state": st.column_config.MultiselectColumn(
            "Policy state",
            options=states,
            color=[charts.STATE_COLORS[None if s == "no data" else s] for s in states],
            width="small",
            pinned=True,
        ),
        "slo": st.column_config.TextColumn("SLO", pinned=True),
        "budget_bar": st.column_config.ImageColumn(
            "Budget remaining",
            width=170,  # the bar and its share, whole
            help="Share of the error budget left over the SLO window, in the colour of the policy "
            "state; negative when overspent",
        ),
        "alerts": st.column_config.TextColumn("Firing alerts", width=180),
        "policy": st.column_config.TextColumn("What the policy says now", width="large"),
        "sli": st.column_config.NumberColumn("SLI", format="%.3f%%"),
        "target": st.column_config.NumberColumn("Target", format="%.2f%%"),
        "burn_1h": st.column_config.NumberColumn("Burn 1h", format="%.2f×"),
        "burn_trend": st.column_config.LineChartColumn("Burn 1h, last day", y_min=0),
        "data": st.column_config.TextColumn("Data"),
    },
)
selected = event.selection.rows if event and event.selection else []
if selected:
    slo_id = str(table["slo"].iloc[selected[0]])
    st.switch_page("views/slo.py", query_params={"slo": slo_id, **({"at": as_of} if as_of else {})})
st.caption("Select a row to open the SLO's detail page.")
overspent = [r for r in shown if r["budget_remaining"] is not None and r["budget_remaining"] < 0]
if overspent:
    st.caption(
        "Overspent (bar shows 0 %): "
        + ", ".join(f"{r['slo']} {charts.pct(r['budget_remaining'])}" for r in overspent)
    )
