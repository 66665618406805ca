"""The backtest's replays kept across publishes (issue 16, speed): a reader that remembers them
(`alert_quality.replayed_pages` with `replays`) reuses them while the SLOs, how far each was evaluated
in the quarter and the quarter's buckets are what they were, and computes them again when any changes.
On the hand-checked review store of `tests/support/review_store.py`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from pipelines import partitions
from pipelines.analytics.alert_quality import DEFAULT_SETTINGS, Pages, replayed_pages
from pipelines.analytics.quarter import Quarter
from pipelines.config import Settings
from pipelines.cycle import open_writer, run_cycle
from pipelines.sources import Pull
from pipelines.specs import load_specs
from pipelines.store import Snapshot
from pipelines.timeutil import minute_of
from tests.support.review_store import END, build_review_store

pytestmark = pytest.mark.integration

Q3 = Quarter(2026, 3)
FIRST = DEFAULT_SETTINGS[0].name  # each SLO's own page conditions


def replay(data_dir: Path, replays: dict[str, Pages] | None) -> Pages:
    snap = Snapshot(data_dir)
    try:
        with snap.connection() as con:
            return replayed_pages(con, Q3, DEFAULT_SETTINGS, replays)
    finally:
        snap.close()


def version(data_dir: Path, first: dt.datetime, before: dt.datetime) -> str | None:
    snap = Snapshot(data_dir)
    try:
        with snap.connection() as con:
            return partitions.range_version(con, "buckets", minute_of(first), minute_of(before))
    finally:
        snap.close()


def test_replays_are_reused_while_their_inputs_hold(tmp_path: Path) -> None:
    data, specs = tmp_path / "data", tmp_path / "specs"
    build_review_store(data, specs)
    memory: dict[str, Pages] = {}
    pages = replay(data, memory)
    assert pages == replay(data, None)  # remembering changes nothing in the result
    # the store's two Q3 outages (checkout-api 2026-07-03 10:00-10:20, search 2026-07-05 09:00-09:10),
    # one page each, starting inside its outage
    starts = [(slo, s - minute_of(start)) for (slo, _, s, _), start in zip(
        pages[FIRST], (dt.datetime(2026, 7, 3, 10), dt.datetime(2026, 7, 5, 9)), strict=True
    )]  # fmt: skip
    assert [slo for slo, _ in starts] == ["checkout-api/availability", "search/availability"]
    assert all(0 <= minutes < 10 for _, minutes in starts), starts
    [key] = memory
    # A publish that changes nothing: the same inputs, so what is remembered is what is returned.
    with open_writer(data) as writer:
        writer.publish()
    memory[key] = {FIRST: [("remembered", "x", 0, 1)]}
    assert replay(data, memory) == {FIRST: [("remembered", "x", 0, 1)]}

    # Thirty more minutes, all failed, evaluated: new inputs, computed again, and the new page is there.
    slos, _ = load_specs([specs])
    lo = minute_of(END)
    late = pd.DataFrame(
        {"slo_id": "checkout-api/availability", "minute": range(lo, lo + 30), "good": 0, "valid": 100}
    )
    run_cycle(Settings(data_dir=data, specs_dir=specs), slos, Pull(buckets=late, end=lo + 30, origin="test"))
    again = replay(data, memory)
    assert len(memory) == 2 and again != {FIRST: [("remembered", "x", 0, 1)]}
    assert again == replay(data, None)
    new = [(slo, s) for slo, _, s, _ in again[FIRST] if s >= lo]
    assert len(new) == 1 and new[0][0] == "checkout-api/availability"


def test_the_version_of_a_range_changes_with_its_rows_only(tmp_path: Path) -> None:
    data, specs = tmp_path / "data", tmp_path / "specs"
    build_review_store(data, specs)
    july = version(data, dt.datetime(2026, 7, 1), dt.datetime(2026, 7, 9))
    june = version(data, dt.datetime(2026, 6, 24), dt.datetime(2026, 7, 1))
    assert july is not None and june is not None and july != june
    slos, _ = load_specs([specs])
    lo = minute_of(END)
    more = pd.DataFrame({"slo_id": "search/availability", "minute": [lo], "good": [100], "valid": [100]})
    run_cycle(Settings(data_dir=data, specs_dir=specs), slos, Pull(buckets=more, end=lo + 1, origin="test"))
    assert version(data, dt.datetime(2026, 7, 1), dt.datetime(2026, 7, 9)) != july  # END is 2026-07-08
    assert version(data, dt.datetime(2026, 6, 24), dt.datetime(2026, 7, 1)) == june
