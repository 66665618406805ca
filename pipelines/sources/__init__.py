"""Metric sources: each returns a `Pull` (per-minute `slo_id, minute, good, valid` rows — or event
files the writer's DuckDB reads itself — and the instant up to which they are complete). No source
imports the cycle or the store: the write path (`pipelines/cycle.py`) takes a Pull and does the
writing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import pandas as pd

from pipelines.sources.events_file import EventsFile

# What a source hands the write path: a frame (slo_id, minute, good, valid) from the demo or
# Prometheus, or event files that the writer's DuckDB reads in SQL (a history load never passes
# through Python rows).
BucketSource: TypeAlias = pd.DataFrame | Sequence[EventsFile]


@dataclass
class Pull:
    """What a source delivered: buckets, and the instant up to which the data is complete."""

    buckets: BucketSource
    # Exclusive bucket bound (epoch minute): SLOs are evaluated up to this instant; None: the end of
    # the data (its last minute + 1), known once the write path has read it.
    end: int | None
    origin: str
    deploys: list[tuple[str, dt.datetime, str, str]] = field(default_factory=list)
    # SLO id → minute up to which this pull is complete, for incremental sources (Prometheus).
    high_water: dict[str, int] = field(default_factory=dict)
