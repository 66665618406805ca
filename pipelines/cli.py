"""The `slo` command line (DESIGN §3): exit 0 ok, 1 bad input, 2 usage.

Each command handler imports what its command runs, deliberately inside the function: `slo --help`
and every other command start without loading DuckDB, pandas or the Prometheus client for nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines import launch
from pipelines.analytics import cli as analytics_cli
from pipelines.config import Settings
from pipelines.errors import PullFailed, SloError, SpecError
from pipelines.outside_text import terminal
from pipelines.progress import Progress
from pipelines.timeutil import datetime_of, iso, minute_of


def _timestamp(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time; expected e.g. 2026-11-23T12:00:00Z"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slo",
        description="Error budgets, burn-rate alerts and policy states for every SLO.",
        epilog="Settings come from the environment (SLO_DATA_DIR, SLO_SPECS_DIR, …) or a .env file.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="validate SLO specs (default: SLO_SPECS_DIR)")
    p.add_argument("paths", nargs="*", help="spec files or directories")
    p.add_argument("--json", action="store_true", help="print SLOs, warnings and problems as JSON")
    p.add_argument(
        "--native",
        action="store_true",
        help="print the specs in the native format (e.g. imported OpenSLO or Sloth files)",
    )

    p = sub.add_parser("demo", help="build the embedded demo and evaluate it (replaces the data dir's store)")
    p.add_argument("--now", type=_timestamp, help="pretend it is this UTC time (default: now)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fixed)")
    p.add_argument("--json", action="store_true", help="print a run summary as JSON")

    p = sub.add_parser("run", help="pull metrics and run every pipeline")
    p.add_argument(
        "--source",
        choices=["demo", "csv", "prometheus"],
        default="demo",
        help="demo: the embedded demo; csv: --events files; prometheus: PROMETHEUS_URL (incremental)",
    )
    p.add_argument(
        "--events",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="CSV/Parquet files with columns slo,timestamp,good,valid (--source csv)",
    )
    p.add_argument(
        "--from",
        dest="start",
        type=_timestamp,
        help="first minute to load (UTC; prometheus default: each SLO's high-water mark, else its window)",
    )
    p.add_argument(
        "--to",
        dest="end",
        type=_timestamp,
        help="evaluate up to this instant (UTC; default: the end of the data)",
    )
    p.add_argument("--json", action="store_true", help="print a run summary as JSON")

    p = sub.add_parser("status", help="budget, burn rates, alerts and policy state of every SLO")
    p.add_argument("--at", type=_timestamp, help="evaluate at this UTC instant (default: latest)")
    p.add_argument("--service", help="only this service")
    p.add_argument("--json", action="store_true", help="print JSON (DESIGN §3)")

    p = sub.add_parser("rules", help="Prometheus recording and alerting rules for every SLO")
    p.add_argument("paths", nargs="*", help="spec files or directories (default: SLO_SPECS_DIR)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the rules here (default: stdout)")
    p.add_argument(
        "--runbook-url",
        metavar="BASE",
        help="runbook links are BASE/<service>/ (default: SLO_RUNBOOK_BASE_URL, else 'runbooks')",
    )
    analytics_cli.register(sub)  # slo import incidents, slo report quarterly
    from pipelines.incidents.cli_incidents import register as register_incidents

    register_incidents(sub)
    from pipelines.incidents.cli_oncall import register as register_oncall

    register_oncall(sub)  # slo oncall (issue 17)
    from pipelines.incidents.cli_deploys import register as register_deploys

    register_deploys(sub)  # slo deploys (issue 17)
    p = sub.add_parser(  # defined here: the service's module loads FastAPI, ~1.5 s, for `slo serve` only
        "serve",
        help="the ingest API and the pipeline worker",
        description="Serve POST /api/incidents/ingest, commands, health and OpenAPI, and run the pipeline "
        "cycle every SLO_CYCLE_SECONDS. Without SLO_INGEST_TOKEN only 127.0.0.1 is allowed.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    launch.register(sub)  # slo dashboard, slo up
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load()  # a bad setting (e.g. SLO_TRIAGE_TIMEOUT=soon) is an exit-1 error too
        handler = {
            "validate": cmd_validate,
            "demo": cmd_demo,
            "run": cmd_run,
            "status": cmd_status,
            "rules": cmd_rules,
            "import": analytics_cli.cmd_import,
            "report": analytics_cli.cmd_report,
            "incidents": cmd_incidents,
            "oncall": _cmd_oncall,
            "deploys": _cmd_deploys,
            "serve": _cmd_serve,
        }
        handler.update(launch.HANDLERS)
        return handler[args.command](args, settings)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing was applied", file=sys.stderr)
        return 1
    except SloError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the published snapshot is unchanged", file=sys.stderr)
        return 130


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.specs import load_specs

    paths = args.paths or [settings.specs_dir]
    try:
        slos, warnings = load_specs(paths)
    except SpecError as exc:
        if args.json:
            print(json.dumps({"ok": False, "problems": [p.__dict__ for p in exc.problems]}, indent=2))
            return 1
        raise
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.native:
        from pipelines.specs import native_yaml

        print(native_yaml(slos), end="")
        return 0
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "slos": [
                        {
                            "slo": s.id,
                            "target": s.target,
                            "window": s.window.text,
                            "sli_kind": s.sli.kind,
                            "alerts": len(s.alerts),
                        }
                        for s in slos
                    ],
                    "warnings": [w.__dict__ for w in warnings],
                },
                indent=2,
            )
        )
    else:
        for slo in slos:
            print(f"ok  {slo.id:<40} {slo.target * 100:g}% over {slo.window.text} ({slo.sli.kind})")
        print(f"{len(slos)} SLO(s) valid, {len(warnings)} warning(s)")
    return 0


def _summary(
    args: argparse.Namespace,
    report: Any,
    seconds: float,
    incidents: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    summary: dict[str, Any] = {
        "slos": report.slos,
        "buckets_written": report.buckets_written,
        "minutes_evaluated": report.minutes_evaluated,
        "evaluated_to": iso(datetime_of(report.end)),
        "seconds": round(seconds, 2),
        **(extra or {}),
    }
    if incidents is not None:
        summary["incidents"] = incidents
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['slos']} SLOs · {summary['buckets_written']:,} buckets written · "
            f"{summary['minutes_evaluated']:,} SLO-minutes evaluated up to {summary['evaluated_to']} "
            f"in {summary['seconds']}s"
        )
        if incidents is not None:
            print(
                f"{incidents['incidents']} incidents: {incidents['auto_remediated']} auto-remediated, "
                f"{incidents['escalated']} escalated, {incidents['repeats']} repeats, "
                f"{incidents['open']} still open, {incidents['overdue_action_items']} overdue action items"
                " — `slo incidents list`"
            )


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.cycle import run_cycle
    from pipelines.demo.source import demo_pull

    started = time.monotonic()
    slos, pull, replay = demo_pull(args.now, args.seed, Progress("generating"))
    report = run_cycle(settings, slos, pull, stage=replay, reset=True, progress=Progress("evaluating"))
    _summary(args, report, time.monotonic() - started, _demo_incidents(settings, report.end))
    return 0


def _demo_incidents(settings: Settings, end: int) -> dict[str, int]:
    from pipelines.demo.replay import summary
    from pipelines.store import Snapshot

    snapshot = Snapshot(settings.data_dir)
    with snapshot.connection() as con:
        result = summary(con, datetime_of(end))
    snapshot.close()
    return result


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.cycle import republish_if_unreadable, run_cycle
    from pipelines.sources import Pull
    from pipelines.specs import load_specs

    started = time.monotonic()
    republish_if_unreadable(settings.data_dir)  # the demo and Prometheus runs read the snapshot first
    if args.source == "demo":
        return _run_demo(args, settings, started)
    if args.source == "prometheus":
        return _run_prometheus(args, settings, started)
    if not args.events:
        raise SloError("--source csv needs --events FILE…")
    from pipelines.sources.events_file import EventsFile

    slos, warnings = load_specs([settings.specs_dir])
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    start = minute_of(args.start) if args.start else None
    end = minute_of(args.end) if args.end else None
    # The files are read by the writer's DuckDB (checked, keyed and summed in SQL), never row by row.
    files = [EventsFile(Path(path), start, end) for path in args.events]
    pull = Pull(buckets=files, end=end, origin=", ".join(map(str, args.events)))
    report = run_cycle(settings, slos, pull, progress=Progress("evaluating"))
    _summary(args, report, time.monotonic() - started)
    return 0


def _run_prometheus(args: argparse.Namespace, settings: Settings, started: float) -> int:
    """Pull from Prometheus; an incomplete pull publishes nothing and marks its SLOs stale."""
    from pipelines.cycle import run_prometheus
    from pipelines.specs import load_specs

    slos, warnings = load_specs([settings.specs_dir])
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        report, stats = run_prometheus(
            settings,
            slos,
            start=minute_of(args.start) if args.start else None,
            end=minute_of(args.end) if args.end else None,
            progress=Progress("prometheus"),
            evaluate_progress=Progress("evaluating"),
        )
    except PullFailed as exc:
        if args.json:
            stale = [{"slo": slo, "reason": reason} for slo, reason in sorted(exc.failures.items())]
            print(json.dumps({"ok": False, "published": False, "stale": stale}, indent=2))
        raise
    for slo, minutes in sorted(stats.clipped.items()):
        print(
            f"warning: {slo}: {minutes} minute(s) had good events outside 0…valid (clipped)", file=sys.stderr
        )
    pulled = {
        "requests": stats.requests,
        "ranges": {
            slo: [iso(datetime_of(a)), iso(datetime_of(b))]
            for slo, (a, b) in sorted(stats.ranges.items())
        },
    }
    _summary(args, report, time.monotonic() - started, extra={"prometheus": pulled})
    return 0


def _run_demo(args: argparse.Namespace, settings: Settings, started: float) -> int:
    """Advance the demo to now: only minutes after the last run are written and evaluated.

    The demo is deterministic per minute, so earlier minutes are what is stored already. Without a
    demo store yet, this is `slo demo`.
    """
    import pandas as pd

    from pipelines.cycle import run_cycle
    from pipelines.demo.replay import at_data_end
    from pipelines.demo.source import demo_pull
    from pipelines.store import Snapshot

    snapshot = Snapshot(settings.data_dir)
    last = None
    if snapshot.exists():
        with snapshot.connection() as con:
            row = con.execute("SELECT max(data_to) FROM runs WHERE source = 'demo'").fetchone()
            last = row[0] if row else None
        snapshot.close()
    if last is None:
        return cmd_demo(argparse.Namespace(now=args.end, seed=None, json=args.json), settings)
    slos, pull, _ = demo_pull(args.end, None, Progress("generating"))  # the ground truth is recorded already
    frame = pull.buckets
    if not isinstance(frame, pd.DataFrame) or pull.end is None:
        raise TypeError("the demo's pull is a frame that ends at a known minute")
    if pull.end <= last:
        raise SloError(f"the demo is already evaluated up to {datetime_of(last):%Y-%m-%dT%H:%MZ}")
    pull.buckets = frame[frame["minute"] >= last]
    pull.deploys = [d for d in pull.deploys if minute_of(d[1]) >= last]
    report = run_cycle(settings, slos, pull, stage=at_data_end, progress=Progress("evaluating"))
    _summary(args, report, time.monotonic() - started)
    return 0


STATE_STYLE = {
    "normal": "32",
    "freeze_review": "33",
    "reliability_focus": "31",
    "exhausted": "1;41;37",
}


def _fmt_pct(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _fmt_burn(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render_status(rows: list[dict[str, Any]], color: bool) -> str:
    """A table an SRE scans in seconds: worst budget first, state and firing alerts stand out."""

    def paint(text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color and code else text

    order = sorted(rows, key=lambda r: (r["budget_remaining"] is not None, r["budget_remaining"] or 0))
    header = [
        "SLO",
        "TARGET",
        "WINDOW",
        "SLI",
        "BUDGET LEFT",
        "STATE",
        "BURN 1h",
        "BURN 6h",
        "BURN 3d",
        "ALERTS",
    ]
    table = [header]
    styles: list[str | None] = [None]
    for r in order:
        alerts = (
            ", ".join(
                f"{a['severity'].upper()} {a['long_window']}/{a['short_window']}>{a['factor']:g}"
                for a in r["alerts"]
            )
            or "-"
        )
        state = r["policy_state"] or r["data_status"].upper()
        if r.get("stale"):
            state = f"STALE {state}"
        table.append(
            [
                terminal(r["slo"]),
                f"{r['target'] * 100:g}%",
                r["window"],
                _fmt_pct(r["sli"]),
                _fmt_pct(r["budget_remaining"], 1),
                state,
                _fmt_burn(r["burn_rates"]["1h"]),
                _fmt_burn(r["burn_rates"]["6h"]),
                _fmt_burn(r["burn_rates"]["3d"]),
                alerts,
            ]
        )
        styles.append("1;35" if r.get("stale") else STATE_STYLE.get(r["policy_state"] or "", "35"))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row, style in zip(table, styles, strict=True):
        cells = [
            cell.ljust(widths[i]) if i in (0, 2, 5, 9) else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        if style:
            cells[5] = paint(cells[5], style)
            if row[9] != "-":
                cells[9] = paint(cells[9], "1;31" if "PAGE" in row[9] else "1;33")
        lines.append("  ".join(cells).rstrip())
    at = rows[0]["evaluated_at"] if rows else "—"
    firing = sum(1 for r in rows if r["alerts"])
    pages = sum(1 for r in rows if any(a["severity"] == "page" for a in r["alerts"]))
    stale_count = sum(1 for r in rows if r.get("stale"))
    lines.insert(
        0,
        f"evaluated at {at} · {len(rows)} SLOs · {firing} alerting ({pages} paging)"
        + (f" · {stale_count} STALE (last pull failed: their last good data)" if stale_count else ""),
    )
    stale: dict[tuple[str, str], list[str]] = {}
    for r in order:
        if r.get("stale"):
            stale.setdefault((r["stale_reason"], (r["stale_since"] or "")[:19] + "Z"), []).append(r["slo"])
    for (reason, since), slos in stale.items():
        # The reason is the source's own error text (e.g. Prometheus's): shown without its controls.
        lines.append(f"STALE since {since}: {terminal(', '.join(sorted(slos)))}: {terminal(reason)}")
    for r in order:
        if r["data_status"] != "ok":
            lines.append(
                f"note: {terminal(r['slo'])}: {r['data_status'].replace('_', ' ')}"
                f" (last data {r['last_data_at'] or 'never'})"
            )
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.staleness import read_marks
    from pipelines.status import StatusQuery, status
    from pipelines.store import Snapshot

    snapshot = Snapshot(settings.data_dir)
    with snapshot.connection() as con:
        rows = status(con, StatusQuery(at=args.at, service=args.service), read_marks(settings.data_dir))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(render_status(rows, color=sys.stdout.isatty()))
    return 0


def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    """Write the Prometheus rules file (atomically with -o: a reader never sees half a file)."""
    from pipelines.rules import DEFAULT_RUNBOOK_BASE_URL, export_rules
    from pipelines.specs import load_specs

    slos, warnings = load_specs(args.paths or [settings.specs_dir])
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    base = args.runbook_url or os.environ.get("SLO_RUNBOOK_BASE_URL") or DEFAULT_RUNBOOK_BASE_URL
    rules = export_rules(slos, base)
    text = rules.render()
    if args.output is None:
        print(text, end="")
        return 0
    partial = args.output.with_name(args.output.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, args.output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise SloError(f"cannot write {args.output}: {exc.strerror}") from exc
    print(f"{len(rules.groups)} SLO rule group(s) written to {args.output}", file=sys.stderr)
    return 0


def cmd_incidents(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.incidents.cli_incidents import handle

    return handle(args, settings)


def _cmd_oncall(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.incidents.cli_oncall import handle
    from pipelines.store import Snapshot

    return handle(args, settings, lambda: Snapshot(settings.data_dir))


def _cmd_deploys(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.incidents.cli_deploys import handle

    return handle(args, settings)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.service.app import cmd_serve

    return cmd_serve(args, settings)


if __name__ == "__main__":
    sys.exit(main())
