"""Commands this session sent: pending until the published snapshot shows them applied.

Re-checked every few seconds (a fragment with `run_every`); when one is applied the whole page
reruns so it shows the new state. While any is pending the panel says whether the service that
applies them is running.
"""

from __future__ import annotations

import streamlit as st

from dashboard import actions, queries
from pipelines.outside_text import markdown as md

REFRESH_SECONDS = 2.0
_KEY = "sent_commands"


def remember(sent: actions.Sent) -> None:
    st.session_state.setdefault(_KEY, []).append(sent)


def sent_for(incident_id: str | None) -> list[actions.Sent]:
    items: list[actions.Sent] = st.session_state.get(_KEY, [])
    return [s for s in items if incident_id is None or s.incident_id == incident_id]


def panel(incident_id: str | None = None) -> None:
    """The pending/done list for one incident (or all of this session's commands)."""
    if sent_for(incident_id):
        _panel(incident_id)


@st.fragment(run_every=REFRESH_SECONDS)
def _panel(incident_id: str | None) -> None:
    sent = sent_for(incident_id)
    directory = queries.data_dir()
    keys = tuple((s.dedup_key, s.incident_id, s.command, s.actor, s.sent_at) for s in sent)
    done: dict[str, str | None] = queries.run_query(directory, queries.applied_commands, keys) if keys else {}
    seen: set[str] = st.session_state.setdefault("_applied_seen", set())
    with st.container(border=True):
        st.markdown("**Your actions**")
        for s in sent:
            if s.dedup_key not in done:
                st.markdown(f":orange-badge[pending] — {md(actions.describe(s))}")
            elif done[s.dedup_key] is None:
                st.markdown(f":green-badge[done] — {md(actions.describe(s))}")
            else:
                st.markdown(f":red-badge[rejected] — {md(actions.describe(s))}: {md(done[s.dedup_key])}")
        pending = [s for s in sent if s.dedup_key not in done]
        if pending:
            state = actions.service_state(directory)
            if state.running:
                st.caption(f"{state.detail}; waiting for the next published snapshot …")
            else:
                st.error(f"Not applied yet: {state.detail}.", icon=":material/error:")
    newly = set(done) - seen
    if newly:
        seen.update(newly)
        st.rerun(scope="app")
