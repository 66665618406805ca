"""Parsing deliveries to the ingest API (pure: bytes and headers in, inbox entries out).

    parse_delivery(raw body, format or None, headers) → Delivery(format, entries, ignored)

Formats: `alertmanager` (webhook version 4), `pagerduty` (V3 webhooks), `generic` (documented in
generic.py). The format is taken from `?format=`, else detected: an `X-PagerDuty-Signature` header or an
`event.event_type` field is PagerDuty, `alerts` with `groupKey`/`receiver` is Alertmanager, `alerts` or
`service`+`title` is generic. Every problem is a `MalformedInput` saying where (a JSON path or a
line:column), and nothing is stored for a delivery with any problem.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import MalformedInput
from pipelines.inbox import Entry
from pipelines.ingest import alertmanager, generic, pagerduty

FORMATS = ("alertmanager", "pagerduty", "generic")


@dataclass
class Delivery:
    format: str
    entries: list[Entry]
    ignored: list[dict[str, str]] = field(default_factory=list)


def decode_json(raw: bytes) -> Any:
    """Bytes → JSON value, or MalformedInput with the line and column of the first problem.

    The bytes must be strict UTF-8 (RFC 8259 §8.1; docs/ingest.md): `json.loads` on bytes would also
    take UTF-16 and UTF-32, and UTF-8-encoded surrogates. A leading UTF-8 byte-order mark is ignored,
    as the RFC allows.
    """
    try:
        text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(
            f"body: not UTF-8 at byte {exc.start}: {exc.reason}; JSON must be sent as UTF-8"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedInput(
            f"body: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise MalformedInput("body: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise MalformedInput(f"body: {exc}") from None


def detect_format(body: Any, headers: Mapping[str, str]) -> str:
    if pagerduty.SIGNATURE_HEADER in headers or pagerduty.looks_like(body):
        return "pagerduty"
    if alertmanager.looks_like(body):
        return "alertmanager"
    if generic.looks_like(body):
        return "generic"
    raise MalformedInput(
        "body: unknown format; expected an Alertmanager webhook (version 4), a PagerDuty V3 webhook or "
        'a generic alert ({"alerts": [{"service": …, "title": …}]}), or name it with ?format='
    )


def parse_delivery(
    raw: bytes,
    fmt: str | None,
    headers: Mapping[str, str],
    *,
    received_at: dt.datetime | None = None,
    severity_aliases: dict[str, str] | None = None,
) -> Delivery:
    """Raw body → inbox entries. `headers` keys are lower-case."""
    if fmt is not None and fmt not in FORMATS:
        raise MalformedInput(f"format: {fmt[:40]!r} is unknown; expected one of {', '.join(FORMATS)}")
    received_at = received_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    body = decode_json(raw)
    fmt = fmt or detect_format(body, headers)
    try:
        if fmt == "alertmanager":
            alerts = alertmanager.parse(body, severity_aliases, received_at)
            return Delivery(fmt, [Entry(a.dedup_key, "alert", a.source, a.to_json()) for a in alerts])
        if fmt == "pagerduty":
            pd = pagerduty.parse(body, severity_aliases, received_at)
            entries = [Entry(a.dedup_key, "alert", a.source, a.to_json()) for a in pd.alerts]
            entries += [Entry(c.dedup_key, "command", c.source, c.to_json()) for c in pd.commands]
            return Delivery(fmt, entries, pd.ignored)
        alerts = generic.parse(body, received_at, severity_aliases)
        return Delivery(fmt, [Entry(a.dedup_key, "alert", a.source, a.to_json()) for a in alerts])
    except RecursionError:
        raise MalformedInput("body: JSON nested too deeply") from None
