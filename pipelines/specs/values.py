"""Pure parsers of spec field values (durations, targets, windows, budgets, thresholds, burn rates):
text in, a value or a `ValueError` saying what is expected out. Every spec reader uses them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.model import CALENDAR_NOMINAL_MINUTES, MINUTES_PER_DAY, BurnRateAlert, SloWindow

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
NAME_EXPECTED = "expected lowercase letters, digits, '-' and '_', starting with a letter or digit"
DEFAULT_WINDOW = "30d"
MIN_WINDOW_MINUTES = 5

# DESIGN §2 defaults: (severity, long window, short window, share of the budget the long window may burn).
DEFAULT_ALERT_RULES: tuple[tuple[str, int, int, float], ...] = (
    ("page", 60, 5, 0.02),
    ("page", 360, 30, 0.05),
    ("ticket", 1440, 120, 0.10),
    ("ticket", 4320, 360, 0.10),
)
SLI_CATEGORIES = ("availability", "latency", "correctness", "freshness", "throughput", "durability")

_TARGET_EXPECTED = "expected a percentage below 100 like 99.9%, or a fraction like 0.999"
_DURATION_RE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNIT_SECONDS = (7 * 86400, 86400, 3600, 60, 1)
_DURATION_EXPECTED = "expected a whole number of minutes with units w, d, h, m, like 5m, 1h, 30d, 4w or 1h30m"

_THRESHOLD_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m)?(?:\s+at\s+p(\d+(?:\.\d+)?))?", re.IGNORECASE)
_THRESHOLD_UNIT_SECONDS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60)}

_BUDGET_RE = re.compile(
    r"(\d+(?:\.\d+)?)\s*([a-z]+)\s*(?:/|\s+per\s+)\s*(\S+)",
    re.IGNORECASE,
)
_BUDGET_AMOUNT_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1 / 60),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 1.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 60.0),
    **dict.fromkeys(("d", "day", "days"), float(MINUTES_PER_DAY)),
}
_BUDGET_PERIODS = {
    "month": CALENDAR_NOMINAL_MINUTES["month"],
    "quarter": CALENDAR_NOMINAL_MINUTES["quarter"],
    "week": 7 * MINUTES_PER_DAY,
    "day": MINUTES_PER_DAY,
}
_BUDGET_EXPECTED = (
    "expected an amount of time per period like '21.6 minutes/month', '7.2 hours/month' or '43m/30d' "
    "(periods: month = 30d, quarter = 90d, week, day, or a duration)"
)


def parse_duration(text: object) -> int:
    """Minutes in a duration like `5m`, `1h`, `30d`, `4w` or `1h30m` (units in that order, each once)."""
    if not isinstance(text, str):
        raise ValueError(f"{_show(text)} is not a duration; {_DURATION_EXPECTED}")
    match = _DURATION_RE.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{_show(text)} is not a duration; {_DURATION_EXPECTED}")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNIT_SECONDS, strict=True) if n)
    if seconds == 0:
        raise ValueError(f"{_show(text)} is zero; expected a positive duration like 5m or 1h")
    if seconds % 60:
        raise ValueError(
            f"{_show(text)} is not a whole number of minutes (minute granularity); {_DURATION_EXPECTED}"
        )
    return seconds // 60


def parse_target(value: object) -> float:
    """The target as a fraction: `99.95%`, `99.95` (a number above 1 is a percentage), `0.9995` → 0.9995."""
    invalid = ValueError(f"{_show(value)} is not a target; {_TARGET_EXPECTED}")
    number, percent = _decimal_with_percent(value)
    if number is None:
        raise invalid
    if number > 1:
        percent = True
    fraction = number / 100 if percent else number
    if fraction == 1:
        raise ValueError(
            f"{_show(value)} leaves no error budget (100% allows no failures); "
            "expected a target below 100% like 99.9%"
        )
    if not 0 < fraction < 1:
        raise invalid
    return float(fraction)


def parse_window(value: object) -> SloWindow:
    """A rolling window (`30d`, `28d`, `4w`, `7d`; at least 5m) or a calendar one: `month`, `quarter`,
    `day`, `week` or `year`, optionally `from <local start>` and `in <IANA time zone>`, like
    `month in Europe/Berlin` or `week from 2026-01-05T09:00 in America/Los_Angeles`."""
    text = value.strip() if isinstance(value, str) else value
    calendar = _CALENDAR_RE.fullmatch(text) if isinstance(text, str) else None
    if calendar is not None:
        return calendar_window(calendar.group(1), calendar.group(3), calendar.group(2))
    try:
        minutes = parse_duration(text)
    except ValueError:
        raise ValueError(
            f"{_show(value)} is not a window; expected a rolling duration like 30d, 28d, 4w or 7d, "
            "or a calendar window: month, quarter"  # (also week, day, year; slo_specs/README.md)
        ) from None
    if minutes < MIN_WINDOW_MINUTES:
        raise ValueError(f"{_show(value)} is shorter than 5m; expected a window of at least 5m, like 30d")
    assert isinstance(text, str)
    return SloWindow(kind="rolling", minutes=minutes, text=text)


_CALENDAR_RE = re.compile(rf"({'|'.join(CALENDAR_NOMINAL_MINUTES)})(?:\s+from\s+(\S+))?(?:\s+in\s+(\S+))?")
DEFAULT_PERIOD_STARTS = "days and months at 00:00, weeks on Monday 00:00, quarters in Jan/Apr/Jul/Oct"


def calendar_window(unit: str, time_zone: str | None = None, start: str | None = None) -> SloWindow:
    """A calendar window of `unit` (month, quarter, day, week, year), its periods cut in `time_zone`
    (an IANA name, default UTC) and anchored at the local `start` (default: DEFAULT_PERIOD_STARTS).

    Raises ValueError saying what is expected for an unknown zone or a start that is not a date."""
    if unit not in CALENDAR_NOMINAL_MINUTES:
        units = ", ".join(CALENDAR_NOMINAL_MINUTES)
        raise ValueError(f"'{unit}' is not a calendar window; expected one of {units}")
    zone = check_time_zone(time_zone) if time_zone is not None else None
    anchor = parse_local_start(start) if start is not None else None
    # One spelling per meaning: UTC is the default zone, and a start on the unit's own boundary
    # (2026-01-01 00:00 for a month) cuts the same periods as no start.
    zone = None if zone == "UTC" else zone
    anchor = None if anchor is not None and _natural_start(unit, anchor) else anchor
    text = unit + (f" from {anchor}" if anchor else "") + (f" in {zone}" if zone else "")
    return SloWindow(
        kind="calendar",
        minutes=CALENDAR_NOMINAL_MINUTES[unit],
        text=text,
        calendar=unit,
        time_zone=zone,
        start=anchor,
    )


def _natural_start(unit: str, anchor: str) -> bool:
    when = datetime.fromisoformat(anchor)
    if (when.hour, when.minute) != (0, 0):
        return False
    if unit == "day":
        return True
    if unit == "week":
        return when.weekday() == 0
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    return when.day == 1 and (when.month - 1) % months == 0


def check_time_zone(name: object) -> str:
    """An IANA time zone name as the zoneinfo database knows it (`Europe/Berlin`), else ValueError."""
    expected = "expected an IANA time zone name like UTC, Europe/Berlin or America/Los_Angeles"
    if not isinstance(name, str) or not name.strip() or " " in name.strip():
        raise ValueError(f"{_show(name)} is not a time zone; {expected}")
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{_show(name)} is not a time zone in the IANA database; {expected}") from None
    return name.strip()


def parse_local_start(text: object) -> str:
    """A calendar start time without a zone (`2026-01-15`, `2026-01-15 09:30:00`, `2026-01-15T09:30`)
    as `YYYY-MM-DDTHH:MM`, else ValueError. Whole minutes only; an offset is refused (the window's
    time zone says where the time is)."""
    expected = (
        "expected a local date and time without a zone, like 2026-01-15 or 2026-01-15 09:30:00, "
        "on a whole minute (the time zone goes in timeZone)"
    )
    try:
        when = datetime.fromisoformat(text.strip()) if isinstance(text, str) else None
    except ValueError:
        when = None
    if when is None:
        raise ValueError(f"{_show(text)} is not a date; {expected}")
    if when.tzinfo is not None or when.second or when.microsecond:
        raise ValueError(f"{_show(text)} has a zone offset or seconds; {expected}")
    return when.strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True)
class ErrorBudget:
    """A declared time-based error budget, e.g. '7.2 hours/month' → 432 minutes per 43200."""

    minutes: float  # the amount, in minutes
    period_minutes: int  # per this many minutes (month = 30 days, quarter = 90 days)
    unit: str  # the amount's unit as written, e.g. "hours"
    unit_minutes: float
    period: str  # the period as written, e.g. "month", "30d"


def parse_error_budget_parts(text: object) -> ErrorBudget:
    """The amount, unit and period of an error budget like '21.6 minutes/month' or '43m/30d'."""
    match = _BUDGET_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{_show(text)} is not an error budget; {_BUDGET_EXPECTED}")
    amount, unit, period = match.group(1), match.group(2), match.group(3)
    unit_minutes = _BUDGET_AMOUNT_UNITS.get(unit.lower())
    if unit_minutes is None:
        raise ValueError(f"{_show(text)} has an unknown unit '{unit}'; {_BUDGET_EXPECTED}")
    period_minutes = _BUDGET_PERIODS.get(period.lower())
    if period_minutes is None:
        try:
            period_minutes = parse_duration(period)
        except ValueError:
            raise ValueError(f"{_show(text)} has an unknown period '{period}'; {_BUDGET_EXPECTED}") from None
    return ErrorBudget(
        minutes=float(amount) * unit_minutes,
        period_minutes=period_minutes,
        unit=unit,
        unit_minutes=unit_minutes,
        period=period,
    )


def parse_error_budget(text: object) -> float:
    """Minutes of budget in '21.6 minutes/month' (21.6), '7.2 hours/month' (432), '43m/30d' (43)."""
    return parse_error_budget_parts(text).minutes


def parse_threshold(value: object) -> float:
    """A threshold in base units (seconds for durations): `"400ms at p99"` → 0.4, `"2s"` → 2.0."""
    return parse_threshold_percentile(value)[0]


def parse_threshold_percentile(value: object) -> tuple[float, float | None]:
    """(threshold in base units, percentile from "at p99" or None)."""
    expected = (
        "expected a duration with unit ms, s or m and an optional percentile, like '400ms at p99', "
        "'0.4s' or '2s at p95', or a number in the metric's base unit (seconds)"
    )
    if isinstance(value, bool):
        raise ValueError(f"{_show(value)} is not a threshold; {expected}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{_show(value)} is not a threshold; {expected}")
        return float(value), None
    match = _THRESHOLD_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{_show(value)} is not a threshold; {expected}")
    number, unit, percentile = match.groups()
    seconds = Decimal(number) * _THRESHOLD_UNIT_SECONDS[unit.lower()] if unit else Decimal(number)
    if percentile is not None and not 0 < float(percentile) < 100:
        raise ValueError(f"{_show(value)} has percentile p{percentile}; expected one below p100, like p99")
    return float(seconds), float(percentile) if percentile is not None else None


def parse_burn_rate(value: str) -> float:
    """A burn-rate factor as written: `14.4x`, `14.4`, `6x`."""
    text = value.strip()
    number = _decimal(text[:-1] if text[-1:] in ("x", "X") else text)
    if number is None or number <= 0:
        raise ValueError(f"{_show(value)} is not a burn rate; expected a positive factor like 14.4x or 6")
    return float(number)


def parse_budget_fraction(value: str) -> float:
    """A share of the error budget: `2%` or `0.02`."""
    number, percent = _decimal_with_percent(value)
    fraction = None if number is None else (number / 100 if percent else number)
    if fraction is None or not 0 < fraction <= 1:
        raise ValueError(
            f"{_show(value)} is not a share of the budget; "
            "expected a percentage like 2% or a fraction like 0.02"
        )
    return float(fraction)


def default_alerts(window_minutes: int, period_minutes: int | None = None) -> tuple[BurnRateAlert, ...]:
    """DESIGN §2 multiwindow alerts scaled to the period (the window's length unless given): 14.4, 6, 3, 1
    at 30d.

    No default alert fires at a burn rate below 1 (a pace that would not spend the budget within the
    period): a factor below 1 is raised to 1 — the slow tickets of periods under 30 days, e.g. the 3d
    ticket at 28d (0.933 → 1) or at 7d (0.233 → 1). Where the Workbook's numbers make no sense at all —
    a page factor would fall below 1 or a long window (lookback) exceed the window, i.e. periods under
    5 days (`workbook_fits`) — alerts whose long window exceeds the window are left out too, and the
    readers warn (`default_alert_adjustment`).
    """
    period = window_minutes if period_minutes is None else period_minutes
    alerts = tuple(
        BurnRateAlert(severity, long_minutes, short_minutes, max(fraction * period / long_minutes, 1.0))
        for severity, long_minutes, short_minutes, fraction in DEFAULT_ALERT_RULES
    )
    if workbook_fits(window_minutes, period):
        return alerts
    return tuple(a for a in alerts if a.long_window <= window_minutes)


def workbook_fits(window_minutes: int, period_minutes: int | None = None) -> bool:
    """Whether the Workbook's default alerts make sense as they are: every page factor at least 1
    and every long window within the SLO window (true from a 5-day period and window up)."""
    period = window_minutes if period_minutes is None else period_minutes
    return all(
        long_minutes <= window_minutes and (severity != "page" or fraction * period / long_minutes >= 1)
        for severity, long_minutes, _, fraction in DEFAULT_ALERT_RULES
    )


def default_alert_adjustment(window_minutes: int, period_minutes: int | None = None) -> str | None:
    """The warning for a window whose default alerts were adjusted (None when the Workbook fits)."""
    if workbook_fits(window_minutes, period_minutes):
        return None
    period = window_minutes if period_minutes is None else period_minutes
    kept = default_alerts(window_minutes, period_minutes)
    shown = ", ".join(
        f"{a.severity} {duration_text(a.long_window)}/{duration_text(a.short_window)} at {a.factor:.6g}x"
        for a in kept
    )
    return (
        f"the default burn-rate alerts are made for periods of 5 days and more; for {duration_text(period)} "
        f"a page factor would fall below 1 or a lookback exceed the {duration_text(window_minutes)} window, "
        "so lookbacks longer than the window are left out and factors below 1 raised to 1 "
        f"({shown or 'none left'}); "
        "expected burn_rate_alerts written for this window, or a window of 5d or more"
    )


def duration_text(minutes: int) -> str:
    """43200 → '30d', 90 → '1h30m'."""
    parts = []
    for unit, size in (("d", MINUTES_PER_DAY), ("h", 60), ("m", 1)):
        if minutes >= size:
            parts.append(f"{minutes // size}{unit}")
            minutes %= size
    return "".join(parts) or "0m"


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _decimal_with_percent(value: object) -> tuple[Decimal | None, bool]:
    """(number, written with %) for `99.95%`, `"0.9995"`, 99.95; (None, False) when not a number."""
    if isinstance(value, bool):
        return None, False
    if isinstance(value, (int, float)):
        return (Decimal(repr(value)) if math.isfinite(value) else None), False
    if not isinstance(value, str):
        return None, False
    text = value.strip()
    percent = text.endswith("%")
    return _decimal(text[:-1] if percent else text), percent


def _show(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)
