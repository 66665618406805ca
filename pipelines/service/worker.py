"""The worker: a thread that runs the pipeline cycle every SLO_CYCLE_SECONDS under the single-writer
lock; a failed cycle is logged and the next one runs on time. An urgent alert (a firing SEV1/SEV2)
wakes it: the next cycle starts at once, or as soon as the running one ends (issue 13)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import SloError
from pipelines.inbox import Inbox
from pipelines.model import Slo
from pipelines.timeutil import iso, minute_of, utc_now

log = logging.getLogger("slo.serve")

# Per-cycle budgets of the service's incident stage (issue 13): a storm's backlog drains over several
# short cycles, while urgent alerts and SEV1/SEV2 incidents go first in each (`fold.fold_inbox`,
# `steps.triage.triage_pending`). An urgent alert that arrives while the backlog folds is folded at once
# and stops the backlog; one that arrives later waits for the rest of that cycle, then the cycle it
# woke publishes it.
FOLD_BUDGET_S = 4.0
BACKLOG_TRIAGE_BUDGET_S = 2.0


class Worker:
    """Runs `cycle` every `every` seconds in a thread, or sooner when woken; an exception is logged,
    never fatal."""

    def __init__(self, cycle: Callable[[], object], every: float) -> None:
        self._cycle = cycle
        self._every = every
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.wakes = 0
        self._thread = threading.Thread(target=self._loop, name="pipeline-worker", daemon=True)
        self.cycles = 0
        self.failures = 0
        self.last_started: dt.datetime | None = None
        self.last_finished: dt.datetime | None = None
        self.last_ok: dt.datetime | None = None
        self.last_error: str | None = None
        self.last_seconds: float | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Let a running cycle finish (it holds the writer lock and may be publishing), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        """Start the next cycle now, or as soon as the running one ends (it may have read the inbox
        before the row that woke it was committed)."""
        self.wakes += 1
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._wake.clear()  # a wake during the cycle below leaves it set: the next one runs at once
            self.run_once()
            self._wake.wait(max(0.0, self._every - (time.monotonic() - started)))

    def run_once(self) -> None:
        self.last_started = utc_now()
        started = time.monotonic()
        try:
            self._cycle()
        except SloError as exc:  # e.g. another writer holds the store: say so, try next time
            self.failures += 1
            self.last_error = str(exc)
            log.warning("pipeline cycle skipped: %s; retrying in %gs", exc, self._every)
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("pipeline cycle failed; the next one runs in %gs", self._every)
        else:
            self.last_ok = utc_now()
            self.last_error = None
        finally:
            self.cycles += 1
            self.last_finished = utc_now()
            self.last_seconds = round(time.monotonic() - started, 3)

    def status(self) -> dict[str, Any]:
        return {
            "running": self._thread.is_alive(),
            "every_seconds": self._every,
            "cycles": self.cycles,
            "wakes": self.wakes,
            "failures": self.failures,
            "last_started": iso(self.last_started),
            "last_finished": iso(self.last_finished),
            "last_ok": iso(self.last_ok),
            "last_seconds": self.last_seconds,
            "last_error": self.last_error,
        }


def idle_cycle(settings: Settings) -> Callable[[], object]:
    """The service's cycle: pull metrics when a source is configured, then everything else runs.

    With PROMETHEUS_URL set, each cycle pulls from Prometheus incrementally (from each SLO's
    high-water mark) for the specs in SLO_SPECS_DIR. When that pull fails, nothing of it is published
    and its SLOs are marked stale; the cycle then goes on without new metrics so alerts and commands
    are still folded.

    Without new metrics there is no new SLO set either: the cycle keeps the SLOs the store holds
    (whoever pulls metrics, `slo run` or `slo demo`, decides them) and evaluates up to the minute the
    store is already evaluated to, so the inbox fold, triage, routing and timers run and publish.
    Before anything was published it starts from SLO_SPECS_DIR (if present) at the current minute.

    With SLO_DEMO_LIVE on a store built by `slo demo`, each cycle appends the demo's minutes up to now
    instead (`pipelines.demo.live`), through the same `run_cycle` and incident stage.

    Remediations run on a thread pool (`ThreadRunner`), outside the DuckDB writer; their outcome
    comes back through the inbox.
    """
    import pandas as pd  # lazy: the cycle loads in the worker thread, after start-up

    from pipelines.cycle import republish_if_unreadable, run_cycle, run_prometheus
    from pipelines.incidents.runners import ThreadRunner
    from pipelines.incidents.stage import IncidentStage
    from pipelines.sources import Pull
    from pipelines.specs import load_specs

    stage = IncidentStage(
        ThreadRunner(Inbox(settings.data_dir), settings),
        fold_budget_s=FOLD_BUDGET_S,
        backlog_triage_budget_s=BACKLOG_TRIAGE_BUDGET_S,
        publish_opened=True,
    )

    def without_metrics() -> object:
        slos, end = stored_state(settings.data_dir)
        if end is None:  # nothing published yet: start from the specs, at the current minute
            slos = load_specs([settings.specs_dir])[0] if settings.specs_dir.exists() else []
            end = minute_of(utc_now())
        empty = pd.DataFrame(
            {
                "slo_id": pd.Series(dtype=str),
                "minute": pd.Series(dtype="int64"),
                "good": pd.Series(dtype="int64"),
                "valid": pd.Series(dtype="int64"),
            }
        )
        return run_cycle(settings, slos, Pull(buckets=empty, end=end, origin="idle"), stage=stage)

    live = None
    if settings.demo_live and not settings.prometheus.url:
        from pipelines.demo.live import LiveDemo, run_live

        live = LiveDemo(settings.demo_speed)

    def cycle() -> object:
        republish_if_unreadable(settings.data_dir)  # before stored_state or the pull read the snapshot
        if live is not None:  # a demo store goes on in real time; otherwise (or no new minute) idle
            report = run_live(settings, live, stage)
            if report is not None:
                return report
        if settings.prometheus.url:
            try:
                slos = load_specs([settings.specs_dir])[0]
                return run_prometheus(settings, slos, stage=stage)[0]
            except SloError as exc:  # a failed pull (already marked stale) or a broken spec
                log.warning("metrics pull failed, cycle goes on without new metrics: %s", exc)
        return without_metrics()

    return cycle


def stored_state(data_dir: Path) -> tuple[list[Slo], int | None]:
    """The active SLOs and the latest minute any run evaluated up to, from the published snapshot
    (([], None) when nothing is published yet)."""
    from pipelines.catalog import stored_slos  # lazy: see the package docstring
    from pipelines.store import Snapshot

    snapshot = Snapshot(data_dir)
    if not snapshot.exists():
        return [], None
    try:
        with snapshot.connection() as con:
            row = con.execute("SELECT max(data_to) FROM runs").fetchone()
            slos = [slo for _, slo in stored_slos(con)]
    finally:
        snapshot.close()
    return slos, (int(row[0]) if row and row[0] is not None else None)
