"""Alerts: firing and recent alerts from every source; start an incident or re-run triage from one."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from dashboard import actions, auth, freshness, pending, queries, url_state
from pipelines.outside_text import markdown as md
from pipelines.status import summarise

st.title("Alerts")
if not freshness.require_snapshot():
    st.stop()

me = auth.me()  # app.py's auth.require() ran first: a signed-in identity with a role, or `local`
RECENT = {1440: "last day", 7 * 1440: "last 7 days", 30 * 1440: "last 30 days", 90 * 1440: "last 90 days"}
with st.sidebar:
    since = url_state.number("Recent", "since", list(RECENT), 7 * 1440, format_func=RECENT.get)

table = queries.read("alerts", since)
sources = sorted(table["source"].unique()) if not table.empty else []
with st.sidebar:
    pick_sources = url_state.multiselect("Source", "source", sources, placeholder="all sources")
    pick_services = url_state.multiselect(
        "Service",
        "service",
        sorted(table["service"].unique()) if not table.empty else [],
        placeholder="all services",
    )
shown = table
if pick_sources:
    shown = shown[shown["source"].isin(pick_sources)]
if pick_services:
    shown = shown[shown["service"].isin(pick_services)]
shown = shown.reset_index(drop=True)

firing = int(shown["firing"].sum()) if not shown.empty else 0
head = summarise(queries.read("fleet_status"))  # `slo status`'s own headline, as the fleet page shows it
cols = st.columns(4)
cols[0].metric(
    "firing alerts",
    firing,
    help="Firing alerts from every source (the fleet page counts the same list)",
)
cols[1].metric(
    "SLOs alerting",
    head.alerting,
    delta=f"{head.paging} paging" if head.paging else None,
    delta_color="inverse",
    help="SLOs with a firing burn-rate alert (`slo status`: N alerting)",
)
cols[2].metric(f"alerts, {RECENT[since]}", len(shown), help="firing now, or fired within the range")
cols[3].metric("with an incident", int(shown["incident_id"].notna().sum()) if not shown.empty else 0)

if shown.empty:
    st.info(f"No alerts in the {RECENT[since]} from any source.")
    st.stop()


def _act(send: Callable[[], actions.Sent]) -> None:
    try:
        pending.remember(send())
    except actions.Refused as exc:  # the role does not allow it: logged by actions, nothing sent
        st.error(str(exc))


view = shown.assign(state=["firing" if f else "resolved" for f in shown["firing"]])
columns = ["state", "source", "service", "slo", "severity", "title", "starts_at", "ends_at", "incident_id"]
event = st.dataframe(
    view[columns].style.map(
        lambda v: "background-color: #d32f2f; color: white; font-weight: 600" if v == "firing" else "",
        subset=["state"],
    ),
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key="alerts_table",
    column_config={
        "starts_at": st.column_config.DatetimeColumn("starts (UTC)", format="YYYY-MM-DD HH:mm"),
        "ends_at": st.column_config.DatetimeColumn("ends (UTC)", format="YYYY-MM-DD HH:mm"),
        "title": st.column_config.TextColumn("alert", width="large"),
    },
)
rows = event.selection.rows if event and event.selection else []
may_act = auth.can("retriage") and auth.can(actions.START_INCIDENT_ACTION)
if not rows:
    st.caption(
        "Select an alert to start an incident from it, or to re-run its incident's triage."
        if may_act
        else "Select an alert to open its incident."
    )
else:
    alert = {k: (None if pd.isna(v) else v) for k, v in shown.iloc[rows[0]].to_dict().items()}
    with st.container(border=True):
        st.markdown(
            f"**{md(alert['title'])}** · {md(alert['source'])} · "
            f"since {alert['starts_at']:%Y-%m-%d %H:%M} UTC"
        )
        incident_id = alert.get("incident_id")
        if incident_id:
            st.page_link(
                "views/incidents.py", label=f"Open {incident_id}", query_params={"incident": incident_id}
            )
            if may_act and st.button(f"Re-run triage for {incident_id}", key="alert_retriage"):
                _act(lambda: actions.send_command(queries.data_dir(), "retriage", str(incident_id), me))
        elif may_act and st.button(
            "Start an incident (and its triage) from this alert", key="alert_start", type="primary"
        ):
            _act(lambda: actions.send_alert(queries.data_dir(), alert, me))
        elif not may_act:
            st.caption("No incident yet; a responder may start one from this alert.")
pending.panel(None)
