"""The incident stage of a pipeline cycle: `process(con, settings, now)`, top to bottom.

    engine alerts → inbox → fold (alerts, incidents, commands) → triage → route → escalate | queue a
    remediation (run outside DuckDB; its outcome comes back through the inbox) → approvals (announce,
    withdraw after the timeout and escalate) → verify → scope doubled → ask for an incident commander →
    declare it (SEV1/SEV2) → the recovery watch after a person's mitigation (escalate when it did not
    hold) → timers → retry failed pages → Slack notices → post-mortems (scheduled, overdue) → resolve in
    PagerDuty → status page → budgets → documents → stakeholder updates to Slack

Only the writer calls this. Everything slow or external (the model, PagerDuty/Slack, remediation
scripts) happens here or in a runner, never inside the fold's transactions, and every outcome is
recorded on the incident's timeline. Nothing in this stage raises for one bad incident: every step
runs each record (an incident, a remediation) through `Isolation.run`, which rolls that record back,
keeps the failure in `step_failures` and on the incident's timeline, and goes on with the next record.

Each step lives in `steps/` (triage, route, remediate, verify, notify, timers, budgets, documents);
the triage context in `context.py`, the remediation runners in `runners.py`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.inbox import Inbox
from pipelines.incidents import engine_alerts
from pipelines.incidents.fold import FoldReport, fold_inbox, stored_seq
from pipelines.incidents.impact import CumulativeSums
from pipelines.incidents.isolation import Isolation, ProcessReport, merge_fold
from pipelines.incidents.runners import Runner, SyncRunner
from pipelines.incidents.steps.budgets import update_budgets
from pipelines.incidents.steps.documents import write_documents
from pipelines.incidents.steps.notify import resolve_pages, retry_pages, send_escalations, send_notices
from pipelines.incidents.steps.remediate import expire_lost_remediations, queue_remediations
from pipelines.incidents.steps.roles import ask_for_ic, declare_ic
from pipelines.incidents.steps.severity import scope_upgrades
from pipelines.incidents.steps.statuspage import post_status_pages
from pipelines.incidents.steps.timers import run_approvals, run_postmortems, run_timers
from pipelines.incidents.steps.triage import triage_pending
from pipelines.incidents.steps.updates import send_updates
from pipelines.incidents.steps.verify import verify_remediations
from pipelines.incidents.steps.watch import watch_recoveries
from pipelines.timeutil import utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncidentStage:
    """The cycle's incident stage in production: the inbox processed once, at the wall clock (or at
    the data's end when a source's data runs ahead of it). The service passes its thread runner."""

    runner: Runner | None = None
    # The service's per-cycle budgets (issue 13): seconds of folding, and of triage for incidents below
    # SEV2 while the fold has a backlog, so a storm's backlog drains over several short cycles. None:
    # everything in one go.
    fold_budget_s: float | None = None
    backlog_triage_budget_s: float | None = None
    # The service's: publish as soon as the fold has opened incidents (one more publish in such a cycle,
    # a fraction of a second at 1,000 SLOs), so they are listed before triage, escalation and documents
    # have run for each of them (a burst of 200 new incidents: seconds).
    publish_opened: bool = False

    def __call__(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        end: dt.datetime,
        publish: Callable[[], object] | None = None,
    ) -> ProcessReport:
        return process(
            con,
            settings,
            max(utc_now(), end),
            runner=self.runner,
            fold_budget_s=self.fold_budget_s,
            backlog_triage_budget_s=self.backlog_triage_budget_s,
            publish_opened=publish if self.publish_opened else None,
        )


def process(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    *,
    inbox: Inbox | None = None,
    runner: Runner | None = None,
    emit_engine_alerts: bool = True,
    fold_budget_s: float | None = None,
    backlog_triage_budget_s: float | None = None,
    publish_opened: Callable[[], object] | None = None,
    sums: CumulativeSums | None = None,
) -> ProcessReport:
    """Run the incident stage once at `now` (naive or aware UTC). With `fold_budget_s` (the service),
    the fold takes urgent rows first and stops after `fold_budget_s`, and triage takes SEV1/SEV2
    incidents first (`fold.fold_inbox`, `_triage_budgeted`). `publish_opened` is called once, right
    after a fold that opened incidents, before the steps that follow it. `sums`: cumulative sums
    remembered across runs by a caller whose buckets do not change between them (a replay of history);
    by default each run remembers its own (the watch, budgets and documents steps share them)."""
    now = now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now
    inbox = inbox or Inbox(settings.data_dir)
    runner = runner or SyncRunner(inbox, settings)
    sums = sums or CumulativeSums()
    report = ProcessReport()
    iso = Isolation(con, report, now)
    if emit_engine_alerts:
        report.engine_alerts = _guard(report, "engine alerts", engine_alerts.emit, con, inbox, now) or 0
    for _ in range(3):  # a synchronous runner's results come back through the inbox: fold them too
        folded = fold_inbox(con, inbox, budget_s=fold_budget_s)
        merge_fold(report.fold, folded)
        if publish_opened is not None and folded.opened:
            # the new incidents are listed now; triage and the rest follow (a failed publish is reported
            # and the stage goes on: its pages matter more than an early listing)
            _guard(report, "early publish", publish_opened)
            publish_opened = None
        todo = _agenda(con)
        if not (todo["triage"] or todo["queued"] or todo["escalate"]):
            break  # nothing to respond to: nothing ran since the agenda, which holds for what follows
        if todo["triage"]:
            if fold_budget_s is None:
                _guard(report, "triage", triage_pending, con, settings, now, iso)
            else:
                _guard(
                    report,
                    "triage",
                    _triage_budgeted,
                    con,
                    settings,
                    now,
                    iso,
                    inbox,
                    folded,
                    backlog_triage_budget_s,
                )
        queued = (
            _guard(report, "remediation", queue_remediations, con, settings, now, runner, iso) or 0
            if todo["queued"] or todo["triage"]
            else 0
        )
        if todo["escalate"] or todo["triage"]:
            _guard(report, "escalation", send_escalations, con, settings, now, iso)
        if not (runner.synchronous and queued):
            todo = _agenda(con)
            break
    else:
        todo = _agenda(con)
    if todo["awaiting"] and _guard(
        report, "approvals", run_approvals, con, settings, now, iso, _unfolded_since(con, inbox)
    ):
        _guard(report, "escalation", send_escalations, con, settings, now, iso)  # the withdrawn ones
    if todo["verify"]:
        _guard(report, "verification", verify_remediations, con, now, iso)
        _guard(report, "escalation", send_escalations, con, settings, now, iso)
    if todo["running"]:
        _guard(report, "lost remediations", expire_lost_remediations, con, inbox, settings, now, runner)
    if _guard(report, "scope", scope_upgrades, con, now, iso):  # seed 002: scope doubled → one level up
        _guard(report, "escalation", send_escalations, con, settings, now, iso)
    _guard(report, "incident commander", ask_for_ic, con, settings, now, iso)  # SEV1/SEV2 need one
    _guard(report, "declaration", declare_ic, con, settings, now, iso)  # seed 002: "declared SEVn; IC: …"
    if _guard(report, "recovery watch", watch_recoveries, con, settings, now, iso, inbox, sums):
        _guard(report, "escalation", send_escalations, con, settings, now, iso)  # the recoveries not held
    report.timers = _guard(report, "timers", run_timers, con, settings, now, iso) or 0
    _guard(report, "page retry", retry_pages, con, settings, now, iso)
    _guard(report, "notices", send_notices, con, settings, now, iso)
    _guard(report, "post-mortems", run_postmortems, con, settings, now, iso)  # due 48 h after (SEV1/SEV2)
    _guard(report, "PagerDuty resolve", resolve_pages, con, settings, now, iso)
    _guard(report, "status page", post_status_pages, con, settings, now, iso)
    _guard(report, "budgets", update_budgets, con, now, iso, sums)
    report.documents = _guard(report, "documents", write_documents, con, now, iso, settings, sums) or 0
    _guard(report, "stakeholder updates", send_updates, con, settings, now, iso)
    for error in report.errors:
        log.warning("incident stage: %s", error)
    return report


def _triage_budgeted(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    now: dt.datetime,
    iso: Isolation,
    inbox: Inbox,
    folded: FoldReport,
    backlog_s: float | None,
) -> None:
    """The service's triage (issue 13): SEV1/SEV2 incidents first. Below SEV2: nothing more once this
    cycle folded urgent rows (it publishes them soon); `backlog_s` when it opened incidents or the fold
    has a backlog, so what was folded is listed soon and the next cycle folds more; the usual budget
    only when nothing new came in. Either way, anything arriving meanwhile stops it: every accepted
    alert is listed within seconds, and the triage goes on next cycle."""
    seen = inbox.last_seq()
    budget = 0.0 if folded.ahead else backlog_s if folded.opened or seen > stored_seq(con) else None
    triage_pending(
        con,
        settings,
        now,
        iso,
        budget,
        urgent_first=True,
        interrupted=lambda: inbox.last_seq() > seen,
    )


def _unfolded_since(con: duckdb.DuckDBPyConnection, inbox: Inbox) -> dt.datetime | None:
    """When the oldest inbox row after the fold's cursor was received (None: the fold has caught up)."""
    rows = inbox.read_since(stored_seq(con), limit=1)
    return rows[0].received_at.replace(tzinfo=None) if rows else None


def _guard(report: ProcessReport, step: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one housekeeping step; a failure is reported (and logged) instead of stopping the cycle,
    whose metrics and alerts must still be published."""
    try:
        return fn(*args)
    except Exception as exc:
        report.errors.append(f"{step}: {exc.__class__.__name__}: {exc}")
        return None


def _agenda(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """What the respond steps have to do (one query, one pass over each table, so an idle cycle costs
    little)."""
    row = con.execute(
        """SELECT * FROM
           (SELECT count(*) FILTER (WHERE triage_pending AND status <> 'closed'),
                   count(*) FILTER (WHERE escalation_pending IS NOT NULL) FROM incidents),
           (SELECT count(*) FILTER (WHERE status = 'queued'),
                   count(*) FILTER (WHERE status = 'succeeded' AND verified IS NULL),
                   count(*) FILTER (WHERE status = 'running'),
                   count(*) FILTER (WHERE status = 'awaiting_approval') FROM remediations)"""
    ).fetchone() or (0, 0, 0, 0, 0, 0)
    names = ("triage", "escalate", "queued", "verify", "running", "awaiting")
    return dict(zip(names, map(int, row), strict=True))
