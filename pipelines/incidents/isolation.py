"""What one run of the incident stage reports, and how a step keeps one record's failure with it.

Nothing in the stage raises for one bad incident: every step runs each record (an incident, a
remediation) through `Isolation.run`, which rolls that record back, keeps the failure in
`step_failures` and on the incident's timeline, and goes on with the next record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from pipelines.incidents.fold import FoldReport, add_timeline

log = logging.getLogger(__name__)


@dataclass
class ProcessReport:
    engine_alerts: int = 0
    fold: FoldReport = field(default_factory=FoldReport)
    triaged: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    remediations: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    timers: int = 0
    documents: int = 0
    errors: list[str] = field(default_factory=list)


def merge_fold(total: FoldReport, part: FoldReport) -> None:
    """Add one fold's report to a running total (counts add up, lists are joined)."""
    for k, v in vars(part).items():
        cur = getattr(total, k)
        setattr(total, k, cur + v if not isinstance(v, list) else [*cur, *v])


class Isolation:
    """Runs one step for one record so that its failure stays with that record.

    `run` wraps the record's work in a transaction (or lets a step that manages its own run bare); on
    an exception it rolls the record back, records the failure in `step_failures` (attempts, first
    and last time) and, when it is new or its error changed, on the incident's timeline and in the
    log, then returns None: the step goes on with its next record, and the record is tried again next
    cycle. A record that succeeds again has its failure cleared.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, report: ProcessReport, now: dt.datetime) -> None:
        self.con, self.report, self.now = con, report, now
        self.open: set[tuple[str, str]] = {
            (str(step), str(record))
            for step, record in con.execute(
                "SELECT step, record FROM step_failures WHERE cleared_at IS NULL"
            ).fetchall()
        }

    def run(
        self,
        step: str,
        record: str,
        incident_id: str | None,
        fn: Callable[..., Any],
        *args: Any,
        transaction: bool = True,
        on_failure: Callable[[str], None] | None = None,
    ) -> Any:
        con = self.con
        try:
            if transaction:
                con.execute("BEGIN TRANSACTION")
            result = fn(*args)
            if transaction:
                con.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(duckdb.Error):  # "no transaction is active" when fn had none open
                con.execute("ROLLBACK")
            error = f"{type(exc).__name__}: {exc}"[:2000]
            self.report.errors.append(f"{record}: {step}: {error}")
            try:
                self._failed(step, record, incident_id, error)
                if on_failure is not None:
                    on_failure(error)
            except Exception:  # recording the failure failed too: the log keeps it, the cycle goes on
                log.exception("%s: %s failed (%s) and could not be recorded", record, step, error)
            return None
        if (step, record) in self.open:
            self.open.discard((step, record))
            con.execute(
                "UPDATE step_failures SET cleared_at = ?"
                " WHERE step = ? AND record = ? AND cleared_at IS NULL",
                [self.now, step, record],
            )
            if incident_id is not None:
                add_timeline(con, incident_id, self.now, "step_recovered", step, f"{step} succeeded again")
        return result

    def _failed(self, step: str, record: str, incident_id: str | None, error: str) -> None:
        con, now = self.con, self.now
        before = con.execute(
            "SELECT error FROM step_failures WHERE step = ? AND record = ? AND cleared_at IS NULL",
            [step, record],
        ).fetchone()
        if before is None:
            con.execute("DELETE FROM step_failures WHERE step = ? AND record = ?", [step, record])
            con.execute(
                "INSERT INTO step_failures VALUES (?, ?, ?, ?, ?, ?, 1, NULL)",
                [step, record, incident_id, error, now, now],
            )
        else:
            con.execute(
                "UPDATE step_failures SET error = ?, last_at = ?, attempts = attempts + 1"
                " WHERE step = ? AND record = ?",
                [error, now, step, record],
            )
        self.open.add((step, record))
        if before is not None and before[0] == error:
            return  # the same failure again: counted, not repeated on the timeline or in the log
        log.warning("%s: %s failed, isolated (the cycle goes on): %s", record, step, error)
        if incident_id is not None:
            add_timeline(
                con,
                incident_id,
                now,
                "step_failed",
                step,
                f"{step} failed: {error}; every other incident went on, this one is retried each cycle",
                data={"step": step, "record": record, "error": error},
            )
