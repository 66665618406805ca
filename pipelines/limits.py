"""What `slo serve` holds, and for how long (issue 11): a stalled or hostile client costs a bounded
amount of memory, sockets and log, and cannot starve `/api/health`.

    Limits                  the knobs (SLO_HEADER_TIMEOUT, SLO_BODY_TIMEOUT, SLO_MAX_CONNECTIONS,
                            SLO_ALLOWED_HOSTS), read from the environment
    guarded_protocol(...)   uvicorn's h11 protocol, plus: request headers must be complete within
                            SLO_HEADER_TIMEOUT, and above SLO_MAX_CONNECTIONS open connections the
                            longest-idle one is closed (uvicorn's own `limit_concurrency` answers 503 to
                            the newcomer instead, so a pile of idle sockets would lock out health checks)
    RequestGuard            ASGI middleware: Host allow-list (DNS rebinding), Content-Length together with
                            Transfer-Encoding refused, body read deadline (408), a client that hangs up
                            mid-body logs one line, not a traceback
    RateLimitedLog          a logging filter: at most N lines per kind per interval, then a count
    install_loop_guard()    accept() errors (out of file descriptors) are rate-limited and free a socket
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

import h11
import uvicorn
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipelines.config import env_number

log = logging.getLogger("slo.limits")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = {"0.0.0.0", "::", ""}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Limits:
    """The service's holding limits. `allowed_hosts` are the Host names answered; the loopback names
    are always among them (a browser sends them only when its user typed them)."""

    header_timeout: float = 10.0  # SLO_HEADER_TIMEOUT: seconds for a request's headers to arrive
    body_timeout: float = 30.0  # SLO_BODY_TIMEOUT: seconds for its body, counted from the headers
    max_connections: int = 1000  # SLO_MAX_CONNECTIONS: open connections before the longest idle is closed
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # + SLO_ALLOWED_HOSTS (comma-separated; * = any)

    @classmethod
    def load(cls, env: Mapping[str, str]) -> Limits:
        def positive(name: str, default: float) -> float:
            return env_number(env, name, default, above_zero=True)

        extra = [h.strip().lower() for h in env.get("SLO_ALLOWED_HOSTS", "").split(",") if h.strip()]
        return cls(
            header_timeout=positive("SLO_HEADER_TIMEOUT", cls.header_timeout),
            body_timeout=positive("SLO_BODY_TIMEOUT", cls.body_timeout),
            max_connections=max(1, int(positive("SLO_MAX_CONNECTIONS", cls.max_connections))),
            allowed_hosts=_unique([*LOOPBACK_HOSTS, *extra]),
        )

    def bound_to(self, host: str) -> Limits:
        """The same limits, with the address the service binds among the allowed Host names."""
        host = host.strip().strip("[]").lower()
        if host in WILDCARD_BINDS:
            return self
        return replace(self, allowed_hosts=_unique([*self.allowed_hosts, host]))

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether a request with this Host header is answered. Without one (only HTTP/1.0 may omit
        it; h11 refuses an HTTP/1.1 request without it) there is no foreign name to refuse: a browser,
        the carrier of a DNS-rebinding attack, always sends it."""
        if "*" in self.allowed_hosts or host_header is None:
            return True
        name = host_name(host_header)
        return name is not None and name in self.allowed_hosts


def host_name(host_header: str | None) -> str | None:
    """The name in a Host header, lower-case, without port or IPv6 brackets (None if unreadable)."""
    if host_header is None:
        return None
    value = host_header.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        return name if sep and (not rest or rest.startswith(":")) else None
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def fit_to_file_limit(max_connections: int, reserve: int = 128) -> int:
    """Raise the soft RLIMIT_NOFILE so `max_connections` sockets fit beside the files the service
    keeps open; if the hard limit does not allow it, the connection cap shrinks to what fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + reserve
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(16, soft - reserve)
        log.warning(
            "open-file limit %d leaves room for %d connections, not SLO_MAX_CONNECTIONS=%d",
            soft,
            fitted,
            max_connections,
        )
        return fitted
    return max_connections


# ------------------------------------------------------------------------------------------- logging
class RateLimitedLog(logging.Filter):
    """At most `per_interval` records of one kind (logger, level, message template's first line) every
    `interval` seconds. The last one let through says that more are being counted; the first one of
    the next interval says how many were left out."""

    def __init__(
        self, per_interval: int = 5, interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.per_interval = per_interval
        self.interval = interval
        self.clock = clock
        # kind → [window start, lines shown, lines left out], least recently used first
        self._kinds: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg).split("\n", 1)[0][:120])
        now = self.clock()
        window = self._kinds.get(kind)
        if window is None or now - window[0] >= self.interval:
            if window is not None and window[2]:
                left_out = int(window[2])
                _append(record, f" [suppressed {left_out} similar lines in the previous {self.interval:g}s]")
            window = self._kinds[kind] = [now, 0, 0]
            self._kinds.move_to_end(kind)
            while len(self._kinds) > 1000:
                self._kinds.popitem(last=False)
        if window[1] >= self.per_interval:
            window[2] += 1
            return False
        window[1] += 1
        if window[1] == self.per_interval:
            _append(record, f" [more like this in the next {self.interval:g}s are counted, not logged]")
        return True


def _append(record: logging.LogRecord, note: str) -> None:
    record.msg = str(record.msg) + note.replace("%", "%%") if record.args else str(record.msg) + note


LIMITED_LOGGERS = ("uvicorn.error", "asyncio", "slo.limits", "slo.serve")


def install_log_limits(log_filter: RateLimitedLog | None = None) -> RateLimitedLog:
    """Rate-limit what the server's loggers write (call after uvicorn configured logging)."""
    log_filter = log_filter or RateLimitedLog()
    for name in LIMITED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
            logger.addFilter(log_filter)
    return log_filter


# ------------------------------------------------------------------------------------- connections
class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a cap on open connections.

    A connection is *waiting* while no request of it is in progress: from its opening, and again from
    each response (even if the client is still sending the refused request's body), until the next
    request's headers are complete. Waiting longer than
    `limits.header_timeout` closes it (a slowloris sends headers byte by byte and never finishes).
    `open` lists the server's connections, least recently active first; above
    `limits.max_connections` the first waiting one is closed to make room.
    """

    limits: Limits = Limits()
    open: OrderedDict[GuardedH11Protocol, None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting_since: float | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._evicted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.open[self] = None
        self._track()
        if len(self.open) > self.limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        if self in self.open:
            self.open.move_to_end(self)
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open.pop(self, None)
        self._stop_header_timer()
        super().connection_lost(exc)

    @property
    def waiting(self) -> bool:
        return self._waiting_since is not None

    def _track(self) -> None:
        # Waiting: no request has started, or ours is answered (a client may still be trickling the
        # body of a request refused before it was read; it gets no more time than an idle one).
        answered = self.conn.our_state in (h11.DONE, h11.MUST_CLOSE)
        waiting = (self.conn.their_state is h11.IDLE or answered) and not self.transport.is_closing()
        if waiting and self._waiting_since is None:
            self._waiting_since = self.loop.time()
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_deadline)
        elif not waiting and self._waiting_since is not None:
            self._stop_header_timer()

    def _stop_header_timer(self) -> None:
        self._waiting_since = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self._waiting_since is None or self.transport.is_closing():
            return
        partial = self.conn.trailing_data[0]
        if partial:
            log.info(
                "closed a connection from %s: request headers not complete within %gs "
                "(SLO_HEADER_TIMEOUT); %d bytes had arrived",
                _peer(self.client),
                self.limits.header_timeout,
                len(partial),
            )
        self._close()

    def _make_room(self) -> None:
        victim = next((c for c in self.open if c.waiting and c is not self), None)
        if victim is None:  # every other connection has a request in progress: refuse the newcomer
            log.warning(
                "%d connections open, all busy (SLO_MAX_CONNECTIONS=%d): refused a new one from %s",
                len(self.open) - 1,
                self.limits.max_connections,
                _peer(self.client),
            )
            self.transport.write(TOO_MANY)
            self._close()
            return
        log.warning(
            "%d connections open (SLO_MAX_CONNECTIONS=%d): closed the longest idle one, from %s",
            len(self.open),
            self.limits.max_connections,
            _peer(victim.client),
        )
        victim._close()

    def _close(self) -> None:
        self.open.pop(self, None)
        self._stop_header_timer()
        self._evicted = True
        self.transport.close()


def _answer(status: int, error: str, detail: str) -> bytes:
    """A complete HTTP/1.1 answer written straight to a socket no request cycle owns."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    reason = {503: b"Service Unavailable"}.get(status, b"")
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
    head += b"content-length: %d\r\n\r\n"
    return head % (status, reason, len(body)) + body


TOO_MANY = _answer(503, "unavailable", "too many open connections, all busy (SLO_MAX_CONNECTIONS); retry")


def guarded_protocol(limits: Limits) -> type[GuardedH11Protocol]:
    """A protocol class for `uvicorn.Config(http=...)`, with its own registry of open connections."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"limits": limits, "open": OrderedDict(), "__module__": __name__},
    )


OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)  # asyncio's accept() retries


def install_loop_guard(protocol: type[GuardedH11Protocol]) -> None:
    """The running loop's exception handler: accept() running out of file descriptors closes the
    longest-idle connection (the loop retries accepting a second later) and is logged rate-limited,
    without a traceback each time."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES:
            idle = next((c for c in protocol.open if c.waiting), None)
            log.error(
                "%s: %s; %s",
                context.get("message", "socket.accept() failed"),
                exc,
                "closed the longest idle connection" if idle else "no idle connection to close",
            )
            if idle is not None:
                idle._close()
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"


# ---------------------------------------------------------------------------------------- requests
class BodyTimeout(Exception):
    """The request body did not arrive within SLO_BODY_TIMEOUT."""


class RequestGuard:
    """Pure ASGI middleware in front of the routes: refuses what must not reach them, bounds how long
    a body may take, and turns a client that hangs up mid-body into one log line.

    `refused(status)` is told of each refusal it answers (the service counts answers by status).
    """

    def __init__(self, app: Asgi, limits: Limits, refused: Callable[[int], None] | None = None) -> None:
        self.app = app
        self.limits = limits
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if not self.limits.host_allowed(host):
            await self._refuse(
                send,
                400,
                "bad_request",
                f"Host: {(host or '')[:80]!r} is not a name this service answers to; allowed: "
                f"{', '.join(self.limits.allowed_hosts)} (add names with SLO_ALLOWED_HOSTS)",
            )
            return
        if "content-length" in headers and "transfer-encoding" in headers:
            await self._refuse(
                send,
                400,
                "bad_request",
                "Content-Length and Transfer-Encoding: both given, so the body's length is ambiguous; "
                "send one of them",
            )
            return

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout
        body_done = False
        received = 0
        started = False

        async def guarded_receive() -> Message:
            nonlocal body_done, received
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        where = f"{scope.get('method')} {scope.get('path')}"
        try:
            await self.app(scope, guarded_receive, tracked_send)
        except BodyTimeout:
            declared = headers.get("content-length", "?")
            log.info(
                "%s from %s: %d of %s body bytes within %gs (SLO_BODY_TIMEOUT); answered 408",
                where,
                _peer(scope.get("client")),
                received,
                declared,
                self.limits.body_timeout,
            )
            if not started:
                await self._refuse(
                    send,
                    408,
                    "timeout",
                    f"body: {received} of {declared} bytes arrived within {self.limits.body_timeout:g}s "
                    "(SLO_BODY_TIMEOUT); nothing was stored, send the whole body at once",
                )
        except ClientDisconnect:
            log.info(
                "%s from %s: the client disconnected after %d of %s body bytes; nothing was stored",
                where,
                _peer(scope.get("client")),
                received,
                headers.get("content-length", "?"),
            )

    async def _refuse(self, send: Send, status: int, error: str, detail: str) -> None:
        if self.refused is not None:
            self.refused(status)
        body = json.dumps({"error": error, "detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),  # the rest of this request's bytes are not read
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class GuardedServer(uvicorn.Server):
    """uvicorn's server with `install_loop_guard` for the protocol class it was configured with."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        protocol = self.config.http
        if isinstance(protocol, type) and issubclass(protocol, GuardedH11Protocol):
            install_loop_guard(protocol)
        await super().startup(sockets)
