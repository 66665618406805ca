"""`slo serve`: the ingest API (DESIGN §3 HTTP) and the worker that runs the pipeline cycle.

    POST /api/incidents/ingest          Alertmanager v4 | PagerDuty V3 | generic alert → inbox → 202
    POST /api/incidents/{id}/commands   a human step (acknowledge, resolve, root_cause…) → inbox → 202
    GET  /api/incidents                 incidents from the published snapshot
    GET  /api/health                    inbox, worker and snapshot freshness
    GET  /openapi.json, /docs           the OpenAPI document

FastAPI because it is the Python ecosystem's default for a JSON API: the OpenAPI document and its
browsable /docs come from the code itself, and uvicorn, its server, is already installed as a
dependency of Streamlit. Routes read the raw body themselves (not a pydantic model) so that every
refusal is one of the documented answers (400/401/403/413/415 with what was wrong and where), never
FastAPI's 422, and so the PagerDuty signature is checked over the exact bytes received.

Durability: a 202 is sent only after the inbox's COMMIT returned (SQLite WAL, synchronous=FULL).
Concurrent deliveries share one commit (`inbox.GroupCommit`), which is what makes 1,000 alerts/s on
one disk possible. The worker thread runs `cycle.run_cycle` every SLO_CYCLE_SECONDS under the
single-writer lock; a failed cycle is logged and the next one runs on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import hmac
import ipaddress
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.config import Settings, env_number, read_dotenv
from pipelines.errors import (
    BadSignature,
    IngestError,
    MalformedInput,
    NotJson,
    SloError,
    SnapshotUnreadable,
    TooLarge,
    Unauthorized,
)
from pipelines.inbox import AppendResult, Entry, GroupCommit, Inbox, is_disk_full
from pipelines.ingest import decode_json, parse_delivery
from pipelines.ingest.commands import parse_command
from pipelines.ingest.pagerduty import SIGNATURE_HEADER, signature_matches
from pipelines.limits import Limits, RequestGuard
from pipelines.model import Slo

log = logging.getLogger("slo.serve")

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


# ---------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ServiceSettings:
    """The service's knobs, from the environment (or `.env`)."""

    token: str | None = None  # SLO_INGEST_TOKEN: bearer token required on every POST
    pagerduty_secret: str | None = None  # PAGERDUTY_WEBHOOK_SECRET: verifies X-PagerDuty-Signature
    max_body_bytes: int = 1_048_576  # SLO_INGEST_MAX_BYTES
    cycle_seconds: float = 5.0  # SLO_CYCLE_SECONDS; 0 turns the worker off
    group_commit: bool = True  # SLO_INGEST_GROUP_COMMIT=0: one transaction per request (benchmarks)
    gc_freeze: bool = True  # SLO_GC_FREEZE=0: keep start-up objects in the collector (benchmarks)
    limits: Limits = dataclasses.field(default_factory=Limits)  # timeouts, connections, Host names

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> ServiceSettings:
        merged = {**read_dotenv(Path(".env")), **(env if env is not None else os.environ)}

        def number(name: str, default: float) -> float:
            return env_number(merged, name, default)

        return cls(
            token=merged.get("SLO_INGEST_TOKEN") or None,
            pagerduty_secret=merged.get("PAGERDUTY_WEBHOOK_SECRET") or None,
            max_body_bytes=int(number("SLO_INGEST_MAX_BYTES", 1_048_576)),
            cycle_seconds=number("SLO_CYCLE_SECONDS", 5.0),
            group_commit=merged.get("SLO_INGEST_GROUP_COMMIT", "1").strip().lower()
            not in {"0", "false", "no"},
            gc_freeze=merged.get("SLO_GC_FREEZE", "1").strip().lower() not in {"0", "false", "no"},
            limits=Limits.load(merged),
        )


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _GcPauses:
    """How long the cyclic garbage collector stopped the process (it stops the event loop too)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.full = 0
        self.max_ms = 0.0
        self.total_ms = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        pause = (time.perf_counter() - self.started) * 1000
        self.max_ms = max(self.max_ms, pause)
        self.total_ms += pause
        self.full += info.get("generation") == 2

    def status(self) -> dict[str, float]:
        return {
            "full_collections": self.full,
            "max_pause_ms": round(self.max_ms, 1),
            "total_pause_ms": round(self.total_ms, 1),
        }


GC_PAUSES = _GcPauses()


# ------------------------------------------------------------------------------------------ worker
class Worker:
    """Runs `cycle` every `every` seconds in a thread; an exception is logged, never fatal."""

    def __init__(self, cycle: Callable[[], object], every: float) -> None:
        self._cycle = cycle
        self._every = every
        self._stop = threading.Event()
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
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.run_once()
            self._stop.wait(max(0.0, self._every - (time.monotonic() - started)))

    def run_once(self) -> None:
        self.last_started = _now()
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
            self.last_ok = _now()
            self.last_error = None
        finally:
            self.cycles += 1
            self.last_finished = _now()
            self.last_seconds = round(time.monotonic() - started, 3)

    def status(self) -> dict[str, Any]:
        return {
            "running": self._thread.is_alive(),
            "every_seconds": self._every,
            "cycles": self.cycles,
            "failures": self.failures,
            "last_started": _iso(self.last_started),
            "last_finished": _iso(self.last_finished),
            "last_ok": _iso(self.last_ok),
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

    Remediations run on a thread pool (`ThreadRunner`), outside the DuckDB writer; their outcome
    comes back through the inbox.
    """
    import pandas as pd

    from pipelines import engine
    from pipelines.cycle import republish_if_unreadable, run_cycle, run_prometheus
    from pipelines.incidents.lifecycle import IncidentStage, ThreadRunner
    from pipelines.sources import Pull
    from pipelines.specs import load_specs

    stage = IncidentStage(ThreadRunner(Inbox(settings.data_dir), settings))

    def without_metrics() -> object:
        slos, end = stored_state(settings.data_dir)
        if end is None:  # nothing published yet: start from the specs, at the current minute
            slos = load_specs([settings.specs_dir])[0] if settings.specs_dir.exists() else []
            end = engine.minute_of(_now())
        empty = pd.DataFrame(
            {
                "slo_id": pd.Series(dtype=str),
                "minute": pd.Series(dtype="int64"),
                "good": pd.Series(dtype="int64"),
                "valid": pd.Series(dtype="int64"),
            }
        )
        return run_cycle(settings, slos, Pull(buckets=empty, end=end, origin="idle"), stage=stage)

    def cycle() -> object:
        republish_if_unreadable(settings.data_dir)  # before stored_state or the pull read the snapshot
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
    from pipelines.catalog import stored_slos
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


# ---------------------------------------------------------------------------------- OpenAPI models
class GenericAlert(BaseModel):
    """The generic alert format: for anything that is neither Alertmanager nor PagerDuty."""

    service: str = Field(description="Service the alert is about (need not have an SLO spec).")
    title: str = Field(description="One-line summary.")
    status: Literal["firing", "resolved"] = "firing"
    severity: str | None = Field(
        None, description="SEV1–SEV4, P0–P4, critical/page (SEV2), warning/ticket (SEV3)."
    )
    fingerprint: str | None = Field(
        None, description="Identifies the alert across notifications; default: hash of service and title."
    )
    starts_at: str | None = Field(None, description="RFC 3339 time; default: time of receipt.")
    ends_at: str | None = Field(None, description="RFC 3339 time, for resolved alerts.")
    slo: str | None = Field(None, description="`<service>/<slo name>` (or the slo name alone).")
    description: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    url: str | None = None
    dedup_key: str | None = Field(
        None,
        description="Idempotency key. Default: hash of service, fingerprint, status, starts_at, ends_at, "
        "so re-sending the same alert is a duplicate when starts_at is given.",
    )


class GenericDelivery(BaseModel):
    alerts: list[GenericAlert] = Field(description="1 to 1,000 alerts.")


class AlertmanagerAlert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str
    endsAt: str = Field("0001-01-01T00:00:00Z", description="Go's zero time while firing.")
    generatorURL: str | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(BaseModel):
    """Alertmanager `webhook_config` payload, version 4 (one `Alert` per element of `alerts`)."""

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int | None = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str | None = None
    alerts: list[AlertmanagerAlert]


class PagerDutyEvent(BaseModel):
    id: str
    event_type: str = Field(
        description="incident.triggered → alert; acknowledged/resolved/reopened → command; "
        "others are answered 202 and ignored."
    )
    resource_type: str | None = "incident"
    occurred_at: str
    agent: dict[str, Any] | None = None
    data: dict[str, Any] = Field(description="The incident: id, title, service.summary, urgency, priority…")


class PagerDutyWebhook(BaseModel):
    """PagerDuty V3 webhook; authenticated by `X-PagerDuty-Signature: v1=<hmac-sha256 hex>`."""

    event: PagerDutyEvent


class IngestAnswer(BaseModel):
    format: str
    accepted: list[str] = Field(description="De-duplication keys newly stored (on disk).")
    duplicates: list[str] = Field(description="Keys already in the inbox: re-deliveries, not counted again.")
    ignored: list[dict[str, str]] = Field([], description="PagerDuty events the incident flow does not use.")


class CommandBody(BaseModel):
    command: str = Field(
        description="acknowledge, mitigate, resolve, close, reopen, root_cause, action_item, "
        "action_item_done, postmortem_done, approve_remediation, reject_remediation, retriage"
    )
    actor: str | None = Field(None, description="Who did it (default: api).")
    args: dict[str, str] | None = Field(
        None,
        description="root_cause {category, text, fix?}; action_item {title, owner, priority?, due_date?}; "
        "action_item_done {action_item_id}; approve/reject_remediation {remediation_id, reason?}; note.",
    )
    at: str | None = Field(None, description="RFC 3339; default: time of receipt.")
    dedup_key: str | None = Field(None, description="Idempotency key (or the Idempotency-Key header).")


class CommandAnswer(BaseModel):
    accepted: list[str]
    duplicates: list[str]
    command: dict[str, Any]


class ErrorAnswer(BaseModel):
    error: str = Field(description="bad_request | unauthorized | bad_signature | too_large | not_json | …")
    detail: str = Field(
        description="What was wrong and where, e.g. `alerts[0].startsAt: required time is missing`."
    )


ERRORS = {
    400: "bad_request",
    401: "unauthorized",
    403: "bad_signature",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    415: "not_json",
    503: "unavailable",
    500: "internal",
}
DOC_MODELS: list[type[BaseModel]] = [
    IngestAnswer,
    CommandAnswer,
    ErrorAnswer,
    AlertmanagerWebhook,
    AlertmanagerAlert,
    PagerDutyWebhook,
    PagerDutyEvent,
    GenericDelivery,
    GenericAlert,
    CommandBody,
]
_REF = "#/components/schemas/{model}"


ERROR_DOCS = {
    400: "Malformed: not JSON, unknown format, or a field missing/wrong (detail says where).",
    401: "Missing or wrong `Authorization: Bearer` token (SLO_INGEST_TOKEN). Nothing stored.",
    403: "`X-PagerDuty-Signature` matches no v1= value (PAGERDUTY_WEBHOOK_SECRET). Nothing stored.",
    408: "The body did not arrive within SLO_BODY_TIMEOUT seconds of the headers. Nothing stored.",
    413: "Body over SLO_INGEST_MAX_BYTES. Nothing stored.",
    415: "Content-Type is not application/json. Nothing stored.",
    503: "Could not be stored (disk full, disk error or shutting down); nothing was accepted, retry.",
}
SNAPSHOT_503 = (
    "No published snapshot yet, or it is unreadable (`snapshot unreadable (…); the next cycle rebuilds "
    "it`): retry after the worker's next cycle."
)


def _post_doc(
    summary: str, body: dict[str, Any], answer: str, codes: tuple[int, ...], parameters: list[dict[str, Any]]
) -> dict[str, Any]:
    """The OpenAPI operation of a POST route that reads its raw body (see `create_app`)."""

    def json_ref(model: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}

    responses: dict[str, Any] = {"202": {"description": "Stored on disk.", "content": json_ref(answer)}}
    for code in codes:
        responses[str(code)] = {"description": ERROR_DOCS[code], "content": json_ref("ErrorAnswer")}
    return {
        "post": {
            "summary": summary,
            "operationId": answer.removesuffix("Answer").lower(),
            "parameters": parameters,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": responses,
            "security": [{"bearer": []}],
        }
    }


POST_DOCS = {
    "/api/incidents/ingest": _post_doc(
        "Deliver alerts (Alertmanager v4, PagerDuty V3 or generic)",
        {
            "oneOf": [
                {"$ref": _REF.format(model=m.__name__)}
                for m in (AlertmanagerWebhook, PagerDutyWebhook, GenericDelivery, GenericAlert)
            ]
        },
        "IngestAnswer",
        (400, 401, 403, 408, 413, 415, 503),
        [
            {
                "name": "format",
                "in": "query",
                "required": False,
                "description": "Skip detection: the body is in this format.",
                "schema": {"type": "string", "enum": ["alertmanager", "pagerduty", "generic"]},
            },
            {
                "name": "X-PagerDuty-Signature",
                "in": "header",
                "required": False,
                "description": "PagerDuty: v1=<hex HMAC-SHA256 of the body>; replaces the bearer token.",
                "schema": {"type": "string"},
            },
        ],
    ),
    "/api/incidents/{incident_id}/commands": _post_doc(
        "A human step for an incident (acknowledge, resolve, root_cause, action_item…)",
        {"$ref": _REF.format(model="CommandBody")},
        "CommandAnswer",
        (400, 401, 408, 413, 415, 503),
        [
            {"name": "incident_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A retried request with the same key is a duplicate, not a second step.",
                "schema": {"type": "string"},
            },
        ],
    ),
}


# ------------------------------------------------------------------------------------------- app
@dataclass
class _State:
    settings: Settings
    service: ServiceSettings
    inbox: Inbox
    committer: GroupCommit | None
    worker: Worker | None
    counts: Counter[str]
    snapshot_lock: threading.Lock


def create_app(
    settings: Settings,
    service: ServiceSettings,
    *,
    cycle: Callable[[], object] | None = None,
) -> FastAPI:
    """The ASGI app. `cycle` is what the worker runs (default: `idle_cycle`); the worker runs only when
    `service.cycle_seconds > 0`. The inbox and worker start and stop with the app's lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        inbox = Inbox(settings.data_dir)
        committer = GroupCommit(Inbox(settings.data_dir)).start() if service.group_commit else None
        # Before the first cycle: scripts a killed predecessor left running are killed and reported.
        from pipelines.incidents.lifecycle import reap_interrupted_remediations

        reap_interrupted_remediations(inbox, settings)
        worker = None
        if service.cycle_seconds > 0:
            worker = Worker(cycle or idle_cycle(settings), service.cycle_seconds)
            worker.start()
        app.state.slo = _State(settings, service, inbox, committer, worker, Counter(), threading.Lock())
        if GC_PAUSES not in gc.callbacks:
            gc.callbacks.append(GC_PAUSES)
        if service.gc_freeze:
            # ~100k long-lived objects from start-up (FastAPI, pydantic, pandas, DuckDB) made every full
            # collection a ~60 ms pause of the event loop, the p99 of a delivery; frozen, they are
            # never scanned again.
            gc.collect()
            gc.freeze()
        log.info("inbox %s holds %d rows; worker every %gs", inbox.path, inbox.count(), service.cycle_seconds)
        try:
            yield
        finally:
            if committer is not None:
                committer.close()
            if worker is not None:
                worker.stop()
            inbox.close()
            gc.unfreeze()  # let interpreter shutdown free them (DuckDB's bindings report leaks otherwise)

    app = FastAPI(
        title="Reliability dashboard: ingest API",
        version="1",
        description="Alerts and commands into the durable inbox; 202 only once on disk. "
        "Auth: `Authorization: Bearer $SLO_INGEST_TOKEN` (PagerDuty: `X-PagerDuty-Signature`).",
        lifespan=lifespan,
    )

    def refused(status: int) -> None:  # answers RequestGuard gives count as the routes' do
        state: _State | None = getattr(app.state, "slo", None)
        if state is not None:
            state.counts[str(status)] += 1

    app.add_middleware(RequestGuard, limits=service.limits, refused=refused)

    @app.exception_handler(IngestError)
    async def _ingest_error(request: Request, exc: IngestError) -> JSONResponse:
        return _refuse(request, exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _refuse(request, 400, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _refuse(request, exc.status_code, str(exc.detail))

    # The two POST routes are plain Starlette endpoints: FastAPI's per-request dependency solving was a
    # third of the service's CPU per delivery in the ingest benchmark, and these routes read the raw
    # body themselves anyway. Their OpenAPI entries are written out in `POST_DOCS` below.
    async def ingest(request: Request) -> JSONResponse:
        state: _State = request.app.state.slo
        received_at = _now()
        raw = await _authenticated_body(request, state.service)
        try:
            delivery = parse_delivery(
                raw, request.query_params.get("format"), request.headers, received_at=received_at
            )
        except IngestError:
            raise
        except Exception as exc:  # a parser bug must still be a 400 for the sender, and logged for us
            log.exception("unexpected error parsing a delivery")
            raise MalformedInput(f"body: could not be read ({type(exc).__name__})") from exc
        result = await _append(state, delivery.entries)
        state.counts["accepted"] += len(result.accepted)
        state.counts["duplicates"] += len(result.duplicates)
        state.counts["202"] += 1
        return JSONResponse(
            {
                "format": delivery.format,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "ignored": delivery.ignored,
            },
            status_code=202,
        )

    async def command(request: Request) -> JSONResponse:
        state: _State = request.app.state.slo
        received_at = _now()
        _check_length(request, state.service.max_body_bytes)
        _check_bearer(request, state.service)
        _check_json(request)
        raw = await _read_body(request, state.service.max_body_bytes)
        try:
            cmd = parse_command(
                request.path_params["incident_id"],
                decode_json(raw),
                received_at,
                request.headers.get("idempotency-key") or None,
            )
        except IngestError:
            raise
        except Exception as exc:  # as for deliveries: a parser bug is a logged 400, never a 500
            log.exception("unexpected error parsing a command")
            raise MalformedInput(f"body: could not be read ({type(exc).__name__})") from exc
        entry = Entry(cmd.dedup_key, "command", cmd.source, cmd.to_json())
        result = await _append(state, [entry])
        state.counts["202"] += 1
        return JSONResponse(
            {"accepted": result.accepted, "duplicates": result.duplicates, "command": cmd.to_json()},
            status_code=202,
        )

    app.router.add_route("/api/incidents/ingest", ingest, methods=["POST"])
    app.router.add_route("/api/incidents/{incident_id}/commands", command, methods=["POST"])

    @app.get(
        "/api/incidents",
        summary="Incidents from the published snapshot, newest first",
        responses={503: {"model": ErrorAnswer, "description": SNAPSHOT_503}},
    )
    def incidents(
        request: Request,
        limit: int | None = Query(None, ge=1, le=100_000),
        status: str | None = Query(
            None, description="triggered | acknowledged | mitigated | resolved | closed"
        ),
    ) -> JSONResponse:
        state: _State = request.app.state.slo
        _check_bearer(request, state.service)  # incident data is for those who hold the token
        from pipelines.store import Snapshot

        with state.snapshot_lock:
            snapshot = Snapshot(state.settings.data_dir)
            if not snapshot.exists():
                return _refuse(request, 503, "no published snapshot yet; the worker publishes one each cycle")
            try:
                with snapshot.connection() as con:
                    rows = list_incidents(con, limit=limit, status=status)
            except SnapshotUnreadable as exc:
                return _refuse(request, 503, str(exc))
            finally:
                snapshot.close()
        return JSONResponse(rows)

    @app.get("/api/health", summary="Inbox, worker and snapshot freshness")
    def health(request: Request) -> JSONResponse:
        state: _State = request.app.state.slo
        from pipelines.store import SNAPSHOT_FILE

        snap = state.settings.data_dir / SNAPSHOT_FILE
        published = dt.datetime.fromtimestamp(snap.stat().st_mtime, dt.UTC) if snap.exists() else None
        with state.snapshot_lock:
            folded = fold_health(state.settings.data_dir, state.inbox)
        return JSONResponse(
            {
                "status": "ok",
                "auth": "token" if state.service.token else "none (loopback only)",
                "inbox": {
                    "count": state.inbox.count(),
                    "last_seq": state.inbox.last_seq(),
                },
                "fold": folded["fold"],
                "dead_letters": folded["dead_letters"],
                "ingest": dict(state.counts),
                "gc": GC_PAUSES.status(),
                "worker": state.worker.status() if state.worker else {"running": False},
                "snapshot": {
                    "published_at": _iso(published.replace(tzinfo=None)) if published else None,
                    "age_seconds": round((dt.datetime.now(dt.UTC) - published).total_seconds(), 1)
                    if published
                    else None,
                    "readable": None if published is None else "unreadable" not in folded,
                    "error": folded.get("unreadable"),
                },
            }
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for operations in schema["paths"].values():  # validation errors are answered 400, not 422
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for path, item in POST_DOCS.items():
                schema["paths"].setdefault(path, {}).update(item)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in DOC_MODELS:
                components[model.__name__] = model.model_json_schema(ref_template=_REF)
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# SQL: one row per incident with its latest triage, newest first (DESIGN §3 `incidents list --json`).
INCIDENTS_SQL = """
SELECT i.id, i.service, i.title, i.severity, i.status, i.source, i.fingerprint, i.slo_id,
       i.impact_start, i.detected_at, i.acknowledged_at, i.mitigated_at, i.resolved_at, i.route,
       t.method, t.severity AS triage_severity, t.recommended_action, t.confidence
FROM incidents i
LEFT JOIN (SELECT incident_id, arg_max(method, attempt) AS method, arg_max(severity, attempt) AS severity,
                  arg_max(recommended_action, attempt) AS recommended_action,
                  arg_max(confidence, attempt) AS confidence
           FROM triage GROUP BY incident_id) t ON t.incident_id = i.id
WHERE ? IS NULL OR i.status = ?
ORDER BY i.detected_at DESC NULLS LAST, i.id DESC
LIMIT ?
"""


def list_incidents(con: Any, *, limit: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
    cur = con.execute(INCIDENTS_SQL, [status, status, limit if limit is not None else 2**62])
    names = [d[0] for d in cur.description]
    out = []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        triage = {k: row.pop(k) for k in ("method", "triage_severity", "recommended_action", "confidence")}
        for key, value in row.items():
            if isinstance(value, dt.datetime):
                row[key] = _iso(value)
        row["triage"] = (
            None
            if triage["method"] is None
            else {
                "method": triage["method"],
                "severity": triage["triage_severity"],
                "recommended_action": triage["recommended_action"],
                "confidence": triage["confidence"],
            }
        )
        out.append(row)
    return out


# SQL: where the published fold stands, and what it set aside (issue 11): rejected inbox rows and
# steps failing on one record.
FOLD_HEALTH_SQL = """
SELECT (SELECT last_seq FROM inbox_cursor), (SELECT last_key FROM inbox_cursor),
       (SELECT count(*) FROM inbox_rejects),
       (SELECT count(*) FROM step_failures WHERE cleared_at IS NULL)
"""
RECENT_FAILURES_SQL = """
SELECT step, record, incident_id, error, attempts, first_at, last_at FROM step_failures
WHERE cleared_at IS NULL ORDER BY last_at DESC, step, record LIMIT 5
"""


def fold_health(data_dir: Path, inbox: Inbox) -> dict[str, Any]:
    """Folding lag (newest inbox row vs the published cursor) and the dead letters, from the snapshot.

    `refold_pending` is true when the inbox no longer holds the row the cursor stands on (deleted,
    restored or replaced): the next cycle refolds it from its first row.
    """
    from pipelines.store import Snapshot

    last_seq = inbox.last_seq()
    snapshot = Snapshot(data_dir)
    if not snapshot.exists():
        fold: dict[str, Any] = {"folded_seq": 0, "lag": last_seq, "refold_pending": False}
        return {"fold": fold, "dead_letters": None}
    try:
        with snapshot.connection() as con:
            seq, key, rejects, failing = con.execute(FOLD_HEALTH_SQL).fetchone() or (0, None, 0, 0)
            recent = con.execute(RECENT_FAILURES_SQL).fetchall()
    except SnapshotUnreadable as exc:  # health still answers, and its snapshot part says so
        return {"fold": {"error": str(exc)}, "dead_letters": None, "unreadable": str(exc)}
    except Exception as exc:  # an older snapshot: say so, health still answers
        return {"fold": {"error": f"{type(exc).__name__}: {exc}"[:300]}, "dead_letters": None}
    finally:
        snapshot.close()
    refold = bool(seq) and inbox.key_at(int(seq)) != key
    return {
        "fold": {
            "folded_seq": int(seq),
            "lag": last_seq if refold else max(0, last_seq - int(seq)),
            "refold_pending": refold,
        },
        "dead_letters": {
            "inbox_rejects": int(rejects),
            "step_failures": int(failing),
            "recent_failures": [
                {
                    "step": r[0],
                    "record": r[1],
                    "incident_id": r[2],
                    "error": r[3],
                    "attempts": r[4],
                    "first_at": _iso(r[5]),
                    "last_at": _iso(r[6]),
                }
                for r in recent
            ],
        },
    }


# --------------------------------------------------------------------------------- request checks
def _refuse(request: Request, status: int, detail: str) -> JSONResponse:
    state: _State | None = getattr(request.app.state, "slo", None)
    if state is not None:
        state.counts[str(status)] += 1
    detail = detail.encode("utf-8", "backslashreplace").decode()  # an echoed input may not be valid Unicode
    return JSONResponse({"error": ERRORS.get(status, "error"), "detail": detail}, status_code=status)


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise MalformedInput(f"Content-Length: {declared[:30]!r} is not a number") from None
    if size > limit:
        raise TooLarge(f"body: {size} bytes declared; the limit is {limit} (SLO_INGEST_MAX_BYTES)")


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(errors="replace"), token.encode()
    )


def _check_bearer(request: Request, service: ServiceSettings) -> None:
    if service.token is None:
        return  # no token configured: the service is bound to loopback only (see `serve`)
    if not _bearer_ok(request, service.token):
        what = "wrong" if "authorization" in request.headers else "missing"
        if SIGNATURE_HEADER in request.headers and not service.pagerduty_secret:
            raise Unauthorized(
                f"Authorization: {what} bearer token; this delivery is signed by PagerDuty, but "
                "PAGERDUTY_WEBHOOK_SECRET is not set, so it needs the bearer token"
            )
        raise Unauthorized(
            f"Authorization: {what} bearer token; send `Authorization: Bearer <SLO_INGEST_TOKEN>`"
        )


def _check_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise NotJson(
            f"Content-Type: {content_type[:60]!r} is not JSON; send `Content-Type: application/json`"
        )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it grows past `limit` (whatever Content-Length said)."""
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body: over {limit} bytes (SLO_INGEST_MAX_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _authenticated_body(request: Request, service: ServiceSettings) -> bytes:
    """Check size, who is sending, and content type, in that order; then read the body.

    A delivery carrying `X-PagerDuty-Signature` (with PAGERDUTY_WEBHOOK_SECRET set) authenticates by
    that signature over the raw bytes; anything else needs the bearer token when one is configured.
    The signature authenticates PagerDuty events only: a signed body is parsed as PagerDuty (the
    header decides the format), and naming another format with `?format=` needs the bearer token.
    """
    _check_length(request, service.max_body_bytes)
    signature = request.headers.get(SIGNATURE_HEADER)
    if (
        service.pagerduty_secret
        and signature is not None
        and not (service.token and _bearer_ok(request, service.token))
    ):
        fmt = request.query_params.get("format")
        if service.token and fmt not in (None, "pagerduty"):
            raise Unauthorized(
                f"Authorization: missing bearer token; X-PagerDuty-Signature authenticates PagerDuty "
                f"events only, not ?format={fmt[:20]}"
            )
        _check_json(request)
        raw = await _read_body(request, service.max_body_bytes)
        if not signature_matches(raw, signature, service.pagerduty_secret):
            raise BadSignature(
                "X-PagerDuty-Signature: no v1= value matches the HMAC-SHA256 of the body with "
                "PAGERDUTY_WEBHOOK_SECRET"
            )
        return raw
    _check_bearer(request, service)
    _check_json(request)
    return await _read_body(request, service.max_body_bytes)


async def _append(state: _State, entries: list[Entry]) -> AppendResult:
    """Store entries; returns once they are committed to disk. Failure is a 503: nothing accepted."""
    if not entries:
        return AppendResult([], [])
    try:
        if state.committer is not None:
            return await asyncio.wait_for(asyncio.wrap_future(state.committer.submit(entries)), timeout=30)
        return await asyncio.to_thread(state.inbox.append, entries)
    except Exception as exc:
        if is_disk_full(exc):  # one line, no traceback: every delivery fails alike until space is freed
            log.error("inbox append failed: disk full (%s: %s); answering 503", type(exc).__name__, exc)
            raise _Unavailable(
                f"inbox: not stored, disk full ({type(exc).__name__}: {exc}); nothing was accepted, "
                "retry once space is freed"
            ) from exc
        log.exception("inbox append failed")
        raise _Unavailable(
            f"inbox: not stored ({type(exc).__name__}: {exc}); nothing was accepted, retry"
        ) from exc


class _Unavailable(IngestError):
    status = 503


# ------------------------------------------------------------------------------------------- serve
def serve(settings: Settings, host: str, port: int, service: ServiceSettings | None = None) -> int:
    """Run the service until SIGTERM/SIGINT (uvicorn's handlers: stop accepting, finish requests,
    then the lifespan stops the worker after its current cycle and closes the inbox)."""
    import uvicorn

    from pipelines import limits

    service = service or ServiceSettings.load()
    if service.token is None and not is_loopback(host):
        raise SloError(
            f"--host {host}: refusing to listen beyond this machine without SLO_INGEST_TOKEN; "
            "set a token or use --host 127.0.0.1"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if service.token is None:
        log.warning("no SLO_INGEST_TOKEN set: listening on %s only, and any local process may post", host)
    if service.pagerduty_secret is None:
        log.info("no PAGERDUTY_WEBHOOK_SECRET: PagerDuty deliveries need the bearer token like any other")
    held = service.limits.bound_to(host)
    held = dataclasses.replace(held, max_connections=limits.fit_to_file_limit(held.max_connections))
    service = dataclasses.replace(service, limits=held)
    log.info(
        "answering Host %s; headers within %gs, bodies within %gs; at most %d open connections",
        ", ".join(held.allowed_hosts),
        held.header_timeout,
        held.body_timeout,
        held.max_connections,
    )
    app = create_app(settings, service)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=limits.guarded_protocol(held),
        log_level="info",
        access_log=False,
        proxy_headers=False,  # X-Forwarded-* from anyone on loopback are not to be trusted
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    limits.install_log_limits()  # after uvicorn.Config, which configures logging
    server = limits.GuardedServer(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler that was
    # installed before it; this one turns that into a normal exit once the shutdown is complete.
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        log.info("stopped by %s; the inbox holds everything accepted", signal.Signals(received[0]).name)
    return 0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="seconds") + "Z"


# --------------------------------------------------------------------------------------------- CLI
def register(sub: Any) -> None:
    """Add `slo serve` to the CLI's subparsers."""
    p = sub.add_parser(
        "serve",
        help="the ingest API and the pipeline worker",
        description="Serve POST /api/incidents/ingest, commands, health and OpenAPI, and run the pipeline "
        "cycle every SLO_CYCLE_SECONDS. Without SLO_INGEST_TOKEN only 127.0.0.1 is allowed.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")


def cmd_serve(args: Any, settings: Settings) -> int:
    return serve(settings, args.host, args.port)
