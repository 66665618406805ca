"""`slo import incidents` and `slo report quarterly`; `register` adds them to the parser.

The handlers import what they run inside the function, deliberately, for the CLI's start-up time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pipelines.analytics.quarter import Quarter
from pipelines.errors import ImportFileError


def _quarter(text: str) -> Quarter:
    try:
        return Quarter.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _setting(text: str) -> Any:
    from pipelines.analytics.alert_quality import parse_setting

    try:
        return parse_setting(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(sub: Any) -> None:
    p = sub.add_parser("import", help="import historical data")
    what = p.add_subparsers(dest="import_what", required=True, metavar="WHAT")
    pi = what.add_parser(
        "incidents",
        help="historical incidents: a Statuspage incidents.json or a CSV "
        "(formats: pipelines/analytics/importer.py)",
    )
    pi.add_argument("--format", required=True, choices=["statuspage", "csv"])
    pi.add_argument("file", type=Path, metavar="FILE", help="the incidents.json or CSV file to import")
    pi.add_argument("--json", action="store_true", help="print what was imported as JSON")
    from pipelines.incidents.cli_deploys import register_import

    register_import(what)  # slo import deploys (issue 17)

    p = sub.add_parser("report", help="reports")
    what = p.add_subparsers(dest="report_what", required=True, metavar="WHAT")
    pr = what.add_parser("quarterly", help="the quarterly reliability review")
    pr.add_argument(
        "--quarter",
        type=_quarter,
        help="e.g. 2026-Q3 (default: the last full quarter before the data's end)",
    )
    pr.add_argument("--format", choices=["md", "html", "json"], default="md")
    pr.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    pr.add_argument("--repeat-days", type=int, default=30, help="repeat window in days (default 30)")
    pr.add_argument("--deploy-hours", type=int, default=4, help="deploy correlation window (default 4)")
    pr.add_argument(
        "--candidate",
        action="append",
        type=_setting,
        default=[],
        metavar="LONG/SHORT>FACTOR[,…]",
        help="also backtest this page setting on every SLO, e.g. '1h/5m>10,6h/30m>4' (repeatable)",
    )
    pr.add_argument("--no-backtest", action="store_true", help="skip the backtest (large fleets)")


def cmd_import(args: argparse.Namespace, settings: Any) -> int:
    if args.import_what == "deploys":
        from pipelines.incidents.cli_deploys import cmd_import as import_deploys

        return import_deploys(args, settings)
    from pipelines.cycle import import_history

    try:
        outcome = import_history(settings.data_dir, args.format, args.file)
    except ImportFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was imported", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2))
        return 0
    print(
        f"{outcome.incidents} incident(s) in {args.file} "
        f"({outcome.skipped_maintenance} maintenance left out): "
        f"{outcome.accepted} new, {outcome.duplicates} already imported"
    )
    if outcome.queued:
        print("queued; the running service will apply it")
    elif outcome.accepted:
        print(f"applied {outcome.applied} incident(s) and published a new snapshot")
    return 0


def cmd_report(args: argparse.Namespace, settings: Any) -> int:
    from pipelines.analytics.alert_quality import DEFAULT_SETTINGS
    from pipelines.analytics.render import render_html, render_markdown
    from pipelines.analytics.review import build_review, data_as_of, empty_message
    from pipelines.analytics.summary import attach_summary
    from pipelines.incidents.oncall import configured
    from pipelines.store import Snapshot

    book = configured(settings)  # the on-call load per engineer; a file that cannot be used: exit 1
    snapshot = Snapshot(settings.data_dir)
    try:
        with snapshot.connection() as con:
            quarter = args.quarter or Quarter.last_full(data_as_of(con))
            review = build_review(
                con,
                quarter,
                repeat_days=args.repeat_days,
                deploy_hours=args.deploy_hours,
                settings=(*DEFAULT_SETTINGS, *args.candidate),
                with_backtest=not args.no_backtest,
                oncall=book,
            )
    finally:
        snapshot.close()
    if review["empty"]:
        print(f"error: {empty_message(review)} Pick another quarter with --quarter.", file=sys.stderr)
        return 1
    attach_summary(review, dict(os.environ))
    if args.format == "json":
        text = json.dumps(review, indent=2, default=str) + "\n"
    elif args.format == "html":
        text = render_html(review)
    else:
        text = render_markdown(review)
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"error: {args.output}: cannot write the report: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.output} ({args.format}, {quarter.label})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
