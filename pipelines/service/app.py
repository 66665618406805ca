"""The ASGI app: routes, authentication, request checks and the mapping of errors to answers; `serve`
runs it under uvicorn with the worker, and `register` adds `slo serve` to the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import hmac
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines import limits
from pipelines.auth.roles import COMMS_OVERRIDE, ROLES, may
from pipelines.auth.tokens import Actor, TokenTable, tokens_for
from pipelines.config import Settings
from pipelines.errors import (
    HTTP_ANSWERS,
    BadSignature,
    Forbidden,
    IngestError,
    MalformedInput,
    NotJson,
    SloError,
    SnapshotUnreadable,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from pipelines.inbox import AppendResult, Entry, GroupCommit, Inbox, is_disk_full, is_urgent
from pipelines.incidents import oncall
from pipelines.incidents.contract import Command
from pipelines.incidents.read import API_TRIAGE_FIELDS, list_incidents
from pipelines.incidents.runners import reap_interrupted_remediations
from pipelines.ingest import Delivery, decode_json, parse_delivery
from pipelines.ingest.commands import parse_command
from pipelines.ingest.deploys import (
    GITHUB_SIGNATURE_HEADER,
    Deploy,
    Ignored,
    check_service,
    github_event,
    github_service_field,
    github_signature_matches,
    parse_github,
    parse_native,
)
from pipelines.ingest.deploys import to_entry as deploy_entry
from pipelines.ingest.fields import digest
from pipelines.ingest.pagerduty import SIGNATURE_HEADER, signature_matches
from pipelines.limits import RequestGuard
from pipelines.service.openapi import DOC_MODELS, POST_DOCS, SCHEMA_REF, SNAPSHOT_503, ErrorAnswer
from pipelines.service.settings import ServiceSettings, is_loopback
from pipelines.service.worker import Worker, idle_cycle
from pipelines.timeutil import iso, utc_now

log = logging.getLogger("slo.serve")


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


@dataclass
class _State:
    settings: Settings
    service: ServiceSettings
    inbox: Inbox
    committer: GroupCommit | None
    worker: Worker | None
    counts: Counter[str]
    snapshot_lock: threading.Lock
    tokens: TokenTable = dataclasses.field(default_factory=TokenTable)  # personal tokens (issue 15)


def create_app(
    settings: Settings,
    service: ServiceSettings,
    *,
    cycle: Callable[[], object] | None = None,
) -> FastAPI:
    """The ASGI app. `cycle` is what the worker runs (default: `idle_cycle`); the worker runs only when
    `service.cycle_seconds > 0`. The inbox and worker start and stop with the app's lifespan.
    The personal tokens (SLO_API_TOKENS_FILE / SLO_API_TOKENS) are read here: a bad file stops start-up;
    so does an on-call file (SLO_ONCALL_FILE) with a problem."""
    tokens = tokens_for(settings)
    oncall.configured(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        inbox = Inbox(settings.data_dir)
        committer = GroupCommit(Inbox(settings.data_dir)).start() if service.group_commit else None
        # Before the first cycle: scripts a killed predecessor left running are killed and reported.
        reap_interrupted_remediations(inbox, settings)
        worker = None
        marks = contextlib.ExitStack()
        if service.cycle_seconds > 0:
            from pipelines.store import serving  # lazy: see the package docstring; the worker loads it anyway

            # the CLI's steps wait for this worker while it runs (store.served_by)
            marks.enter_context(serving(settings.data_dir))
            worker = Worker(cycle or idle_cycle(settings), service.cycle_seconds)
            worker.start()
        app.state.slo = _State(
            settings, service, inbox, committer, worker, Counter(), threading.Lock(), tokens
        )
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
            marks.close()
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
        return _refuse(request, exc.status, str(exc), getattr(exc, "error", None))

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
        received_at = utc_now()
        raw = await _authenticated_body(request, state.service)
        signed = _signed_by_pagerduty(request, state.service, raw)
        try:
            delivery = parse_delivery(
                raw, request.query_params.get("format"), request.headers, received_at=received_at
            )
        except IngestError:
            raise
        except Exception as exc:  # a parser bug must still be a 400 for the sender, and logged for us
            log.exception("unexpected error parsing a delivery")
            raise MalformedInput(f"body: could not be read ({type(exc).__name__})") from exc
        if not signed:
            delivery = _without_unsigned_steps(delivery)
        result = await _append(state, delivery.entries)
        if state.worker is not None and any(map(is_urgent, delivery.entries)):
            state.worker.wake()  # a page is listed within seconds, not at the next scheduled cycle
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
        received_at = utc_now()
        _check_length(request, state.service.max_body_bytes)
        caller = _command_caller(request, state)
        _check_json(request)
        raw = await _read_body(request, state.service.max_body_bytes)
        try:
            body = decode_json(raw)
            cmd = parse_command(
                request.path_params["incident_id"],
                body,
                received_at,
                request.headers.get("idempotency-key") or None,
            )
        except IngestError:
            raise
        except Exception as exc:  # as for deliveries: a parser bug is a logged 400, never a 500
            log.exception("unexpected error parsing a command")
            raise MalformedInput(f"body: could not be read ({type(exc).__name__})") from exc
        cmd = _authorized(cmd, caller, body)
        own_key = request.headers.get("idempotency-key") or (
            body.get("dedup_key") if isinstance(body, dict) else None
        )
        if own_key:  # a retry is recognised per sender and command, never across them (issue 15)
            key = digest("command", cmd.incident_id, cmd.actor, cmd.command, str(own_key))
            cmd = dataclasses.replace(cmd, dedup_key=f"cmd:{key}")
        entry = Entry(cmd.dedup_key, "command", cmd.source, cmd.to_json())
        result = await _append(state, [entry])
        state.counts["202"] += 1
        return JSONResponse(
            {"accepted": result.accepted, "duplicates": result.duplicates, "command": cmd.to_json()},
            status_code=202,
        )

    async def deploy(request: Request) -> JSONResponse:
        """POST /api/deploys (issue 17): one deploy, as native JSON or a GitHub deployment webhook."""
        state: _State = request.app.state.slo
        received_at = utc_now()
        raw, actor = await _deploy_sender(request, state)
        try:
            body = decode_json(raw)
            answer = parse_deploy(body, request, state.settings, received_at)
        except IngestError:
            raise
        except Exception as exc:  # as for deliveries: a parser bug is a logged 400, never a 500
            log.exception("unexpected error parsing a deploy")
            raise MalformedInput(f"body: could not be read ({type(exc).__name__})") from exc
        if isinstance(answer, Ignored):
            state.counts["202"] += 1
            return JSONResponse(
                {"accepted": [], "duplicates": [], "ignored": [answer.reason]}, status_code=202
            )
        from pipelines.incidents.cli_deploys import known_services_now  # lazy: DuckDB and the specs

        known = await asyncio.to_thread(known_services_now, state.settings, answer.service)
        check_service(answer, known, github_service_field(body) if answer.source == "github" else "service")
        result = await _append(state, [deploy_entry(answer, actor)])
        state.counts["202"] += 1
        return JSONResponse(
            {"accepted": result.accepted, "duplicates": result.duplicates, "deploy": answer.to_json()},
            status_code=202,
        )

    app.router.add_route("/api/incidents/ingest", ingest, methods=["POST"])
    app.router.add_route("/api/deploys", deploy, methods=["POST"])
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
            None,
            description="triggered | acknowledged | mitigated | resolved | closed, "
            "or open (any but resolved and closed)",
        ),
    ) -> JSONResponse:
        state: _State = request.app.state.slo
        if state.tokens.lookup(_bearer(request)) is None:  # a personal token of any role may read
            _check_bearer(request, state.service)  # incident data is for those who hold the token
        from pipelines.store import Snapshot  # lazy: see the package docstring

        with state.snapshot_lock:
            snapshot = Snapshot(state.settings.data_dir)
            if not snapshot.exists():
                return _refuse(request, 503, "no published snapshot yet; the worker publishes one each cycle")
            try:
                with snapshot.connection() as con:
                    rows = list_incidents(con, status, limit=limit, triage_fields=API_TRIAGE_FIELDS)
            except SnapshotUnreadable as exc:
                return _refuse(request, 503, str(exc))
            finally:
                snapshot.close()
        return JSONResponse(rows)

    @app.get("/api/health", summary="Inbox, worker and snapshot freshness")
    def health(request: Request) -> JSONResponse:
        state: _State = request.app.state.slo
        from pipelines.store import SNAPSHOT_FILE  # lazy: see the package docstring

        snap = state.settings.data_dir / SNAPSHOT_FILE
        published = dt.datetime.fromtimestamp(snap.stat().st_mtime, dt.UTC) if snap.exists() else None
        with state.snapshot_lock:
            folded = fold_health(state.settings.data_dir, state.inbox)
        return JSONResponse(
            {
                "status": "ok",
                "auth": "token" if state.service.token else "none (loopback only)",
                "commands": f"personal tokens ({len(state.tokens)})"
                if state.tokens
                else "refused: no personal tokens configured (SLO_API_TOKENS_FILE)",
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
                    "published_at": iso(published.replace(tzinfo=None)) if published else None,
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
                components[model.__name__] = model.model_json_schema(ref_template=SCHEMA_REF)
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


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
    from pipelines.store import Snapshot  # lazy: see the package docstring

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
                    "first_at": iso(r[5]),
                    "last_at": iso(r[6]),
                }
                for r in recent
            ],
        },
    }


# --------------------------------------------------------------------------------- request checks
def _refuse(request: Request, status: int, detail: str, name: str | None = None) -> JSONResponse:
    state: _State | None = getattr(request.app.state, "slo", None)
    if state is not None:
        state.counts[str(status)] += 1
    detail = detail.encode("utf-8", "backslashreplace").decode()  # an echoed input may not be valid Unicode
    name = name or HTTP_ANSWERS.get(status, ("error", ""))[0]
    return JSONResponse({"error": name, "detail": detail}, status_code=status)


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


def _bearer(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return (given.strip() or None) if scheme.lower() == "bearer" else None


def _command_caller(request: Request, state: _State) -> Actor | None:
    """Who sends a command (issue 15): the named actor of a personal token. With personal tokens
    configured, nothing else may send commands (401 no or unknown token; 403 the ingest token, which
    names nobody). Without any, None once the ingest token is checked: `_authorized` refuses the
    command (403), since nobody can be named."""
    if not state.tokens:
        _check_bearer(request, state.service)
        return None
    actor = state.tokens.lookup(_bearer(request))
    if actor is not None:
        return actor
    if state.service.token and _bearer_ok(request, state.service.token):
        raise Forbidden(
            "Authorization: the ingest token names nobody; commands need a personal token "
            "(SLO_API_TOKENS_FILE) that names who sends them"
        )
    what = "unknown" if "authorization" in request.headers else "missing"
    raise Unauthorized(
        f"Authorization: {what} bearer token; commands need `Authorization: Bearer <personal token>` "
        "(SLO_API_TOKENS_FILE)"
    )


def _authorized(cmd: Command, caller: Actor | None, body: Any) -> Command:
    """`cmd` as sent by `caller`, or Forbidden naming the role it needs. A body `actor` other than the
    token's name is refused (the actor is the token's, never a body field); without personal tokens
    every command is refused, whatever the body says."""
    needed = next((role for role in ROLES if may(role, cmd.command)), "admin")
    if caller is None:  # no personal tokens configured: nobody can be named, so no command is taken
        raise Forbidden(
            f"{cmd.command}: needs a named {needed}; commands through the API need a personal token "
            "that names who sends them (SLO_API_TOKENS_FILE or SLO_API_TOKENS), and none is configured"
        )
    claimed = body.get("actor") if isinstance(body, dict) else None
    if isinstance(claimed, str) and claimed.strip() and claimed.strip() != caller.name:
        raise Forbidden(
            f"actor: {claimed.strip()[:60]!r} is not the token's actor {caller.name!r}; a command is "
            "recorded as sent by its token's actor, leave `actor` out"
        )
    if not caller.may(cmd.command):
        raise Forbidden(
            f"{cmd.command}: needs the {needed} role (or higher); the token of {caller.name} has the "
            f"role {caller.role}"
        )
    if cmd.args.get("override") and not caller.may(COMMS_OVERRIDE):
        raise Forbidden(
            f"{cmd.command}: overriding the communications lead needs the admin role; the token of "
            f"{caller.name} has the role {caller.role} (leave `override` out: the communications lead "
            "approves)"
        )
    return dataclasses.replace(cmd, actor=caller.name)


def parse_deploy(
    body: Any, request: Request, settings: Settings, received_at: dt.datetime
) -> Deploy | Ignored:
    """A deploy body: `?format=github` (or an X-GitHub-Event header) is a GitHub webhook payload, else
    the native JSON (pipelines/ingest/deploys.py)."""
    fmt = request.query_params.get("format")
    if fmt == "github" or (fmt is None and "x-github-event" in request.headers):
        event = github_event(request.headers, body)
        return parse_github(event, body, received_at, settings.deploy_environments)
    if fmt not in (None, "json"):
        raise MalformedInput(f"format: {fmt[:20]!r} is unknown; expected json or github")
    return parse_native(body, received_at)


async def _deploy_sender(request: Request, state: _State) -> tuple[bytes, str]:
    """Who posts a deploy, and the body: GitHub by its `X-Hub-Signature-256` (SLO_GITHUB_WEBHOOK_SECRET
    set), or a personal token of a responder or higher (401/403 as for commands)."""
    _check_length(request, state.service.max_body_bytes)
    secret = state.settings.github_webhook_secret
    signature = request.headers.get(GITHUB_SIGNATURE_HEADER)
    if secret and signature is not None:
        _check_json(request)
        raw = await _read_body(request, state.service.max_body_bytes)
        if not github_signature_matches(raw, signature, secret):
            raise BadSignature(
                "X-Hub-Signature-256: not the HMAC-SHA256 of the body with SLO_GITHUB_WEBHOOK_SECRET"
            )
        return raw, "github"
    caller = _command_caller(request, state)
    if caller is None:
        raise Forbidden(
            "deploys need a personal token that names who sends them (SLO_API_TOKENS_FILE or "
            "SLO_API_TOKENS), and none is configured; GitHub may sign with SLO_GITHUB_WEBHOOK_SECRET"
        )
    if ROLES.index(caller.role) < ROLES.index("responder"):
        raise Forbidden(
            f"deploy: needs the responder role (or higher); the token of {caller.name} has the role "
            f"{caller.role}"
        )
    _check_json(request)
    return await _read_body(request, state.service.max_body_bytes), caller.name


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


def _signed_by_pagerduty(request: Request, service: ServiceSettings, raw: bytes) -> bool:
    """Whether the body carries a valid X-PagerDuty-Signature (whatever else authenticated it)."""
    signature = request.headers.get(SIGNATURE_HEADER)
    return bool(
        service.pagerduty_secret
        and signature is not None
        and signature_matches(raw, signature, service.pagerduty_secret)
    )


def _without_unsigned_steps(delivery: Delivery) -> Delivery:
    """A PagerDuty delivery's acknowledge/resolve/reopen steps name their actor in the body
    (`event.agent`): only PagerDuty's signature vouches for that name (issue 15). Without it (the
    ingest token, or loopback without one) the alerts are taken and the steps are listed as ignored."""
    steps = [e for e in delivery.entries if e.kind == "command"]
    if not steps:
        return delivery
    ignored = [
        {
            "dedup_key": e.dedup_key,
            "reason": "a human step from PagerDuty needs PagerDuty's X-PagerDuty-Signature "
            "(PAGERDUTY_WEBHOOK_SECRET): without it the actor it names is not vouched for",
        }
        for e in steps
    ]
    return dataclasses.replace(
        delivery,
        entries=[e for e in delivery.entries if e.kind != "command"],
        ignored=[*delivery.ignored, *ignored],
    )


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
            raise Unavailable(
                f"inbox: not stored, disk full ({type(exc).__name__}: {exc}); nothing was accepted, "
                "retry once space is freed"
            ) from exc
        log.exception("inbox append failed")
        raise Unavailable(
            f"inbox: not stored ({type(exc).__name__}: {exc}); nothing was accepted, retry"
        ) from exc


# ------------------------------------------------------------------------------------------- serve
def serve(settings: Settings, host: str, port: int, service: ServiceSettings | None = None) -> int:
    """Run the service until SIGTERM/SIGINT (uvicorn's handlers: stop accepting, finish requests,
    then the lifespan stops the worker after its current cycle and closes the inbox)."""
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


# --------------------------------------------------------------------------------------------- CLI
def cmd_serve(args: Any, settings: Settings) -> int:
    return serve(settings, args.host, args.port)
