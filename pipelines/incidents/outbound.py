"""Escalation to humans: a PagerDuty Events API v2 trigger and a Slack incoming-webhook message.

    escalate(incident, triage, settings) → [notification record per channel]   never raises
    resolve_page(incident_id, settings)  → notification record (PagerDuty `resolve`, same dedup_key)

Each record is a row for the `notifications` table: incident_id, channel (pagerduty | slack), status
(sent | failed | skipped), attempts, detail, sent_at. An unconfigured channel is recorded as skipped.
Retries with exponential backoff on 429, 5xx and network errors (at most `notify_max_retries`, honouring
a short Retry-After); none on other 4xx, which a retry cannot fix. Secrets (routing key, webhook URL)
never appear in a record.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.config import Settings, scrub
from pipelines.incidents.contract import TriageResult

log = logging.getLogger(__name__)

# SEV → PagerDuty Events v2 payload.severity
PAGERDUTY_SEVERITY = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info"}
MAX_SUMMARY = 1024  # PagerDuty truncates longer summaries; we do it ourselves, visibly
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class Delivery:
    status: str  # sent | failed
    attempts: int
    detail: str


def escalation_reason(incident: dict[str, Any], triage: TriageResult) -> str | None:
    """Why a human is asked: the caller's reason (route, failed remediation, timer), else the triage's."""
    reason = incident.get("escalation_reason") or incident.get("route_reason") or triage.error
    return str(reason) if reason else None


def pagerduty_event(incident: dict[str, Any], triage: TriageResult, routing_key: str) -> dict[str, Any]:
    """The Events API v2 trigger for `incident`; dedup_key is our incident id so re-sends coalesce."""
    severity = str(incident.get("severity") or triage.severity)
    summary = f"[{severity}] {incident.get('service')}: {incident.get('title')}"
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": str(incident["id"]),
        "payload": {
            "summary": summary,
            "source": str(incident.get("service") or "unknown"),
            "severity": PAGERDUTY_SEVERITY.get(severity, "critical"),
            "custom_details": {
                "incident_id": str(incident["id"]),
                "severity": severity,
                "slo": incident.get("slo_id"),
                "root_cause_hypothesis": triage.root_cause_hypothesis,
                "recommended_action": triage.recommended_action,
                "triage_method": triage.method,
                "confidence": triage.confidence,
                "escalation_reason": escalation_reason(incident, triage),
            },
        },
    }


def _slack_escape(text: object) -> str:
    # Slack treats <…> as links and mentions (<!channel>): alert text must not be able to ping anyone.
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(incident: dict[str, Any], triage: TriageResult) -> dict[str, Any]:
    """A plain-text Slack message; every value from an alert or the model is escaped."""
    severity = incident.get("severity") or triage.severity
    lines = [
        f":rotating_light: *{_slack_escape(severity)} {_slack_escape(incident['id'])}* "
        f"{_slack_escape(incident.get('service'))}: {_slack_escape(incident.get('title'))}",
        f"*Hypothesis:* {_slack_escape(triage.root_cause_hypothesis)}",
        f"*Recommended:* {_slack_escape(triage.recommended_action)} "
        f"(triage by {_slack_escape(triage.method)}, confidence {triage.confidence:.2f})",
    ]
    reason = escalation_reason(incident, triage)
    if reason:
        lines.append(f"*Why a human:* {_slack_escape(reason)}")
    return {"text": "\n".join(lines)}


def post_json(
    url: str,
    body: dict[str, Any],
    *,
    timeout_s: float,
    max_retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST `body` as JSON; 2xx is sent; retry 429/5xx/network errors; any other status fails at once."""
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        return Delivery("failed", 0, "the URL is not http(s); nothing was sent")
    data = json.dumps(body).encode()
    attempts = 0
    while True:
        attempts += 1
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "slo-dashboard"},
        )
        retry_after: float | None = None
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return Delivery("sent", attempts, f"HTTP {response.status} after {attempts} attempt(s)")
        except urllib.error.HTTPError as exc:
            text = exc.read(300).decode("utf-8", "replace").strip()
            detail = f"HTTP {exc.code}: {text}" if text else f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                return Delivery("failed", attempts, f"{detail} (not retried)")
            retry_after = _retry_after(exc.headers.get("Retry-After"))
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            detail = f"network error: {reason.__class__.__name__}: {reason}"
        if attempts > max_retries:
            return Delivery("failed", attempts, f"{detail}; gave up after {attempts} attempt(s)")
        pause = backoff_s * 2 ** (attempts - 1)
        sleep(min(max(pause, retry_after or 0.0), MAX_RETRY_AFTER_S))


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def escalate(incident: dict[str, Any], triage: TriageResult, settings: Settings) -> list[dict[str, Any]]:
    """Page (PagerDuty) and notify (Slack) about `incident`; one notification record per channel.

    `incident` needs `id`, `service`, `title`, `severity`; `slo_id` and `escalation_reason` (why a
    human is asked) are used when present.
    """
    incident_id = str(incident.get("id"))
    return [
        _send(
            incident_id,
            "pagerduty",
            settings.pagerduty_events_url if settings.pagerduty_routing_key else None,
            "PAGERDUTY_ROUTING_KEY",
            lambda: pagerduty_event(incident, triage, settings.pagerduty_routing_key or ""),
            settings,
        ),
        _send(
            incident_id,
            "slack",
            settings.slack_webhook_url,
            "SLACK_WEBHOOK_URL",
            lambda: slack_message(incident, triage),
            settings,
        ),
    ]


def approval_message(
    incident: dict[str, Any],
    remediation_id: str,
    action: str,
    deadline: dt.datetime,
    approvers: list[str],
) -> dict[str, Any]:
    """The Slack announcement of a critical remediation waiting for approval (issue 15): what, until when,
    and who may approve; every value from outside (title, names) escaped."""
    iid = _slack_escape(incident["id"])
    rid = _slack_escape(remediation_id)
    who = "the approver or admin role" + (
        f": {', '.join(_slack_escape(n) for n in approvers)}" if approvers else ""
    )
    lines = [
        f":raised_hand: *{iid}* {_slack_escape(incident.get('service'))}: "
        f"{_slack_escape(incident.get('title'))}",
        f"*Approval needed:* remediation {rid} ({_slack_escape(action)}) is critical and waits for a human "
        f"approval until {deadline:%Y-%m-%d %H:%M} UTC.",
        f"*Who may approve:* {who}.",
        f"*How:* the dashboard, `slo incidents approve {iid} --remediation {rid}` on the service's machine, "
        f"or `POST /api/incidents/{iid}/commands` with a personal token.",
        "Without a decision by then the remediation is withdrawn and the incident escalated.",
    ]
    return {"text": "\n".join(lines)}


def announce(incident_id: str, message: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Post `message` to Slack only (no page); one notification record, never raises."""
    return _send(
        incident_id, "slack", settings.slack_webhook_url, "SLACK_WEBHOOK_URL", lambda: message, settings
    )


def resolve_page(incident_id: str, settings: Settings) -> dict[str, Any]:
    """Resolve the PagerDuty alert `escalate` triggered (same dedup_key), e.g. when the incident resolves.

    One notification record (channel pagerduty); skipped when no routing key is set.
    """
    return _send(
        incident_id,
        "pagerduty",
        settings.pagerduty_events_url if settings.pagerduty_routing_key else None,
        "PAGERDUTY_ROUTING_KEY",
        lambda: {
            "routing_key": settings.pagerduty_routing_key,
            "event_action": "resolve",
            "dedup_key": incident_id,
        },
        settings,
    )


def _send(
    incident_id: str,
    channel: str,
    url: str | None,
    variable: str,
    body: Callable[[], dict[str, Any]],
    settings: Settings,
) -> dict[str, Any]:
    """Deliver one message and turn the outcome into a `notifications` record; never raises."""
    if not url:
        delivery = Delivery("skipped", 0, f"{variable} is not set")
    else:
        try:
            delivery = post_json(
                url,
                body(),
                timeout_s=settings.notify_timeout_s,
                max_retries=settings.notify_max_retries,
                backoff_s=settings.notify_backoff_s,
            )
        except Exception as exc:  # a bad URL or body must not stop the other channel or the cycle
            delivery = Delivery("failed", 1, f"{exc.__class__.__name__}: {exc}")
    detail = scrub(delivery.detail, settings)[:1000]
    if delivery.status == "failed":
        log.warning("%s notification for %s failed: %s", channel, incident_id, detail)
    return {
        "incident_id": incident_id,
        "channel": channel,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "detail": detail,
        "sent_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }
