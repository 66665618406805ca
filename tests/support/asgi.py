"""A minimal ASGI client for unit tests (httpx, which FastAPI's TestClient needs, is not installed).

It runs the app's lifespan in a background event loop and sends requests as ASGI messages, so the
real route code runs, including a body streamed in chunks without a Content-Length.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class AsgiClient:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._shutdown: asyncio.Event | None = None
        self._lifespan: Any = None

    def __enter__(self) -> AsgiClient:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        started.result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        self._shutdown = asyncio.Event()
        ready = asyncio.Event()
        messages = [{"type": "lifespan.startup"}]
        shutdown = self._shutdown

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await shutdown.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                ready.set()
            elif message["type"] == "lifespan.startup.failed":
                raise RuntimeError(message.get("message"))

        self._lifespan = asyncio.ensure_future(
            self.app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        )
        await asyncio.wait_for(ready.wait(), 30)

    async def _stop(self) -> None:
        assert self._shutdown is not None
        self._shutdown.set()
        await asyncio.wait_for(self._lifespan, 30)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] = b"",
        headers: dict[str, str] | None = None,
        *,
        content_length: bool = True,
    ) -> Response:
        chunks = [body] if isinstance(body, bytes) else list(body)
        head = {k.lower(): v for k, v in (headers or {}).items()}
        if content_length and "content-length" not in head:
            head["content-length"] = str(sum(len(c) for c in chunks))
        future = asyncio.run_coroutine_threadsafe(self._request(method, path, chunks, head), self.loop)
        return future.result(30)

    def post_json(self, path: str, value: Any, headers: dict[str, str] | None = None) -> Response:
        return self.request(
            "POST", path, json.dumps(value).encode(), {"content-type": "application/json", **(headers or {})}
        )

    async def _request(
        self, method: str, path: str, chunks: list[bytes], headers: dict[str, str]
    ) -> Response:
        route, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": route,
            "raw_path": route.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        pending = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ] or [{"type": "http.request", "body": b"", "more_body": False}]
        status = 0
        out_headers: dict[str, str] = {}
        body = bytearray()

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop(0)
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers.update({k.decode(): v.decode() for k, v in message.get("headers", [])})
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, send)
        return Response(status, out_headers, bytes(body))
