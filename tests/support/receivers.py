"""Local stand-ins for the outside services the incident flow talks to, on 127.0.0.1 and a free port.

    Endpoint(statuses)     PagerDuty Events API v2 (`POST /v2/enqueue`) or a Slack incoming webhook:
                           answers with the scripted statuses in order (the last repeats), records
                           every (path, body, time)
    PagerDutyRest(token)   PagerDuty's REST API for incidents: `PUT /incidents/{id}` as PagerDuty
                           answers it (Token auth, the From header, the incident_reference body)
    Statuspage(key, page)  Atlassian Statuspage's API for incidents: `POST /v1/pages/{page}/incidents`
                           and `PATCH /v1/pages/{page}/incidents/{id}` (OAuth key auth)

Each is a stdlib `ThreadingHTTPServer` on its own thread; `close()` stops it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server:
    def _start(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class Endpoint(_Server):
    """Answers POSTs with the scripted statuses in order (the last repeats); records path and body."""

    def __init__(
        self,
        statuses: list[int],
        body: bytes = b'{"status":"success","message":"Event processed"}',
        *,
        echo: bool = False,
    ):
        self.statuses = statuses
        self.echo = echo
        self.received: list[tuple[str, dict[str, Any], float]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.received.append((self.path, json.loads(data), time.monotonic()))
                status = outer.statuses[min(len(outer.received), len(outer.statuses)) - 1]
                reply = body if status < 300 else b'{"status":"invalid event","errors":["bad"]}'
                if outer.echo and status >= 300:  # a careless server quoting the request back
                    reply = json.dumps({"errors": [self.path, data.decode()]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._start(Handler)


class PagerDutyRest(_Server):
    """PagerDuty's REST API for one thing: updating an incident's status (`PUT /incidents/{id}`).

    Answers as PagerDuty does: 401 without `Authorization: Token token=<token>`, 400 without a `From`
    header or with a body that is not `{"incident": {"type": "incident_reference", "status": …}}`, 404
    for an incident it does not hold, else 200 with the updated incident. `incidents` maps id → status;
    `requests` keeps (method, path, headers, body) of every request."""

    def __init__(self, token: str, incidents: dict[str, str]):
        self.token = token
        self.incidents = incidents
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(("PUT", self.path, headers, body))
                status, reply = outer.answer(self.path, headers, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._start(Handler)

    def answer(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        if headers.get("authorization") != f"Token token={self.token}":
            return 401, {"error": {"message": "Authentication Failed", "code": 2006}}
        if not headers.get("from"):
            return 400, {"error": {"message": "Invalid Input Provided", "code": 2001,
                                   "errors": ["Requester User Not Found"]}}  # fmt: skip
        parts = path.split("/")
        if len(parts) != 3 or parts[1] != "incidents":
            return 404, {"error": {"message": "Not Found", "code": 2100}}
        incident_id = parts[2]
        ref = body.get("incident") if isinstance(body, dict) else None
        if not isinstance(ref, dict) or ref.get("type") != "incident_reference" or "status" not in ref:
            return 400, {"error": {"message": "Invalid Input Provided", "code": 2001}}
        if incident_id not in self.incidents:
            return 404, {"error": {"message": "Incident Not Found", "code": 5001}}
        self.incidents[incident_id] = str(ref["status"])
        return 200, {"incident": {"id": incident_id, "type": "incident", "status": ref["status"]}}


class Statuspage(_Server):
    """Atlassian Statuspage's incidents API, for one page: `POST /v1/pages/{page_id}/incidents` creates an
    incident (201, with a new id and its first update), `PATCH /v1/pages/{page_id}/incidents/{id}` changes
    its status and adds an update (200).

    Answers as Statuspage does: 401 without `Authorization: OAuth <key>`, 404 for another page or an
    incident it does not hold, 422 for a body that is not `{"incident": {…}}` with a known status (and a
    name, to create). `incidents` maps id → the incident as it stands (status, impact, updates: the
    bodies posted, in order); `requests` keeps (method, path, headers, body) of every request;
    `statuses` scripts the answers to come (e.g. [503] makes the first request fail)."""

    STATUSES = ("investigating", "identified", "monitoring", "resolved")

    def __init__(self, key: str, page_id: str, statuses: list[int] | None = None):
        self.key = key
        self.page_id = page_id
        self.statuses = list(statuses or [])
        self.incidents: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.command, self.path, headers, body))
                status, reply = outer.answer(self.command, self.path, headers, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._start(Handler)

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        if self.statuses:
            scripted = self.statuses.pop(0)
            if scripted >= 300:
                return scripted, {"error": "Service Unavailable"}
        if headers.get("authorization") != f"OAuth {self.key}":
            return 401, {"error": "Could not authenticate"}
        parts = path.split("/")
        if parts[:5] != ["", "v1", "pages", self.page_id, "incidents"] or len(parts) not in (5, 6):
            return 404, {"error": "The requested resource could not be found."}
        incident = body.get("incident") if isinstance(body, dict) else None
        if not isinstance(incident, dict) or incident.get("status") not in self.STATUSES:
            return 422, {"error": ["Status is not included in the list"]}
        if method == "POST" and len(parts) == 5:
            if not incident.get("name"):
                return 422, {"error": ["Name can't be blank"]}
            incident_id = f"sp{len(self.incidents) + 1:04d}"
            self.incidents[incident_id] = {
                "id": incident_id,
                "name": incident["name"],
                "status": incident["status"],
                "impact": incident.get("impact_override", "none"),
                "components": incident.get("components", {}),
                "updates": [incident.get("body", "")],
            }
            return 201, self._shown(incident_id)
        if method == "PATCH" and len(parts) == 6:
            incident_id = parts[5]
            if incident_id not in self.incidents:
                return 404, {"error": "The requested resource could not be found."}
            held = self.incidents[incident_id]
            held["status"] = incident["status"]
            held["components"] = incident.get("components", held["components"])
            held["updates"].append(incident.get("body", ""))
            return 200, self._shown(incident_id)
        return 405, {"error": "Method Not Allowed"}

    def _shown(self, incident_id: str) -> dict[str, Any]:
        held = self.incidents[incident_id]
        return {
            "id": incident_id,
            "name": held["name"],
            "status": held["status"],
            "impact": held["impact"],
            "page_id": self.page_id,
            "shortlink": f"https://stspg.io/{incident_id}",
            "incident_updates": [{"status": held["status"], "body": b} for b in reversed(held["updates"])],
        }
