"""The benchmark's floor: a Streamlit page with nothing of the product in it.

The fleet benchmark's steps, and nothing else: a one-row table, the caption it waits for and a
sidebar filter to open (`BENCH_FLOOR_N` names the row count the caption says). What a fleet page
costs beyond this is the product's; this much is Streamlit's, in the same browser and the same run.
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

st.set_page_config(page_title="Floor", layout="wide")
n = os.environ.get("BENCH_FLOOR_N", "0")
with st.sidebar:
    st.multiselect("Service", ["svc0001"], placeholder="all services")
st.title("Empty page")
st.caption(f"showing {n} of {n} SLOs")
st.dataframe(pd.DataFrame({"slo": ["-"]}), hide_index=True)
