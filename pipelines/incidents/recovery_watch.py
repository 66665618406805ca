"""The recovery watch after a person's mitigation (seed 001 step 4, seed 002 step 3): pure.

When a person mitigates an incident (the `mitigate` command; an auto-remediation's recovery is checked
by `steps/verify.py` instead), the stage watches it for `RECOVERY_WATCH` (30 min; the setting
`SLO_RECOVERY_WATCH_MINUTES`). The recovery did not hold when, inside the watch,

- the incident's SLO burns above one of its page thresholds: the test verify.py uses (the burn rate
  over the alert's short window, from the buckets after the mitigation only), with the page alerts'
  factors and the strict `>` of an alert firing. A short window longer than the watch is taken as the
  whole watch (the 30 min window of the slow-burn page alert in a 30 min watch);
- or a new alert of the incident fires (one starting after the mitigation; with its fingerprint).

An incident tied to no SLO is watched through its alerts only. The outcome is one timeline entry per
mitigation: `recovery_not_held` at the first instant such evidence shows (every piece of evidence seen
at that instant is named), else `recovery_held` at the watch's deadline, once the data reached it.
Resolving during the watch ends it: no `recovery_held` (the incident was not watched the full time),
but evidence seen before the resolution is still a `recovery_not_held` (nobody is paged for an incident
that is no longer open). A reopen clears the mitigation and so ends its watch; the next mitigation
starts a new one. Like the timers, an entry's time is the instant observed or the deadline, never the
cycle that noticed it, so evaluating every cycle or once later gives the same entries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

RECOVERY_WATCH = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class PageBurn:
    """A page-level burn seen in the watch: over `window` minutes ending at `at`, `burn_rate` > `factor`."""

    at: dt.datetime
    slo: str
    window: int
    burn_rate: float
    factor: float

    def text(self) -> str:
        return (
            f"{self.slo} burned {self.burn_rate:.1f}× its budget over {self.window} min to {self.at:%H:%M} "
            f"(page threshold {self.factor:g})"
        )


@dataclass(frozen=True)
class NewAlert:
    """An alert of the incident that started firing after the mitigation."""

    at: dt.datetime  # when it started firing
    fingerprint: str
    title: str

    def text(self) -> str:
        return f"new alert fired at {self.at:%H:%M}: {self.title} (fingerprint {self.fingerprint})"


@dataclass(frozen=True)
class WatchOutcome:
    kind: str  # recovery_not_held | recovery_held
    at: dt.datetime
    message: str
    evidence: tuple[PageBurn | NewAlert, ...] = ()

    def data(self, mitigated_at: dt.datetime) -> dict[str, Any]:
        """The timeline entry's data: the mitigation it watched (its key) and the evidence."""
        evidence = [
            {"burn_rate": round(e.burn_rate, 3), "window_minutes": e.window, "factor": e.factor,
             "slo": e.slo, "at": e.at.isoformat()}
            if isinstance(e, PageBurn)
            else {"fingerprint": e.fingerprint, "title": e.title, "at": e.at.isoformat()}
            for e in self.evidence
        ]  # fmt: skip
        return {"mitigated_at": mitigated_at.isoformat(), "evidence": evidence}


def first_page_burn(
    buckets: Sequence[tuple[int, int, int]],
    start: int,
    end: int,
    span: int,
    thresholds: Sequence[tuple[int, float]],
    target: float,
) -> tuple[int, int, float, float] | None:
    """The first instant m in [start, end] where, for one page alert (short window, factor), the burn
    rate over [m − w, m) is above the factor, w = min(short window, span) and the window wholly after
    `start` (the first minute after the mitigation); `span`: the watch's whole minutes. Returns
    (m, w, burn rate, factor) or None. Minutes without data add nothing (no data is never a burn)."""
    by_minute = {m: (g, v) for m, g, v in buckets if m >= start}
    windows = [(min(short, span), factor) for short, factor in thresholds if min(short, span) > 0]
    for m in range(start + 1, end + 1):
        for w, factor in windows:
            if m - w < start:
                continue
            good = valid = 0
            for k in range(m - w, m):
                g, v = by_minute.get(k, (0, 0))
                good, valid = good + g, valid + v
            if valid:
                burn = ((valid - good) / valid) / (1.0 - target)
                if burn > factor:
                    return m, w, burn, factor
    return None


def watch_outcome(
    mitigated_at: dt.datetime,
    watch: dt.timedelta,
    now: dt.datetime,
    *,
    resolved_at: dt.datetime | None,
    burn: PageBurn | None,
    alerts: Sequence[NewAlert],
    settled: bool,
    slo: str | None,
) -> WatchOutcome | None:
    """The watch's entry for one mitigation, or None while it is still open (or ended by a resolution).

    `burn`: the first page-level burn the caller found in the data it has (None: none, or no SLO);
    `alerts`: the incident's alerts that started firing after the mitigation; `settled`: whether the
    data the watch needs reached its deadline (the SLO's evaluated buckets, the inbox folded through it);
    `slo`: the SLO watched (None: the alerts only)."""
    deadline = mitigated_at + watch
    end = min(deadline, resolved_at) if resolved_at is not None else deadline
    seen: list[PageBurn | NewAlert] = [a for a in alerts if mitigated_at < a.at <= min(end, now)]
    if burn is not None and mitigated_at < burn.at <= min(end, now):
        seen.append(burn)
    watched = _minutes(watch)
    if seen:
        first = min(e.at for e in seen)
        evidence = tuple(e for e in seen if e.at == first)
        after = _minutes(first - mitigated_at)
        return WatchOutcome(
            "recovery_not_held",
            first,
            f"recovery not held {after} after the mitigation at {mitigated_at:%H:%M} (watched {watched}): "
            + "; ".join(e.text() for e in evidence),
            evidence,
        )
    if resolved_at is not None and resolved_at < deadline:
        return None  # resolved during the watch: it ends there, with nothing to say
    if now < deadline or not settled:
        return None
    what = "no page-level burn and no new alert" if slo else "no new alert"
    return WatchOutcome(
        "recovery_held",
        deadline,
        f"recovery held: {what} for {watched} after the mitigation at {mitigated_at:%H:%M}"
        + (f" ({slo} and the incident's alerts watched)" if slo else " (the incident's alerts watched)"),
    )


def _minutes(delta: dt.timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min" if seconds % 60 else f"{int(seconds // 60)} min"
