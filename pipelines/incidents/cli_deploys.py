"""`slo deploys add|list` and `slo import deploys --format csv|github` (the deploy feed, issue 17).

    slo deploys add --service S --version V [--at T] [--who W] [--link URL] [--description D]
    slo deploys list [--service S] [--limit N] [--json]
    slo import deploys --format csv|github FILE [--json]

Like a human step (`cli_incidents`), a deploy is checked whole (every deploy of a file: nothing is
stored when one is bad), appended to the durable inbox, then folded at once when no writer holds the
store, or left for the running service (`queued`). `who` defaults to the login of the OS user running
the CLI. A GitHub file holds one webhook payload or a list of them (`deployment` and
`deployment_status`; the event is told by the payload's fields); payloads that are not a production
deploy are listed as ignored. The store and the write path are imported inside the handlers, for the
CLI's start-up time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pwd
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import MalformedInput, SloError
from pipelines.inbox import Inbox
from pipelines.ingest.deploys import (
    Deploy,
    Ignored,
    check_service,
    github_event,
    github_service_field,
    parse_csv,
    parse_github,
    parse_native,
    to_entry,
)
from pipelines.outside_text import terminal as tt

SPEC_SERVICES_TTL_S = 30.0  # the known services are read again at most this often (but see below)
_known: dict[Path, tuple[float, frozenset[str]]] = {}


def register(sub: argparse._SubParsersAction) -> None:
    """Add `slo deploys` to the `slo` parser."""
    p = sub.add_parser("deploys", help="the deploy feed: record a deploy, list deploys")
    dsub = p.add_subparsers(dest="deploys_command", required=True, metavar="SUBCOMMAND")
    q = dsub.add_parser("add", help="record one deploy (for correlation, triage and the review)")
    q.add_argument("--service", required=True, help="a service with an SLO spec")
    q.add_argument("--version", required=True, help="what was deployed (tag, version, commit)")
    q.add_argument("--at", help="when, ISO 8601 (default: now)")
    q.add_argument("--who", help="who deployed (default: your login)")
    q.add_argument("--link", help="an http(s) link: the CI run, the release")
    q.add_argument("--description", help="what changed")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = dsub.add_parser("list", help="deploys from the feed, newest first")
    q.add_argument("--service", help="only this service")
    q.add_argument("--limit", type=int, default=50, help="at most N (default 50)")
    q.add_argument("--json", action="store_true", help="print JSON")


def register_import(what: argparse._SubParsersAction) -> None:
    """Add `slo import deploys` under `slo import`."""
    q = what.add_parser("deploys", help="deploys: a CSV, or GitHub deployment/deployment_status payloads")
    q.add_argument("--format", required=True, choices=["csv", "github"])
    q.add_argument("file", type=Path, metavar="FILE")
    q.add_argument("--json", action="store_true", help="print what was imported as JSON")


def handle(args: argparse.Namespace, settings: Settings) -> int:
    if args.deploys_command == "list":
        return _list(args, settings)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    body: dict[str, Any] = {
        "service": args.service,
        "version": args.version,
        "time": args.at or now.isoformat() + "Z",
        "who": args.who or _login(),
    }
    body.update({k: v for k, v in (("link", args.link), ("description", args.description)) if v})
    try:
        deploy = parse_native(body, now, source="cli")
        check_service(deploy, known_services_now(settings, deploy.service))
    except MalformedInput as exc:
        raise SloError(_cli_field(str(exc))) from None
    return _store(args, settings, [deploy], [])


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """`slo import deploys`: every deploy of the file checked first; one bad → exit 1, nothing stored."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        content = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SloError(f"{args.file}: cannot read: {exc}") from None
    known = known_services_now(settings)
    deploys: list[Deploy] = []
    ignored: list[str] = []
    try:
        if args.format == "csv":
            deploys = parse_csv(content, now)
            for d in deploys:
                check_service(d, known)
        else:
            try:
                data = json.loads(content)
            except ValueError as exc:
                raise MalformedInput(f"not JSON: {exc}") from None
            payloads = data if isinstance(data, list) else [data]
            for i, payload in enumerate(payloads):
                path = f"[{i}]" if isinstance(data, list) else ""
                found = parse_github(github_event(None, payload), payload, now, settings.deploy_environments,
                                     path=path)  # fmt: skip
                if isinstance(found, Ignored):
                    ignored.append(f"{path or 'payload'}: {found.reason}")
                    continue
                field = github_service_field(payload)
                check_service(found, known, f"{path}.{field}" if path else field)
                deploys.append(found)
    except MalformedInput as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        print("nothing was imported", file=sys.stderr)
        return 1
    return _store(args, settings, deploys, ignored)


def _store(args: argparse.Namespace, settings: Settings, deploys: list[Deploy], ignored: list[str]) -> int:
    actor = _login()
    inbox = Inbox(settings.data_dir)
    try:
        result = inbox.append([to_entry(d, actor) for d in deploys]) if deploys else None
    finally:
        inbox.close()
    from pipelines.cycle import apply_inbox  # lazy: `slo --help` must not load DuckDB and pandas

    applied = apply_inbox(settings) if deploys else True
    out = {
        "deploys": [d.to_json() for d in deploys],
        "accepted": result.accepted if result else [],
        "duplicates": result.duplicates if result else [],
        "ignored": ignored,
        "outcome": "applied" if applied else "queued; the running service will apply it",
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for d in deploys:
        state = "duplicate (already recorded)" if result and d.key in result.duplicates else "recorded"
        print(
            f"{tt(d.service)} {tt(d.version)} at {d.deployed_at:%Y-%m-%d %H:%M:%S}Z by {tt(d.who)}: {state}"
        )
    for reason in ignored:
        print(f"ignored: {tt(reason)}")
    if deploys and not applied:
        print("queued; the running service will apply it")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.incidents.deploy_feed import list_deploys  # lazy: DuckDB only when it runs
    from pipelines.store import Snapshot

    snap = Snapshot(settings.data_dir)
    if not snap.exists():
        raise SloError("no published snapshot yet; run `slo demo`, `slo run` or `slo serve` first")
    try:
        with snap.connection() as con:
            rows = list_deploys(con, args.service, max(1, args.limit))
    finally:
        snap.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        link = f"  {tt(r['link'])}" if r["link"] else ""
        print(f"{r['deployed_at']}  {tt(r['service'])}  {tt(r['version'])}  by {tt(r['who'])}{link}")
    return 0


def known_services_now(settings: Settings, service: str | None = None) -> set[str]:
    """The services a deploy may name: those of the specs in SLO_SPECS_DIR and of the SLOs in the
    published store. Kept for SPEC_SERVICES_TTL_S while they name `service`; a service they do not name
    reads both again first (a spec added a moment ago). A spec directory with a problem, or an
    unreadable snapshot, contributes nothing (the other may still know the service)."""
    cached = _known.get(settings.specs_dir)
    if cached is not None and time.monotonic() - cached[0] <= SPEC_SERVICES_TTL_S and service in cached[1]:
        return set(cached[1])
    names = frozenset(_spec_services(settings) | _stored_services(settings))
    _known[settings.specs_dir] = (time.monotonic(), names)
    return set(names)


def _spec_services(settings: Settings) -> set[str]:
    from pipelines.specs import load_specs  # lazy: the service's door and the CLI load it when asked

    if not settings.specs_dir.exists():
        return set()
    try:
        return {s.service for s in load_specs([settings.specs_dir])[0]}
    except SloError:
        return set()


def _stored_services(settings: Settings) -> set[str]:
    from pipelines.errors import SnapshotUnreadable  # lazy: DuckDB only when it runs
    from pipelines.incidents.deploy_feed import known_services
    from pipelines.store import Snapshot

    snap = Snapshot(settings.data_dir)
    try:
        if not snap.exists():
            return set()
        with snap.connection() as con:
            return known_services(con)
    except SnapshotUnreadable:
        return set()
    finally:
        snap.close()


def _cli_field(message: str) -> str:
    """A field named as the JSON body has it, said as the CLI's option (`time` is `--at`)."""
    name, sep, rest = message.partition(":")
    options = {"time": "--at", "service": "--service", "version": "--version", "who": "--who",
               "link": "--link", "description": "--description"}  # fmt: skip
    return f"{options[name]}{sep}{rest}" if name in options else message


def _login() -> str:
    """The OS user running the CLI (the effective uid's login, as for human steps in `cli_incidents`)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name.strip()[:200] or "cli"
    except (KeyError, OSError):
        return "cli"
