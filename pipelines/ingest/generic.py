"""The generic JSON alert: for anything that is neither Alertmanager nor PagerDuty (a cron job, a
synthetic check, `curl`). Documented in the OpenAPI schema (`GenericAlert`) and docs/ingest.md.

    {"alerts": [{"service": "checkout-api", "title": "Checkout errors above 2%",
                 "status": "firing", "severity": "SEV2", "fingerprint": "checkout-5xx",
                 "starts_at": "2026-11-23T12:00:00Z", "slo": "checkout-api/availability",
                 "description": "…", "labels": {}, "annotations": {}, "url": "…",
                 "dedup_key": "…"}]}

or one such alert object on its own. Only `service` and `title` are required. Re-sending the same
alert (same service, fingerprint, status, starts_at, ends_at, or the same `dedup_key`) is a duplicate;
without `starts_at` the time of receipt is used, so give `starts_at` or `dedup_key` for retries to be
recognised.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipelines.errors import MalformedInput
from pipelines.incidents.contract import SEVERITIES, Alert, map_severity
from pipelines.ingest.fields import count_alerts, digest, identifier, obj, str_map, text, timestamp

SOURCE = "generic"
STATUSES = ("firing", "resolved")


def looks_like(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    return isinstance(body.get("alerts"), list) or ("service" in body and "title" in body)


def parse(body: Any, received_at: dt.datetime, severity_aliases: dict[str, str] | None = None) -> list[Alert]:
    root = obj(body, "body")
    if "alerts" in root:
        raw = root["alerts"]
        if not isinstance(raw, list) or not raw:
            raise MalformedInput("alerts: expected a non-empty list of alert objects")
        count_alerts(raw)
        return [
            _alert(obj(a, f"alerts[{i}]"), f"alerts[{i}]", received_at, severity_aliases)
            for i, a in enumerate(raw)
        ]
    return [_alert(root, "", received_at, severity_aliases)]


def _alert(
    a: dict[str, Any], path: str, received_at: dt.datetime, severity_aliases: dict[str, str] | None
) -> Alert:
    where = (path + ".") if path else ""
    service = text(a, "service", path).strip()
    title = text(a, "title", path)
    status = text(a, "status", path, required=False) or "firing"
    if status not in STATUSES:
        raise MalformedInput(f"{where}status: {status[:40]!r} is not one of {', '.join(STATUSES)}")
    raw_severity = text(a, "severity", path, required=False)
    severity = map_severity(raw_severity, severity_aliases) if raw_severity else None
    if raw_severity and severity is None:
        raise MalformedInput(
            f"{where}severity: {raw_severity[:40]!r} is unknown; expected one of {', '.join(SEVERITIES)}, "
            "P0–P4, critical, page, warning, ticket or info"
        )
    starts_at = timestamp(a, "starts_at", path, required=False, now=received_at) or received_at
    ends_at = timestamp(a, "ends_at", path, required=False, now=received_at)
    fingerprint = identifier(a, "fingerprint", path, required=False) or digest(service, title)[:16]
    slo = text(a, "slo", path, required=False) or None
    if slo and "/" not in slo:
        slo = f"{service}/{slo}"
    own_key = identifier(a, "dedup_key", path, required=False)
    key = (
        digest(SOURCE, own_key)
        if own_key
        else digest(SOURCE, service, fingerprint, status, starts_at.isoformat(), ends_at)
    )
    return Alert(
        source=SOURCE,
        status=status,
        service=service,
        fingerprint=fingerprint,
        title=title,
        dedup_key=f"gen:{key}",
        starts_at=starts_at,
        ends_at=ends_at,
        severity=severity,
        slo=slo,
        description=text(a, "description", path, required=False),
        labels=str_map(a, "labels", path),
        annotations=str_map(a, "annotations", path),
        url=text(a, "url", path, required=False) or None,
    )
