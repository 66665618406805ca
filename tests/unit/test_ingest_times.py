"""Times at the door (issue 11, deliverable 1): every time in every accepted format lies in
2000-01-01 … receipt + 1 day, or the delivery is refused naming the field and the range.

One known-answer table: each row is a format, the field set to a time, and the answer a person can
check by hand against the rule (receipt is fixed at 2026-12-06 12:00 UTC).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.errors import MalformedInput
from pipelines.ingest import parse_delivery
from pipelines.ingest.commands import parse_command

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
RECEIVED = dt.datetime(2026, 12, 6, 12, 0)


def _fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


def generic(field: str, value: str) -> dict[str, Any]:
    return {"service": "shop", "title": "Workers crash looping", field: value}


def alertmanager(field: str, value: str) -> dict[str, Any]:
    body = copy.deepcopy(_fixture("alertmanager_firing.json"))
    body["alerts"][0][field] = value
    return body


def pagerduty(field: str, value: str) -> dict[str, Any]:
    body = copy.deepcopy(_fixture("pagerduty_triggered.json"))
    if field == "occurred_at":
        body["event"]["occurred_at"] = value
    else:
        body["event"]["data"][field] = value
    return body


# (format, field, time sent, accepted?, the path named when refused)
CASES = [
    ("generic", "starts_at", "0001-01-01T00:00:01Z", False, "starts_at"),
    ("generic", "starts_at", "1999-12-31T23:59:59Z", False, "starts_at"),
    ("generic", "starts_at", "2000-01-01T00:00:00Z", True, None),
    ("generic", "starts_at", "2026-12-06T11:59:00Z", True, None),
    ("generic", "starts_at", "2026-12-07T11:59:59Z", True, None),  # receipt + 1 day − 1 s
    ("generic", "starts_at", "2026-12-07T12:00:01Z", False, "starts_at"),
    ("generic", "starts_at", "9999-12-31T23:59:59Z", False, "starts_at"),
    ("generic", "ends_at", "9999-12-31T23:59:59Z", False, "ends_at"),
    ("generic", "starts_at", "2026-12-07T14:00:00+02:00", True, None),  # 12:00 UTC: exactly + 1 day
    ("alertmanager", "startsAt", "0001-01-01T00:00:01Z", False, "alerts[0].startsAt"),
    ("alertmanager", "startsAt", "9999-12-31T23:59:59.999999999Z", False, "alerts[0].startsAt"),
    ("alertmanager", "startsAt", "2000-01-01T00:00:00Z", True, None),
    ("alertmanager", "endsAt", "0001-01-01T00:00:00Z", True, None),  # Go's zero time: not set
    ("alertmanager", "endsAt", "0001-01-01T00:00:01Z", False, "alerts[0].endsAt"),
    ("alertmanager", "endsAt", "3000-01-01T00:00:00Z", False, "alerts[0].endsAt"),
    ("pagerduty", "created_at", "0001-01-01T00:00:01Z", False, "event.data.created_at"),
    ("pagerduty", "created_at", "9999-12-31T23:59:59Z", False, "event.data.created_at"),
    ("pagerduty", "created_at", "2026-12-06T11:00:00Z", True, None),
    ("pagerduty", "occurred_at", "1970-01-01T00:00:00Z", False, "event.occurred_at"),
    ("pagerduty", "occurred_at", "2026-12-06T11:59:00Z", True, None),
]
BUILD = {"generic": generic, "alertmanager": alertmanager, "pagerduty": pagerduty}


@pytest.mark.parametrize(("fmt", "field", "value", "accepted", "path"), CASES)
def test_a_time_in_every_format_is_accepted_only_inside_the_range(
    fmt: str, field: str, value: str, accepted: bool, path: str | None
) -> None:
    raw = json.dumps(BUILD[fmt](field, value)).encode()
    if accepted:
        delivery = parse_delivery(raw, fmt, {}, received_at=RECEIVED)
        assert delivery.entries
        return
    with pytest.raises(MalformedInput) as refused:
        parse_delivery(raw, fmt, {}, received_at=RECEIVED)
    message = str(refused.value)
    assert message.startswith(f"{path}: ")
    assert "is outside the accepted range 2000-01-01T00:00:00Z … 2026-12-07T12:00:00Z" in message


@pytest.mark.parametrize(
    ("at", "accepted"),
    [
        ("0001-01-01T00:00:01Z", False),
        ("1999-12-31T23:59:59Z", False),
        ("2026-12-06T11:30:00Z", True),
        ("9999-12-31T00:00:00Z", False),
    ],
)
def test_a_commands_time_is_accepted_only_inside_the_range(at: str, accepted: bool) -> None:
    body = {"command": "acknowledge", "actor": "alice", "at": at}
    if accepted:
        assert parse_command("INC-0001", body, RECEIVED).at == dt.datetime.fromisoformat(at[:-1])
        return
    with pytest.raises(MalformedInput, match=r"^at: .* is outside the accepted range 2000-01-01"):
        parse_command("INC-0001", body, RECEIVED)
