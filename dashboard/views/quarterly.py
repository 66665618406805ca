"""Quarterly review: pick a quarter, read the review, download it as Markdown, HTML or JSON.

The review is `slo report quarterly`'s own (`pipelines.analytics.review.build_review`), rendered here
from the same sections and charts as its Markdown and HTML, so the page and the report never disagree.
The model-written executive summary is not here: the dashboard makes no model calls; `slo report`
adds it when a model key is set.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import freshness, queries, url_state
from pipelines.analytics import render
from pipelines.analytics.quarter import Quarter
from pipelines.outside_text import markdown as md

st.title("Quarterly review")
if not freshness.require_snapshot():
    st.stop()

quarters = queries.read("quarters")
# The review opens on the last full quarter (the current one is not over), as `slo report quarterly` does.
evaluated_to = queries.read("freshness")["evaluated_to"]
last_full = None if evaluated_to is None else Quarter.last_full(evaluated_to.to_pydatetime()).label
default = last_full if last_full in quarters else (quarters[0] if quarters else None)
quarter = url_state.selectbox("Quarter", "quarter", quarters, default=default)
if quarter is None:
    st.info("No data yet: the review needs at least one quarter of metrics or incidents.")
    st.stop()

with st.spinner(f"Building the {quarter} review (the alert backtest replays the quarter's buckets)…"):
    review = queries.read("quarterly_review", quarter, queries.oncall_version())
st.caption(
    f"Data as of {review['as_of']} UTC; compared with {review['previous_quarter']}. "
    f"The figures of `slo report quarterly --quarter {quarter}` (which also adds a model-written summary "
    "when a model key is set)."
)
c1, c2, c3 = st.columns(3)
c1.download_button(
    "Download Markdown",
    render.render_markdown(review),
    file_name=f"review-{quarter}.md",
    mime="text/markdown",
    key="dl_md",
)
# The HTML inlines Plotly (about 5 MB): built only when asked for.
c2.download_button(
    "Download HTML",
    lambda: render.render_html(review),
    file_name=f"review-{quarter}.html",
    mime="text/html",
    key="dl_html",
)
c3.download_button(
    "Download JSON",
    json.dumps(review, indent=2, default=str),
    file_name=f"review-{quarter}.json",
    mime="application/json",
    key="dl_json",
)

charts = render.figures(review)
for title, section in render.blocks(review):
    st.header(title)
    for kind, payload in section:
        if kind == "summary":
            st.info(f"**{md(render.summary_title(payload))}**\n\n{md(payload['text'], multiline=True)}")
        elif kind in ("bullets", "list"):
            st.markdown("\n".join(f"- {md(item)}" for item in payload))
        elif kind == "table":
            header, rows = payload
            if rows:
                # A plain table, as the report prints it: none holds more than a row per SLO, and a grid
                # widget per table (thirteen on the demo's review) cost the browser seconds to draw.
                st.table(pd.DataFrame(rows, columns=header), hide_index=True)
            else:
                st.caption("none")
        elif kind == "text":
            st.markdown(md(payload))
        elif kind == "chart":
            st.plotly_chart(charts[payload], key=f"review_{payload}")
