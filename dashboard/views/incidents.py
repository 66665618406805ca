"""Incidents: a filterable list; one incident's timeline, triage, route, remediation and documents,
and the human steps (acknowledge, mitigate, resolve, root cause, action items, approvals, re-triage,
incident roles, the communications lead's approvals)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import actions, auth, freshness, pending, queries, url_state
from pipelines.analytics import mttx
from pipelines.auth.roles import COMMS_OVERRIDE
from pipelines.incidents import documents, incident_roles, timers
from pipelines.outside_text import markdown as md

st.title("Incidents")
if not freshness.require_snapshot():
    st.stop()

table: pd.DataFrame = queries.read("incidents")
me = auth.me()  # app.py's auth.require() ran first: a signed-in identity with a role, or `local`
if table.empty:
    st.info(
        "No incidents yet. Incidents open when an alert arrives (Alertmanager, PagerDuty, the engine's "
        "burn-rate alerts — see the Alerts page) or are imported with `slo import incidents`."
    )
    st.stop()

with st.sidebar:
    st.subheader("Filters")
    f_status = url_state.multiselect(
        "Status", "status", sorted(table["status"].dropna().unique()), placeholder="all statuses"
    )
    f_sev = url_state.multiselect(
        "Severity", "severity", sorted(table["severity"].dropna().unique()), placeholder="all severities"
    )
    f_service = url_state.multiselect(
        "Service", "service", sorted(table["service"].unique()), placeholder="all services"
    )
shown = table
if f_status:
    shown = shown[shown["status"].isin(f_status)]
if f_sev:
    shown = shown[shown["severity"].isin(f_sev)]
if f_service:
    shown = shown[shown["service"].isin(f_service)]
shown = shown.reset_index(drop=True)

open_count = int((~table["status"].isin(["resolved", "closed"])).sum())
cols = st.columns(3)
cols[0].metric("incidents", len(table))
cols[1].metric("open", open_count)
cols[2].metric("shown", len(shown))
st.dataframe(
    shown[["id", "severity", "status", "service", "title", "route", "impact_start", "resolved_at", "source"]],
    hide_index=True,
    width="stretch",
    key="incidents_table",
    column_config={
        "impact_start": st.column_config.DatetimeColumn("impact start (UTC)", format="YYYY-MM-DD HH:mm"),
        "resolved_at": st.column_config.DatetimeColumn("resolved (UTC)", format="YYYY-MM-DD HH:mm"),
        "title": st.column_config.TextColumn(width="large"),
    },
)
ids = list(shown["id"])
incident_id = url_state.selectbox("Incident", "incident", ids, default=ids[0] if ids else None, where=st)
if incident_id is None:
    st.stop()
d: queries.IncidentDetail | None = queries.read("incident_detail", incident_id)
if d is None:
    st.error(f"{incident_id}: no such incident in the published snapshot")
    st.stop()
inc = d.incident
st.subheader(f"{inc['id']} · {inc['severity'] or 'unclassified'} · {inc['status']}")
# Outside text (titles, services, root causes, actors, model text) goes through `md`: shown as text,
# never as a link, image, HTML or Streamlit directive. No code spans: a backtick inside would end one.
st.markdown(
    f"**{md(inc['title'])}** — service {md(inc['service'])}"
    + (f", SLO {md(inc['slo_id'])}" if inc["slo_id"] else "")
)


def _t(name: str) -> str:
    value = inc.get(name)
    if value is None or pd.isna(value):
        return "—"
    source = inc.get(f"{name}_source")
    return f"{value:%Y-%m-%d %H:%M} UTC" + (f" ({source})" if source else "")  # a dataframe: plain text


times = pd.DataFrame(
    {
        "step": ["impact start", "detected", "acknowledged", "mitigated", "resolved"],
        "at": [
            _t(n) for n in ("impact_start", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at")
        ],
    }
)


# This incident's own durations so far (DESIGN §2, mttx.SPANS), each once both of its times are known;
# the analytics leave an open incident out of every distribution, but its responders want them now.
def _minutes(start: str, end: str) -> float | None:
    a, b = inc.get(start), inc.get(end)
    if a is None or b is None or pd.isna(a) or pd.isna(b):
        return None
    return (pd.Timestamp(b) - pd.Timestamp(a)).total_seconds() / 60


left, right = st.columns([2, 3])
with left:
    st.dataframe(times, hide_index=True)
    spans = [
        f"{label} {queries.fmt_minutes(_minutes(*mttx.SPANS[k]))}" for k, label in queries.DURATIONS.items()
    ]
    st.caption(" · ".join(spans))
    st.markdown(f"**Route:** {inc['route'] or 'not routed yet'}")
    # incident roles (seeds 001, 002): the latest assignment of each on the timeline
    roles = incident_roles.roles_from_timeline(
        d.timeline.sort_values("seq").to_dict("records") if not d.timeline.empty else []
    )
    st.markdown(f"**Roles:** {md(incident_roles.summary(roles))}")
    if incident_roles.ic_missing(inc["severity"], inc["status"], roles):
        st.warning(f"{inc['severity']} with no incident commander: assign one (Actions, below).")
    if inc.get("root_cause"):
        st.markdown(f"**Root cause** ({md(inc.get('root_cause_category')) or '—'}): {md(inc['root_cause'])}")
    if inc.get("repeat_of"):
        st.markdown(f"**Repeat of** {inc['repeat_of']}")
    updates = (
        d.documents[d.documents["kind"] == "stakeholder_update"] if not d.documents.empty else d.documents
    )
    # the last update's due time, none once resolved or closed (no "overdue" then)
    due = documents.update_due(str(inc["status"]), updates.to_dict("records"))
    if due is not None and pd.notna(due):
        late = due < dt.datetime.now(dt.UTC).replace(tzinfo=None)
        (st.error if late else st.info)(
            f"Next stakeholder update due {due:%Y-%m-%d %H:%M} UTC" + (" — overdue" if late else "")
        )
    else:
        st.caption("No stakeholder update scheduled.")
with right:
    st.markdown("**Triage**")
    if d.triage.empty:
        st.caption("Not triaged yet.")
    else:
        last = d.triage.iloc[-1]
        conf = "—" if pd.isna(last["confidence"]) else f"{last['confidence']:.0%}"
        st.markdown(
            f"attempt {last['attempt']} · method **{last['method']}**"
            + (f" ({md(last['model'])})" if last.get("model") else "")
            + f" · severity **{last['severity']}** · confidence **{conf}** · recommended "
            f"**{md(last['recommended_action']) or '—'}**"
        )
        if last.get("root_cause_hypothesis"):
            st.markdown(f"Hypothesis: {md(last['root_cause_hypothesis'])}")
        if last.get("rationale"):
            st.markdown(f"Rationale: {md(last['rationale'])}")
        if last.get("error"):
            st.warning(f"Triage error (escalated): {md(last['error'])}")
        if len(d.triage) > 1:
            st.dataframe(
                d.triage[["attempt", "method", "severity", "recommended_action", "confidence", "created_at"]],
                hide_index=True,
            )
    st.markdown("**Remediation**")
    if d.remediations.empty:
        st.caption("No remediation for this incident.")
    else:
        st.dataframe(d.remediations.drop(columns=["output"], errors="ignore"), hide_index=True)

st.markdown("**Timeline**")
if d.timeline.empty:
    st.caption("The timeline is empty.")
else:
    # A plain table: every step readable in full (messages wrap), and selectable text. st.table renders
    # its cells as Markdown, so the text columns are escaped.
    escaped = {c: (lambda x, c=c: x[c].map(md)) for c in ("kind", "source", "actor", "message")}
    st.table(
        d.timeline.assign(occurred_at=lambda x: x["occurred_at"].dt.strftime("%Y-%m-%d %H:%M:%S"), **escaped)[
            ["seq", "occurred_at", "kind", "source", "actor", "message"]
        ].set_index("seq")
    )

# -- human steps: each one a Command in the inbox ------------------------------------------------
# Only what this identity's role allows is offered; actions.send_command checks the role again.
directory = queries.data_dir()
done_states = {"resolved", "closed"}


def _send(command: str, args: dict[str, object] | None = None) -> None:
    """Send one command as `me` and rerun; an error on the page (nothing sent) when refused."""
    try:
        pending.remember(actions.send_command(directory, command, str(incident_id), me, args))
    except (ValueError, actions.Refused) as exc:  # a bad argument, or a role that does not allow it
        st.error(str(exc))
    else:
        st.rerun()


awaiting = (
    d.remediations[d.remediations["status"] == "awaiting_approval"]
    if not d.remediations.empty
    else d.remediations
)
responder = any(auth.can(a) for a in ("acknowledge", "mitigate", "resolve", "retriage"))
approver = auth.can("approve_remediation")
if responder or approver:
    st.markdown("### Actions")
    pending.panel(incident_id)
elif not awaiting.empty:
    st.markdown("### Actions")
if responder:
    c1, c2, c3, c4 = st.columns(4)
    if auth.can("acknowledge") and c1.button(
        "Acknowledge",
        key="ack",
        disabled=inc["acknowledged_at"] is not None and pd.notna(inc["acknowledged_at"]),
    ):
        _send("acknowledge")
    if auth.can("mitigate") and c2.button(
        "Mitigated",
        key="mitigate",
        disabled=inc["status"] in done_states or pd.notna(inc["mitigated_at"]),
    ):
        _send("mitigate")
    if auth.can("resolve") and c3.button("Resolve", key="resolve", disabled=inc["status"] in done_states):
        _send("resolve")
    if auth.can("retriage") and c4.button("Re-run triage", key="retriage"):
        _send("retriage")

if auth.can("assign") and inc["status"] != "closed":
    with st.form("assign_role", clear_on_submit=True):
        st.markdown("**Assign a role**")
        r1, r2 = st.columns(2)
        role = r1.selectbox(
            "Role", list(incident_roles.ROLES), format_func=incident_roles.ROLES.__getitem__, key="role_name"
        )
        person = r2.text_input("Person", key="role_person")
        if st.form_submit_button("Assign"):
            _send("assign", {"role": role, "person": person.strip()})  # refused (no person): nothing sent

# The status page's first post and the stakeholder updates: the communications lead's to approve (the
# fold takes them from nobody else); an admin may override, which the timeline records as such.
COMMS_BUTTONS = {
    "approve_status": "Approve the status page post",
    "approve_updates": "Approve stakeholder updates to Slack",
}
awaited = incident_roles.comms_awaited(
    d.timeline["kind"].tolist() if not d.timeline.empty else [], str(inc["status"]), len(updates)
)
if awaited and any(auth.can(c) for c in awaited):
    offer = incident_roles.comms_offer(roles, me.actor, str(incident_id), auth.can(COMMS_OVERRIDE))
    with st.container(border=True):
        st.markdown("**Communications** — the communications lead approves")
        if offer.reason is not None:
            instead = " As an admin you may approve in their stead: the timeline records an override."
            st.caption(md(offer.reason) + (instead if offer.override else ""))
        for column, command in zip(st.columns(len(awaited)), awaited, strict=True):
            label = COMMS_BUTTONS[command] + (" (admin override)" if offer.override else "")
            if auth.can(command) and column.button(label, key=f"comms_{command}", disabled=offer.disabled):
                _send(command, {"override": True} if offer.override else None)

for rem in awaiting.itertuples():
    with st.container(border=True):
        st.markdown(f"Remediation **{md(rem.action)}** ({md(rem.id)}) is waiting for approval.")
        if not approver:
            st.caption("Only an approver may approve or reject it.")
            continue
        a, r = st.columns(2)
        if a.button(f"Approve {md(rem.action)}", key=f"approve_{rem.id}", type="primary"):
            _send("approve_remediation", {"remediation_id": rem.id})
        if r.button(f"Reject {md(rem.action)}", key=f"reject_{rem.id}"):
            _send("reject_remediation", {"remediation_id": rem.id, "reason": "rejected in the dashboard"})

if auth.can("root_cause") or auth.can("action_item"):
    left, right = st.columns(2)
    with left, st.form("root_cause", clear_on_submit=True):
        st.markdown("**Record the root cause**")
        category = st.selectbox(
            "Category",
            ["deploy", "config", "capacity", "dependency", "code", "infrastructure", "data", "unknown"],
            key="rc_category",
        )
        text = st.text_area("What happened", key="rc_text")
        fix = st.text_input("Fix", key="rc_fix")
        if st.form_submit_button("Record root cause"):
            if not text.strip():
                st.error("The root cause needs a description.")
            else:
                args = {"category": category, "text": text.strip()}
                if fix.strip():
                    args["fix"] = fix.strip()
                _send("root_cause", dict(args))  # refused by the one validator (too long): nothing sent
    with right, st.form("action_item", clear_on_submit=True):
        st.markdown("**Add an action item**")
        title = st.text_input("Title", key="ai_title")
        owner = st.text_input("Owner", key="ai_owner")
        priority = st.selectbox("Priority", ["P1", "P2", "P3"], index=1, key="ai_priority")
        due_date = st.date_input("Due", value=dt.date.today() + dt.timedelta(days=14), key="ai_due")
        if st.form_submit_button("Add action item"):
            if not title.strip():
                st.error("An action item needs a title.")
            else:  # refused by the commands' one validator (e.g. no owner): nothing sent
                _send(
                    "action_item",
                    {
                        "title": title.strip(),
                        "owner": owner.strip() or None,
                        "priority": priority,
                        "due_date": due_date.isoformat(),
                    },
                )

st.markdown("**Action items**")
if d.action_items.empty:
    st.caption("None yet.")
else:
    st.dataframe(d.action_items, hide_index=True)

docs = d.documents
postmortem = docs[docs["kind"] == "postmortem"] if not docs.empty else docs
# the post-mortem's deadline (SEV1/SEV2: 48 h after the resolution): due, overdue or done
pm_owner = timers.postmortem_owner(
    d.timeline.sort_values("seq").to_dict("records") if not d.timeline.empty else []
)
deadline = timers.postmortem_state(
    inc, dt.datetime.now(dt.UTC).replace(tzinfo=None), md(pm_owner) if pm_owner else None
)  # the owner is outside text (an actor's name): shown as text
if deadline:
    st.caption(deadline)
with st.expander("Post-mortem draft", expanded=not postmortem.empty):
    if postmortem.empty:
        st.caption("No post-mortem draft yet (drafted once the incident is resolved).")
    else:
        doc = postmortem.iloc[-1]
        st.caption(
            f"written {doc['created_at']:%Y-%m-%d %H:%M} UTC"
            + (" by the model" if doc["model_written"] else "")
        )
        st.markdown(doc["body"])
others = docs[docs["kind"] != "postmortem"] if not docs.empty else docs
for doc in others.itertuples():
    with st.expander(f"{doc.kind.replace('_', ' ')} · {doc.created_at:%Y-%m-%d %H:%M} UTC"):
        st.markdown(doc.body)
if not d.notifications.empty:
    st.markdown("**Notifications**")
    st.dataframe(d.notifications, hide_index=True)
