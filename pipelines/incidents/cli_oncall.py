"""`slo oncall …`: check an on-call file, import a PagerDuty schedule, see who is on call, and the on-call
load (seed 002: pages per engineer per on-call week, under 5).

    slo oncall check [FILE]                     every problem, each naming the file and field; exit 1
    slo oncall import-pagerduty EXPORT.json     the file's people and schedules entries, as YAML
    slo oncall who [--at TIME]                  who each schedule has on call
    slo oncall load [--schedule S] [--tier N] [--days D] [--json]
                                                pages of tier N per person the schedule had on call

The store is read from the published snapshot, which the caller opens (`slo`'s handler imports it when
the command runs, for the CLI's start-up time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipelines.config import Settings
from pipelines.errors import ConfigError
from pipelines.incidents.oncall import OnCall, OnCallError, from_pagerduty_schedule, load_oncall, on_call_load

PAGES_PER_WEEK_TARGET = 5  # seed 002: "alert_if_pages_exceed: 5" pages per engineer per week


def register(sub: argparse._SubParsersAction) -> None:
    """Add `slo oncall` and its subcommands to the `slo` parser."""
    p = sub.add_parser("oncall", help="on-call schedules and escalation policies (SLO_ONCALL_FILE)")
    osub = p.add_subparsers(dest="oncall_command", required=True, metavar="SUBCOMMAND")
    q = osub.add_parser("check", help="check an on-call file (default: SLO_ONCALL_FILE)")
    q.add_argument("file", nargs="?", type=Path)
    q = osub.add_parser("import-pagerduty", help="a PagerDuty schedule (GET /schedules/{id} JSON) as YAML")
    q.add_argument("export", type=Path)
    q = osub.add_parser("who", help="who each schedule has on call")
    q.add_argument("--at", help="a UTC time, e.g. 2026-11-10T03:00:00Z (default: now)")
    q = osub.add_parser("load", help="pages per engineer per on-call week, from the schedule")
    q.add_argument("--schedule", help="default: the schedule tier 1 of the default policy pages")
    q.add_argument("--tier", type=int, default=1, help="count the pages of this tier (default 1)")
    q.add_argument("--days", type=int, default=28, help="the period: the last D days (default 28)")
    q.add_argument("--json", action="store_true", help="print JSON")


def handle(args: argparse.Namespace, settings: Settings, snapshot: Callable[[], Any]) -> int:
    sub = args.oncall_command
    if sub == "check":
        return _check(args.file or settings.oncall_file, settings)
    if sub == "import-pagerduty":
        return _import(args.export)
    book = _book(settings)
    if sub == "who":
        at = _time(args.at) if args.at else dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for name, schedule in sorted(book.schedules.items()):
            print(f"{name}: {schedule.on_call(at) or 'nobody'}")
        return 0
    return _load(args, book, snapshot)


def _book(settings: Settings) -> OnCall:
    if settings.oncall_file is None:
        raise ConfigError("SLO_ONCALL_FILE is not set: no schedules to read")
    return load_oncall(settings.oncall_file)


def _check(path: Path | None, settings: Settings) -> int:
    if path is None:
        raise ConfigError("no file given and SLO_ONCALL_FILE is not set")
    try:
        book = load_oncall(path)
    except OnCallError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); the file is not used", file=sys.stderr)
        return 1
    for variable in sorted(routing_key_variables(book)):
        if not settings.routing_key(variable):
            print(
                f"warning: {variable} is not set: a page through it is recorded as skipped", file=sys.stderr
            )
    print(
        f"{path}: {len(book.people)} people, {len(book.schedules)} schedule(s), "
        f"{len(book.policies)} polic{'y' if len(book.policies) == 1 else 'ies'}: ok"
    )
    return 0


def routing_key_variables(book: OnCall) -> set[str]:
    """Every environment variable the file pages through (PAGERDUTY_ROUTING_KEY for targets without one)."""
    names = {p.routing_key_env for p in book.people.values() if p.routing_key_env}
    for policy in book.policies.values():
        for tier in policy.tiers:
            if tier.target.kind == "routing_key_env":
                names.add(tier.target.value)
            elif tier.target.kind == "schedule" or not book.people[tier.target.value].routing_key_env:
                names.add("PAGERDUTY_ROUTING_KEY")
    return {str(n) for n in names}


def _import(path: Path) -> int:
    try:
        export = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a PagerDuty schedule export: {exc}") from None
    print(yaml.safe_dump(from_pagerduty_schedule(export), sort_keys=False, allow_unicode=True), end="")
    return 0


def _time(text: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at {text!r}: expected a time such as 2026-11-10T03:00:00Z") from None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def sent_pages(con: Any, tier: int) -> list[dt.datetime]:
    """When each page of `tier` (1-based) reached PagerDuty, from the timeline (a page recorded before
    tiers existed counts as tier 1)."""
    rows = con.execute(
        # every page PagerDuty accepted (the notification entries of the PagerDuty channel)
        """SELECT occurred_at, data FROM timeline
           WHERE kind = 'notification' AND source = 'pagerduty' AND message LIKE 'pagerduty: sent%'"""
    ).fetchall()
    out = []
    for at, data in rows:
        page = (json.loads(data) if data else {}).get("page") or {"tier": 1}
        if int(page.get("tier") or 1) == tier:
            out.append(at)
    return out


def _load(args: argparse.Namespace, book: OnCall, snapshot: Callable[[], Any]) -> int:
    name = args.schedule
    if name is None:
        first = book.policy_for("").tiers[0].target
        name = first.value if first.kind == "schedule" else None
    if name not in book.schedules:
        known = ", ".join(sorted(book.schedules)) or "none"
        raise ConfigError(f"--schedule {name!r}: no such schedule; the file has: {known}")
    end = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start = end - dt.timedelta(days=args.days)
    snap = snapshot()
    try:
        with snap.connection() as con:
            pages = sent_pages(con, args.tier)
    finally:
        snap.close()
    load = on_call_load(book.schedules[name], pages, start, end)
    rows = [
        {
            "person": x.person,
            "pages": x.pages,
            "on_call_weeks": x.on_call_weeks,
            "pages_per_week": x.pages_per_week,
            "over_target": (x.pages_per_week or 0) > PAGES_PER_WEEK_TARGET,
        }
        for x in load
    ]
    if args.json:
        print(json.dumps({"schedule": name, "tier": args.tier, "days": args.days, "people": rows}, indent=2))
        return 0
    print(
        f"{name}, tier {args.tier}, the last {args.days} days (target: under {PAGES_PER_WEEK_TARGET} a week)"
    )
    for r in rows:
        flag = "  over the target" if r["over_target"] else ""
        print(f"  {r['person']}: {r['pages']} page(s) in {r['on_call_weeks']:g} week(s) on call: "
              f"{r['pages_per_week'] if r['pages_per_week'] is not None else '-'} a week{flag}")  # fmt: skip
    return 0
