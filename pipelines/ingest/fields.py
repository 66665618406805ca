"""Reading untrusted JSON with errors that say where: `alerts[2].startsAt: expected an RFC 3339 time`.

Pure functions shared by the format parsers; each raises `MalformedInput` naming the JSON path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pipelines.errors import MalformedInput
from pipelines.timeutil import EARLIEST

# Alertmanager's "not set" time (Go's zero time.Time).
ZERO_TIME = dt.datetime(1, 1, 1)
# The plausible range of any time accepted from outside (DESIGN §6): from EARLIEST (timeutil) to one
# day past the time of receipt; anything else is refused at the door.
LATEST_AHEAD = dt.timedelta(days=1)
MAX_TEXT = 10_000  # characters kept of any one text field (titles, descriptions, label values)
MAX_ALERTS = 1000  # alerts in one delivery, in every format (a bigger Alertmanager group is a 400)


def obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedInput(f"{path}: expected a JSON object, got {_kind(value)}")
    return value


def field(parent: dict[str, Any], key: str, path: str) -> Any:
    if key not in parent:
        raise MalformedInput(f"{_join(path, key)}: required field is missing")
    return parent[key]


def text(parent: dict[str, Any], key: str, path: str, *, required: bool = True, default: str = "") -> str:
    if key not in parent or parent[key] is None:
        if required:
            raise MalformedInput(f"{_join(path, key)}: required field is missing")
        return default
    value = parent[key]
    if not isinstance(value, str):
        raise MalformedInput(f"{_join(path, key)}: expected a string, got {_kind(value)}")
    if required and not value.strip():
        raise MalformedInput(f"{_join(path, key)}: must not be empty")
    return unicode(value[:MAX_TEXT], _join(path, key))


def identifier(parent: dict[str, Any], key: str, path: str, *, required: bool = True) -> str:
    """An id (fingerprint, de-duplication key, incident id): text without control characters, which
    would otherwise split log lines, terminal output and CSV exports wherever the id is shown."""
    value = text(parent, key, path, required=required)
    return no_control(value, _join(path, key))


def no_control(value: str, where: str) -> str:
    """`value` if it holds no control character (U+0000–U+001F, U+007F–U+009F), else MalformedInput."""
    bad = next((i for i, c in enumerate(value) if c < " " or "\x7f" <= c <= "\x9f"), None)
    if bad is not None:
        raise MalformedInput(
            f"{where}: control character U+{ord(value[bad]):04X} at position {bad}; an id must be "
            "printable text"
        )
    return value


def count_alerts(alerts: list[Any], path: str = "alerts") -> None:
    """At most MAX_ALERTS alerts in one delivery."""
    if len(alerts) > MAX_ALERTS:
        raise MalformedInput(f"{path}: {len(alerts)} alerts in one delivery; at most {MAX_ALERTS}")


def str_map(parent: dict[str, Any], key: str, path: str) -> dict[str, str]:
    """A labels/annotations object: string keys and string values (absent or null → {})."""
    value = parent.get(key)
    if value is None:
        return {}
    where = _join(path, key)
    if not isinstance(value, dict):
        raise MalformedInput(f"{where}: expected an object of strings, got {_kind(value)}")
    out: dict[str, str] = {}
    for k, v in value.items():
        name = unicode(str(k)[:MAX_TEXT], f"{where} key")
        if not isinstance(v, str):
            raise MalformedInput(f"{where}.{name}: expected a string, got {_kind(v)}")
        out[name] = unicode(v[:MAX_TEXT], f"{where}.{name}")
    return out


def unicode(value: str, where: str) -> str:
    """`value` if it is valid Unicode; JSON's \\ud800 escapes can smuggle lone surrogates, which no
    UTF-8 file, database or answer can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedInput(
            f"{where.encode('utf-8', 'backslashreplace').decode()}: not valid Unicode "
            f"(a lone surrogate at character {exc.start})"
        ) from None
    return value


def items(parent: dict[str, Any], key: str, path: str) -> list[Any]:
    value = field(parent, key, path)
    if not isinstance(value, list):
        raise MalformedInput(f"{_join(path, key)}: expected a list, got {_kind(value)}")
    return value


def timestamp(
    parent: dict[str, Any], key: str, path: str, *, required: bool = True, now: dt.datetime | None = None
) -> dt.datetime | None:
    """An RFC 3339 / ISO 8601 time → naive UTC; Go's zero time and absent (when allowed) → None.

    Nanosecond fractions (Go's format) are cut to microseconds; a time without offset is UTC. A time
    outside `plausible_range(now)` (now: the time of receipt, default the clock) is refused.
    """
    where = _join(path, key)
    value = parent.get(key)
    if value is None or value == "":
        if required:
            raise MalformedInput(f"{where}: required time is missing")
        return None
    if not isinstance(value, str):
        raise MalformedInput(f"{where}: expected an RFC 3339 time string, got {_kind(value)}")
    parsed = parse_time(value)
    if parsed is None:
        raise MalformedInput(f"{where}: {value[:60]!r} is not an RFC 3339 time (e.g. 2026-11-23T12:00:00Z)")
    if parsed == ZERO_TIME:
        return None
    return plausible(parsed, where, now)


def plausible_range(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[EARLIEST, now + LATEST_AHEAD], naive UTC."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return EARLIEST, now + LATEST_AHEAD


def plausible(t: dt.datetime, where: str, now: dt.datetime | None = None) -> dt.datetime:
    """`t` (naive UTC) if it lies in `plausible_range(now)`, else MalformedInput naming `where`."""
    lo, hi = plausible_range(now)
    if not lo <= t <= hi:
        raise MalformedInput(
            f"{where}: {t.isoformat()}Z is outside the accepted range "
            f"{lo.isoformat()}Z … {hi.isoformat(timespec='seconds')}Z (2000-01-01 to one day after receipt)"
        )
    return t


def parse_time(value: str) -> dt.datetime | None:
    text = value.strip()
    if len(text) > 40 or len(text) < 10:
        return None
    text = text.replace("z", "Z").replace("Z", "+00:00")
    # Go writes up to 9 fractional digits; Python reads up to 6.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[: min(digits, 6)] + rest[digits:] if digits else head + rest
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01 with a positive offset
            return None
    return parsed


def digest(*parts: object) -> str:
    """A stable 32-hex-digit key of the parts (sha256, unambiguous separator)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(str(part if part is not None else "").encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:32]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )
