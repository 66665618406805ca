"""The set-based impact estimation (issue 13, deliverable 3) against the pure definition it replaces.

`impact.impact_starts` answers many (SLO, alert start) pairs in a few queries, the baseline from the
engine's hourly checkpoints; `estimate_impact_start` (the documented walk, pure Python) is the oracle.
Generated stores cover: no data at all, data only after the alert, gaps (minutes without data, and
minutes with valid = 0), a stretch reaching the 24 h look-back bound, a stretch ending in a quiet run,
elevated minutes only further back than QUIET calm minutes, baselines that raise the threshold, and
stores with checkpoints at every hour, at some hours only, or none. `budgets_consumed` is checked the
same way against the direct sums of its definition.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import astuple

import duckdb
import pandas as pd
import pytest

from pipelines.incidents import impact
from pipelines.store import connect, migrate
from pipelines.timeutil import datetime_of

M0 = 29_000_000  # an epoch minute (2025-02-19), a multiple of 60
SLOS = {1: ("a/x", 0.999), 2: ("a/y", 0.99), 3: ("b/z", 0.9995), 4: ("b/empty", 0.999)}


def _store(seed: int, checkpoint_every: int | None) -> duckdb.DuckDBPyConnection:
    """Buckets over 10 days for SLOs 1–3 (SLO 4 has none), with incidents, gaps and background errors;
    checkpoints (cumulative sums before the hour) every `checkpoint_every` hours, or none."""
    rng = random.Random(seed)
    con = connect()
    migrate(con)
    for key, (slo_id, target) in SLOS.items():
        con.execute(
            """INSERT INTO slos (slo_key, slo_id, service, name, target, window_text, window_kind,
                   window_minutes, budget_minutes, alerts_custom)
               VALUES (?, ?, ?, ?, ?, '30d', 'rolling', 43200, 43.2, FALSE)""",
            [key, slo_id, slo_id.split("/")[0], slo_id.split("/")[1], target],
        )
    rows = []
    for key in (1, 2, 3):
        background = rng.choice([0.0, 0.0005, 0.004])
        bursts = [(rng.randrange(M0, M0 + 14400), rng.randrange(1, 400)) for _ in range(12)]
        if key == 3:  # a stretch longer than the look-back bound, ending at M0 + 9000
            bursts.append((M0 + 9000 - 1700, 1700))
        for m in range(M0, M0 + 14400):
            if rng.random() < 0.03:  # a minute without data
                continue
            valid = 0 if rng.random() < 0.01 else rng.randrange(50, 500)
            bad_share = background
            for start, length in bursts:
                if start <= m < start + length:
                    bad_share = rng.choice([0.02, 0.3, 1.0, 0.0])  # a burst, sometimes with calm minutes
                    if length > 1440:
                        bad_share = 1.0
            bad = min(valid, int(valid * bad_share + (rng.random() < bad_share % 1)))
            rows.append((key, m, valid - bad, valid))
    frame = pd.DataFrame(rows, columns=["slo_key", "minute", "good", "valid"])
    con.register("generated", frame)
    con.execute("INSERT INTO buckets_open SELECT * FROM generated")
    con.unregister("generated")
    if checkpoint_every:
        con.execute(
            """INSERT INTO checkpoints
               SELECT k.slo_key, h.minute, coalesce(sum(b.good), 0), coalesce(sum(b.valid), 0)
               FROM (SELECT DISTINCT slo_key FROM buckets) k,
                    (SELECT range AS minute FROM range(?, ?, ?)) h
               LEFT JOIN buckets b ON b.slo_key = k.slo_key AND b.minute < h.minute
               GROUP BY ALL""",
            [M0 + 60, M0 + 14400, 60 * checkpoint_every],
        )
    return con


def _oracle(con: duckdb.DuckDBPyConnection, slo_id: str | None, alert: dt.datetime) -> tuple[object, ...]:
    """The documented estimate, straight from its definition: the pure walk over directly summed buckets."""
    fallback = (alert, "alert_start", "earliest alert start (no SLI signal before it)")
    row = con.execute("SELECT slo_key, target FROM slos WHERE slo_id = ?", [slo_id]).fetchone()
    if row is None:
        return fallback
    key, target = row
    m0 = int(alert.replace(tzinfo=dt.UTC).timestamp()) // 60
    lo = m0 - impact.LOOKBACK_MINUTES
    bad, valid = con.execute(
        "SELECT coalesce(sum(valid - good), 0), coalesce(sum(valid), 0) FROM buckets "
        "WHERE slo_key = ? AND minute >= ? AND minute < ?",
        [key, lo - impact.BASELINE_MINUTES, lo],
    ).fetchone()
    baseline = bad / valid if valid else 0.0
    buckets = con.execute(
        "SELECT minute, good, valid FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ?",
        [key, lo, m0],
    ).fetchall()
    first, bounded, threshold = impact.estimate_impact_start(buckets, m0, target, baseline)
    if first is None:
        return fallback
    method = (
        f"{slo_id}: first minute of the stretch with bad share > {threshold:.6g} "
        f"(max(2 × baseline {baseline:.6g}, 1 − target)) ending at the alert; "
        f"{m0 - first} min before the alert"
    )
    start = datetime_of(first).replace(tzinfo=None)
    if bounded:
        return (start, "sli_estimate_bounded", method + f" (look-back bound {impact.LOOKBACK_MINUTES} min)")
    return (start, "sli_estimate", method)


def _alerts(con: duckdb.DuckDBPyConnection, seed: int, n: int) -> list[tuple[str | None, dt.datetime]]:
    """Alert starts right after elevated minutes (where the walk has work), anywhere, before and after
    the data, and for SLOs without data or unknown."""
    rng = random.Random(seed)
    elevated = con.execute(
        "SELECT s.slo_id, b.minute FROM buckets b JOIN slos s USING (slo_key) "
        "WHERE b.valid > 0 AND b.good < b.valid * 0.9 ORDER BY 1, 2"
    ).fetchall()
    out: list[tuple[str | None, dt.datetime]] = []
    for _ in range(n):
        pick = rng.random()
        if pick < 0.05:  # at the end of the stretch longer than the look-back bound
            slo, m = "b/z", M0 + 9000 + rng.choice([0, 1, 3])
        elif pick < 0.6 and elevated:
            slo, m = rng.choice(elevated)
            m += rng.choice([1, 1, 2, 5, 11, 30, 200])
        elif pick < 0.85:
            slo, m = rng.choice(["a/x", "a/y", "b/z"]), rng.randrange(M0 - 2000, M0 + 16000)
        else:
            slo, m = rng.choice(["b/empty", "nope/none", None]), rng.randrange(M0, M0 + 14400)
        out.append((slo, datetime_of(m).replace(tzinfo=None)))
    return out


@pytest.mark.parametrize(("seed", "checkpoint_every"), [(1, 1), (2, 1), (3, 5), (4, None)])
def test_set_based_impact_starts_equal_the_pure_walk(seed: int, checkpoint_every: int | None) -> None:
    con = _store(seed, checkpoint_every)
    alerts = _alerts(con, seed, 300)
    got = [astuple(e) for e in impact.impact_starts(con, alerts)]
    want = [_oracle(con, slo, at) for slo, at in alerts]
    assert got == want
    sources = {g[1] for g in got}
    assert sources == {"alert_start", "sli_estimate", "sli_estimate_bounded"}  # every outcome is covered
    # The one-pair form (what a fold without a batch asks) is the same estimate.
    for (slo, at), expected in list(zip(alerts, want, strict=True))[:25]:
        assert astuple(impact.impact_start_for(con, slo, at)) == expected


def test_hand_checked_walks() -> None:
    """Minute by minute, on a store a person can read: target 99.9 %, no baseline errors (threshold
    0.001), 100 valid events a minute."""
    con = connect()
    migrate(con)
    con.execute(
        """INSERT INTO slos (slo_key, slo_id, service, name, target, window_text, window_kind,
               window_minutes, budget_minutes, alerts_custom)
           VALUES (1, 's/a', 's', 'a', 0.999, '30d', 'rolling', 43200, 43.2, FALSE)"""
    )
    alert = M0 + 3000
    bad = {alert - 1: 50, alert - 2: 50, alert - 4: 100, alert - 9: 10}  # elevated; alert - 3 calm
    gap = set(range(alert - 8, alert - 5))  # no data: neither extends nor ends the stretch
    con.executemany(
        "INSERT INTO buckets_open VALUES (1, ?, ?, 100)",
        [(m, 100 - bad.get(m, 0)) for m in range(M0, alert + 10) if m not in gap],
    )
    at = datetime_of(alert).replace(tzinfo=None)
    (est,) = impact.impact_starts(con, [("s/a", at)])
    # Back from alert-1: elevated -1, -2; calm -3; elevated -4; calm -5; gap -6..-8; elevated -9;
    # then calm from -10 on: the 10th calm minute with data ends the walk. First minute: alert - 9.
    assert est.start == datetime_of(alert - 9).replace(tzinfo=None) and est.source == "sli_estimate"
    # An alert 20 minutes later: 11+ calm minutes right before it, so no visible impact.
    (late,) = impact.impact_starts(con, [("s/a", datetime_of(alert + 20).replace(tzinfo=None))])
    assert late.source == "alert_start"


@pytest.mark.parametrize(("seed", "checkpoint_every"), [(5, 1), (6, 3), (7, None)])
def test_budgets_consumed_equal_the_direct_sums(seed: int, checkpoint_every: int | None) -> None:
    con = _store(seed, checkpoint_every)
    con.execute("UPDATE slos SET window_minutes = 4320 WHERE slo_key = 2")  # shorter than some spans
    rng = random.Random(seed)
    requests = []
    for _ in range(200):
        start = rng.randrange(M0 - 1000, M0 + 15000)
        end = start + rng.choice([-3, 0, 1, 9, 120, 3000, 9000])
        slo = rng.choice(["a/x", "a/y", "b/z", "b/empty", "nope/none"])
        requests.append((slo, datetime_of(start).replace(tzinfo=None), datetime_of(end).replace(tzinfo=None)))
    got = impact.budgets_consumed(con, requests)
    want = []
    for slo, start, end in requests:
        row = con.execute(
            "SELECT slo_key, target, window_minutes FROM slos WHERE slo_id = ?", [slo]
        ).fetchone()
        if row is None:
            want.append(None)
            continue
        key, target, window = row
        m_start, m_end = (int(t.replace(tzinfo=dt.UTC).timestamp()) // 60 for t in (start, end))
        if m_end <= m_start:
            want.append(0.0)
            continue
        bad = con.execute(
            "SELECT coalesce(sum(valid - good), 0) FROM buckets WHERE slo_key = ? AND minute >= ? "
            "AND minute < ?",
            [key, m_start, m_end],
        ).fetchone()[0]
        valid = con.execute(
            "SELECT coalesce(sum(valid), 0) FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ?",
            [key, m_end - window, m_end],
        ).fetchone()[0]
        want.append(impact.budget_share(int(bad), int(valid), target))
    assert got == want
    assert any(g and g > 0 for g in got) and None in got and 0.0 in got
    # The one-SLO form agrees as well.
    for (slo, start, end), expected in list(zip(requests, want, strict=True))[:20]:
        assert impact.budget_consumed_for(con, slo, start, end) == expected


@pytest.mark.parametrize(("seed", "checkpoint_every"), [(8, 1), (9, None)])
def test_span_counts_equal_the_direct_sums(seed: int, checkpoint_every: int | None) -> None:
    con = _store(seed, checkpoint_every)
    rng = random.Random(seed)
    for _ in range(60):
        start = rng.randrange(M0 - 500, M0 + 15000)
        end = start + rng.choice([-2, 0, 1, 45, 700, 6000])
        slo = rng.choice(["a/x", "b/z", "b/empty", "nope/none"])
        got = impact.span_counts(
            con, slo, datetime_of(start).replace(tzinfo=None), datetime_of(end).replace(tzinfo=None)
        )
        row = con.execute("SELECT slo_key FROM slos WHERE slo_id = ?", [slo]).fetchone()
        if row is None:
            assert got is None
            continue
        bad, valid = con.execute(
            "SELECT coalesce(sum(valid - good), 0), coalesce(sum(valid), 0) FROM buckets "
            "WHERE slo_key = ? AND minute >= ? AND minute < ?",
            [row[0], start, end],
        ).fetchone()
        assert got == (int(bad), int(valid))


@pytest.mark.parametrize(("seed", "checkpoint_every"), [(10, 1), (11, 5), (12, None)])
def test_remembered_sums_equal_the_direct_sums(seed: int, checkpoint_every: int | None) -> None:
    """`CumulativeSums` (a day of buckets read at a time, then answered from memory) gives what
    `cumulative_sums` gives, point by point and range by range, asked in any order and again."""
    con = _store(seed, checkpoint_every)
    rng = random.Random(seed)
    sums = impact.CumulativeSums()
    for _ in range(4):  # later rounds are answered (partly) from the days read before
        points = [(rng.choice([1, 2, 3, 4]), rng.randrange(M0 - 2000, M0 + 16000)) for _ in range(40)]
        points += [(1, M0), (2, M0 + 1440), (3, M0 + 14399), (1, M0 + 60)]  # day and checkpoint edges
        assert sums(con, points) == impact.cumulative_sums(con, points)
        for key, x in points[:10]:
            good, valid = con.execute(
                "SELECT coalesce(sum(good), 0), coalesce(sum(valid), 0) FROM buckets "
                "WHERE slo_key = ? AND minute < ?",
                [key, x],
            ).fetchone()
            assert sums(con, [(key, x)]) == [(int(good), int(valid))]
        key, start = rng.choice([1, 2, 3]), rng.randrange(M0 - 100, M0 + 14000)
        stop = start + rng.choice([0, 1, 30, 1500, 3000])
        want = con.execute(
            "SELECT minute, good, valid FROM buckets WHERE slo_key = ? AND minute >= ? AND minute < ? "
            "ORDER BY minute",
            [key, start, stop],
        ).fetchall()
        assert sums.rows(con, key, start, stop) == [tuple(map(int, r)) for r in want]
    assert any(v for _, v in sums(con, [(1, M0 + 5000)])) and sums(con, [(4, M0 + 5000)]) == [(0, 0)]
