"""Metric sources: each returns a `Pull` (per-minute `slo_id, minute, good, valid` rows, and the
instant up to which they are complete). No source imports the cycle or the store: the write path
(`pipelines/cycle.py`) takes a Pull and does the writing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Pull:
    """What a source delivered: buckets, and the instant up to which the data is complete."""

    buckets: pd.DataFrame
    end: int  # exclusive bucket bound (epoch minute): SLOs are evaluated up to this instant
    origin: str
    deploys: list[tuple[str, dt.datetime, str, str]] = field(default_factory=list)
    # SLO id → minute up to which this pull is complete, for incremental sources (Prometheus).
    high_water: dict[str, int] = field(default_factory=dict)
