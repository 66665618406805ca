"""Alertmanager webhook (`webhook_config`, payload version 4) → one `Alert` per alert in the group.

Alertmanager re-sends a whole group on every change and on `repeat_interval`, so an alert arrives many
times. Its `dedup_key` hashes (source, fingerprint, status, startsAt, endsAt): a repeat of an unchanged
firing alert is recognised; the same alert resolving, or firing again later (new `startsAt`), is new.
Alertmanager hides the end of a still-firing alert (`endsAt` is Go's zero time `0001-01-01T00:00:00Z`),
so the key of a firing alert does not drift between repeats.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipelines.errors import MalformedInput
from pipelines.incidents.contract import Alert, map_severity
from pipelines.ingest.fields import count_alerts, digest, identifier, items, obj, str_map, text, timestamp

SOURCE = "alertmanager"
STATUSES = ("firing", "resolved")


def looks_like(body: Any) -> bool:
    return isinstance(body, dict) and "alerts" in body and ("groupKey" in body or "receiver" in body)


def parse(
    body: Any, severity_aliases: dict[str, str] | None = None, received_at: dt.datetime | None = None
) -> list[Alert]:
    root = obj(body, "body")
    version = root.get("version")
    if version != "4":
        raise MalformedInput(
            f'version: Alertmanager webhook version {version!r} is not supported; expected "4"'
        )
    _status(root, "")
    common_labels = str_map(root, "commonLabels", "")
    common_annotations = str_map(root, "commonAnnotations", "")
    raw_alerts = items(root, "alerts", "")
    count_alerts(raw_alerts)  # before reading any: a huge group costs nothing to refuse
    alerts = []
    for i, raw in enumerate(raw_alerts):
        path = f"alerts[{i}]"
        alerts.append(
            _alert(obj(raw, path), path, common_labels, common_annotations, severity_aliases, received_at)
        )
    if not alerts:
        raise MalformedInput("alerts: the group holds no alert; expected at least one")
    return alerts


def _alert(
    a: dict[str, Any],
    path: str,
    common_labels: dict[str, str],
    common_annotations: dict[str, str],
    severity_aliases: dict[str, str] | None,
    received_at: dt.datetime | None,
) -> Alert:
    status = _status(a, path)
    labels = {**common_labels, **str_map(a, "labels", path)}
    annotations = {**common_annotations, **str_map(a, "annotations", path)}
    starts_at = timestamp(a, "startsAt", path, now=received_at)
    if starts_at is None:
        raise MalformedInput(f"{path}.startsAt: an alert must have started; got Go's zero time")
    ends_at = timestamp(a, "endsAt", path, required=False, now=received_at)
    # Alertmanager ≥ 0.19 sends the fingerprint; older ones do not: derive it from the labels.
    fingerprint = identifier(a, "fingerprint", path, required=False) or digest(*sorted(labels.items()))[:16]
    service = labels.get("service") or labels.get("job") or "unknown"
    slo = labels.get("slo") or None
    if slo and "/" not in slo:
        slo = f"{service}/{slo}"
    title = annotations.get("summary") or labels.get("alertname") or f"alert {fingerprint}"
    return Alert(
        source=SOURCE,
        status=status,
        service=service,
        fingerprint=fingerprint,
        title=title,
        dedup_key=f"am:{digest(SOURCE, fingerprint, status, starts_at.isoformat(), ends_at)}",
        starts_at=starts_at,
        ends_at=ends_at,
        severity=map_severity(labels.get("severity"), severity_aliases),
        slo=slo,
        description=annotations.get("description", ""),
        labels=labels,
        annotations=annotations,
        url=text(a, "generatorURL", path, required=False) or None,
    )


def _status(parent: dict[str, Any], path: str) -> str:
    status = text(parent, "status", path)
    if status not in STATUSES:
        where = f"{path}.status" if path else "status"
        raise MalformedInput(f"{where}: {status[:40]!r} is not one of {', '.join(STATUSES)}")
    return status
