"""`slo incidents …`: list and show incidents, and record human steps.

Reading commands use the published snapshot. Steps (ack, mitigate, resolve, close, root cause, action
items, approvals, re-triage, role assignments, severity triggers) are appended to the durable inbox
first; then, when no writer holds the store, this process folds the inbox at once (the incident stage
only) and publishes, and prints what became of the step. While `slo serve` runs, it says "queued; the
running service will apply it". The store and the write path are imported inside the handlers,
deliberately, for the CLI's start-up.

Who: a step is recorded as made by the OS user running the CLI, approvals too: the login name of the
effective uid (`pwd.getpwuid(os.geteuid())`). Environment variables (LOGNAME, USER) do not change it,
and there is no `--actor`. The CLI is an operator's tool on the machine itself: whoever can run it can
write the data directory anyway, so it checks no role (the API and the dashboard do, issue 15): its
`--override` of the communications lead's approvals is taken as the local admin's, and the timeline
says it was an override.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pwd
import sys
from typing import Any

from pipelines.config import Settings
from pipelines.errors import SloError
from pipelines.incidents.incident_roles import ic_missing, role_choices
from pipelines.incidents.incident_roles import summary as roles_summary
from pipelines.incidents.read import incident_detail, list_incidents
from pipelines.incidents.severity_rules import TRIGGERS
from pipelines.outside_text import terminal as tt

STEPS: dict[str, tuple[str, str]] = {
    # subcommand: (command, help)
    "ack": ("acknowledge", "acknowledge the incident"),
    "mitigate": ("mitigate", "the impact is mitigated"),
    "resolve": ("resolve", "the incident is resolved"),
    "close": ("close", "the post-mortem is done (needs a root cause)"),
    "reopen": ("reopen", "the impact is back"),
    "retriage": ("retriage", "run the triage again"),
    "approve-status": (
        "approve_status",
        "as its communications lead, approve posting it to the status page (--note: the user impact)",
    ),
    "approve-updates": (
        "approve_updates",
        "as its communications lead, approve sending its stakeholder updates to Slack, at their cadence",
    ),
}
# Taken only from the incident's communications lead (assign one: `assign ID --role comms --person
# NAME`); `--override` approves without being it, recorded on the timeline as an admin override.
COMMS_STEPS = ("approve-status", "approve-updates")
DOCUMENT_KINDS = (
    "triage_report",
    "technical_analysis",
    "remediation_plan",
    "stakeholder_update",
    "postmortem",
    "runbook_suggestion",
)
STATUSES = ("triggered", "acknowledged", "mitigated", "resolved", "closed", "open")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `slo incidents` and its subcommands to the `slo` parser."""
    p = sub.add_parser("incidents", help="list and show incidents; record human steps")
    isub = p.add_subparsers(dest="incidents_command", required=True, metavar="SUBCOMMAND")
    q = isub.add_parser("list", help="incidents, newest first, with triage and route")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("--status", choices=STATUSES, help="only this status (open: not resolved or closed)")
    q.add_argument("--service", help="only this service")
    q.add_argument("--limit", type=_positive, help="at most N incidents")
    q = isub.add_parser("show", help="one incident: times with sources, triage, route, timeline, documents")
    q.add_argument("id")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument(
        "--document",
        choices=DOCUMENT_KINDS,
        help="print the latest document of this kind (markdown) instead of the summary",
    )
    for name, (_, text) in STEPS.items():
        q = isub.add_parser(name, help=text)
        q.add_argument("id")
        q.add_argument("--note", help="a note for the timeline")
        if name in COMMS_STEPS:
            q.add_argument(
                "--override",
                action="store_true",
                help="approve without being the communications lead (the timeline records an admin "
                "override); without it only the communications lead's approval is taken, see `assign "
                "ID --role comms --person NAME`",
            )
        _common(q)
    q = isub.add_parser("root-cause", help="record the root cause (and the fix)")
    q.add_argument("id")
    q.add_argument("--category", required=True, help="e.g. deploy, config, capacity, dependency, code")
    q.add_argument("--text", required=True, help="what failed and why")
    q.add_argument("--fix", help="what fixed it")
    _common(q)
    q = isub.add_parser("action-item", help="add a post-mortem action item")
    q.add_argument("id")
    q.add_argument("--title", required=True)
    q.add_argument("--owner", required=True)
    q.add_argument("--priority", help="P0…P4 (default P2)")
    q.add_argument("--due", required=True, help="due date YYYY-MM-DD")
    _common(q)
    q = isub.add_parser("action-item-done", help="mark an action item done")
    q.add_argument("id")
    q.add_argument("--item", required=True, help="the action item id, e.g. INC-0001-A1")
    _common(q)
    q = isub.add_parser(
        "assign", help="assign an incident role: incident commander, communications, technical lead, scribe"
    )
    q.add_argument("id")
    q.add_argument("--role", required=True, help=f"one of {role_choices()}")
    q.add_argument("--person", required=True, help="who takes the role, e.g. alice")
    q.add_argument("--note", help="a note for the timeline")
    _common(q)
    q = isub.add_parser(
        "severity-trigger",
        help="raise the severity by a severity trigger: data integrity, customer-reported, scope doubled",
    )
    q.add_argument("id")
    q.add_argument(
        "--trigger",
        required=True,
        choices=[t.replace("_", "-") for t in TRIGGERS],
        help="data-integrity → SEV1; customer-reported → at least SEV2; scope-doubled → one level up",
    )
    q.add_argument("--note", help="a note for the timeline")
    _common(q)
    for name, text in (
        ("approve", "approve a remediation waiting for approval"),
        ("reject", "reject a remediation waiting for approval (the incident escalates)"),
    ):
        q = isub.add_parser(name, help=text)
        q.add_argument("id")
        q.add_argument("--remediation", required=True, help="the remediation id, e.g. INC-0001-R1")
        q.add_argument("--reason")
        _common(q)


def _common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--json", action="store_true", help="print the outcome as JSON")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 1 or more")
    return value


def handle(args: argparse.Namespace, settings: Settings) -> int:
    sub = args.incidents_command
    if sub == "list":
        return _list(args, settings)
    if sub == "show":
        return _show(args, settings)
    return _step(args, settings)


# --- reading --------------------------------------------------------------------------------------


def _snapshot(settings: Settings) -> Any:
    from pipelines.store import Snapshot

    return Snapshot(settings.data_dir)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    snap = _snapshot(settings)
    with snap.connection() as con:
        rows = list_incidents(con, args.status, args.service, args.limit)
    snap.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no incidents")
        return 0
    header = ("ID", "SEV", "STATUS", "ROUTE", "SERVICE", "DETECTED", "TRIAGE", "TITLE")
    table = [header] + [
        (
            r["id"],
            r["severity"] or "-",
            r["status"],
            r["route"] or "-",
            tt(r["service"]),
            (r["detected_at"] or "-")[:16].replace("T", " "),
            tt(f"{r['triage']['method']}:{r['triage']['recommended_action']}") if r["triage"] else "-",
            tt(r["title"])[:70],
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    snap = _snapshot(settings)
    with snap.connection() as con:
        detail = incident_detail(con, args.id)
    snap.close()
    if detail is None:
        raise SloError(f"no incident {args.id!r}; `slo incidents list` shows the ids")
    if args.document:
        docs = [doc for doc in detail["documents"] if doc["kind"] == args.document]
        if not docs:
            raise SloError(f"{args.id} has no {args.document.replace('_', ' ')} yet")
        print(tt(docs[-1]["body"], multiline=True), end="")
        return 0
    if args.json:
        print(json.dumps(detail, indent=2, default=str))
        return 0
    # Human output: every value from outside (titles, actors, root causes, action items, model text,
    # error messages) goes through `tt` so no control character or escape sequence reaches the terminal.
    d = detail
    print(f"{d['id']}  {d['severity'] or '-'}  {d['status']}  {tt(d['service'])}: {tt(d['title'])}")
    for name in ("impact_start", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at"):
        print(f"  {name:<16} {d[name] or '-':<22} {tt(d.get(name + '_source'))}")
    slos = ", ".join(
        f"{tt(s['slo_id'])} ({s['budget_consumed'] * 100:.1f}% of budget)"
        if s["budget_consumed"] is not None
        else tt(s["slo_id"])
        for s in d["slos"]
    )
    print(f"  route: {d['route'] or '-'}   SLOs: {slos or '-'}   repeat of: {d['repeat_of'] or '-'}")
    if d["triage"]:
        t = d["triage"]
        print(
            f"  triage: {t['method']} {t['severity']} → {tt(t['recommended_action'])} (confidence "
            f"{t['confidence']})"
        )
    print(f"  roles: {tt(roles_summary(d['roles']))}")
    if ic_missing(d["severity"], d["status"], d["roles"]):
        print(f"  needs an incident commander: slo incidents assign {d['id']} --role ic --person NAME")
    if d["root_cause"]:
        print(
            f"  root cause ({tt(d['root_cause_category'])}): {tt(d['root_cause'])}"
            f"  fix: {tt(d['fix']) or '-'}"
        )
    print("timeline:")
    for e in d["timeline"]:
        who = f" [{tt(e['actor'])}]" if e["actor"] else ""
        print(f"  {e['occurred_at'][:19].replace('T', ' ')}  {e['kind']:<20} {tt(e['message'])}{who}")
    for r in d["remediations"]:
        print(f"remediation {r['id']}: {tt(r['action'])} {r['status']} (verified: {r['verified']})")
    for a in d["action_items"]:
        print(
            f"action item {a['id']}: {tt(a['title'])} → {tt(a['owner'])} {tt(a['priority'])} due "
            f"{a['due_date']} {a['status']}"
        )
    print(f"documents: {', '.join(doc['kind'] for doc in d['documents']) or '-'}")
    for f in d["step_failures"]:
        state = f"cleared {f['cleared_at'][:19]}" if f["cleared_at"] else "failing, retried each cycle"
        print(
            f"step {f['step']} {state}: {tt(f['error'])} ({f['attempts']} attempt(s) since "
            f"{f['first_at'][:19]})"
        )
    return 0


# --- steps ----------------------------------------------------------------------------------------


def _step(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.incidents.commands import build_command, submit

    sub = args.incidents_command
    extra: dict[str, Any] = {}
    if sub in STEPS:
        command = STEPS[sub][0]
        if args.note:
            extra["note"] = args.note
        if getattr(args, "override", False):
            extra["override"] = True
    elif sub == "root-cause":
        command, extra = "root_cause", {"category": args.category, "text": args.text, "fix": args.fix}
    elif sub == "action-item":
        command = "action_item"
        extra = {"title": args.title, "owner": args.owner, "priority": args.priority, "due_date": args.due}
    elif sub == "action-item-done":
        command, extra = "action_item_done", {"action_item_id": args.item}
    elif sub == "assign":
        command, extra = "assign", {"role": args.role, "person": args.person, "note": args.note}
    elif sub == "severity-trigger":
        command, extra = "severity_trigger", {"trigger": args.trigger, "note": args.note}
    else:
        command = "approve_remediation" if sub == "approve" else "reject_remediation"
        extra = {"remediation_id": args.remediation, "reason": args.reason}
    actor = _login()
    if actor is None:
        if command in ("approve_remediation", "reject_remediation"):
            raise SloError(
                f"{sub}: cannot tell which OS user is running this, and an approval needs a named "
                "approver; run it as your own login (or approve in the dashboard)"
            )
        actor = "cli"
    cmd = build_command(
        command, args.id, extra, actor=actor, source="cli", at=dt.datetime.now(dt.UTC).replace(tzinfo=None)
    )
    _check_known(settings, args.id)
    stored = submit(settings, cmd)
    from pipelines.cycle import apply_inbox  # lazy: `slo --help` must not load DuckDB and pandas

    if not apply_inbox(settings):  # another writer (the running service) holds the store
        return _say(
            args,
            {
                "incident": args.id,
                "command": command,
                "stored": stored,
                "outcome": "queued; the running service will apply it",
            },
            0,
        )
    result, code = _outcome(settings, args.id, cmd.dedup_key, command)
    return _say(args, {"incident": args.id, "command": command, "stored": stored, "outcome": result}, code)


def _login() -> str | None:
    """The OS user running the CLI, whom its steps are attributed to: the effective uid's login name
    (None when the uid has no name). Not `getpass.getuser()`, which believes LOGNAME/USER first."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name.strip()[:200] or None
    except (KeyError, OSError):
        return None


def _check_known(settings: Settings, incident_id: str) -> None:
    """Refuse an id the published snapshot does not know (nothing is stored then)."""
    snap = _snapshot(settings)
    if not snap.exists():
        raise SloError("no published snapshot yet; run `slo demo`, `slo run` or `slo serve` first")
    with snap.connection() as con:
        known = con.execute("SELECT 1 FROM incidents WHERE id = ?", [incident_id]).fetchone()
    snap.close()
    if not known:
        raise SloError(f"no incident {incident_id!r}; `slo incidents list` shows the ids")


def _outcome(settings: Settings, incident_id: str, dedup_key: str, command: str) -> tuple[str, int]:
    """What the fold did with the step: the timeline entry it wrote, rejected steps exit 1."""
    snap = _snapshot(settings)
    with snap.connection() as con:
        reject = con.execute("SELECT reason FROM inbox_rejects WHERE dedup_key = ?", [dedup_key]).fetchone()
        last = con.execute(
            "SELECT kind, message FROM timeline WHERE incident_id = ? AND (kind = "
            "'command_rejected' OR source = 'cli')"
            " ORDER BY seq DESC LIMIT 1",
            [incident_id],
        ).fetchone()
    snap.close()
    if reject:
        return f"rejected: {reject[0]}", 1
    if last and last[0] == "command_rejected" and last[1].startswith(command):
        return str(last[1]), 1
    return (str(last[1]) if last else "applied"), 0


def _say(args: argparse.Namespace, result: dict[str, Any], code: int) -> int:
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        stream = sys.stderr if code else sys.stdout
        print(f"{tt(result['incident'])}: {tt(result['outcome'])}", file=stream)
    return code
