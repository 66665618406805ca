"""The status page (issue 17, item 5): seed 001's status-page update as an Atlassian Statuspage incident.

    page_status(incident status) → investigating | identified | monitoring | resolved
    update_text(incident, status, impact, at, next_at) → seed 001's template, filled in
    create_body(…) / update_body(…) → the API's JSON bodies
    send(settings, method, path, body) → Reply(status, incident id, detail)        never raises

The API is Statuspage's: `POST {STATUSPAGE_API_URL}/pages/{page_id}/incidents` creates the incident,
`PATCH …/incidents/{id}` posts each update and the resolution, with `Authorization: OAuth <key>`. Only
what the seed's template says goes out (status, user impact, current action, next update), never an
alert's text or a triage hypothesis: the page is public. Retries as every outbound call here: 429, 5xx
and network errors with exponential backoff, at most `notify_max_retries`; other 4xx fail at once.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.config import Settings, scrub

# Our incident state → Statuspage's incident status (seed 001: Investigating / Identified / Monitoring /
# Resolved).
PAGE_STATUS = {
    "triggered": "investigating",
    "acknowledged": "identified",
    "mitigated": "monitoring",
    "resolved": "resolved",
    "closed": "resolved",
}
# Severity → Statuspage impact (DESIGN §2's import mapping, read the other way) and component status.
IMPACT = {"SEV1": "critical", "SEV2": "major", "SEV3": "minor", "SEV4": "none"}
COMPONENT_STATUS = {
    "critical": "major_outage",
    "major": "partial_outage",
    "minor": "degraded_performance",
    "none": "operational",
}
UPDATE_EVERY = dt.timedelta(minutes=15)  # seed 001: "Update status page every 15 minutes"
CURRENT_ACTION = {
    "investigating": "We are investigating the cause.",
    "identified": "We have identified the issue and are working on a fix.",
    "monitoring": "A fix is in place and we are monitoring the results.",
    "resolved": "The issue is resolved and the service is operating normally.",
}
DEFAULT_IMPACT = {
    "SEV1": "{service} is unavailable or failing for many users.",
    "SEV2": "{service} is degraded: some requests fail or are slow.",
    "SEV3": "Some {service} requests may be slower than usual or fail.",
    "SEV4": "A minor issue with {service}; most users are not affected.",
}


@dataclass(frozen=True)
class Reply:
    status: str  # sent | failed
    attempts: int
    detail: str
    incident_id: str | None = None  # Statuspage's, from the answer


def page_status(incident_status: str) -> str:
    return PAGE_STATUS.get(incident_status, "investigating")


def impact_text(incident: dict[str, Any], impact: str | None) -> str:
    """The approver's words for the user impact, else the severity's default sentence."""
    if impact:
        return impact
    severity = str(incident.get("severity") or "SEV2")
    return DEFAULT_IMPACT.get(severity, DEFAULT_IMPACT["SEV2"]).format(service=incident["service"])


def update_text(
    incident: dict[str, Any], status: str, impact: str | None, at: dt.datetime, next_at: dt.datetime | None
) -> str:
    """Seed 001's status-page update, filled in."""
    nxt = "none: this incident is resolved" if next_at is None else f"by {next_at:%Y-%m-%d %H:%M} UTC"
    return "\n".join(
        [
            f"{at:%Y-%m-%d %H:%M} UTC — {incident['service']} Incident",
            f"Status: {status.capitalize()}",
            f"Impact: {impact_text(incident, impact)}",
            f"Current action: {CURRENT_ACTION[status]}",
            f"Next update: {nxt}",
        ]
    )


def _components(component: str | None, status: str, impact: str) -> dict[str, Any]:
    if component is None:
        return {}
    state = "operational" if status == "resolved" else COMPONENT_STATUS[impact]
    return {"component_ids": [component], "components": {component: state}}


def create_body(incident: dict[str, Any], status: str, text: str, component: str | None) -> dict[str, Any]:
    """`POST /pages/{page_id}/incidents`: a realtime incident with its first update."""
    impact = IMPACT.get(str(incident.get("severity") or "SEV2"), "major")
    name = f"{incident['service']}: {'outage' if impact == 'critical' else 'degraded service'}"
    return {
        "incident": {
            "name": name,
            "status": status,
            "impact_override": impact,
            "body": text,
            "deliver_notifications": True,
            "metadata": {"slo": {"incident_id": str(incident["id"])}},
            **_components(component, status, impact),
        }
    }


def update_body(incident: dict[str, Any], status: str, text: str, component: str | None) -> dict[str, Any]:
    """`PATCH /pages/{page_id}/incidents/{id}`: a new status and update (resolved: the resolution)."""
    impact = IMPACT.get(str(incident.get("severity") or "SEV2"), "major")
    return {
        "incident": {
            "status": status,
            "body": text,
            "deliver_notifications": True,
            **_components(component, status, impact),
        }
    }


def send(
    settings: Settings,
    method: str,
    path: str,
    body: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Reply:
    """`method` `body` to `{STATUSPAGE_API_URL}{path}`; never raises. The detail is scrubbed of secrets."""
    url = settings.statuspage_api_url + path
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        return Reply("failed", 0, "STATUSPAGE_API_URL is not http(s); nothing was sent")
    data = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"OAuth {settings.statuspage_api_key}",
        "User-Agent": "slo-dashboard",
    }
    attempts = 0
    while True:
        attempts += 1
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=settings.notify_timeout_s) as response:
                raw, code = response.read(1_000_000), response.status
            # taken: never sent again (a second POST would open a second incident), whatever the answer
            return Reply("sent", attempts, f"HTTP {code} after {attempts} attempt(s)", _incident_id(raw))
        except urllib.error.HTTPError as exc:
            text = exc.read(300).decode("utf-8", "replace").strip()
            detail = f"HTTP {exc.code}: {text}" if text else f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                return Reply("failed", attempts, scrub(f"{detail} (not retried)", settings))
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            detail = f"network error: {reason.__class__.__name__}: {reason}"
        if attempts > settings.notify_max_retries:
            return Reply(
                "failed", attempts, scrub(f"{detail}; gave up after {attempts} attempt(s)", settings)
            )
        sleep(min(settings.notify_backoff_s * 2 ** (attempts - 1), 30.0))


def _incident_id(raw: bytes) -> str | None:
    """The `id` of the incident in Statuspage's answer (None when it holds none)."""
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        return None
    found = answer.get("id") if isinstance(answer, dict) else None
    return str(found)[:200] if isinstance(found, str | int) and str(found) else None
