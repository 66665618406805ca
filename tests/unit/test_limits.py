"""The pure parts of `pipelines/limits.py` and the door's new checks, as known-answer tables: Host
names, the settings, the log rate limit on a fake clock, ids with control characters, strict UTF-8."""

from __future__ import annotations

import logging
import re

import pytest

from pipelines import launch
from pipelines.errors import MalformedInput, SloError
from pipelines.inbox import is_disk_full
from pipelines.ingest import decode_json
from pipelines.ingest.fields import MAX_ALERTS, no_control
from pipelines.limits import Limits, RateLimitedLog, host_name


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("LocalHost:80", "localhost"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("example.com.", "example.com"),
        ("example.com:http", None),  # a port that is not a number
        ("[::1", None),
        ("[::1]x", None),
        ("", None),
        (None, None),
    ],
)
def test_host_name(header: str | None, name: str | None) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("bind", "host", "allowed"),
    [
        ("127.0.0.1", "localhost:8080", True),
        ("127.0.0.1", "[::1]:8080", True),
        ("127.0.0.1", "attacker.example", False),
        ("127.0.0.1", "127.0.0.1.nip.io", False),
        ("10.1.2.3", "10.1.2.3:8080", True),  # the bound address
        ("0.0.0.0", "0.0.0.0", False),  # a wildcard bind names no host
        ("127.0.0.1", None, True),  # HTTP/1.0 without Host: nothing foreign to refuse
    ],
)
def test_host_allowed(bind: str, host: str | None, allowed: bool) -> None:
    assert Limits().bound_to(bind).host_allowed(host) is allowed


def test_limits_from_the_environment() -> None:
    limits = Limits.load(
        {
            "SLO_HEADER_TIMEOUT": "2.5",
            "SLO_BODY_TIMEOUT": "7",
            "SLO_MAX_CONNECTIONS": "300",
            "SLO_ALLOWED_HOSTS": " slo.internal , Alerts.Example ,",
        }
    )
    assert limits == Limits(
        2.5, 7.0, 300, ("127.0.0.1", "localhost", "::1", "slo.internal", "alerts.example")
    )
    assert Limits.load({}) == Limits(10.0, 30.0, 1000, ("127.0.0.1", "localhost", "::1"))
    assert Limits.load({"SLO_ALLOWED_HOSTS": "*"}).host_allowed("anything.example")
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SloError, match="SLO_BODY_TIMEOUT"):
            Limits.load({"SLO_BODY_TIMEOUT": bad})


def test_the_dashboard_is_given_the_same_host_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLO_ALLOWED_HOSTS", "dash.internal")
    cmd = launch.dashboard_command(8501, "10.0.0.5")
    hosts = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--server.allowedHosts"]
    assert hosts == ["127.0.0.1", "localhost", "::1", "dash.internal", "10.0.0.5"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, name: str = "uvicorn.error") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_rate_limited_log_lets_n_lines_per_kind_through_then_counts() -> None:
    clock = Clock()
    limit = RateLimitedLog(per_interval=3, interval=60, clock=clock)
    shown = [r.getMessage() for r in (_record("client %s gone", i) for i in range(10)) if limit.filter(r)]
    assert shown == [
        "client 0 gone",
        "client 1 gone",
        "client 2 gone [more like this in the next 60s are counted, not logged]",
    ]
    other = _record("Invalid HTTP request received.")
    assert limit.filter(other) and other.getMessage() == "Invalid HTTP request received."  # another kind
    clock.now = 59.9
    assert not limit.filter(_record("client %s gone", 10))
    clock.now = 60.0
    first = _record("client %s gone", 11)
    assert limit.filter(first)
    assert first.getMessage() == "client 11 gone [suppressed 8 similar lines in the previous 60s]"


def test_a_note_with_a_percent_sign_does_not_break_formatting() -> None:
    limit = RateLimitedLog(per_interval=1, interval=1.5, clock=Clock())
    record = _record("disk %s full", "100%")
    assert limit.filter(record)
    assert record.getMessage() == "disk 100% full [more like this in the next 1.5s are counted, not logged]"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("checkout-5xx", None),
        ("ünïcödé ok", None),
        ("a\nb", "U+000A at position 1"),
        ("\x00", "U+0000 at position 0"),
        ("esc\x1b[2J", "U+001B at position 3"),
        ("del\x7f", "U+007F at position 3"),
        ("c1\x85", "U+0085 at position 2"),
        ("tab\t", "U+0009 at position 3"),
    ],
)
def test_ids_refuse_control_characters(value: str, problem: str | None) -> None:
    if problem is None:
        assert no_control(value, "fingerprint") == value
        return
    with pytest.raises(MalformedInput, match="^" + re.escape(f"fingerprint: control character {problem}; ")):
        no_control(value, "fingerprint")


@pytest.mark.parametrize(
    ("raw", "answer"),
    [
        (b'{"a": "\xc3\xbc"}', {"a": "ü"}),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # a UTF-8 byte-order mark is ignored
        ('{"a": 1}'.encode("utf-16"), "body: not UTF-8 at byte 0: invalid start byte"),
        ('{"a": "\u00fc"}'.encode("latin-1"), "body: not UTF-8 at byte 7: invalid start byte"),
        (b'{"a": "\xed\xa0\x80"}', "body: not UTF-8 at byte 7: invalid continuation byte"),  # a surrogate
    ],
)
def test_bodies_must_be_strict_utf8(raw: bytes, answer: object) -> None:
    if isinstance(answer, str):
        with pytest.raises(MalformedInput) as refused:
            decode_json(raw)
        assert str(refused.value) == f"{answer}; JSON must be sent as UTF-8"
    else:
        assert decode_json(raw) == answer


def test_disk_full_is_recognised() -> None:
    import errno
    import sqlite3

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert not is_disk_full(sqlite3.OperationalError("cannot rollback - no transaction is active"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert MAX_ALERTS == 1000
