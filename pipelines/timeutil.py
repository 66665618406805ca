"""Time, one copy: the store keeps naive UTC datetimes and epoch minutes; JSON answers say
`YYYY-MM-DDTHH:MM:SSZ`."""

from __future__ import annotations

import datetime as dt

# The earliest time accepted from outside (DESIGN §6): an alert's, a command's, a metrics file's
# bucket. A year-1 or year-9999 time would overflow date arithmetic downstream (the deploy look-back,
# escalation deadlines), poison a quarter's mean, or stretch every SLO's evaluation over millennia.
EARLIEST = dt.datetime(2000, 1, 1)


def minute_of(ts: dt.datetime) -> int:
    """Epoch minute of a UTC datetime (naive datetimes are taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return int(ts.timestamp() // 60)


def datetime_of(minute: int) -> dt.datetime:
    """The (aware, UTC) start of an epoch minute."""
    return dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC)


def utc_now() -> dt.datetime:
    """Now, as the store keeps times: naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def iso(t: dt.datetime | None) -> str | None:
    """`YYYY-MM-DDTHH:MM:SSZ` for a naive-UTC or aware datetime (None stays None)."""
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t.isoformat(timespec="seconds") + "Z"
