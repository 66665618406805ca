"""Escalation to humans: a PagerDuty Events API v2 trigger and a Slack incoming-webhook message.

    escalate(incident, triage, settings, page) → [notification record per channel]   never raises
    resolve_page(incident_id, settings, dedup_key, routing_key_env) → record (PagerDuty `resolve`)
    resolve_pagerduty_incident(external_id, settings, note) → record (REST `PUT /incidents/{id}`)
    announce(incident_id, message, settings) → record (Slack only: approvals, remediation outcomes)

`page` (an `oncall.PageTarget`) says which tier of the escalation policy is paged: its routing key and
its own dedup key. An incident born from a PagerDuty webhook is never paged back to PagerDuty (it is
already there); resolving it here resolves the PagerDuty incident itself through the REST API.

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
from pipelines.incidents.oncall import PageTarget

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


def pagerduty_event(
    incident: dict[str, Any], triage: TriageResult, routing_key: str, page: PageTarget | None = None
) -> dict[str, Any]:
    """The Events API v2 trigger for `incident`; dedup_key is our incident id so re-sends coalesce, or
    the tier's own key (`INC-0042-tier2`) with `page`, which also names the tier and who is on call."""
    severity = str(incident.get("severity") or triage.severity)
    summary = f"[{severity}] {incident.get('service')}: {incident.get('title')}"
    if page is not None and page.tier > 0:
        summary = f"[tier {page.tier + 1}] {summary}"
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    event = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": page.dedup_key if page is not None else str(incident["id"]),
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
    if page is not None:
        details = event["payload"]["custom_details"]  # type: ignore[index]
        details.update({"escalation_tier": page.tier + 1, "tier_target": page.label, "on_call": page.person})
    return event


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
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> Delivery:
    """POST (or `method`) `body` as JSON; 2xx is sent; retry 429/5xx/network errors; any other status
    fails at once."""
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        return Delivery("failed", 0, "the URL is not http(s); nothing was sent")
    data = json.dumps(body).encode()
    attempts = 0
    while True:
        attempts += 1
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "User-Agent": "slo-dashboard", **(headers or {})},
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


def page_once(
    incident: dict[str, Any], triage: TriageResult, settings: Settings, page: PageTarget | None = None
) -> dict[str, Any]:
    """The PagerDuty half of `escalate` (a failed page is retried through it alone); never raises."""
    incident_id = str(incident.get("id"))
    variable = page.routing_key_env if page is not None else "PAGERDUTY_ROUTING_KEY"
    routing_key = settings.routing_key(variable)
    if incident.get("source") == "pagerduty":
        pd = _record(
            incident_id,
            "pagerduty",
            Delivery(
                "skipped",
                0,
                f"the incident came from PagerDuty ({incident.get('external_id') or 'no id'}); "
                "it is not paged back as a new alert",
            ),
        )
    else:
        pd = _send(
            incident_id,
            "pagerduty",
            settings.pagerduty_events_url if routing_key else None,
            variable,
            lambda: pagerduty_event(incident, triage, routing_key or "", page),
            settings,
        )
        if page is not None:
            pd["page"] = {
                "tier": page.tier + 1,
                "target": page.label,
                "on_call": page.person,
                "dedup_key": page.dedup_key,
                "routing_key_env": variable,
            }
            pd["detail"] = f"{page.describe()}, dedup_key {page.dedup_key}: {pd['detail']}"
    return pd


def escalate(
    incident: dict[str, Any], triage: TriageResult, settings: Settings, page: PageTarget | None = None
) -> list[dict[str, Any]]:
    """Page (PagerDuty) and notify (Slack) about `incident`; one notification record per channel.

    `incident` needs `id`, `service`, `title`, `severity`; `slo_id` and `escalation_reason` (why a
    human is asked) are used when present, `source` and `external_id` to leave an incident born in
    PagerDuty there. `page`: the policy tier paged (its routing key variable and dedup key); the PagerDuty
    record then carries it under `page` and its detail starts with it.
    """
    pd = page_once(incident, triage, settings, page)
    incident_id = str(incident.get("id"))
    return [
        pd,
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


def remediation_notice(incident: dict[str, Any], remediation: dict[str, Any], how: str) -> dict[str, Any]:
    """Seed 003's notify step for a remediation: succeeded (and verified) or failed (the script failed,
    timed out or was interrupted, or the SLI did not recover). `remediation` has id, action, status,
    attempts, exit_code, output, verified; `how` says what the verification saw. Every value escaped."""
    rid = _slack_escape(remediation["id"])
    action = _slack_escape(remediation["action"])
    head = f"*{_slack_escape(incident['id'])}* {_slack_escape(incident.get('service'))}: " + _slack_escape(
        incident.get("title")
    )
    ran = f"after {remediation.get('attempts')} attempt(s), exit code {remediation.get('exit_code')}"
    if remediation.get("verified"):
        lines = [
            f":white_check_mark: *Auto-remediation succeeded* {head}",
            f"*Fix applied:* {action} ({rid}), {ran}",
            f"*Verification:* {_slack_escape(how)}",
            "*Status:* mitigated; resolve the incident once the responders agree.",
        ]
    else:
        result = (
            "the SLI did not recover" if remediation.get("status") == "succeeded" else remediation["status"]
        )
        lines = [
            f":red_circle: *Auto-remediation FAILED: manual intervention required* {head}",
            f"*Attempted fix:* {action} ({rid}), {ran}",
            f"*Result:* {_slack_escape(result)}" + (f" ({_slack_escape(how)})" if how else ""),
        ]
        tail = str(remediation.get("output") or "").strip()[-300:]
        if tail:
            lines.append(f"*Output (end):* {_slack_escape(tail)}")
        lines.append("The incident is escalated to the on-call responders.")
    return {"text": "\n".join(lines)}


def resolved_notice(incident: dict[str, Any]) -> dict[str, Any]:
    """Seed 003's notify step when the incident is resolved: how long, by whom, what fixed it."""
    start = incident.get("impact_start") or incident.get("detected_at")
    end = incident.get("resolved_at")
    span = ""
    if start is not None and end is not None:
        minutes = max(0, int((end - start).total_seconds() // 60))
        span = f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC ({minutes // 60} h {minutes % 60} min)"
    lines = [
        f":large_green_circle: *[RESOLVED] {_slack_escape(incident['id'])}* "
        f"{_slack_escape(incident.get('service'))}: {_slack_escape(incident.get('title'))}",
        f"*Severity:* {_slack_escape(incident.get('severity') or 'untriaged')}"
        + (f"  *Duration:* {span}" if span else ""),
        f"*Resolved by:* {_slack_escape(incident.get('resolved_at_source') or 'unknown')}",
    ]
    if incident.get("root_cause"):
        lines.append(f"*Root cause:* {_slack_escape(incident['root_cause'])}")
    lines.append("*Follow-up:* the post-mortem draft is on the incident.")
    return {"text": "\n".join(lines)}


def postmortem_notice(
    incident: dict[str, Any], overdue: bool, due: dt.datetime, owner: str | None
) -> dict[str, Any]:
    """A resolved SEV1/SEV2 incident's post-mortem scheduled (due 48 h after the resolution), or overdue
    at that deadline with none done (seeds 001, 002)."""
    iid = _slack_escape(incident["id"])
    head = (
        ":alarm_clock: *Post-mortem overdue*" if overdue else ":spiral_calendar_pad: *Post-mortem scheduled*"
    )
    lines = [
        f"{head} {iid} {_slack_escape(incident.get('service'))}: {_slack_escape(incident.get('title'))}",
        f"*{'Was due' if overdue else 'Due'} by:* {due:%Y-%m-%d %H:%M} UTC "
        f"({_slack_escape(incident.get('severity'))}: within 48 h of the resolution)",
        f"*Owner:* {_slack_escape(owner) if owner else 'nobody named: assign an incident commander'}",
        f"The draft is on the incident; closing it (`slo incidents close {iid}`) marks the post-mortem done.",
    ]
    return {"text": "\n".join(lines)}


def update_message(incident: dict[str, Any], body: str) -> dict[str, Any]:
    """A stakeholder update (its drafted body, seed 002's template) as a Slack message, escaped."""
    return {"text": f":memo: *Stakeholder update — {_slack_escape(incident['id'])}*\n{_slack_escape(body)}"}


def ic_request_message(incident: dict[str, Any]) -> dict[str, Any]:
    """A SEV1/SEV2 incident escalated with no incident commander (seeds 001, 002): ask for one."""
    iid = _slack_escape(incident["id"])
    lines = [
        f":warning: *{_slack_escape(incident.get('severity'))} {iid} has no incident commander* "
        f"{_slack_escape(incident.get('service'))}: {_slack_escape(incident.get('title'))}",
        f"Assign one before diving into troubleshooting: `slo incidents assign {iid} --role ic --person "
        "NAME` (or the incident page).",
        "Also wanted: a communications lead, a technical lead and a scribe.",
    ]
    return {"text": "\n".join(lines)}


def watch_notice(incident: dict[str, Any], what: str, escalated: bool) -> dict[str, Any]:
    """The recovery watch saw the recovery not hold after a person's mitigation (seeds 001, 002)."""
    lines = [
        f":rotating_light: *Recovery not held {_slack_escape(incident['id'])}* "
        f"{_slack_escape(incident.get('service'))}: {_slack_escape(incident.get('title'))}",
        f"*Evidence:* {_slack_escape(what)}",
        "The incident is escalated to the on-call responders."
        if escalated
        else "The incident is no longer open: nobody is paged.",
    ]
    return {"text": "\n".join(lines)}


def declaration_message(incident: dict[str, Any], commander: str) -> dict[str, Any]:
    """Seed 002's declaration: "INC-0007 declared SEV2: <title>; incident commander: <person>"."""
    return {"text": f":mega: {_slack_escape(declaration_text(incident, commander))}"}


def declaration_text(incident: dict[str, Any], commander: str) -> str:
    return (
        f"{incident['id']} declared {incident.get('severity')}: {incident.get('title')}; "
        f"incident commander: {commander}"
    )


def announce(incident_id: str, message: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Post `message` to Slack only (no page); one notification record, never raises."""
    return _send(
        incident_id, "slack", settings.slack_webhook_url, "SLACK_WEBHOOK_URL", lambda: message, settings
    )


def resolve_page(
    incident_id: str,
    settings: Settings,
    dedup_key: str | None = None,
    routing_key_env: str = "PAGERDUTY_ROUTING_KEY",
) -> dict[str, Any]:
    """Resolve the PagerDuty alert `escalate` triggered (same dedup_key: the incident id, or a tier's
    own), e.g. when the incident resolves. One notification record (channel pagerduty); skipped when
    the routing key is not set."""
    routing_key = settings.routing_key(routing_key_env)
    return _send(
        incident_id,
        "pagerduty",
        settings.pagerduty_events_url if routing_key else None,
        routing_key_env,
        lambda: {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key or incident_id,
        },
        settings,
    )


def pagerduty_resolution(note: str) -> dict[str, Any]:
    """The REST API body that resolves an incident (`PUT /incidents/{id}`)."""
    return {"incident": {"type": "incident_reference", "status": "resolved", "resolution": note[:1000]}}


def resolve_pagerduty_incident(
    incident_id: str, external_id: str, settings: Settings, note: str
) -> dict[str, Any]:
    """Resolve PagerDuty incident `external_id` (the one our incident was born from) through PagerDuty's
    REST API: `PUT {PAGERDUTY_API_URL}/incidents/{id}` with `Authorization: Token token=…` and the
    `From:` header PagerDuty requires (PAGERDUTY_FROM). One record (channel pagerduty), never raises;
    skipped when PAGERDUTY_API_TOKEN or PAGERDUTY_FROM is not set."""
    missing = [
        name
        for name, value in (
            ("PAGERDUTY_API_TOKEN", settings.pagerduty_api_token),
            ("PAGERDUTY_FROM", settings.pagerduty_from),
        )
        if not value
    ]
    if missing:
        return _record(incident_id, "pagerduty", Delivery("skipped", 0, f"{' and '.join(missing)} not set"))
    url = f"{settings.pagerduty_api_url}/incidents/{urllib.parse.quote(external_id, safe='')}"
    try:
        delivery = post_json(
            url,
            pagerduty_resolution(note),
            timeout_s=settings.notify_timeout_s,
            max_retries=settings.notify_max_retries,
            backoff_s=settings.notify_backoff_s,
            method="PUT",
            headers={
                "Authorization": f"Token token={settings.pagerduty_api_token}",
                "From": str(settings.pagerduty_from),
                "Accept": "application/vnd.pagerduty+json;version=2",
            },
        )
    except Exception as exc:
        delivery = Delivery("failed", 1, f"{exc.__class__.__name__}: {exc}")
    return _record(incident_id, "pagerduty", Delivery(delivery.status, delivery.attempts,
                   scrub(delivery.detail, settings)))  # fmt: skip


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
    return _record(
        incident_id, channel, Delivery(delivery.status, delivery.attempts, scrub(delivery.detail, settings))
    )


def _record(incident_id: str, channel: str, delivery: Delivery) -> dict[str, Any]:
    """A `notifications` record for one delivery (its detail already scrubbed of secrets)."""
    detail = delivery.detail[:1000]
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
