"""Numpy kernels of the dense fold: a block of whole histories evaluated without SQL (DESIGN §2).

`evaluate_block` computes what `engine.formula_sql` computes, but only where the engine stores it:
the policy state at every instant (for transitions), every alert condition at every instant (for
alert intervals), the full evaluation every SERIES_STEP minutes and the cumulative sums every
CHECKPOINT_STEP minutes. It gives exactly the same values as the SQL:

* Threshold comparisons are exact int64 arithmetic on the same fractions (`bad·den > num·valid`),
  after checking that no product can reach 2^63 (`fits_int64`); callers use the SQL otherwise.
* A condition `bad_w·den > num·valid_w` is `X(T) > X(T − w)` for the cumulative sum
  X = den·Σbad − num·Σvalid, so one cumulative array serves a condition's long and short window.
* Floating values (SLI, budget remaining, burn rates) are the same IEEE operations in the same
  order as the SQL (`bad::DOUBLE * bf_den / (valid::DOUBLE * bf_num)`), so they round alike.

A block is `c` SLOs that share their first bucket minute, SLO window and alert windows, as
(c, n) arrays of per-minute bad and valid counts (zero where no bucket was written).
"""

from __future__ import annotations

import calendar as calendar_days
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from pipelines.model import STANDARD_BURN_WINDOWS

CHECKPOINT_STEP = 60  # minutes between stored cumulative sums
SERIES_STEP = 15  # minutes between stored chart points
INT64_LIMIT = 2**63
NULL_STATE = -1


@dataclass(frozen=True)
class BlockShape:
    """What the SLOs of a block share."""

    lo: int  # first bucket minute; instants are T = lo + 1 … end
    end: int
    rolling: int | None  # rolling SLO window in minutes, or None for a calendar window
    calendar: str | None  # "month" or "quarter" when not rolling
    conditions: tuple[tuple[int, int], ...]  # (long, short) window of each alert condition, by bit


@dataclass(frozen=True)
class BlockParams:
    """Per SLO of a block (row order): key, budget fraction and condition thresholds."""

    keys: np.ndarray  # int32 (c,)
    bf_num: np.ndarray  # int64 (c,)
    bf_den: np.ndarray  # int64 (c,)
    num: np.ndarray  # int64 (c, k): bad/valid > num/den fires condition i
    den: np.ndarray  # int64 (c, k)


def fits_int64(biggest_total: int, coefficients: Sequence[int]) -> bool:
    """Every product in the comparisons stays below 2^63: window sums are at most the total
    count, and the largest product is 4 · count · coefficient (state: 4B ≤ 3A)."""
    return 4 * biggest_total * max(max(coefficients, default=1), 1) < INT64_LIMIT


@dataclass
class BlockResult:
    checkpoints: dict[str, np.ndarray]
    series: dict[str, np.ndarray]  # values; f"{name}_null" masks for nullable columns
    transitions: dict[str, np.ndarray]
    intervals: dict[str, np.ndarray]


def _cumulative(x: np.ndarray) -> np.ndarray:
    """C with C[:, 0] = 0 and C[:, j + 1] = Σ x[:, ≤ j]: the sum over bucket j is at instant j."""
    out = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.int64)
    out[:, 0] = 0
    np.cumsum(x, axis=1, out=out[:, 1:])
    return out


def _window(cz: np.ndarray, w: int, out: np.ndarray) -> np.ndarray:
    """out[:, j] = cz[:, j + 1] − cz[:, max(j + 1 − w, 0)]: the sum over the w buckets up to j."""
    n = out.shape[1]
    if w >= n:
        out[:] = cz[:, 1:]
    else:
        out[:, :w] = cz[:, 1 : w + 1]
        np.subtract(cz[:, w + 1 :], cz[:, 1 : n + 1 - w], out=out[:, w:])
    return out


def _exceeds(x: np.ndarray, w: int, out: np.ndarray) -> np.ndarray:
    """out[:, j] = x[:, j + 1] > x[:, max(j + 1 − w, 0)] (x[:, 0] is 0): the window sum is > 0."""
    n = out.shape[1]
    if w >= n:
        np.greater(x[:, 1:], x[:, :1], out=out)
    else:
        np.greater(x[:, 1 : w + 1], x[:, :1], out=out[:, :w])
        np.greater(x[:, w + 1 :], x[:, 1 : n + 1 - w], out=out[:, w:])
    return out


def _every(cz: np.ndarray, j0: int, step: int, w: int) -> np.ndarray:
    """Window sums over w buckets at instants j0, j0 + step, … (strided views, no gathers)."""
    out = cz[:, j0 + 1 :: step].copy()  # cz[:, j + 1]
    m = out.shape[1]
    start = j0 + 1 - w  # lagged index of the first column; below 0 it is cz[:, 0] = 0
    skip = max(0, -(start // step)) if start < 0 else 0
    if skip < m:
        out[:, skip:] -= cz[:, start + skip * step :: step][:, : m - skip]
    return out


def _ratio(bad: np.ndarray, valid: np.ndarray, bf_den: np.ndarray, bf_num: np.ndarray) -> np.ndarray:
    """(bad::DOUBLE * bf_den) / (valid::DOUBLE * bf_num), as in formula_sql (NaN where valid = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (bad.astype(np.float64) * bf_den.astype(np.float64)[:, None]) / (
            valid.astype(np.float64) * bf_num.astype(np.float64)[:, None]
        )


def period_start(
    minutes: np.ndarray, calendar: str, tz: str | None = None, start: str | None = None
) -> np.ndarray:
    """Start (epoch minute) of the calendar period containing each minute.

    `calendar` is the unit (month, quarter, day, week, year) or a whole `SloWindow.period_key`
    (`month|Europe/Berlin|2026-01-15T09:00`). Periods are cut in the IANA time zone `tz` (UTC when
    None) and anchored at the local `start` (`YYYY-MM-DDTHH:MM`; None: days and months at 00:00,
    weeks on Monday, quarters in January/April/July/October, years on 1 January).
    """
    if "|" in calendar:
        calendar, key_tz, key_start = calendar.split("|", 2)
        tz, start = tz or key_tz or None, start or key_start or None
    if tz in (None, "UTC") and start is None and calendar in ("month", "quarter"):
        months = minutes.astype("datetime64[m]").astype("datetime64[M]").astype(np.int64)
        if calendar == "quarter":
            months = months - (months % 3)
        return months.astype("datetime64[M]").astype("datetime64[m]").astype(np.int64)
    if calendar not in _PERIOD_STEPS:
        raise ValueError(f"unknown calendar window {calendar!r}")
    minutes = np.asarray(minutes, dtype=np.int64)
    if minutes.size == 0:
        return minutes.copy()
    bounds = _period_bounds(calendar, tz or "UTC", start, int(minutes.min()), int(minutes.max()))
    return bounds[np.searchsorted(bounds, minutes, side="right") - 1]


# minutes after a period's start that always fall in the next period (1.2 × the longest period
# of the unit, under two of its shortest: DST days of 23 h, February, short quarters)
CALENDAR_NEXT_PERIOD = {
    "day": 29 * 60,
    "week": 8 * 1440 + 600,
    "month": 36 * 1440,
    "quarter": 108 * 1440,
    "year": 438 * 1440,
}

# unit → (months, days) per period
_PERIOD_STEPS = {"day": (0, 1), "week": (0, 7), "month": (1, 0), "quarter": (3, 0), "year": (12, 0)}


def _period_bounds(calendar: str, tz: str, start: str | None, lo: int, hi: int) -> np.ndarray:
    """Every period start (epoch minutes, ascending) from the last one at or before `lo` to the last
    one at or before `hi`: local wall-clock starts `start + k periods`, each turned into UTC."""
    zone = ZoneInfo(tz)
    months, days = _PERIOD_STEPS[calendar]
    if start is not None:
        anchor = datetime.fromisoformat(start)
    else:
        anchor = datetime(2000, 1, 3) if calendar == "week" else datetime(2000, 1, 1)

    def local(k: int) -> datetime:
        if days:
            return anchor + timedelta(days=days * k)
        index = anchor.month - 1 + months * k
        year, month = anchor.year + index // 12, index % 12 + 1
        day = min(anchor.day, calendar_days.monthrange(year, month)[1])
        return anchor.replace(year=year, month=month, day=day)

    def utc_minute(k: int) -> int:
        return int(local(k).replace(tzinfo=zone).timestamp()) // 60

    first = datetime.fromtimestamp(lo * 60, zone).replace(tzinfo=None)
    if days:
        k = (first - anchor).days // days
    else:
        k = ((first.year - anchor.year) * 12 + first.month - anchor.month) // months
    k -= 1
    while utc_minute(k) > lo:
        k -= 1
    while utc_minute(k + 1) <= lo:
        k += 1
    bounds = [utc_minute(k)]
    while (following := utc_minute(k + 1)) <= hi:
        bounds.append(following)
        k += 1
    return np.array(bounds, dtype=np.int64)


def evaluate_block(
    bad: np.ndarray, valid: np.ndarray, shape: BlockShape, params: BlockParams
) -> BlockResult | None:
    """Everything stored for a block's instants (lo, end], or None when int64 could overflow.

    `bad` and `valid` are (c, n) int64 arrays with n = end − lo, non-negative.
    """
    c, n = bad.shape
    cb = _cumulative(bad)
    cv = _cumulative(valid)
    biggest = max(int(cb[:, -1].max()), int(cv[:, -1].max()))
    coefs = [int(a.max()) for a in (params.bf_num, params.bf_den, params.num, params.den) if a.size]
    if not fits_int64(biggest, coefs):
        return None
    col = np.arange(n, dtype=np.int64)

    # -- Policy state at every instant, from the SLO window (NULL_STATE when it holds no events).
    # B = bad·bf_den, A = valid·bf_num: r > ½ ⇔ 2B < A; ¼ ≤ r ≤ ½ ⇔ 4B ≤ 3A; r > 0 ⇔ B < A;
    # nested (A > 0), so state = [2B ≥ A] + [4B > 3A] + [B ≥ A].
    bs = np.empty((c, n), dtype=np.int64)
    vs = np.empty((c, n), dtype=np.int64)
    if shape.rolling is not None:
        _window(cb, shape.rolling, bs)
        _window(cv, shape.rolling, vs)
    else:
        back = np.maximum(period_start(shape.lo + col, shape.calendar or "month") - shape.lo, 0)
        np.subtract(cb[:, 1:], cb[:, back], out=bs)
        np.subtract(cv[:, 1:], cv[:, back], out=vs)
    big_b = np.multiply(bs, params.bf_den[:, None])
    big_a = np.multiply(vs, params.bf_num[:, None])
    tmp = np.multiply(big_b, 2)
    state = np.greater_equal(tmp, big_a).view(np.int8)
    np.multiply(big_b, 4, out=tmp)
    three_a = np.multiply(big_a, 3)
    state += np.greater(tmp, three_a)
    state += np.greater_equal(big_b, big_a)
    np.putmask(state, vs == 0, NULL_STATE)
    del big_b, big_a, three_a

    # -- Alert conditions at every instant: X = den·Σbad − num·Σvalid, firing ⇔ X grew over both windows.
    fires: list[np.ndarray] = []
    x = np.empty((c, n + 1), dtype=np.int64)
    y = np.empty((c, n + 1), dtype=np.int64)
    for i, (long_w, short_w) in enumerate(shape.conditions):
        np.multiply(cb, params.den[:, i : i + 1], out=x)
        np.multiply(cv, params.num[:, i : i + 1], out=y)
        np.subtract(x, y, out=x)
        fire = _exceeds(x, long_w, np.empty((c, n), dtype=np.bool_))
        fire &= _exceeds(x, short_w, np.empty((c, n), dtype=np.bool_))
        fires.append(fire)
    del x, y, tmp

    keys = params.keys
    # -- Policy transitions (the first known state included), with the budget remaining then.
    rows, cols = np.divmod(np.flatnonzero(state[:, 1:] != state[:, :-1]), max(n - 1, 1))
    cols += 1
    first_rows = np.flatnonzero(state[:, 0] != NULL_STATE)
    rows = np.concatenate((first_rows, rows))
    cols = np.concatenate((np.zeros(len(first_rows), dtype=cols.dtype), cols))
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    to_state = state[rows, cols]
    from_state = np.where(cols > 0, state[rows, np.maximum(cols - 1, 0)], NULL_STATE).astype(np.int8)
    v_at = vs[rows, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        remaining = 1 - (bs[rows, cols].astype(np.float64) * params.bf_den[rows].astype(np.float64)) / (
            v_at.astype(np.float64) * params.bf_num[rows].astype(np.float64)
        )
    transitions = {
        "slo_key": keys[rows],
        "minute": (shape.lo + 1 + cols).astype(np.int32),
        "from_state": from_state,
        "to_state": to_state,
        "budget_remaining": remaining,
        "budget_remaining_null": v_at == 0,
    }

    # -- Alert intervals [start, end): runs of firing instants; a run reaching `end` stays open.
    iv_key, iv_bit, iv_start, iv_end = [], [], [], []
    edges = np.empty((c, n + 1), dtype=np.int8)
    for bit, fire in enumerate(fires):
        # +1 where a run starts at column j, −1 where the run before column j ended
        f8 = fire.view(np.int8)
        edges[:, 0] = f8[:, 0]
        np.subtract(f8[:, 1:], f8[:, :-1], out=edges[:, 1:n])
        np.negative(f8[:, n - 1], out=edges[:, n])
        flat = np.flatnonzero(edges)
        erow, ecol = np.divmod(flat, n + 1)
        up = edges.ravel()[flat] > 0
        iv_key.append(keys[erow[up]])
        iv_bit.append(np.full(int(up.sum()), bit, dtype=np.int32))
        iv_start.append(shape.lo + 1 + ecol[up])
        iv_end.append(shape.lo + 1 + ecol[~up])
    iv_end_arr = np.concatenate(iv_end) if iv_end else np.zeros(0, dtype=np.int64)
    intervals = {
        "slo_key": np.concatenate(iv_key) if iv_key else np.zeros(0, dtype=np.int32),
        "bit": np.concatenate(iv_bit) if iv_bit else np.zeros(0, dtype=np.int32),
        "start_minute": np.concatenate(iv_start).astype(np.int32) if iv_start else np.zeros(0, np.int32),
        "end_minute": iv_end_arr.astype(np.int32),
        "end_minute_null": iv_end_arr > shape.end,
    }

    # -- Chart series: the full evaluation at instants T ≡ 0 (mod SERIES_STEP), as strided views.
    j0 = (-(shape.lo + 1)) % SERIES_STEP
    minutes = (shape.lo + 1 + col[j0::SERIES_STEP]).astype(np.int32)
    series: dict[str, np.ndarray] = {
        "slo_key": np.repeat(keys, len(minutes)),
        "minute": np.tile(minutes, c),
    }
    b_slo, v_slo = bs[:, j0::SERIES_STEP], vs[:, j0::SERIES_STEP]
    slo_null = (v_slo <= 0).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        series["sli"] = ((v_slo - b_slo).astype(np.float64) / v_slo.astype(np.float64)).ravel()
    series["sli_null"] = slo_null
    series["budget_remaining"] = (1 - _ratio(b_slo, v_slo, params.bf_den, params.bf_num)).ravel()
    series["budget_remaining_null"] = slo_null
    series["policy_state"] = state[:, j0::SERIES_STEP].ravel()
    for name, w in STANDARD_BURN_WINDOWS.items():
        b_w, v_w = _every(cb, j0, SERIES_STEP, w), _every(cv, j0, SERIES_STEP, w)
        series[f"burn_{name}"] = _ratio(b_w, v_w, params.bf_den, params.bf_num).ravel()
        series[f"burn_{name}_null"] = (v_w <= 0).ravel()
    firing = np.zeros((c, len(minutes)), dtype=np.int32)
    for bit, fire in enumerate(fires):
        firing |= fire[:, j0::SERIES_STEP].astype(np.int32) << bit
    series["firing"] = firing.ravel()

    # -- Hourly checkpoints C(h) = Σ buckets < h for every hour boundary h in (lo, end].
    h0 = (-(shape.lo + 1)) % CHECKPOINT_STEP
    hours = (shape.lo + 1 + col[h0::CHECKPOINT_STEP]).astype(np.int32)
    cum_valid = cv[:, h0 + 1 :: CHECKPOINT_STEP]
    checkpoints = {
        "slo_key": np.repeat(keys, len(hours)),
        "minute": np.tile(hours, c),
        "cum_good": (cum_valid - cb[:, h0 + 1 :: CHECKPOINT_STEP]).ravel(),
        "cum_valid": cum_valid.ravel(),
    }
    return BlockResult(checkpoints, series, transitions, intervals)
