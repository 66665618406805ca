"""Known answers for the SLO engine (DESIGN §2), each table row a case a reader can check by hand.

Every scenario goes through the real pipeline cycle (`run_cycle`: specs → buckets → engine →
published snapshot) and is read back the way users read it: `status` at an instant, or the stored
`alert_intervals`, `policy_transitions` and `slo_alerts` tables.

Conventions used in the comments: minutes are epoch minutes; bucket m is [m, m+1); the evaluation at
instant T covers the buckets [T−W, T). With steady traffic of v events a minute, k bad minutes in a
window of W minutes make burn = (k/W) / (1 − target).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipelines.config import Settings
from pipelines.cycle import CycleReport, run_cycle
from pipelines.model import Slo
from pipelines.sources import Pull
from pipelines.specs import load_specs
from pipelines.status import StatusQuery, status
from pipelines.store import Snapshot

# ---------------------------------------------------------------------------------------------
# Scenario helpers

# 2026-06-01T00:00Z as an epoch minute: a whole hour, so hourly checkpoints line up with it.
BASE = int(dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp()) // 60

POLICY_TEXT = {
    "normal": "ship features",
    "freeze_review": "feature freeze review with the EM",
    "reliability_focus": "all hands on reliability",
    "exhausted": "freeze all non-critical deploys",
}


def minute_of(text: str) -> int:
    """Epoch minute of an ISO 8601 UTC time written without zone, e.g. '2026-09-30T23:59'."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()) // 60


def spec_yaml(service: str, slos: Sequence[Mapping[str, Any]]) -> str:
    """A native spec for one service whose SLOs all use one good/valid SLI, `availability`."""
    document = {
        "service": service,
        "owner": "team",
        "slis": {"availability": {"good": "sum(rate(ok_total[5m]))", "valid": "sum(rate(all_total[5m]))"}},
        "slos": [{"sli": "availability", **slo} for slo in slos],
        "error_budget_policy": dict(POLICY_TEXT),
    }
    return yaml.safe_dump(document, sort_keys=False)


def traffic(slo_id: str, start: int, stop: int, valid: int, bad: int = 0) -> pd.DataFrame:
    """One bucket per minute in [start, stop), each with `valid` events of which `bad` failed."""
    n = max(stop - start, 0)
    return pd.DataFrame(
        {
            "slo_id": [slo_id] * n,
            "minute": list(range(start, stop)),
            "good": [valid - bad] * n,
            "valid": [valid] * n,
        }
    )


def buckets(rows: Iterable[tuple[str, int, int, int]]) -> pd.DataFrame:
    """Buckets from (slo_id, minute, good, valid) tuples."""
    return pd.DataFrame(list(rows), columns=["slo_id", "minute", "good", "valid"])


def concat(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


@dataclass
class Scenario:
    """A data and a specs directory under `root`, driven through the pipeline cycle.

    Reads go through one `Snapshot`, as the dashboard's would: it re-attaches after each publish.
    """

    root: Path
    snapshot: Snapshot | None = None

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.root / "data", specs_dir=self.root / "specs")

    def specs(self, *documents: str) -> list[Slo]:
        """Write each YAML document as a spec file and load the directory as `slo run` does."""
        self.settings.specs_dir.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(documents):
            (self.settings.specs_dir / f"spec{i}.yaml").write_text(text, encoding="utf-8")
        self.slos, _warnings = load_specs([self.settings.specs_dir])
        return self.slos

    def run(self, frame: pd.DataFrame, end: int) -> CycleReport:
        return run_cycle(self.settings, self.slos, Pull(buckets=frame, end=end, origin="test"))

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        if self.snapshot is None:
            self.snapshot = Snapshot(self.settings.data_dir)
        with self.snapshot.connection() as con:
            return con.execute(sql, list(params)).fetchall()

    def status(self, minute: int | None = None) -> dict[str, dict[str, Any]]:
        """`slo status --at <minute>` (latest when None) as slo id → row."""
        when = None if minute is None else dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC)
        if self.snapshot is None:
            self.snapshot = Snapshot(self.settings.data_dir)
        with self.snapshot.connection() as con:
            return {row["slo"]: row for row in status(con, StatusQuery(at=when))}

    def intervals(self, slo_id: str) -> list[tuple[int, int, int | None]]:
        """Stored alert intervals of one SLO as (bit, start_minute, end_minute)."""
        return [
            (bit, start, end)
            for bit, start, end in self.query(
                """SELECT bit, start_minute, end_minute FROM alert_intervals JOIN slos USING (slo_key)
                   WHERE slo_id = ? ORDER BY bit, start_minute""",
                [slo_id],
            )
        ]


@pytest.fixture(scope="module")
def new_scenario(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Scenario]:
    return lambda: Scenario(tmp_path_factory.mktemp("scenario"))


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path)


# ---------------------------------------------------------------------------------------------
# Window boundaries: one bad bucket at minute m is inside the window [T−W, T) for T = m+1 … m+W.

M_BAD = BASE + 90  # 100 valid events every minute of [BASE, BASE+180); 30 of them bad at M_BAD


@pytest.fixture(scope="module")
def one_bad_bucket(new_scenario: Callable[[], Scenario]) -> Scenario:
    sc = new_scenario()
    sc.specs(spec_yaml("edge", [{"target": "99%", "window": "30d"}]))
    clean = traffic("edge/availability", BASE, BASE + 180, valid=100)
    clean.loc[clean["minute"] == M_BAD, "good"] = 70
    sc.run(clean, BASE + 180)
    return sc


@pytest.mark.parametrize(
    ("window", "t_minus_m", "burn"),
    [
        # 5m: 30 bad of 5·100 = 6 % → 6 / 1 % = 6.0
        ("5m", 0, 0.0),
        ("5m", 1, 6.0),
        ("5m", 5, 6.0),
        ("5m", 6, 0.0),
        # 30m: 30 of 3000 = 1 % → 1.0
        ("30m", 0, 0.0),
        ("30m", 1, 1.0),
        ("30m", 30, 1.0),
        ("30m", 31, 0.0),
        # 1h: 30 of 6000 = 0.5 % → 0.5
        ("1h", 0, 0.0),
        ("1h", 1, 0.5),
        ("1h", 60, 0.5),
        ("1h", 61, 0.0),
    ],
)
def test_bucket_is_in_window_from_t_plus_1_to_t_plus_w(
    one_bad_bucket: Scenario, window: str, t_minus_m: int, burn: float
) -> None:
    row = one_bad_bucket.status(M_BAD + t_minus_m)["edge/availability"]
    assert row["burn_rates"][window] == pytest.approx(burn)


# ---------------------------------------------------------------------------------------------
# Budgets and policy states


# (name, target, window, time-based budget in minutes = (1 − target) × window)
BUDGET_CASES = [
    ("a", "99.95%", "30d", 21.6),  # 0.0005 × 43 200
    ("b", "99%", "30d", 432.0),  # 0.01 × 43 200
    ("c", "99.9%", "28d", 40.32),  # 0.001 × 40 320
    ("d", "99.9%", "month", 43.2),  # nominal month = 30 d
    ("e", "99.5%", "quarter", 648.0),  # 0.005 × 129 600 (nominal quarter = 90 d)
    ("f", "90%", "7d", 1008.0),  # 0.1 × 10 080
]


@pytest.fixture(scope="module")
def budget_store(new_scenario: Callable[[], Scenario]) -> Scenario:
    sc = new_scenario()
    sc.specs(spec_yaml("budget", [{"name": n, "target": t, "window": w} for n, t, w, _ in BUDGET_CASES]))
    # one clean minute of 100 events each: the whole budget is left
    sc.run(buckets((f"budget/{n}", BASE, 100, 100) for n, *_ in BUDGET_CASES), BASE + 1)
    return sc


@pytest.mark.parametrize(
    ("name", "target", "window", "budget_minutes"),
    BUDGET_CASES,
    ids=[f"{t} {w}" for _, t, w, _ in BUDGET_CASES],
)
def test_time_based_budget(
    budget_store: Scenario, name: str, target: str, window: str, budget_minutes: float
) -> None:
    (slo,) = [s for s in budget_store.slos if s.id == f"budget/{name}"]
    assert slo.budget_minutes == pytest.approx(budget_minutes)
    row = budget_store.status()[f"budget/{name}"]
    assert (row["target"], row["window"]) == (pytest.approx(float(target[:-1]) / 100), window)
    assert row["budget_minutes"] == pytest.approx(budget_minutes)
    assert row["budget_remaining"] == 1.0
    assert row["budget_remaining_minutes"] == pytest.approx(budget_minutes)


# (name, target, valid events a minute for 50 minutes, bad events in total, budget_remaining, state)
POLICY_CASES = [
    ("none-bad", "99%", 200, 0, 1.0, "normal"),  # 10 000 valid, 100 allowed
    ("above-half", "99%", 200, 49, 0.51, "normal"),
    ("half", "99%", 200, 50, 0.5, "freeze_review"),
    ("quarter", "99%", 200, 75, 0.25, "freeze_review"),
    ("below-quarter", "99%", 200, 76, 0.24, "reliability_focus"),
    ("one-percent-left", "99%", 200, 99, 0.01, "reliability_focus"),
    ("zero", "99%", 200, 100, 0.0, "exhausted"),
    ("overspent", "99%", 200, 150, -0.5, "exhausted"),
    ("half-9995", "99.95%", 400, 5, 0.5, "freeze_review"),  # 20 000 valid, 10 allowed
    ("quarter-999", "99.9%", 2000, 75, 0.25, "freeze_review"),  # 100 000 valid, 100 allowed
    ("zero-999", "99.9%", 2000, 100, 0.0, "exhausted"),
]


@pytest.fixture(scope="module")
def policy_store(new_scenario: Callable[[], Scenario]) -> Scenario:
    sc = new_scenario()
    sc.specs(spec_yaml("policy", [{"name": name, "target": target} for name, target, *_ in POLICY_CASES]))
    frames = []
    for name, _target, per_minute, bad, *_ in POLICY_CASES:
        frame = traffic(f"policy/{name}", BASE, BASE + 50, valid=per_minute)
        frame.loc[0, "good"] = per_minute - bad  # every bad event in the first minute
        frames.append(frame)
    sc.run(concat(*frames), BASE + 50)
    return sc


@pytest.mark.parametrize(
    ("name", "budget_remaining", "state"),
    [(name, remaining, state) for name, _t, _v, _b, remaining, state in POLICY_CASES],
    ids=[case[0] for case in POLICY_CASES],
)
def test_policy_state_boundaries(
    policy_store: Scenario, name: str, budget_remaining: float, state: str
) -> None:
    row = policy_store.status(BASE + 50)[f"policy/{name}"]
    assert row["budget_remaining"] == pytest.approx(budget_remaining, abs=1e-12)
    assert row["policy_state"] == state
    assert row["policy_text"] == POLICY_TEXT[state]


def test_policy_transitions_keep_their_time(scenario: Scenario) -> None:
    # 99 %, 100 valid a minute, clean for 100 minutes, then 10 bad events a minute. At T = 100 + k,
    # 10k bad of (100 + k)·100 valid: r = 1 − 10k / (100 + k). r ≤ ½ from k = 6 (60/106 → 0.434;
    # k = 5: 1 − 50/105 = 0.524); r < ¼ from k = 9 (1 − 90/109 = 0.174; k = 8: 1 − 80/108 = 0.259);
    # r ≤ 0 from k = 12 (1 − 120/112 < 0; k = 11: 1 − 110/111 > 0).
    scenario.specs(spec_yaml("shop", [{"target": "99%"}]))
    scenario.run(
        concat(
            traffic("shop/availability", BASE, BASE + 100, valid=100),
            traffic("shop/availability", BASE + 100, BASE + 120, valid=100, bad=10),
        ),
        BASE + 120,
    )
    assert scenario.query(
        """SELECT minute - ?, from_state, to_state FROM policy_transitions ORDER BY minute""", [BASE]
    ) == [
        (1, None, "normal"),
        (106, "normal", "freeze_review"),
        (109, "freeze_review", "reliability_focus"),
        (112, "reliability_focus", "exhausted"),
    ]
    row = scenario.status(BASE + 110)["shop/availability"]
    assert row["policy_state"] == "reliability_focus"
    assert row["policy_state_since"] == "2026-06-01T01:49:00Z"  # BASE + 109


# ---------------------------------------------------------------------------------------------
# Alert onsets and ends with the default multiwindow alerts (bits: 0 page 1h/5m, 1 page 6h/30m,
# 2 ticket 1d/2h, 3 ticket 3d/6h). Two days of clean history, then trouble from minute M.

M = BASE + 2880
E = M + 30  # the full outage lasts [M, E)
ONSET_END = E + 400


@pytest.fixture(scope="module")
def outages(new_scenario: Callable[[], Scenario]) -> Scenario:
    sc = new_scenario()
    sc.specs(
        spec_yaml(
            "onset",
            [
                {"name": "outage-999", "target": "99.9%", "window": "30d"},
                {"name": "errors-99", "target": "99%", "window": "30d"},
                {"name": "half-99-30d", "target": "99%", "window": "30d"},
                {"name": "half-99-28d", "target": "99%", "window": "28d"},
            ],
        )
    )
    sc.run(
        concat(
            # 1000/min; every event fails during [M, E), then clean again
            traffic("onset/outage-999", BASE, M, valid=1000),
            traffic("onset/outage-999", M, E, valid=1000, bad=1000),
            traffic("onset/outage-999", E, ONSET_END, valid=1000),
            # 100/min; every event fails from M on
            traffic("onset/errors-99", BASE, M, valid=100),
            traffic("onset/errors-99", M, ONSET_END, valid=100, bad=100),
            # 100/min; half the events fail from M on, under a 30d and a 28d window
            traffic("onset/half-99-30d", BASE, M, valid=100),
            traffic("onset/half-99-30d", M, ONSET_END, valid=100, bad=50),
            traffic("onset/half-99-28d", BASE, M, valid=100),
            traffic("onset/half-99-28d", M, ONSET_END, valid=100, bad=50),
        ),
        ONSET_END,
    )
    return sc


@pytest.mark.parametrize(
    ("slo", "expected"),
    [
        # 99.9 %, 1000/min, full outage [M, E):
        #   bit 0: 1000 bad of 60 000 in 1h = 16.7 > 14.4 at M+1 (5m: 200);  ends when the 5m window
        #          has no outage minute: E+5.
        #   bit 1: 6h > 6 ⇔ bad > 0.006·360 000 = 2160 ⇔ 3 bad minutes: M+3;  30m empties at E+30.
        #   bit 2: 1d > 3 ⇔ bad > 0.003·1 440 000 = 4320 ⇔ 5 bad minutes: M+5;  2h empties at E+120.
        #   bit 3: 3d holds (2880+k)·1000 valid: k/(2880+k) > 0.001 ⇔ 999k > 2880 ⇔ k ≥ 3: M+3;
        #          6h empties at E+360 (3d still 30/3269 > 0.001).
        (
            "onset/outage-999",
            [(0, M + 1, E + 5), (1, M + 3, E + 30), (2, M + 5, E + 120), (3, M + 3, E + 360)],
        ),
        # 99 %, 100 % errors from M (burn_5m = 100 at once):
        #   bit 0: k/60 > 0.144 ⇔ k > 8.64: M+9.      bit 1: k/360 > 0.06 ⇔ k > 21.6: M+22.
        #   bit 2: k/1440 > 0.03 ⇔ k > 43.2: M+44.    bit 3: k/(2880+k) > 0.01 ⇔ 99k > 2880: M+30.
        ("onset/errors-99", [(0, M + 9, None), (1, M + 22, None), (2, M + 44, None), (3, M + 30, None)]),
        # 99 %, 50 % errors from M, 30d factors 14.4, 6, 3, 1:
        #   bit 0: k/2/60 > 0.144 ⇔ k > 17.28: M+18.  bit 1: k/2/360 > 0.06 ⇔ k > 43.2: M+44.
        #   bit 2: k/2/1440 > 0.03 ⇔ k > 86.4: M+87.  bit 3: k/2 > (2880+k)/100 ⇔ 49k > 2880: M+59.
        ("onset/half-99-30d", [(0, M + 18, None), (1, M + 44, None), (2, M + 87, None), (3, M + 59, None)]),
        # the same under 28d factors 13.44, 5.6, 2.8 and 1 (0.933 raised to 1):
        #   bit 0: k > 16.128: M+17.   bit 1: k > 40.32: M+41.   bit 2: k > 80.64: M+81.
        #   bit 3: as at 30d, 49k > 2880: M+59.
        ("onset/half-99-28d", [(0, M + 17, None), (1, M + 41, None), (2, M + 81, None), (3, M + 59, None)]),
    ],
)
def test_alert_intervals_start_and_end(
    outages: Scenario, slo: str, expected: list[tuple[int, int, int | None]]
) -> None:
    assert outages.intervals(slo) == expected


@pytest.mark.parametrize(
    ("slo", "t", "firing"),
    [
        ("onset/errors-99", M + 8, []),  # 8 bad minutes of 60: burn_1h 13.3 ≤ 14.4
        ("onset/errors-99", M + 9, [("page", "1h", "5m", 14.4)]),  # 9 of 60: 15.0
        ("onset/errors-99", M + 22, [("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0)]),
        ("onset/outage-999", M, []),  # the outage minute M is not yet in any window
        ("onset/outage-999", M + 1, [("page", "1h", "5m", 14.4)]),
        ("onset/outage-999", E + 4, [("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0),
                                     ("ticket", "1d", "2h", 3.0), ("ticket", "3d", "6h", 1.0)]),
        ("onset/outage-999", E + 5, [("page", "6h", "30m", 6.0), ("ticket", "1d", "2h", 3.0),
                                     ("ticket", "3d", "6h", 1.0)]),
        ("onset/outage-999", E + 360, []),
    ],
)
def test_status_lists_the_firing_alerts(
    outages: Scenario, slo: str, t: int, firing: list[tuple[str, str, str, float]]
) -> None:
    alerts = outages.status(t)[slo]["alerts"]
    assert [(a["severity"], a["long_window"], a["short_window"], a["factor"]) for a in alerts] == [
        (severity, long_w, short_w, pytest.approx(factor)) for severity, long_w, short_w, factor in firing
    ]


def test_firing_alert_says_since_when(outages: Scenario) -> None:
    alerts = outages.status(M + 22)["onset/errors-99"]["alerts"]
    since = {(a["long_window"], a["short_window"]): a["since"] for a in alerts}
    # M = 2026-06-03T00:00Z; the 1h/5m page started at M+9, the 6h/30m page at M+22
    assert since == {("1h", "5m"): "2026-06-03T00:09:00Z", ("6h", "30m"): "2026-06-03T00:22:00Z"}


@pytest.mark.parametrize(
    ("window", "factors"),
    [
        # budget share × window / long window:
        # 0.02·43 200/60, 0.05·43 200/360, 0.1·43 200/1440, 0.1·43 200/4320
        ("30d", [14.4, 6.0, 3.0, 1.0]),
        # the same with 40 320 minutes; 0.1·40 320/4320 = 0.933 is raised to 1 (no default alert fires
        # at a burn rate below 1, issue 14)
        ("28d", [13.44, 5.6, 2.8, 1.0]),
    ],
)
def test_default_alert_factors_scale_with_the_window(
    outages: Scenario, window: str, factors: list[float]
) -> None:
    rows = outages.query(
        """SELECT bit, severity, long_window, short_window, factor FROM slo_alerts JOIN slos USING (slo_key)
           WHERE slo_id = ? ORDER BY bit""",
        [f"onset/half-99-{window}"],
    )
    assert [row[:4] for row in rows] == [
        (0, "page", 60, 5), (1, "page", 360, 30), (2, "ticket", 1440, 120), (3, "ticket", 4320, 360)
    ]
    assert [row[4] for row in rows] == pytest.approx(factors, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Strictness: `>` in every condition. 99.9 %, 10 000 valid events a minute with b bad ones make every
# burn rate exactly b / 10: b = 144 is 14.4, which must not fire the 1h/5m page; b = 145 does.

STRICT_CASES = [
    (10, set()),  # burn 1.0: not > 1
    (11, {3}),  # 1.1 > 1 (3d/6h ticket)
    (30, {3}),  # 3.0: not > 3
    (31, {2, 3}),  # 1d/2h ticket
    (60, {2, 3}),  # 6.0: not > 6
    (61, {1, 2, 3}),  # 6h/30m page
    (144, {1, 2, 3}),  # 14.4: not > 14.4
    (145, {0, 1, 2, 3}),  # 1h/5m page
]


@pytest.fixture(scope="module")
def strict_store(new_scenario: Callable[[], Scenario]) -> Scenario:
    sc = new_scenario()
    sc.specs(spec_yaml("strict", [{"name": f"bad-{bad}", "target": "99.9%"} for bad, _ in STRICT_CASES]))
    sc.run(
        concat(*(traffic(f"strict/bad-{bad}", BASE, BASE + 120, 10_000, bad) for bad, _ in STRICT_CASES)),
        BASE + 120,
    )
    return sc


@pytest.mark.parametrize(("bad", "bits"), STRICT_CASES, ids=[f"bad={b}" for b, _ in STRICT_CASES])
def test_alert_conditions_are_strict(strict_store: Scenario, bad: int, bits: set[int]) -> None:
    slo = f"strict/bad-{bad}"
    # firing from the first evaluated instant to the end: one open interval per firing condition
    assert strict_store.intervals(slo) == [(bit, BASE + 1, None) for bit in sorted(bits)]
    row = strict_store.status(BASE + 120)[slo]
    windows = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    assert row["burn_rates"] == pytest.approx(dict.fromkeys(windows, bad / 10))


# ---------------------------------------------------------------------------------------------
# Calendar windows: from the start of the month/quarter containing minute T−1, up to T.
# Four buckets of 100 valid events (99 %: 1 bad event allowed per bucket):
#   A 2026-08-31T23:59  2 bad     S 2026-09-30T23:58  1 bad
#   Z 2026-09-30T23:59  0 bad     O 2026-10-01T00:00  0 bad


@pytest.fixture(scope="module")
def calendar_store(new_scenario: Callable[[], Scenario]) -> Scenario:
    sc = new_scenario()
    sc.specs(
        spec_yaml(
            "cal",
            [
                {"name": "monthly", "target": "99%", "window": "month"},
                {"name": "quarterly", "target": "99%", "window": "quarter"},
                {"name": "rolling", "target": "99%", "window": "30d"},
            ],
        )
    )
    rows = []
    for slo in ("cal/monthly", "cal/quarterly", "cal/rolling"):
        for when, bad in (("2026-08-31T23:59", 2), ("2026-09-30T23:58", 1), ("2026-09-30T23:59", 0),
                          ("2026-10-01T00:00", 0)):
            rows.append((slo, minute_of(when), 100 - bad, 100))
    sc.run(buckets(rows), minute_of("2026-10-01T00:05"))
    return sc


@pytest.mark.parametrize(
    ("at", "slo", "valid", "budget_remaining"),
    [
        # T−1 = Aug 31 23:59: August's window holds A (2 bad, 1 allowed) in both
        ("2026-09-01T00:00", "cal/monthly", 100, -1.0),
        ("2026-09-01T00:00", "cal/quarterly", 100, -1.0),
        # a new month (not a new quarter): September holds nothing yet
        ("2026-09-01T00:01", "cal/monthly", 0, None),
        ("2026-09-01T00:01", "cal/quarterly", 100, -1.0),
        # September up to 23:59 holds S only; the quarter holds A and S: 3 bad, 2 allowed
        ("2026-09-30T23:59", "cal/monthly", 100, 0.0),
        ("2026-09-30T23:59", "cal/quarterly", 200, -0.5),
        # at exactly Oct 1 00:00 the window is the whole of September (S, Z) / the quarter (A, S, Z)
        ("2026-10-01T00:00", "cal/monthly", 200, 0.5),
        ("2026-10-01T00:00", "cal/quarterly", 300, 0.0),
        # one minute into October and Q4: only O
        ("2026-10-01T00:01", "cal/monthly", 100, 1.0),
        ("2026-10-01T00:01", "cal/quarterly", 100, 1.0),
        # a rolling 30d window at Oct 1 00:01 starts Sep 1 00:01: S, Z, O (1 bad, 3 allowed)
        ("2026-10-01T00:01", "cal/rolling", 300, 2 / 3),
    ],
)
def test_calendar_window_restarts_at_period_start(
    calendar_store: Scenario, at: str, slo: str, valid: int, budget_remaining: float | None
) -> None:
    row = calendar_store.status(minute_of(at))[slo]
    assert row["valid"] == valid
    if budget_remaining is None:
        assert row["budget_remaining"] is None
    else:
        assert row["budget_remaining"] == pytest.approx(budget_remaining)


# ---------------------------------------------------------------------------------------------
# Zero-traffic minutes (valid = 0) and missing minutes (no row). 99 %, "gappy":
#   [B, B+10) 100 valid, 0 bad · [B+10, B+20) rows with valid = 0 · [B+20, B+30) no rows ·
#   [B+30, B+40) 100 valid, 1 bad.
# "silent" has only valid = 0 rows; "late" has data only in [B+30, B+40).


@pytest.fixture(scope="module")
def gaps_store(new_scenario: Callable[[], Scenario]) -> Scenario:
    sc = new_scenario()
    sc.specs(spec_yaml("gaps", [{"name": name, "target": "99%"} for name in ("gappy", "silent", "late")]))
    sc.run(
        concat(
            traffic("gaps/gappy", BASE, BASE + 10, valid=100),
            traffic("gaps/gappy", BASE + 10, BASE + 20, valid=0),
            traffic("gaps/gappy", BASE + 30, BASE + 40, valid=100, bad=1),
            traffic("gaps/silent", BASE, BASE + 40, valid=0),
            traffic("gaps/late", BASE + 30, BASE + 40, valid=100),
        ),
        BASE + 40,
    )
    return sc


NONE_BURNS = {f"burn_{w}": None for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")}


@pytest.mark.parametrize(
    ("slo", "t", "expected"),
    [
        ("gaps/gappy", 10, {"burn_5m": 0.0, "data_status": "ok"}),
        # 5m window [B+10, B+15): only valid = 0 rows; the last row (B+14) is recent
        ("gaps/gappy", 15, {"burn_5m": None, "burn_30m": 0.0, "data_status": "ok"}),
        # [B+17, B+22): zero rows and missing rows; last row B+19 ends at B+20, 2 minutes ago
        ("gaps/gappy", 22, {"burn_5m": None, "data_status": "ok"}),
        ("gaps/gappy", 24, {"burn_5m": None, "data_status": "ok"}),
        # last data ended at B+20: 5 minutes ago is no longer recent
        ("gaps/gappy", 25, {"burn_5m": None, "data_status": "no_recent_data"}),
        # 5m: 5 bad of 500 → 1.0;  30m [B+10, B+40): 10 of 1000 → 1.0;  1h: 10 of 2000 → 0.5;
        # SLO window: 1990/2000 good, 10 bad of 20 allowed → 0.5 left
        ("gaps/gappy", 40, {"burn_5m": 1.0, "burn_30m": 1.0, "burn_1h": 0.5, "sli": 0.995,
                            "budget_remaining": 0.5, "policy_state": "freeze_review", "data_status": "ok"}),
        ("gaps/silent", 40, {"sli": None, "budget_remaining": None, "policy_state": None,
                             **NONE_BURNS, "data_status": "no_data"}),
        # evaluation exists for instants first_minute+1 … end: none at or before B+30
        ("gaps/late", 20, {"sli": None, "budget_remaining": None, **NONE_BURNS, "data_status": "no_data"}),
        ("gaps/late", 30, {"sli": None, "budget_remaining": None, **NONE_BURNS, "data_status": "no_data"}),
        ("gaps/late", 31, {"sli": 1.0, "budget_remaining": 1.0, "burn_5m": 0.0, "data_status": "ok"}),
    ],
)
def test_empty_and_missing_minutes(gaps_store: Scenario, slo: str, t: int, expected: dict[str, Any]) -> None:
    row = gaps_store.status(BASE + t)[slo]
    seen: dict[str, Any] = {}
    for key in expected:
        if key.startswith("burn_"):
            seen[key] = row["burn_rates"][key.removeprefix("burn_")]
        else:
            seen[key] = row[key]
    assert seen == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# A spec's own burn_rate_alerts replace the defaults.


def test_custom_alerts_replace_the_defaults(scenario: Scenario) -> None:
    alerts = [
        {"severity": "page", "long_window": "1h", "short_window": "5m", "burn_rate": "10x"},
        # factor = 1 % × 43 200 / 120 = 3.6
        {"severity": "ticket", "long_window": "2h", "short_window": "10m", "budget_consumed": "1%"},
    ]
    scenario.specs(spec_yaml("custom", [{"target": "99%", "burn_rate_alerts": alerts}]))
    start = BASE + 180  # 3 clean hours, then every event fails
    scenario.run(
        concat(
            traffic("custom/availability", BASE, start, valid=100),
            traffic("custom/availability", start, start + 30, valid=100, bad=100),
        ),
        start + 30,
    )
    rows = scenario.query(
        "SELECT bit, severity, long_window, short_window, factor FROM slo_alerts ORDER BY bit"
    )
    assert rows == [(0, "page", 60, 5, 10.0), (1, "ticket", 120, 10, pytest.approx(3.6))]
    assert scenario.query("SELECT alerts_custom FROM slos") == [(True,)]
    # bit 0: k/60 > 0.10 ⇔ k > 6 (k = 6 is burn exactly 10: not firing): start+7.
    # bit 1: k/120 > 0.036 ⇔ k > 4.32: start+5 (10m: 5 of 10 bad → 50 > 3.6).
    assert scenario.intervals("custom/availability") == [(0, start + 7, None), (1, start + 5, None)]
    at_6 = scenario.status(start + 6)["custom/availability"]["alerts"]
    firing = [(a["long_window"], a["short_window"], a["factor"]) for a in at_6]
    assert firing == [("2h", "10m", pytest.approx(3.6))]


# ---------------------------------------------------------------------------------------------
# Incremental equals full: the same data as one batch, or as many small batches with growing `end`
# (the point-lookup path), must store the same intervals, transitions and series and report the same
# status. The data straddle 2026-10-01T00:00 (a month and quarter start). "rolling-late" also gets
# two minutes re-sent with corrected counts in a later batch (late data).

OCT1 = minute_of("2026-10-01T00:00")
INC_START, INC_STOP = OCT1 - 180, OCT1 + 60
# first batch [INC_START, OCT1 − 60) evaluated densely, then batches of these many minutes up to INC_STOP
BATCHES = [1, 2, 3, 5, 8, 13, 21, 34, 33]
STATUS_INSTANTS = [OCT1 - 60, OCT1 - 33, OCT1 - 1, OCT1, OCT1 + 1, OCT1 + 7, OCT1 + 30, INC_STOP]
INC_SLOS = [
    {"name": "rolling", "target": "99.9%", "window": "30d"},
    {"name": "rolling-late", "target": "99.9%", "window": "30d"},
    {"name": "monthly", "target": "99.9%", "window": "month"},
    {"name": "quarterly", "target": "99.9%", "window": "quarter"},
]
# Re-sent with the 34-minute batch [OCT1−7, OCT1+27), when both minutes are stored: an outage minute
# turns out fine, and a clean minute had 500 failures.
LATE = [("inc/rolling-late", OCT1 - 30, 1000, 1000), ("inc/rolling-late", OCT1 - 100, 500, 1000)]


def _incremental_data() -> pd.DataFrame:
    """1000/min at 99.9 %: every event fails in [OCT1−40, OCT1−25), 5 % fail in [OCT1+5, OCT1+20)."""
    frame = concat(*(traffic(f"inc/{slo['name']}", INC_START, INC_STOP, valid=1000) for slo in INC_SLOS))
    frame.loc[frame["minute"].between(OCT1 - 40, OCT1 - 26), "good"] = 0
    frame.loc[frame["minute"].between(OCT1 + 5, OCT1 + 19), "good"] = 950
    return frame


@dataclass
class FullAndIncremental:
    full: Scenario
    incremental: Scenario


@pytest.fixture(scope="module")
def full_and_incremental(new_scenario: Callable[[], Scenario]) -> FullAndIncremental:
    data = _incremental_data()
    corrected = data.set_index(["slo_id", "minute"])
    for slo_id, minute, good, _valid in LATE:
        corrected.loc[(slo_id, minute), "good"] = good
    full, incremental = new_scenario(), new_scenario()
    for sc in (full, incremental):
        sc.specs(spec_yaml("inc", INC_SLOS))
    full.run(corrected.reset_index(), INC_STOP)

    incremental.run(data[data["minute"] < OCT1 - 60], OCT1 - 60)
    lo = OCT1 - 60
    for size in BATCHES:
        batch = data[(data["minute"] >= lo) & (data["minute"] < lo + size)]
        if size == 34:
            batch = concat(batch, buckets(LATE))
        incremental.run(batch, lo + size)
        lo += size
    assert lo == INC_STOP
    return FullAndIncremental(full, incremental)


def _stored(sc: Scenario, slo_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the engine stored for one SLO, in a canonical order."""
    return {
        "alert_intervals": sc.query(
            """SELECT bit, start_minute, end_minute FROM alert_intervals JOIN slos USING (slo_key)
               WHERE slo_id = ? ORDER BY ALL""",
            [slo_id],
        ),
        "policy_transitions": sc.query(
            """SELECT minute, from_state, to_state FROM policy_transitions JOIN slos USING (slo_key)
               WHERE slo_id = ? ORDER BY ALL""",
            [slo_id],
        ),
        "slo_series": sc.query(
            """SELECT s.* EXCLUDE (slo_key) FROM slo_series s JOIN slos USING (slo_key)
               WHERE slo_id = ? ORDER BY ALL""",
            [slo_id],
        ),
    }



@pytest.mark.parametrize(
    "slo_id",
    [
        "inc/rolling",
        "inc/rolling-late",
        "inc/monthly",
        "inc/quarterly",
    ],
)
def test_incremental_equals_full(full_and_incremental: FullAndIncremental, slo_id: str) -> None:
    full, incremental = full_and_incremental.full, full_and_incremental.incremental
    stored = _stored(full, slo_id)
    # the scenario really alerts and changes policy state, so the comparison means something
    assert {bit for bit, _start, _end in stored["alert_intervals"]} == {0, 1, 2, 3}
    assert len(stored["policy_transitions"]) >= 2
    assert _stored(incremental, slo_id) == stored
    for t in STATUS_INSTANTS:
        assert incremental.status(t)[slo_id] == full.status(t)[slo_id], f"status at OCT1{t - OCT1:+d}"


def test_month_restarts_inside_an_incremental_batch(scenario: Scenario) -> None:
    # 99 %, 100 valid a minute from Sep 30 22:00; 10 bad a minute in [23:50, 00:00).
    # At Oct 1 00:00 September holds 12 000 valid, 100 bad, 120 allowed: r = 1/6 (reliability_focus).
    # From 00:01 the window is October only, all clean: r = 1 (normal); at 00:15 still 1.
    scenario.specs(spec_yaml("cal", [{"name": "monthly", "target": "99%", "window": "month"}]))
    data = concat(
        traffic("cal/monthly", OCT1 - 120, OCT1 - 10, valid=100),
        traffic("cal/monthly", OCT1 - 10, OCT1, valid=100, bad=10),
        traffic("cal/monthly", OCT1, OCT1 + 20, valid=100),
    )
    scenario.run(data[data["minute"] < OCT1 - 5], OCT1 - 5)
    scenario.run(data[data["minute"] >= OCT1 - 5], OCT1 + 20)  # one batch across the month start
    assert scenario.query("SELECT minute - ?, from_state, to_state FROM policy_transitions ORDER BY minute",
                          [OCT1]) == [
        (-119, None, "normal"),
        (-4, "normal", "freeze_review"),  # 23:56: 60 bad of 11 600 valid, 116 allowed → 0.48
        (-1, "freeze_review", "reliability_focus"),  # 23:59: 90 bad, 119 allowed → 0.24
        (1, "reliability_focus", "normal"),
    ]
    assert scenario.query("SELECT budget_remaining FROM slo_series WHERE minute = ?", [OCT1 + 15]) == [(1.0,)]


def test_late_correction_is_counted(full_and_incremental: FullAndIncremental) -> None:
    # 500 bad of 1000 at OCT1−100 is in the 1h window at OCT1−41 (60 000 valid): burn = 500/60 000/0.001
    for sc in (full_and_incremental.full, full_and_incremental.incremental):
        rows = sc.status(OCT1 - 41)
        assert rows["inc/rolling-late"]["burn_rates"]["1h"] == pytest.approx(500 / 60_000 / 0.001)
        assert rows["inc/rolling"]["burn_rates"]["1h"] == 0.0
    # the outage minute OCT1−30 was re-sent as clean: 14 bad minutes instead of 15 in the 30m window
    rows = full_and_incremental.incremental.status(OCT1 - 15)
    assert rows["inc/rolling-late"]["burn_rates"]["30m"] == pytest.approx(14 / 30 / 0.001)
    assert rows["inc/rolling"]["burn_rates"]["30m"] == pytest.approx(15 / 30 / 0.001)


def test_end_moving_ahead_of_the_data_then_catching_up(new_scenario: Callable[[], Scenario]) -> None:
    # A lagging source: runs whose `end` passes minutes not delivered yet (evaluated as missing), then
    # the data for them arrives. The result must equal one run over all the data.
    # 99.9 %, 1000/min; every event fails in [B+120, B+150).
    data = concat(
        traffic("lag/availability", BASE, BASE + 120, valid=1000),
        traffic("lag/availability", BASE + 120, BASE + 150, valid=1000, bad=1000),
        traffic("lag/availability", BASE + 150, BASE + 240, valid=1000),
    )
    full, lagging = new_scenario(), new_scenario()
    for sc in (full, lagging):
        sc.specs(spec_yaml("lag", [{"target": "99.9%"}]))
    full.run(data, BASE + 240)
    nothing = data.iloc[0:0]
    lagging.run(data[data["minute"] < BASE + 100], BASE + 100)
    lagging.run(nothing, BASE + 130)
    lagging.run(data[data["minute"].between(BASE + 100, BASE + 199)], BASE + 200)
    lagging.run(nothing, BASE + 230)
    lagging.run(data[data["minute"] >= BASE + 200], BASE + 240)
    assert _stored(lagging, "lag/availability") == _stored(full, "lag/availability")
    # the 1h/5m page: 1000 bad of 60 000 > 1.44 % from B+121; the 5m window is clean again at B+155
    assert full.intervals("lag/availability")[0] == (0, BASE + 121, BASE + 155)
    for t in (BASE + 125, BASE + 131, BASE + 160, BASE + 240):
        assert lagging.status(t) == full.status(t)


def test_resending_a_minute_replaces_it(scenario: Scenario) -> None:
    scenario.specs(spec_yaml("resend", [{"target": "99%"}]))
    scenario.run(traffic("resend/availability", BASE, BASE + 10, valid=100, bad=1), BASE + 10)
    assert scenario.status()["resend/availability"]["valid"] == 1000
    # the same ten minutes again, now clean: replaced, not added
    scenario.run(traffic("resend/availability", BASE, BASE + 10, valid=100), BASE + 10)
    row = scenario.status()["resend/availability"]
    assert (row["good"], row["valid"], row["budget_remaining"]) == (1000, 1000, 1.0)
