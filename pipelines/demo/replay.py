"""`slo demo`'s incident flow: its history replayed through the real incident stage, offline.

The engine's burn-rate alerts over the demo history, plus a few Alertmanager-style alerts the demo
injects (a queue backlog the runbook fixes, a cache problem whose runbook action fails, a stalled
report job that is still open at the end), enter the inbox at their own times. A simulated clock steps
from one input to the next; at each step `stage.process` runs exactly as in the service (rule-based
triage, routing, real remediation scripts from `runbooks/`, verification, timers, documents), and
simulated responders answer the way on-call people would: acknowledge (some late, so the timers fire),
find the root cause (named after the demo's ground truth), mitigate when the injected event ends,
resolve, add post-mortem action items (some never done, so they go overdue; the search planner's stays
open when the regression comes back) and close. Steps that would fall after the demo's end do not
happen, so the newest incidents are still open.

Deterministic: no randomness, no wall clock; the same demo data gives the same incidents.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import heapq
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.inbox import INBOX_FILE, Entry, Inbox
from pipelines.incidents import engine_alerts
from pipelines.incidents.contract import Alert, Command, map_severity
from pipelines.incidents.impact import CumulativeSums
from pipelines.incidents.isolation import ProcessReport, merge_fold
from pipelines.incidents.rows import incidents_where
from pipelines.incidents.runners import SyncRunner
from pipelines.incidents.stage import process
from pipelines.timeutil import datetime_of, minute_of

REPO_RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
M = dt.timedelta(minutes=1)

# Ground truth → what the responders find: category, and the fix they apply.
ROOT_CAUSES: dict[str, tuple[str, str]] = {
    "query-planner-regression": ("deploy", "rolled back the query planner to v1"),
    "payment-client-timeout": ("config", "restored the 5 s payment client timeout"),
    "db-connection-pool-leak": ("resource-leak", "patched the refund worker to return connections"),
    "duplicate-ledger-entries": ("code", "made ledger writes idempotent and repaired the duplicates"),
    "index-refresh-lag": ("capacity", "added indexing workers and re-ran the refresh"),
    "replica-crashloop": ("infrastructure", "rebuilt the replica's local state and rejoined it"),
    "jvm-gc-pauses": ("capacity", "raised the heap and switched the collector"),
    "db-failover": ("dependency", "completed the failover by hand; fixed the stalled promotion"),
    "cart-cache-eviction": ("capacity", "raised the cart cache's memory limit"),
    "fraud-check-slowdown": ("deploy", "rolled back the fraud model"),
    "token-cache-stampede": ("config", "restored the token-cache TTL with jitter"),
    # the present's outages (pipelines/demo/present.py)
    "ledger-replay-duplicates": ("code", "stopped the replay and reversed the re-posted entries"),
    "stale-price-cache": ("code", "invalidated the price cache and fixed its invalidation hook"),
    "reservation-lock-contention": ("deploy", "rolled back the schema change"),
    "index-alias-swap": ("config", "pointed the alias back at the current index"),
    "payment-provider-api-version": ("dependency", "pinned the provider's previous API version"),
    "card-network-timeouts": ("dependency", "failed over to the secondary card network"),
}
# Fingerprints whose post-mortem action item is never finished (the problem comes back).
UNFINISHED = ("query-planner-regression", "db-connection-pool-leak")


@dataclasses.dataclass(frozen=True)
class ExternalAlert:
    service: str
    alertname: str
    description: str
    starts: dt.datetime
    resolves_after: dt.timedelta | None  # None: still firing at the end


def demo_settings(settings: Settings) -> Settings:
    """Offline and fast: no model, no PagerDuty/Slack, rule-triaged SEV3/SEV4 try their runbook action,
    retries without the 15 s wait, and the repository's demo runbooks."""
    runbooks = settings.runbooks_dir if settings.runbooks_dir.is_dir() else REPO_RUNBOOKS
    return dataclasses.replace(
        settings,
        anthropic_api_key=None,
        pagerduty_routing_key=None,
        slack_webhook_url=None,
        rules_route_by_severity=True,
        remediation_retry_delay_s=0.0,
        remediation_timeout_s=10.0,
        remediation_dry_run=False,
        runbooks_dir=runbooks,
    )


def fresh_inbox(data_dir: Path) -> Inbox:
    """The demo replaces the store, so it starts a new inbox; an old one is kept beside it, renamed."""
    path = data_dir / INBOX_FILE
    if path.exists():
        stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").rename(data_dir / f"inbox.before-demo-{stamp}.sqlite3{suffix}")
    return Inbox(data_dir, synchronous="NORMAL")


def external_alerts(start: dt.datetime, end: dt.datetime) -> list[ExternalAlert]:
    """Alertmanager alerts the demo injects: one backlog and one cache problem a quarter, and a few
    placed just before the end so the newest incidents are auto-remediated, escalated and still open."""
    out: list[ExternalAlert] = []
    q = dt.datetime(start.year, start.month, 1)
    while q < end:
        out.append(
            ExternalAlert(
                "notifications",
                "DeliveryQueueBacklog",
                "Delivery queue backlog growing: workers saturated, 12k messages waiting",
                q + dt.timedelta(days=50, hours=10, minutes=5),
                dt.timedelta(minutes=9),
            )
        )
        out.append(
            ExternalAlert(
                "search",
                "SearchCacheHitRatioLow",
                "Query-result cache evictions spiking; hit ratio down to 41%",
                q + dt.timedelta(days=33, hours=16, minutes=20),
                dt.timedelta(minutes=50),
            )
        )
        q = (q + dt.timedelta(days=95)).replace(day=1)
    recent = end - dt.timedelta(days=2)
    out += [
        ExternalAlert(
            "notifications",
            "DeliveryQueueBacklog",
            "Delivery queue backlog growing: workers saturated, 9k messages waiting",
            recent.replace(hour=9, minute=40),
            dt.timedelta(minutes=7),
        ),
        ExternalAlert(
            "reports",
            "ReportJobsStalled",
            "Nightly report jobs stalled: 0 of 14 finished, exporter not responding",
            end - dt.timedelta(minutes=12),
            None,
        ),
        ExternalAlert(
            "search",
            "SearchCacheHitRatioLow",
            "Query-result cache evictions spiking; hit ratio down to 38%",
            end - dt.timedelta(minutes=50),
            None,
        ),
    ]
    return [a for a in out if start <= a.starts < end]


def _alert_entries(a: ExternalAlert, end: dt.datetime) -> list[tuple[dt.datetime, Entry]]:
    fingerprint = f"{a.alertname}:{a.service}"
    common: dict[str, Any] = dict(
        source="alertmanager",
        service=a.service,
        fingerprint=fingerprint,
        title=f"{a.alertname} on {a.service}",
        starts_at=a.starts,
        severity=map_severity("warning"),
        description=a.description,
        labels={"alertname": a.alertname, "service": a.service, "severity": "warning"},
        annotations={"summary": a.description},
    )
    key = f"demo-am:{fingerprint}:{a.starts.isoformat()}"
    firing = Alert(status="firing", dedup_key=key + ":firing", **common)
    out = [(a.starts, Entry(firing.dedup_key, "alert", "alertmanager", firing.to_json()))]
    if a.resolves_after is not None and a.starts + a.resolves_after <= end:
        ended = a.starts + a.resolves_after
        resolved = Alert(status="resolved", dedup_key=key + ":resolved", ends_at=ended, **common)
        out.append((ended, Entry(resolved.dedup_key, "alert", "alertmanager", resolved.to_json())))
    return out


def _engine_entries(con: duckdb.DuckDBPyConnection, end: dt.datetime) -> list[tuple[dt.datetime, Entry]]:
    out = []
    for interval in engine_alerts.merged_intervals(con, None):
        for al in engine_alerts.to_alerts(interval, minute_of(end)):
            at = al.ends_at if al.status == "resolved" and al.ends_at else al.starts_at
            out.append((at, Entry(al.dedup_key, "alert", "engine", al.to_json())))
    return out


def _h(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


class Responders:
    """Simulated on-call people. When an incident reaches a human (escalated) or recovers by itself
    (a verified remediation), they plan its whole course at once, from the demo's ground truth."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.planned: set[str] = set()

    def _event(self, inc: dict[str, Any]) -> tuple[str, dt.datetime, str] | None:
        """The demo's ground-truth event behind an incident: (fingerprint tail, end, description)."""
        row = self.con.execute(
            """SELECT fingerprint, end_at, description FROM demo_events
               WHERE service = ? AND (? IS NULL OR list_contains(slo_ids, ?))
               AND start_at <= ? + INTERVAL 2 HOUR AND end_at >= ? - INTERVAL 1 HOUR
               ORDER BY start_at DESC LIMIT 1""",
            [inc["service"], inc["slo_id"], inc["slo_id"], inc["detected_at"], inc["impact_start"]],
        ).fetchone()
        return None if row is None else (str(row[0]).split("/", 1)[-1], row[1], str(row[2]))

    def plan(self, inc: dict[str, Any]) -> list[tuple[dt.datetime, Command]]:
        iid, h = inc["id"], _h(inc["id"], inc["fingerprint"])
        if iid in self.planned or inc["status"] == "closed":
            return []
        escalated = inc["route"] == "escalate" and inc["escalated_at"] is not None
        recovered = inc["status"] == "mitigated" and inc["mitigated_at_source"] == "verification"
        if not (escalated or recovered):
            return []
        self.planned.add(iid)
        event = self._event(inc)
        steps: list[tuple[str, dt.datetime, dict[str, Any]]] = []
        if recovered:
            mitigated = inc["mitigated_at"]
            steps.append(("root_cause", mitigated + 12 * M, self._root_cause(inc, event)))
        else:
            # Most acknowledge well inside the response time; every fourth one is late (a timer fires).
            limit = {"SEV1": 5, "SEV2": 15, "SEV3": 60, "SEV4": 240}.get(inc["severity"] or "SEV2", 15)
            delay = limit + 7 if h % 4 == 0 else max(2, limit // 3 + h % 5)
            ack = inc["escalated_at"] + delay * M
            steps.append(("acknowledge", ack, {}))
            late = (h // 7) % 5 == 0  # sometimes the root cause takes over 2 h (another timer)
            steps.append(
                ("root_cause", ack + (135 if late else 18 + h % 20) * M, self._root_cause(inc, event))
            )
            fixed = (event[1] + 3 * M) if event else ack + 35 * M
            mitigated = max(fixed, ack + 5 * M)
            steps.append(("mitigate", mitigated, {}))
        resolved = mitigated + (15 + h % 20) * M
        steps.append(("resolve", resolved, {}))
        if escalated:
            steps += self._action_items(inc, event, resolved)
        steps.append(("close", max(resolved, steps[1][1]) + dt.timedelta(days=2, hours=1), {}))
        actor = "oncall-" + ("alex", "sam", "kim", "noor")[h % 4]
        return [
            (
                at,
                Command(
                    command=name,
                    incident_id=iid,
                    actor=actor if name != "action_item_done" else "@owner",
                    source="demo",
                    dedup_key=f"demo:{iid}:{name}:{n}",
                    at=at,
                    args=args,
                ),
            )
            for n, (name, at, args) in enumerate(steps)
        ]

    def _root_cause(self, inc: dict[str, Any], event: tuple[str, dt.datetime, str] | None) -> dict[str, Any]:
        if event is None:
            remediated = self.con.execute(
                "SELECT action FROM remediations WHERE incident_id = ? AND verified", [inc["id"]]
            ).fetchone()
            if remediated:
                return {
                    "category": "capacity",
                    "text": f"{inc['title']}: load above what the workers drain",
                    "fix": f"runbook action {remediated[0]} (automated)",
                }
            return {
                "category": "unknown",
                "text": f"{inc['title']}: cause not found before recovery",
                "fix": "restarted the stuck component by hand",
            }
        category, fix = ROOT_CAUSES.get(event[0], ("unknown", "fixed by hand"))
        return {"category": category, "text": event[2], "fix": fix}

    def _action_items(
        self, inc: dict[str, Any], event: tuple[str, dt.datetime, str] | None, resolved: dt.datetime
    ) -> list[tuple[str, dt.datetime, dict[str, Any]]]:
        """Two post-mortem action items a day after resolution; finished a few days before they are due,
        except the runbook one now and then, and both when the problem is one that comes back."""
        at = resolved + dt.timedelta(days=1)
        tail = event[0] if event else inc["fingerprint"]
        items = [
            (f"Add a regression test for {tail}", "@" + inc["service"] + "-team", "P1", 14),
            (f"Update the {inc['service']} runbook with the diagnosis steps", "@on-call", "P2", 21),
        ]
        steps: list[tuple[str, dt.datetime, dict[str, Any]]] = []
        for n, (title, owner, priority, days) in enumerate(items, start=1):
            due = (at + dt.timedelta(days=days)).date()
            steps.append(
                (
                    "action_item",
                    at + n * M,
                    {"title": title, "owner": owner, "priority": priority, "due_date": due.isoformat()},
                )
            )
            item_id = f"{inc['id']}-A{n}"
            if tail in UNFINISHED or (n == 2 and _h(item_id) % 3 == 0):
                continue
            done = dt.datetime.combine(due, dt.time(15, 0)) - dt.timedelta(days=2 + _h(item_id) % 4)
            steps.append(("action_item_done", done, {"action_item_id": item_id}))
        return steps


def replay(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    end: dt.datetime,
    present_alerts: list[ExternalAlert] | None = None,
    hands_off: dt.datetime | None = None,
) -> ProcessReport:
    """Replay the demo's alerts and responders through `process`, from the first input to `end`.

    The clock stops where a running service's cycle would draft or decide something: at every alert,
    at every responder's command that changes what stakeholders are told (root cause found, mitigated,
    resolved: its status update is drafted at its own time), at every remediation's verification
    deadline and whenever an open incident's next stakeholder update falls due (each update the cadence
    asks for is drafted when it is due, not at the next stop). Other commands (acknowledge, action
    items, close) carry their own times and enter the inbox, in time order, before the next stop.
    `present_alerts` join the injected ones when their service has SLOs in the store; incidents
    detected from `hands_off` on get no simulated responder (the user is on call)."""
    settings = demo_settings(settings)
    inbox = fresh_inbox(settings.data_dir)
    runner = SyncRunner(inbox, settings, duration=dt.timedelta(seconds=40))  # deterministic times
    start_row = con.execute("SELECT min(minute) FROM buckets").fetchone()
    start = datetime_of(int(start_row[0])).replace(tzinfo=None) if start_row and start_row[0] else end
    services = {r[0] for r in con.execute("SELECT DISTINCT service FROM slos").fetchall()}
    alerts = [*external_alerts(start, end), *(a for a in present_alerts or [] if a.service in services)]
    inputs = [*_engine_entries(con, end), *(e for a in alerts for e in _alert_entries(a, end))]
    clock = _Clock(end)
    queue: list[tuple[dt.datetime, int, Entry]] = []
    for order, (at, entry) in enumerate(inputs):
        heapq.heappush(queue, (at, order, entry))
        clock.stop_at(at)
    order = len(inputs)
    responders = Responders(con)
    # The buckets are evaluated before the replay and nothing in it writes any: every run can share
    # what the earlier ones read of them (an open incident's budget, a watch: the same days each stop).
    sums = CumulativeSums()
    total = ProcessReport()
    while (t := clock.next()) is not None:
        batch = []
        while queue and queue[0][0] <= t:
            batch.append(heapq.heappop(queue)[2])
        if batch:
            inbox.append(batch)
        report = process(con, settings, t, inbox=inbox, runner=runner, emit_engine_alerts=False, sums=sums)
        _add(total, report)
        params = [sorted(responders.planned), hands_off, hands_off]
        to_plan = con.execute(f"SELECT count(*) FROM incidents WHERE {_TO_PLAN}", params).fetchone()
        for inc in incidents_where(con, _TO_PLAN, params) if to_plan and to_plan[0] else []:
            for at, cmd in responders.plan(inc):
                if at <= end:
                    heapq.heappush(queue, (at, order, Entry(cmd.dedup_key, "command", "demo", cmd.to_json())))
                    order += 1
                    if cmd.command in _TELLING:
                        clock.stop_at(at)
        for (at,) in con.execute(_NEXT_STOPS).fetchall():
            clock.stop_at(at)
    inbox.append([heapq.heappop(queue)[2] for _ in range(len(queue))])
    _add(total, process(con, settings, end, inbox=inbox, runner=runner, emit_engine_alerts=False, sums=sums))
    inbox.close()
    return total


# The incidents `Responders.plan` has a course for: open, not planned yet, detected before the hands-off
# time (if any: from then on the user is on call), and escalated to a person or recovered by a verified
# remediation (the others would each be read at every stop, for nothing); counted first, as at most
# stops there is none.
_TO_PLAN = """status <> 'closed' AND NOT imported AND NOT list_contains(?::VARCHAR[], id)
    AND (?::TIMESTAMP IS NULL OR detected_at < ?::TIMESTAMP)
    AND ((route = 'escalate' AND escalated_at IS NOT NULL)
         OR (status = 'mitigated' AND mitigated_at_source = 'verification'))"""
# Responders' commands that change an incident's status word in its stakeholder updates
# (`documents.status_word`): Identified, Monitoring, Resolved.
_TELLING = ("root_cause", "mitigate", "resolve")
# When the stage next has something to do on its own: each pending remediation's verification
# deadline, and each open incident's latest stakeholder update's due time.
_NEXT_STOPS = """
SELECT verify_by FROM remediations WHERE status = 'succeeded' AND verified IS NULL AND verify_by IS NOT NULL
UNION
SELECT arg_max(d.due_at, d.created_at) FROM documents d JOIN incidents i ON i.id = d.incident_id
WHERE d.kind = 'stakeholder_update' AND i.status NOT IN ('resolved', 'closed') AND NOT i.imported
GROUP BY d.incident_id
"""


class _Clock:
    """The replay's stops: each instant once, in time order, none after `end` nor before the current one."""

    def __init__(self, end: dt.datetime) -> None:
        self.end = end
        self.now: dt.datetime | None = None
        self._heap: list[dt.datetime] = []
        self._seen: set[dt.datetime] = set()

    def stop_at(self, at: dt.datetime | None) -> None:
        if at is None or at > self.end or at in self._seen or (self.now is not None and at <= self.now):
            return
        self._seen.add(at)
        heapq.heappush(self._heap, at)

    def next(self) -> dt.datetime | None:
        if not self._heap:
            return None
        self.now = heapq.heappop(self._heap)
        return self.now


# One injected event, as the `demo_events` table keeps it: id, service, SLO ids, start, end, shape,
# fingerprint, description.
GroundTruth = tuple[str, str, list[str], dt.datetime, dt.datetime, str, str, str]


def record_ground_truth(con: duckdb.DuckDBPyConnection, events: list[GroundTruth]) -> None:
    """Keep what the demo injected, so alert quality can score the burn-rate alerts against it."""
    for row in events:
        con.execute("INSERT OR REPLACE INTO demo_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(row))


@dataclasses.dataclass
class ReplayStage:
    """`slo demo`'s incident stage (passed to `run_cycle`): record the ground truth, then replay the
    whole history up to the data's end."""

    events: list[GroundTruth]
    alerts: list[ExternalAlert] = dataclasses.field(default_factory=list)  # the present's
    hands_off: dt.datetime | None = None

    def __call__(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        end: dt.datetime,
        publish: Callable[[], object] | None = None,  # not used: the demo publishes once, at the end
    ) -> ProcessReport:
        record_ground_truth(con, self.events)
        return replay(con, settings, end, self.alerts, self.hands_off)


def at_data_end(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    end: dt.datetime,
    publish: Callable[[], object] | None = None,
) -> ProcessReport:
    """`slo run --source demo`'s incident stage: the demo's clock is its data, so the inbox is
    processed at the data's end, not at the wall clock (and published once, at the cycle's end)."""
    return process(con, settings, end)


def _add(total: ProcessReport, report: ProcessReport) -> None:
    merge_fold(total.fold, report.fold)
    for name in ("triaged", "escalated", "remediations", "verified", "errors"):
        getattr(total, name).extend(getattr(report, name))
    total.timers += report.timers
    total.documents += report.documents


def summary(con: duckdb.DuckDBPyConnection, at: dt.datetime) -> dict[str, int]:
    """What the demo's incident flow produced, for the `slo demo` summary line."""
    row = con.execute(
        """SELECT count(*),
                  count(*) FILTER (WHERE route = 'auto_remediate'),
                  count(*) FILTER (WHERE route = 'escalate'),
                  count(*) FILTER (WHERE repeat_of IS NOT NULL),
                  count(*) FILTER (WHERE status NOT IN ('resolved', 'closed')),
                  (SELECT count(*) FROM action_items WHERE status = 'open' AND due_date < ?)
           FROM incidents WHERE NOT imported""",
        [at.date()],
    ).fetchone() or (0, 0, 0, 0, 0, 0)
    keys = ("incidents", "auto_remediated", "escalated", "repeats", "open", "overdue_action_items")
    return dict(zip(keys, map(int, row), strict=True))
