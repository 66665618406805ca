"""The demo's present: the last hours before `slo demo`'s end (its anchor) shaped so that, the moment
the demo is built, there is something to do.

    state burns     three earlier outages, each sized so it leaves one SLO's error budget in the
                    policy state it is there for (exhausted, reliability_focus, freeze_review) at the
                    anchor; the simulated responders have handled their incidents
    burning now     checkout-api/availability fails 8% of checkouts from 20 minutes before the anchor
                    (a deploy 15 minutes before that): its page alert fires and its incident is
                    triaged, escalated and waits for an acknowledgement (nobody simulated answers an
                    incident opened in the last 20 minutes: the on-call is the user)
    approval        an Alertmanager alert on auth's token cache 3 minutes before the anchor: the rules
                    recommend flush_cache, allow-listed but critical, so it waits for an approval
    live burn       in live mode only (`live.py`), two minutes after the live demo starts:
                    payments/availability fails 12% of authorisations for 30 minutes, so a page fires
                    within minutes and its incident flows through triage and routing on its own

The state burns end 14 hours or less before the anchor and their tickets a few hours later, so a
service started within about ten hours of the build finds each of their alert intervals whole
(`engine_alerts` looks back 24 hours; a merged interval cut there comes back as a new incident). The
history before the state burns is the generator's, untouched: a state burn only turns good events
of its own minutes into bad ones, so every earlier minute and every known answer about the past stays.
The SLO a state burn lands on is the first of its candidates whose budget is above the level it aims
for (an SLO already in that state from its history is enough: then no burn is added).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.demo.generate import DemoData, DemoEvent, Deploy
from pipelines.demo.replay import ExternalAlert
from pipelines.model import Slo
from pipelines.timeutil import datetime_of, minute_of

M = dt.timedelta(minutes=1)
# Incidents detected from this long before the anchor are left to the user.
HANDS_OFF = 20 * M
STATE_LEVELS = {"exhausted": (None, 0.0), "reliability_focus": (0.0, 0.25), "freeze_review": (0.25, 0.5)}


@dataclass(frozen=True)
class Burn:
    """Bad events added to one SLO's minutes [anchor + start, anchor + start + minutes)."""

    key: str
    slo_id: str
    start: int  # minutes from the anchor (negative: before it)
    minutes: int
    share: float  # the share of the minutes' good events turned bad
    shape: str
    fingerprint: str
    description: str
    deploy: str | None = None  # a deploy of the SLO's service 15 minutes before the burn

    @property
    def service(self) -> str:
        return self.slo_id.split("/", 1)[0]

    def span(self, anchor: int) -> tuple[int, int]:
        return anchor + self.start, anchor + self.start + self.minutes


@dataclass(frozen=True)
class StateBurn:
    """An earlier outage sized to leave `leaves` of an SLO's budget at the anchor."""

    state: str
    leaves: float
    start: int
    minutes: int
    candidates: tuple[tuple[str, str, str], ...]  # (SLO id, fingerprint, description)


# fmt: off
STATE_BURNS = (
    StateBurn("exhausted", -0.2, start=-9 * 60, minutes=5 * 60, candidates=(
        ("payments/correctness", "payments/ledger-replay-duplicates",
         "A ledger replay after a failed migration re-posts entries: reconciliation fails for hours."),
        ("checkout-api/correctness", "checkout-api/stale-price-cache",
         "A stale price cache charges old prices: orders fail the total check."),
    )),
    StateBurn("reliability_focus", 0.12, start=-17 * 60, minutes=3 * 60, candidates=(
        ("checkout-api/correctness", "checkout-api/stale-price-cache",
         "A stale price cache charges old prices: orders fail the total check."),
        ("inventory/availability", "inventory/reservation-lock-contention",
         "Reservation lock contention after a schema change: lookups time out."),
    )),
    StateBurn("freeze_review", 0.4, start=-20 * 60, minutes=6 * 60, candidates=(
        ("search/correctness", "search/index-alias-swap",
         "An index alias swap points a third of the shards at last week's index: stale results."),
        ("inventory/availability", "inventory/reservation-lock-contention",
         "Reservation lock contention after a schema change: lookups time out."),
    )),
)
# fmt: on
BURNING_NOW = Burn(
    "present-checkout-provider",
    "checkout-api/availability",
    start=-20,
    minutes=45,
    share=0.08,
    shape="fast_burn",
    fingerprint="checkout-api/payment-provider-api-version",
    description="The payment provider's new API version rejects 8% of authorisations: checkouts fail (502).",
    deploy="payment provider SDK upgrade",
)
LIVE_BURN = Burn(
    "live-payments-card-network",
    "payments/availability",
    start=2,
    minutes=30,
    share=0.12,
    shape="fast_burn",
    fingerprint="payments/card-network-timeouts",
    description="Card-network timeouts: 12% of authorisations fail until the network recovers.",
)
APPROVAL_ALERT = ("auth", "TokenCacheHitRatioLow", "Token cache hit ratio down to 55%: signing keys rotated")
APPROVAL_BEFORE = 3 * M


@dataclass
class Present:
    """What `shape` added: events (ground truth), deploys, Alertmanager alerts, and the instant from
    which incidents are left to the user."""

    events: list[DemoEvent]
    deploys: list[Deploy]
    alerts: list[ExternalAlert]
    hands_off: dt.datetime  # naive UTC
    states: dict[str, str]  # policy state → the SLO a state burn shaped (or already held it)


def shape(data: DemoData) -> Present:
    """Shape the last hours of `data` (in place) around its end, the anchor; see the module docstring."""
    anchor = minute_of(data.end)
    frame = data.buckets
    slos = {slo.id: slo for slo in data.slos}
    events: list[DemoEvent] = []
    remaining = {slo_id: budget_remaining(frame, slo, anchor) for slo_id, slo in slos.items()}
    remaining.pop(BURNING_NOW.slo_id)  # its own burn moves it: it is no state burn's candidate
    states: dict[str, str] = {}
    for state_burn in STATE_BURNS:
        low, high = STATE_LEVELS[state_burn.state]
        held = [
            slo_id
            for slo_id, r in sorted(remaining.items())
            if r is not None and (low is None or r > low) and r <= high and slo_id not in states.values()
        ]
        if held:
            states[state_burn.state] = held[0]
            continue
        for slo_id, fingerprint, description in state_burn.candidates:
            r = remaining.get(slo_id)
            if slo_id in states.values() or r is None or r < state_burn.leaves + 0.1:
                continue
            burn = Burn(
                f"present-{state_burn.state}",
                slo_id,
                state_burn.start,
                state_burn.minutes,
                0.0,
                "partial_outage",
                fingerprint,
                description,
            )
            lo, hi = burn.span(anchor)
            extra = (r - state_burn.leaves) * _allowed(frame, slos[slo_id], anchor)
            good = int(frame.loc[_rows(frame, slo_id, lo, hi), "good"].sum())
            share = min(extra / good, 0.95) if good else 0.0
            apply(frame, Burn(**{**burn.__dict__, "share": share}), anchor)
            remaining[slo_id] = budget_remaining(frame, slos[slo_id], anchor)
            events.append(event_of(burn, anchor, anchor))
            states[state_burn.state] = slo_id
            break
    apply(frame, BURNING_NOW, anchor)
    events.append(event_of(BURNING_NOW, anchor, anchor))
    end = data.end
    approval_at = (end - APPROVAL_BEFORE).replace(tzinfo=None)
    service, alertname, text = APPROVAL_ALERT
    # No deploy of auth in the two hours before its alert: the triage would blame it (and roll back).
    data.deploys = [
        d for d in data.deploys if not (d.service == service and end - dt.timedelta(hours=2) <= d.at < end)
    ]
    deploys = [deploy_of(BURNING_NOW, anchor)] if BURNING_NOW.deploy else []
    data.deploys = sorted([*data.deploys, *deploys], key=lambda d: (d.at, d.service))
    data.events = sorted([*data.events, *events], key=lambda e: (e.start, e.event_id))
    return Present(
        events=events,
        deploys=deploys,
        alerts=[ExternalAlert(service, alertname, text, approval_at, None)],
        hands_off=(end - HANDS_OFF).replace(tzinfo=None),
        states=states,
    )


def apply(frame: pd.DataFrame, burn: Burn, anchor: int, lo: int | None = None, hi: int | None = None) -> None:
    """Turn `burn.share` of the good events of its minutes (within [lo, hi) when given) into bad ones."""
    start, end = burn.span(anchor)
    rows = _rows(frame, burn.slo_id, max(start, lo if lo is not None else start), min(end, hi or end))
    good = frame.loc[rows, "good"].to_numpy()
    frame.loc[rows, "good"] = good - np.rint(good * burn.share).astype(np.int64)


def event_of(burn: Burn, anchor: int, until: int) -> DemoEvent:
    """The burn as ground truth, its end clipped to `until` while it still runs."""
    start, end = burn.span(anchor)
    return DemoEvent(
        event_id=f"{datetime_of(anchor):%Y%m%dT%H%M}-{burn.key}",
        service=burn.service,
        slo_ids=(burn.slo_id,),
        start=datetime_of(start),
        end=datetime_of(min(end, until)),
        shape=burn.shape,
        fingerprint=burn.fingerprint,
        description=burn.description,
    )


def deploy_of(burn: Burn, anchor: int) -> Deploy:
    at = datetime_of(burn.span(anchor)[0] - 15)
    return Deploy(burn.service, at, at.strftime("v%Y.%m.%d-%H%M"), burn.deploy or "")


def budget_remaining(frame: pd.DataFrame, slo: Slo, anchor: int) -> float | None:
    """DESIGN's budget_remaining at the anchor over the SLO's rolling window (None: no valid events or
    a calendar window, which the present leaves alone)."""
    if slo.window.kind != "rolling":
        return None
    rows = frame.loc[_rows(frame, slo.id, anchor - slo.window.minutes, anchor)]
    valid = int(rows["valid"].sum())
    if valid == 0:
        return None
    bad = valid - int(rows["good"].sum())
    return 1.0 - bad / ((1.0 - slo.target) * valid)


def _allowed(frame: pd.DataFrame, slo: Slo, anchor: int) -> float:
    rows = frame.loc[_rows(frame, slo.id, anchor - slo.window.minutes, anchor)]
    return (1.0 - slo.target) * float(rows["valid"].sum())


def _rows(frame: pd.DataFrame, slo_id: str, lo: int, hi: int) -> np.ndarray:
    """Row positions of `slo_id`'s minutes [lo, hi) (the frame is sorted by minute)."""
    minutes = frame["minute"].to_numpy()
    a, b = np.searchsorted(minutes, lo, "left"), np.searchsorted(minutes, hi, "left")
    ids = frame["slo_id"].iloc[a:b].to_numpy()  # only the slice: the whole column is millions of strings
    return frame.index.to_numpy()[a:b][ids == slo_id]
