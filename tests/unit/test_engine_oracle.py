"""The engine against an independent, deliberately naive calculation of DESIGN §2.

The oracle sums raw bucket lists for every window at every instant (no cumulative sums, no
checkpoints) and compares with exact fractions. Data has gaps, zero-traffic minutes, bad
stretches, 28-day, 30-day, calendar month and quarter windows and custom alerts, and spans the
end of September 2026 (a month and a quarter boundary).
"""

from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import engine
from pipelines.config import Settings
from pipelines.cycle import open_writer as Writer
from pipelines.cycle import run_cycle
from pipelines.model import STANDARD_BURN_WINDOWS, BurnRateAlert, Sli, Slo, SloWindow
from pipelines.sources import Pull
from pipelines.specs import default_alerts
from pipelines.status import StatusQuery, status
from pipelines.store import Snapshot
from pipelines.timeutil import datetime_of, minute_of

START = minute_of(dt.datetime(2026, 9, 29, 0, 0, tzinfo=dt.UTC))
SPAN = 3 * 1440  # through 2026-10-01T23:59


def _slo(name: str, target: float, window: SloWindow, alerts: tuple[BurnRateAlert, ...] | None = None) -> Slo:
    return Slo(
        service="svc",
        name=name,
        owner="team",
        sli=Sli(name=name, kind="ratio", category="availability"),
        target=target,
        window=window,
        alerts=alerts if alerts is not None else default_alerts(window.minutes),
        alerts_custom=alerts is not None,
    )


SLOS = [
    _slo("rolling30", 0.999, SloWindow("rolling", 43200, "30d")),
    _slo("rolling28", 0.995, SloWindow("rolling", 40320, "28d")),
    _slo("month", 0.99, SloWindow("calendar", 43200, "month", "month")),
    _slo("quarter", 0.999, SloWindow("calendar", 129600, "quarter", "quarter")),
    _slo(
        "custom",
        0.9995,
        SloWindow("rolling", 43200, "30d"),
        (BurnRateAlert("page", 60, 5, 14.4), BurnRateAlert("ticket", 240, 15, 4.0)),
    ),
]


def _make_data(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per SLO: minutes present, good, valid — with gaps, idle minutes and bad stretches."""
    rng = np.random.default_rng(seed)
    out = {}
    for slo in SLOS:
        minutes = np.arange(START, START + SPAN)
        valid = rng.integers(50, 200, SPAN)
        bad = rng.binomial(valid, 0.0005)
        for _ in range(4):  # bad stretches of several shapes
            at = int(rng.integers(0, SPAN - 200))
            length = int(rng.integers(5, 180))
            rate = float(rng.choice([1.0, 0.3, 0.05, 0.01]))
            bad[at : at + length] = rng.binomial(valid[at : at + length], rate)
        idle = rng.random(SPAN) < 0.01
        valid[idle] = 0
        bad[idle] = 0
        keep = rng.random(SPAN) > 0.02  # missing minutes: no row at all
        gap = int(rng.integers(0, SPAN - 90))
        keep[gap : gap + 90] = False
        out[slo.id] = (minutes[keep], (valid - bad)[keep], valid[keep])
    return out


class Oracle:
    """DESIGN §2 computed the slow, obvious way."""

    def __init__(self, slo: Slo, minutes: np.ndarray, good: np.ndarray, valid: np.ndarray):
        self.slo = slo
        self.first = int(minutes.min())
        # every minute of the span, zero where the source had no row; summed slice by slice
        self.good = np.zeros(SPAN, dtype=np.int64)
        self.valid = np.zeros(SPAN, dtype=np.int64)
        self.good[minutes - START] = good
        self.valid[minutes - START] = valid
        self.target = Fraction(repr(slo.target))

    def sums(self, lo: int, hi: int) -> tuple[int, int]:
        lo, hi = max(lo - START, 0), max(hi - START, 0)
        return int(self.good[lo:hi].sum()), int(self.valid[lo:hi].sum())

    def slo_window(self, t: int) -> tuple[int, int]:
        w = self.slo.window
        if w.kind == "rolling":
            return self.sums(t - w.minutes, t)
        last = dt.datetime.fromtimestamp((t - 1) * 60, tz=dt.UTC)
        month = last.month if w.calendar == "month" else 3 * ((last.month - 1) // 3) + 1
        start = dt.datetime(last.year, month, 1, tzinfo=dt.UTC)
        return self.sums(minute_of(start), t)

    def burn(self, t: int, window: int) -> Fraction | None:
        g, v = self.sums(t - window, t)
        return None if v == 0 else (1 - Fraction(g, v)) / (1 - self.target)

    def budget(self, t: int) -> Fraction | None:
        g, v = self.slo_window(t)
        return None if v == 0 else 1 - (v - g) / ((1 - self.target) * v)

    def state(self, t: int) -> str | None:
        r = self.budget(t)
        if r is None:
            return None
        if r > Fraction(1, 2):
            return "normal"
        if r >= Fraction(1, 4):
            return "freeze_review"
        return "reliability_focus" if r > 0 else "exhausted"

    def firing(self, t: int) -> list[int]:
        out = []
        for bit, a in enumerate(self.slo.alerts):
            factor = engine.exact(a.factor)
            bl, bs = self.burn(t, a.long_window), self.burn(t, a.short_window)
            if bl is not None and bs is not None and bl > factor and bs > factor:
                out.append(bit)
        return out


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Oracle]]:
    data = _make_data(seed=7)
    frames = [
        pd.DataFrame({"slo_id": slo_id, "minute": m, "good": g, "valid": v})
        for slo_id, (m, g, v) in data.items()
    ]
    data_dir = tmp_path_factory.mktemp("oracle")
    settings_ = Settings(data_dir=data_dir, specs_dir=data_dir)
    run_cycle(settings_, SLOS, Pull(pd.concat(frames), end=START + SPAN, origin="test"))
    oracles = {s.id: Oracle(s, *data[s.id]) for s in SLOS}
    return data_dir, oracles


INSTANTS = [
    START + 1,
    START + 61,
    START + 1440,  # one day in
    minute_of(dt.datetime(2026, 9, 30, 23, 59, tzinfo=dt.UTC)),
    minute_of(dt.datetime(2026, 10, 1, 0, 0, tzinfo=dt.UTC)),  # the whole of September
    minute_of(dt.datetime(2026, 10, 1, 0, 1, tzinfo=dt.UTC)),  # October's first minute
    minute_of(dt.datetime(2026, 10, 1, 7, 13, tzinfo=dt.UTC)),
    START + SPAN,
]


def _close(a: float | None, b: Fraction | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("t", INSTANTS)
def test_status_equals_oracle(evaluated: tuple[Path, dict[str, Oracle]], t: int) -> None:
    data_dir, oracles = evaluated
    with Snapshot(data_dir).connection() as con:
        rows = status(con, StatusQuery(at=datetime_of(t)))
    assert {r["slo"] for r in rows} == set(oracles)
    for row in rows:
        o = oracles[row["slo"]]
        g, v = o.slo_window(t)
        assert (row["good"], row["valid"]) == (g, v), row["slo"]
        assert _close(row["sli"], None if v == 0 else Fraction(g, v)), row["slo"]
        assert _close(row["budget_remaining"], o.budget(t)), row["slo"]
        assert row["policy_state"] == o.state(t), row["slo"]
        for name, minutes in STANDARD_BURN_WINDOWS.items():
            assert _close(row["burn_rates"][name], o.burn(t, minutes)), (row["slo"], name)
        fired = [(a["severity"], a["long_window"], a["short_window"], a["factor"]) for a in row["alerts"]]
        expected = [
            (o.slo.alerts[b].severity, *_windows(o.slo.alerts[b]), o.slo.alerts[b].factor)
            for b in o.firing(t)
        ]
        assert fired == expected, (row["slo"], t)
        assert row["evaluated_at"] == datetime_of(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _windows(a: BurnRateAlert) -> tuple[str, str]:
    from pipelines.status import duration_text

    return duration_text(a.long_window), duration_text(a.short_window)


def _oracle_intervals(o: Oracle, first: int, end: int) -> set[tuple[int, int, int | None]]:
    out: set[tuple[int, int, int | None]] = set()
    open_at: dict[int, int] = {}
    for t in range(first, end + 1):
        now = set(o.firing(t))
        for bit in list(open_at):
            if bit not in now:
                out.add((bit, open_at.pop(bit), t))
        for bit in now:
            open_at.setdefault(bit, t)
    out.update((bit, s, None) for bit, s in open_at.items())
    return out


def test_alert_intervals_and_transitions_equal_oracle(evaluated: tuple[Path, dict[str, Oracle]]) -> None:
    data_dir, oracles = evaluated
    with Snapshot(data_dir).connection() as con:
        keys = dict(con.execute("SELECT slo_id, slo_key FROM slos").fetchall())
        for slo_id, o in oracles.items():
            first = o.first + 1
            got = set(
                con.execute(
                    "SELECT bit, start_minute, end_minute FROM alert_intervals WHERE slo_key = ?",
                    [keys[slo_id]],
                ).fetchall()
            )
            assert got == _oracle_intervals(o, first, START + SPAN), slo_id
            transitions = con.execute(
                "SELECT minute, from_state, to_state FROM policy_transitions "
                "WHERE slo_key = ? ORDER BY minute",
                [keys[slo_id]],
            ).fetchall()
            expected = []
            previous: str | None = None
            for t in range(first, START + SPAN + 1):
                state = o.state(t)
                if t == first or state != previous:
                    expected.append((t, previous if t != first else None, state))
                previous = state
            assert transitions == expected, slo_id
    # the data really exercises the definitions: both severities fire and budgets change state
    with Snapshot(data_dir).connection() as con:
        severities = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT a.severity FROM alert_intervals JOIN slo_alerts a USING (slo_key, bit)"
            ).fetchall()
        }
        states = {r[0] for r in con.execute("SELECT DISTINCT to_state FROM policy_transitions").fetchall()}
    assert severities == {"page", "ticket"}
    assert {"normal", "exhausted"} <= states


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=120
    ),
    st.sampled_from([5, 30, 60, 120, 360]),
    st.integers(1, 420),
)
def test_window_sums_equal_brute_force(rows: list[tuple[int, int, int]], window: int, probe: int) -> None:
    """Dense fold and checkpoint lookups both equal a brute-force sum, on random data with gaps."""
    buckets: dict[int, tuple[int, int]] = {}
    for minute, a, b in rows:
        buckets[START + minute] = (min(a, b), max(a, b))
    minutes = np.array(sorted(buckets), dtype=np.int64)
    good = np.array([buckets[m][0] for m in minutes], dtype=np.int64)
    valid = np.array([buckets[m][1] for m in minutes], dtype=np.int64)
    first = int(minutes[0])
    end = START + 421
    slo = _slo("h", 0.99, SloWindow("rolling", 240, "4h"))
    es = engine.EngineSlo(key=1, slo=slo)
    dense = engine.dense_window_sums(
        [es], {1: first}, end, np.ones(len(minutes), dtype=np.int64), minutes, good, valid, [window]
    ).ws.to_pandas()
    for _, row in dense.iterrows():
        t = int(row["t"])
        g = sum(buckets.get(m, (0, 0))[0] for m in range(t - window, t))
        v = sum(buckets.get(m, (0, 0))[1] for m in range(t - window, t))
        assert (row[f"g_{window}"], row[f"v_{window}"]) == (g, v)
    # the same through stored checkpoints and raw buckets
    import duckdb

    con = duckdb.connect()
    from pipelines.store import migrate

    migrate(con)
    con.execute(
        "INSERT INTO buckets_open SELECT 1, unnest(?), unnest(?), unnest(?)",
        [minutes.tolist(), good.tolist(), valid.tolist()],
    )
    result = engine.dense_window_sums(
        [es], {1: first}, end, np.ones(len(minutes), dtype=np.int64), minutes, good, valid, [window]
    )
    con.register("ck", result.checkpoints)
    con.execute("INSERT INTO checkpoints SELECT * FROM ck")
    t = START + probe
    if t <= first:
        return
    ws, _ = engine.point_window_sums(con, [es], t, t, [window])
    got = ws.to_pandas().iloc[0]
    g = sum(buckets.get(m, (0, 0))[0] for m in range(t - window, t))
    v = sum(buckets.get(m, (0, 0))[1] for m in range(t - window, t))
    assert (got[f"g_{window}"], got[f"v_{window}"]) == (g, v)
    gs = sum(buckets.get(m, (0, 0))[0] for m in range(t - 240, t))
    assert got["g_slo"] == gs


def test_writer_lock_is_exclusive(tmp_path: Path) -> None:
    from pipelines.errors import StoreError

    with Writer(tmp_path), pytest.raises(StoreError, match="another writer"), Writer(tmp_path):
        pass


@pytest.mark.parametrize(
    ("biggest_valid", "bf_den", "expected"),
    [
        (43_200_000, 2000, "DOUBLE"),  # 4 · 4.32e7 · 2000 ≈ 3.5e14 < 2^53
        (2**41, 2000, "HUGEINT"),  # 4 · 2^41 · 2000 ≈ 1.8e16 > 2^53: doubles could round, integers cannot
    ],
)
def test_exact_type_keeps_products_exact(biggest_valid: int, bf_den: int, expected: str) -> None:
    import pyarrow as pa

    ws = pa.table({"v_5": [1, biggest_valid], "g_5": [0, 0]})
    params = pa.table({"slo_key": [1], "bf_num": [1], "bf_den": [bf_den]})
    assert engine.exact_type(ws, params) == expected


def test_hugeint_products_give_the_same_status(
    evaluated: tuple[Path, dict[str, Oracle]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, _ = evaluated
    at = datetime_of(INSTANTS[-2])
    snapshot = Snapshot(data_dir)
    with snapshot.connection() as con:
        fast = status(con, StatusQuery(at=at))
    monkeypatch.setattr(engine, "exact_type", lambda ws, params: "HUGEINT")
    with snapshot.connection() as con:
        wide = status(con, StatusQuery(at=at))
    assert wide == fast
    assert any(row["alerts"] for row in fast) or any(row["policy_state"] != "normal" for row in fast)
