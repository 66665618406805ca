"""Quarterly review: pick a quarter, read the review, download it as Markdown or HTML."""

from __future__ import annotations

import streamlit as st

from dashboard import freshness, queries, review, url_state

st.title("Quarterly review")
if not freshness.require_snapshot():
    st.stop()

quarters = queries.read("quarters")
quarter = url_state.selectbox("Quarter", "quarter", quarters, default=quarters[0] if quarters else None)
if quarter is None:
    st.info("No data yet: the review needs at least one quarter of metrics or incidents.")
    st.stop()

model = review.build(
    quarter,
    queries.read("quarter_slos", quarter),
    queries.read("incident_durations"),
    queries.read("freshness"),
)
markdown = review.to_markdown(model)
c1, c2 = st.columns(2)
c1.download_button(
    "Download Markdown", markdown, file_name=f"review-{quarter}.md", mime="text/markdown", key="dl_md"
)
c2.download_button(
    "Download HTML",
    review.to_html(model),
    file_name=f"review-{quarter}.html",
    mime="text/html",
    key="dl_html",
)
st.markdown(markdown)
