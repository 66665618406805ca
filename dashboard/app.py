"""The reliability dashboard: `streamlit run dashboard/app.py` (or `slo dashboard`).

One module per page in `dashboard/views/`. Not `pages/`: Streamlit treats a folder of that name as
an old-style multipage app and serves its files directly, bypassing `st.navigation`. Every page
reads the latest published snapshot through `dashboard/queries.py` and sends actions to the inbox
through `dashboard/actions.py`, as the identity `dashboard/auth.py` establishes first.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts this file's folder on sys.path; the product's packages live one level up.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import auth, queries  # noqa: E402
from pipelines.errors import SnapshotUnreadable  # noqa: E402

PAGES = Path(__file__).resolve().parent / "views"

# Our own icon file, served by Streamlit itself: with a ":material/…:" or emoji page_icon the browser
# fetches the favicon from a CDN, and no page may make a request off the machine.
ICON = Path(__file__).with_name("icon.png")
st.set_page_config(page_title="Reliability", page_icon=str(ICON), layout="wide")
# Who is here, before any page (issue 15): the sign-in page, or the no-role page, stops the script;
# otherwise the sidebar names the person and their role (or says this is the single local user).
auth.require()

nav = st.navigation(
    {
        "Error budgets": [
            st.Page(
                PAGES / "fleet.py", title="Fleet", icon=":material/traffic:", url_path="fleet", default=True
            ),
            st.Page(PAGES / "slo.py", title="SLO detail", icon=":material/show_chart:", url_path="slo"),
        ],
        "Incidents": [
            st.Page(PAGES / "alerts.py", title="Alerts", icon=":material/notifications:", url_path="alerts"),
            st.Page(
                PAGES / "incidents.py", title="Incidents", icon=":material/emergency:", url_path="incidents"
            ),
        ],
        "Reviews": [
            st.Page(
                PAGES / "analytics.py",
                title="Reliability analytics",
                icon=":material/bar_chart:",
                url_path="analytics",
            ),
            st.Page(
                PAGES / "quarterly.py",
                title="Quarterly review",
                icon=":material/calendar_month:",
                url_path="quarterly",
            ),
        ],
    }
)
queries.start_prefetch(str(queries.data_dir()))
with st.sidebar:
    version = queries.snapshot_version(queries.data_dir())
    st.caption(f"Data: `{queries.data_dir()}` · snapshot {version or 'not published yet'}")
try:
    nav.run()
except SnapshotUnreadable as exc:  # one line instead of a traceback; the pipeline's next cycle repairs it
    st.error(str(exc), icon=":material/error:")
    st.stop()
