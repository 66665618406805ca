"""The numpy dense fold (pipelines/fold_kernels.py) stores exactly what the SQL formula stores.

Whole histories are evaluated by int64 numpy kernels; the SQL formula (`engine.formula_sql`) stays
the definition, used for incremental updates, `status --at` and whenever int64 could overflow. Here
the same store is evaluated both ways and every stored row must be equal, bit for bit. The data is
built to land on the boundaries: bad/valid exactly at an alert threshold (9/625 = 14.4 × 0.1 %),
budget remaining exactly ½ and ¼, idle minutes, missing minutes, SLOs starting at different minutes,
rolling, month and quarter windows and custom alert windows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines import engine, fold_kernels
from pipelines.buckets import write_buckets
from pipelines.catalog import sync_slos
from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow
from pipelines.specs import default_alerts
from pipelines.store import migrate
from pipelines.timeutil import minute_of

# 2026-09-30T20:00Z: the data crosses a month and a quarter boundary four hours later.
START = minute_of(dt.datetime(2026, 9, 30, 20, 0, tzinfo=dt.UTC))
SPAN = 600


def _slo(name: str, window: SloWindow, alerts: tuple[BurnRateAlert, ...] | None = None) -> Slo:
    return Slo(
        service="svc",
        name=name,
        owner="team",
        sli=Sli(name=name, kind="ratio", category="availability"),
        target=0.999,
        window=window,
        alerts=alerts if alerts is not None else default_alerts(window.minutes),
        alerts_custom=alerts is not None,
    )


SLOS = [
    _slo("rolling4h", SloWindow("rolling", 240, "4h")),
    _slo("rolling30d", SloWindow("rolling", 43200, "30d")),
    _slo("month", SloWindow("calendar", 43200, "month", "month")),
    _slo("quarter", SloWindow("calendar", 129600, "quarter", "quarter")),
    _slo(
        "custom",
        SloWindow("rolling", 300, "5h"),
        (BurnRateAlert("page", 45, 5, 14.4), BurnRateAlert("ticket", 240, 15, 2.5)),
    ),
]


def _buckets(seed: int) -> pd.DataFrame:
    """Tie-prone counts: valid 625 or 1250 with bad a multiple of 9 (9/625 = 0.0144 exactly)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, slo in enumerate(SLOS):
        first = START + 7 * i  # a different first minute per SLO
        minutes = np.arange(first, START + SPAN)
        valid = rng.choice([0, 625, 625, 1250], len(minutes))
        bad = np.minimum(rng.choice([0, 0, 0, 9, 18, 90, 625], len(minutes)), valid)
        keep = rng.random(len(minutes)) > 0.05  # missing minutes: no row at all
        frames.append(
            pd.DataFrame(
                {"slo_id": slo.id, "minute": minutes[keep], "good": (valid - bad)[keep], "valid": valid[keep]}
            )
        )
    return pd.concat(frames, ignore_index=True)


TABLES = {
    "checkpoints": "slo_key, minute",
    "alert_intervals": "slo_key, bit, start_minute",
    "policy_transitions": "slo_key, minute",
    "slo_series": "slo_key, minute",
    "engine_state": "slo_key",
}


def _evaluate(
    frame: pd.DataFrame, end: int, raw_sql: str | None = None, progress: list[tuple[int, int]] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect()
    migrate(con)
    keys = sync_slos(con, SLOS)
    write_buckets(con, frame, keys, "test")
    if raw_sql:
        con.execute(raw_sql)
    engine.evaluate(con, SLOS, end, progress=None if progress is None else lambda *p: progress.append(p))
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY {order}").fetchall() for t, order in TABLES.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_numpy_fold_equals_sql_formula(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _buckets(seed)
    end = START + SPAN + 30  # the last half hour has no data
    calls = []
    evaluate_block = fold_kernels.evaluate_block
    monkeypatch.setattr(fold_kernels, "evaluate_block", lambda *a: calls.append(1) or evaluate_block(*a))
    by_numpy = _evaluate(frame, end)
    assert calls, "the numpy kernel was not used"
    # int64 "could overflow": every block goes through the SQL formula instead
    monkeypatch.setattr(fold_kernels, "fits_int64", lambda total, coefficients: False)
    by_sql = _evaluate(frame, end)
    for table in TABLES:
        assert by_numpy[table] == by_sql[table], table
    # the data reaches what is compared: both kinds of alerts, several policy states, open intervals
    assert {row[1] for row in by_numpy["alert_intervals"]} >= {0, 1}
    assert any(row[3] is None for row in by_numpy["alert_intervals"]) or seed != 1
    assert len({row[3] for row in by_numpy["policy_transitions"]}) >= 3
    assert len(by_numpy["slo_series"]) == sum(
        len(range(START + 7 * i + 1, end + 1)) - len([t for t in range(START + 7 * i + 1, end + 1) if t % 15])
        for i in range(len(SLOS))
    )


def test_passes_blocks_and_threads_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several bucket reads (GRID_CELLS), one-SLO blocks and one thread store the same rows as the
    defaults (one read, multi-SLO blocks, a thread pool), and progress reaches every SLO."""
    frame = _buckets(4)
    end = START + SPAN
    default = _evaluate(frame, end)
    monkeypatch.setattr(engine, "GRID_CELLS", 1000)  # about two SLOs' histories per read
    monkeypatch.setattr(engine, "BLOCK_CELLS", 1)
    monkeypatch.setattr(engine, "INSERT_SLOS", 1)
    monkeypatch.setattr(engine, "KERNEL_THREADS", 1)
    progress: list[tuple[int, int]] = []
    assert _evaluate(frame, end, progress=progress) == default
    assert progress[-1] == (len(SLOS), len(SLOS))
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_buckets_of_unknown_keys_are_ignored() -> None:
    """Every SLO is read without a key filter when they are all recomputed: rows of keys that
    belong to no SLO (written around write_buckets) must not land anywhere."""
    frame = _buckets(6)
    end = START + SPAN
    strays = (
        f"INSERT INTO buckets_open VALUES (999, {START + 10}, 0, 500), (3, {START + 10 ** 6}, 0, 7), "
        f"(-4, {START + 20}, 1, 900)"
    )
    assert _evaluate(frame, end, raw_sql=strays) == _evaluate(frame, end)


def test_negative_counts_go_through_the_sql_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket written around write_buckets' checks with a negative count: the int64 bounds no
    longer hold, so that read is evaluated by the SQL formula, and still evaluated."""
    frame = _buckets(5)
    end = START + SPAN
    broken = f"UPDATE buckets_open SET good = valid + 5 WHERE minute = {START + 100}"  # bad = −5
    calls = []
    evaluate_block = fold_kernels.evaluate_block
    monkeypatch.setattr(fold_kernels, "evaluate_block", lambda *a: calls.append(1) or evaluate_block(*a))
    stored = _evaluate(frame, end, raw_sql=broken)
    assert not calls
    assert [row[2] for row in stored["engine_state"]] == [end] * len(SLOS)
    assert len(stored["slo_series"]) == len(_evaluate(frame, end)["slo_series"])


def test_condition_at_exactly_the_threshold_does_not_fire() -> None:
    """bad/valid = 9/625 = 14.4 × 0.1 % over 1h and over 5m is not above the threshold; one more
    bad event in the last minute is."""
    slo = _slo("tie", SloWindow("rolling", 43200, "30d"), (BurnRateAlert("page", 60, 5, 14.4),))
    con = duckdb.connect()
    migrate(con)
    keys = sync_slos(con, [slo])
    hour = pd.DataFrame({"slo_id": slo.id, "minute": range(START, START + 60), "good": 616, "valid": 625})
    write_buckets(con, hour, keys, "test")
    engine.evaluate(con, [slo], START + 60)
    assert con.execute("SELECT count(*) FROM alert_intervals").fetchall() == [(0,)]
    extra = pd.DataFrame({"slo_id": [slo.id], "minute": [START + 60], "good": [615], "valid": [625]})
    write_buckets(con, extra, keys, "test")
    con.execute("UPDATE engine_state SET evaluated_to = NULL")  # the whole history again, densely
    engine.evaluate(con, [slo], START + 61)
    # at T = START + 61 the hour [START+1, START+61) holds 59·9 + 10 = 541 bad of 37,500 (> 540),
    # and the 5 minutes 4·9 + 10 = 46 of 3,125 (> 45)
    assert con.execute("SELECT bit, start_minute, end_minute FROM alert_intervals").fetchall() == [
        (0, START + 61, None)
    ]


def test_fits_int64_bounds_the_largest_product() -> None:
    # 4 · total · coefficient must stay below 2^63
    assert fold_kernels.fits_int64(2**40, [2**20])
    assert not fold_kernels.fits_int64(2**40, [2**21])
    assert fold_kernels.fits_int64(0, [])


def test_pair_scatter_keeps_every_int64_bit_pattern() -> None:
    """The dense read scatters (bad, valid) pairs as complex128 items: a copy of 16 bytes, which
    must keep any int64 (even ones that are NaN bit patterns as doubles) exactly."""
    values = np.array(
        [0x7FF0000000000001, 0x7FF8000000000001, -1, -(2**63), 2**63 - 1, 0, 1, 0x000FFFFFFFFFFFFF],
        dtype=np.int64,
    )
    pairs = np.stack([values, values[::-1]], axis=1).copy()
    grid = np.zeros((20, 2), dtype=np.int64)
    at = np.array([19, 3, 7, 0, 11, 12, 5, 2])
    grid.view(np.complex128).reshape(-1)[at] = pairs.view(np.complex128).reshape(-1)
    assert (grid[at] == pairs).all()
    assert not grid[np.setdiff1d(np.arange(20), at)].any()
