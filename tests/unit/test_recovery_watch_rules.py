"""The recovery watch's pure decision (pipelines/incidents/recovery_watch.py): known-answer tables."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.incidents.recovery_watch import (
    RECOVERY_WATCH,
    NewAlert,
    PageBurn,
    first_page_burn,
    watch_outcome,
)

# SRE Workbook page thresholds for a 30d SLO: (short window in minutes, factor)
PAGE = [(5, 14.4), (30, 6.0)]
S = 1000  # the first whole minute after the mitigation


def minutes(bad_percent: dict[range, int], span: range = range(S - 60, S + 40)) -> list[tuple[int, int, int]]:
    """100 valid events a minute; `bad_percent` of them bad in the given minute ranges."""
    rows = []
    for m in span:
        bad = next((p for r, p in bad_percent.items() if m in r), 0)
        rows.append((m, 100 - bad, 100))
    return rows


@pytest.mark.parametrize(
    ("buckets", "end", "expected"),
    [
        # healthy after the mitigation: nothing
        (minutes({}), S + 29, None),
        # 100% bad for the hour before the mitigation, healthy after: the old minutes do not count
        (minutes({range(S - 60, S): 100}), S + 29, None),
        # 20% bad from minute S+10 (burn 20 a minute, target 99%): the 5 min window at S+11 holds one bad
        # minute (20/500 = 4% → burn 4), S+12 two (8), S+13 three (12), S+14 four (16 > 14.4)
        (minutes({range(S + 10, S + 40): 20}), S + 29, (S + 14, 5, 16.0, 14.4)),
        # ... not yet seen when the data ends at S+13
        (minutes({range(S + 10, S + 40): 20}), S + 13, None),
        # a slow burn of 7 (7% bad): under 14.4 over 5 min; over 6 across the 29 whole minutes the watch
        # holds (the 30 min window, taken as the whole watch), seen at its last minute S+29
        (minutes({range(S, S + 40): 7}), S + 29, (S + 29, 29, 7.0, 6.0)),
        # minutes without data are no burn
        ([], S + 29, None),
    ],
)
def test_first_page_burn(buckets: list[tuple[int, int, int]], end: int, expected: object) -> None:
    found = first_page_burn(buckets, S, end, 29, PAGE, 0.99)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        m, w, burn, factor = found
        assert (m, w, factor) == expected[:2] + expected[3:]  # type: ignore[index]
        assert burn == pytest.approx(expected[2])  # type: ignore[index]


T0 = dt.datetime(2026, 6, 1, 10, 0, 20)  # the mitigation
MIN = dt.timedelta(minutes=1)
ALERT = NewAlert(T0 + 10 * MIN, "fp-db", "Database errors")
LATE = NewAlert(T0 + 31 * MIN, "fp-late", "After the watch")
BURN = PageBurn(dt.datetime(2026, 6, 1, 10, 15), "shop/availability", 5, 16.0, 14.4)


@pytest.mark.parametrize(
    ("now", "resolved", "burn", "alerts", "settled", "expected"),
    [
        # the watch is open and nothing happened: no entry yet
        (T0 + 29 * MIN, None, None, [], True, None),
        # the deadline passed with nothing seen: held, at the deadline
        (T0 + 31 * MIN, None, None, [], True, ("recovery_held", T0 + 30 * MIN)),
        # ... but the data has not reached the deadline: wait
        (T0 + 31 * MIN, None, None, [], False, None),
        # a new alert 10 min after: not held, at the alert's start, during the watch or seen later
        (T0 + 10 * MIN, None, None, [ALERT], False, ("recovery_not_held", T0 + 10 * MIN)),
        (T0 + 90 * MIN, None, None, [ALERT], True, ("recovery_not_held", T0 + 10 * MIN)),
        # an alert and a later burn: the first evidence only
        (T0 + 40 * MIN, None, BURN, [ALERT], True, ("recovery_not_held", T0 + 10 * MIN)),
        # a burn at 10:15, resolved at 10:20: seen before the resolution, so still not held
        (T0 + 40 * MIN, T0 + 20 * MIN, BURN, [], True, ("recovery_not_held", BURN.at)),
        # resolved during the watch with nothing seen: the watch ends without an entry
        (T0 + 40 * MIN, T0 + 20 * MIN, None, [], True, None),
        # an alert after the resolution, or after the watch, is not the watch's business
        (T0 + 40 * MIN, T0 + 5 * MIN, None, [ALERT], True, None),
        (T0 + 40 * MIN, None, None, [LATE], True, ("recovery_held", T0 + 30 * MIN)),
    ],
)
def test_watch_outcome(
    now: dt.datetime,
    resolved: dt.datetime | None,
    burn: PageBurn | None,
    alerts: list[NewAlert],
    settled: bool,
    expected: tuple[str, dt.datetime] | None,
) -> None:
    outcome = watch_outcome(
        T0, RECOVERY_WATCH, now, resolved_at=resolved, burn=burn, alerts=alerts, settled=settled,
        slo="shop/availability" if burn else None,
    )  # fmt: skip
    assert (None if outcome is None else (outcome.kind, outcome.at)) == expected


def test_every_cycle_or_once_later_gives_the_same_entry() -> None:
    """Evaluated each minute of the watch or once an hour later: one and the same entry."""
    each = [
        watch_outcome(
            T0,
            RECOVERY_WATCH,
            T0 + n * MIN,
            resolved_at=None,
            burn=None,
            alerts=[ALERT],
            settled=True,
            slo=None,
        )
        for n in range(0, 31)
    ]
    first = next(o for o in each if o is not None)
    later = watch_outcome(
        T0, RECOVERY_WATCH, T0 + 90 * MIN, resolved_at=None, burn=None, alerts=[ALERT], settled=True, slo=None
    )
    assert first == later
    assert first.message == (
        "recovery not held 10 min after the mitigation at 10:00 (watched 30 min): "
        "new alert fired at 10:10: Database errors (fingerprint fp-db)"
    )
    assert first.data(T0) == {
        "mitigated_at": "2026-06-01T10:00:20",
        "evidence": [{"fingerprint": "fp-db", "title": "Database errors", "at": "2026-06-01T10:10:20"}],
    }


def test_the_messages_name_what_was_watched() -> None:
    after = T0 + 31 * MIN
    held = watch_outcome(
        T0,
        RECOVERY_WATCH,
        after,
        resolved_at=None,
        burn=None,
        alerts=[],
        settled=True,
        slo="shop/availability",
    )
    assert held is not None and held.message == (
        "recovery held: no page-level burn and no new alert for 30 min after the mitigation at 10:00 "
        "(shop/availability and the incident's alerts watched)"
    )
    burned = watch_outcome(
        T0,
        RECOVERY_WATCH,
        after,
        resolved_at=None,
        burn=BURN,
        alerts=[],
        settled=True,
        slo="shop/availability",
    )
    assert burned is not None and burned.message.endswith(
        "shop/availability burned 16.0× its budget over 5 min to 10:15 (page threshold 14.4)"
    )
