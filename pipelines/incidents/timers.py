"""Escalation timers (seed 002): a pure function of one incident and the time now.

- No acknowledgement within the severity's response time after the incident reached a human
  (SEV1 5 min, SEV2 15 min, SEV3 1 h, SEV4 next business day, taken as 24 h) → escalate to the next tier
  of the on-call escalation policy; again after each further response time, up to the last tier.
- No root cause after 30 min (SEV1) or 2 h (SEV2) from detection → escalate to the next tier.
- Seed 001's escalation matrix, from detection: a SEV1 (its P0) not resolved in 30 min → the next level
  (`unresolved:30m`, the same level as the root-cause timer due at the same instant, so one page); a
  SEV1 or SEV2 (its P1) not resolved in 2 h → leadership, the policy's last tier (`unresolved:2h`).
  A level already paged is not paged again (`steps/timers.py`): the timer is still on the timeline.

With an escalation policy (an on-call file, `oncall.py`), the acknowledgement timers follow the
policy's tiers instead: tier n+1 is paged its tier-n timeout after tier n was (seed 002: primary 5 min,
secondary 10 min, manager 15 min), and an acknowledgement stops the chain.

Seeds 001 and 002's post-mortem "within 48 hours" (`postmortem_timers`): a resolved SEV1/SEV2
incident has its post-mortem scheduled at the resolution (`postmortem_scheduled`, due 48 h later, owned
by the incident commander, else by whoever resolved it) and, at the deadline without a post-mortem done
(`postmortem_done_at`, set when the incident is closed), `postmortem_overdue`. SEV3/SEV4 incidents get
no deadline, nor do imported ones or ones never routed to anyone (a history load's). A re-resolved
incident (reopened, then resolved again) is scheduled again from its new resolution.

A timer fires at its deadline, not when a cycle happens to notice it: `occurred_at` is the deadline, so
evaluating every cycle (or once, later) gives the same entries. Each has a stable `key`; the caller
records only keys not yet on the timeline, which makes re-evaluation idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.analytics.success_metrics import POSTMORTEM_HOURS
from pipelines.incidents.incident_roles import roles_from_timeline
from pipelines.incidents.oncall import Policy

RESPONSE_TIME = {
    "SEV1": dt.timedelta(minutes=5),
    "SEV2": dt.timedelta(minutes=15),
    "SEV3": dt.timedelta(hours=1),
    "SEV4": dt.timedelta(hours=24),
}
ROOT_CAUSE_TIME = {"SEV1": dt.timedelta(minutes=30), "SEV2": dt.timedelta(hours=2)}
# seed 001's escalation matrix: (timer key, time after detection without a resolution, escalate to) by
# severity; "next" is the next level, "leadership" the policy's last tier.
_30M = ("unresolved:30m", dt.timedelta(minutes=30), "next")
_2H = ("unresolved:2h", dt.timedelta(hours=2), "leadership")
UNRESOLVED: dict[str, tuple[tuple[str, dt.timedelta, str], ...]] = {"SEV1": (_30M, _2H), "SEV2": (_2H,)}
# seed 002's on-call escalation policy, level 1 first.
TIERS = ("on-call-primary", "on-call-secondary", "engineering-manager", "vp-engineering")


@dataclass(frozen=True)
class TimerEvent:
    key: str  # "ack:1", "ack:2", "root_cause", "unresolved:30m", "unresolved:2h"
    at: dt.datetime  # the deadline that passed
    tier: int  # the tier escalated to (index into TIERS)
    message: str


def _before(value: dt.datetime | None, deadline: dt.datetime) -> bool:
    return value is not None and value <= deadline


def due_timers(inc: dict[str, Any], now: dt.datetime, policy: Policy | None = None) -> list[TimerEvent]:
    """Every timer of `inc` whose deadline has passed by `now`, in deadline order (with `policy`, the
    acknowledgement timers are its tiers' timeouts)."""
    severity = inc.get("severity")
    if severity not in RESPONSE_TIME or inc.get("imported"):
        return []
    events: list[TimerEvent] = []
    ended = inc.get("resolved_at")
    mitigated = inc.get("mitigated_at")
    escalated = inc.get("escalated_at")
    tier = 0
    names = TIERS if policy is None else tuple(t.target.label() for t in policy.tiers)
    if escalated is not None and policy is not None:
        for n, deadline in policy.deadlines(escalated):
            if deadline > now or _before(inc.get("acknowledged_at"), deadline):
                break
            if _before(mitigated, deadline) or _before(ended, deadline):
                break
            tier = n
            waited = policy.tiers[n - 1].timeout
            events.append(
                TimerEvent(
                    f"ack:{n}",
                    deadline,
                    n,
                    f"no acknowledgement from tier {n} ({names[n - 1]}) within its {duration_text(waited)}: "
                    f"escalating to tier {n + 1} ({names[n]})",
                )
            )
    elif escalated is not None:
        step = RESPONSE_TIME[severity]
        for n in range(1, len(TIERS)):
            deadline = escalated + n * step
            if deadline > now or _before(inc.get("acknowledged_at"), deadline):
                break
            if _before(mitigated, deadline) or _before(ended, deadline):
                break
            tier = n
            events.append(
                TimerEvent(
                    f"ack:{n}",
                    deadline,
                    n,
                    f"no acknowledgement {_text(n * step)} after escalation ({severity} response time "
                    f"{_text(step)}): escalating to {TIERS[n]}",
                )
            )
    limit = ROOT_CAUSE_TIME.get(severity)
    detected = inc.get("detected_at")
    if limit is not None and detected is not None:
        deadline = detected + limit
        if (
            deadline <= now
            and not _before(inc.get("root_cause_at"), deadline)
            and not _before(ended, deadline)
        ):
            nxt = min(max(tier, int(inc.get("escalation_tier") or 0)) + 1, len(names) - 1)
            events.append(
                TimerEvent(
                    "root_cause",
                    deadline,
                    nxt,
                    f"no root cause {_text(limit)} after detection ({severity}): escalating to {names[nxt]}",
                )
            )
    last = len(names) - 1
    for key, limit, to in UNRESOLVED.get(severity, ()):
        if detected is None:
            break
        deadline = detected + limit
        if deadline > now or _before(ended, deadline):
            continue
        if to == "next":  # as the root-cause timer counts it: both due at 30 min reach one level
            nxt = min(max(tier, int(inc.get("escalation_tier") or 0)) + 1, last)
            where = f"the next level, {names[nxt]}"
        else:
            nxt, where = last, f"leadership, {names[last]}"
        events.append(
            TimerEvent(
                key,
                deadline,
                nxt,
                f"not resolved {_text(limit)} after detection ({severity}, the escalation matrix): "
                f"escalating to {where}",
            )
        )
    return sorted(events, key=lambda e: e.at)


def duration_text(delta: dt.timedelta) -> str:
    """`15 min`, `2 h`, `90 s` (for messages)."""
    if delta.total_seconds() < 60:
        return f"{delta.total_seconds():g} s"
    return _text(delta)


def _text(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


# --- the post-mortem's deadline ------------------------------------------------------------------

POSTMORTEM_DUE = dt.timedelta(hours=POSTMORTEM_HOURS)
POSTMORTEM_SEVERITIES = ("SEV1", "SEV2")


@dataclass(frozen=True)
class PostmortemEvent:
    kind: str  # postmortem_scheduled | postmortem_overdue
    key: str  # "<kind>:<due ISO>": one of each per resolution
    at: dt.datetime  # the resolution (scheduled) or the deadline (overdue)
    due: dt.datetime
    message: str


def postmortem_due(inc: Mapping[str, Any]) -> dt.datetime | None:
    """When the post-mortem of a resolved or closed SEV1/SEV2 incident is due: 48 h after its
    resolution. None for anything else: open, SEV3/SEV4, imported (reviewed where it came from), never
    routed (a history load's, over before it arrived: nobody was told of it)."""
    resolved = inc.get("resolved_at")
    if (
        inc.get("severity") not in POSTMORTEM_SEVERITIES
        or inc.get("imported")
        or inc.get("route") is None
        or inc.get("status") not in ("resolved", "closed")
        or not isinstance(resolved, dt.datetime)
    ):
        return None
    return resolved + POSTMORTEM_DUE


def postmortem_owner(entries: Iterable[Mapping[str, Any]]) -> str | None:
    """Who owns the post-mortem, from the timeline's entries (dicts with `kind`, `actor` and `data`, in
    timeline order): the incident commander when one is assigned, else whoever resolved the incident
    last (the actor of its latest `resolved` entry); None when neither is known."""
    entries = list(entries)
    commander = roles_from_timeline(entries).get("incident_commander")
    if commander:
        return commander
    resolver = None
    for entry in entries:
        actor = entry.get("actor")
        if entry.get("kind") == "resolved" and isinstance(actor, str) and actor:
            resolver = actor
    return resolver


def _owner_text(owner: str | None) -> str:
    return f"owner {owner}" if owner else "no owner named (assign an incident commander)"


def postmortem_timers(inc: Mapping[str, Any], now: dt.datetime, owner: str | None) -> list[PostmortemEvent]:
    """The post-mortem entries `inc` has by `now`: scheduled at its resolution; overdue at the deadline
    when no post-mortem was done by then (a post-mortem done exactly at the deadline is in time)."""
    due = postmortem_due(inc)
    if due is None or inc["resolved_at"] > now:
        return []
    sev, by = inc["severity"], f"{due:%Y-%m-%d %H:%M} UTC"
    events = [
        PostmortemEvent(
            "postmortem_scheduled",
            f"postmortem_scheduled:{due.isoformat()}",
            inc["resolved_at"],
            due,
            f"post-mortem due by {by} ({sev}: within {_text(POSTMORTEM_DUE)} of the resolution); "
            + _owner_text(owner),
        )
    ]
    if due <= now and not _before(inc.get("postmortem_done_at"), due):
        events.append(
            PostmortemEvent(
                "postmortem_overdue",
                f"postmortem_overdue:{due.isoformat()}",
                due,
                due,
                f"post-mortem overdue: none done by {by}, {_text(POSTMORTEM_DUE)} after the resolution "
                f"({sev}); " + _owner_text(owner),
            )
        )
    return events


def postmortem_state(inc: Mapping[str, Any], now: dt.datetime, owner: str | None) -> str | None:
    """One line on the post-mortem's deadline for showing (the incident page): due, overdue or done;
    that SEV3/SEV4 have none; None while the incident is open."""
    if inc.get("status") not in ("resolved", "closed"):
        return None
    due = postmortem_due(inc)
    if due is None:
        sev = inc.get("severity")
        if sev in POSTMORTEM_SEVERITIES:  # imported or never routed
            return None
        return f"No post-mortem deadline ({sev or 'unclassified'}: only SEV1/SEV2 have one, 48 h)."
    by, done = f"{due:%Y-%m-%d %H:%M} UTC", inc.get("postmortem_done_at")
    if isinstance(done, dt.datetime):
        if done <= due:
            return f"Post-mortem done {done:%Y-%m-%d %H:%M} UTC, within its 48 h (due by {by})."
        return f"Post-mortem done {done:%Y-%m-%d %H:%M} UTC, after its deadline ({by})."
    if due <= now:
        return f"Post-mortem overdue since {by}: none done yet; {_owner_text(owner)}."
    return f"Post-mortem due by {by}; {_owner_text(owner)}."
