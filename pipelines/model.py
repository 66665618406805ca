"""The validated SLO model: what a spec file means once it has been parsed and checked.

Every source format (native YAML, later OpenSLO and Sloth) is turned into these frozen records;
the engine, the rules exporter and the dashboard read only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MINUTES_PER_DAY = 1440

# Nominal lengths of calendar windows, used wherever a length is needed (time-based budget,
# default burn-rate factors). The seed's "21.6 minutes/month" for 99.95 % is 0.0005 × 30 days.
CALENDAR_NOMINAL_MINUTES = {
    "month": 30 * MINUTES_PER_DAY,
    "quarter": 90 * MINUTES_PER_DAY,
    "day": MINUTES_PER_DAY,
    "week": 7 * MINUTES_PER_DAY,
    "year": 365 * MINUTES_PER_DAY,
}

# The engine always computes burn rates over these windows (DESIGN §3, `burn_rates` keys).
STANDARD_BURN_WINDOWS: dict[str, int] = {
    "5m": 5,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "6h": 360,
    "1d": 1440,
    "3d": 4320,
}

POLICY_STATES = ("normal", "freeze_review", "reliability_focus", "exhausted")

# Labels the exported rules set themselves (DESIGN §3); a spec's label of one of these names is
# exported as `spec_<name>` (with a warning) so the product's own labels keep their meaning.
RESERVED_LABELS = ("service", "slo", "severity", "long_window", "short_window", "alertname")


@dataclass(frozen=True)
class SloWindow:
    """The SLO's compliance window: rolling (`30d`, `4w`) or calendar (`month`, `quarter`, `day`,
    `week`, `year`), a calendar one optionally in an IANA time zone and anchored at a start time
    (`month from 2026-01-15T09:00 in Europe/Berlin`: months run from the 15th, 09:00 Berlin time)."""

    kind: str  # "rolling" | "calendar"
    minutes: int  # the rolling length; for calendar windows the nominal length
    text: str  # as written in the spec, e.g. "30d", "month", "month in Europe/Berlin"
    calendar: str | None = None  # "month" | "quarter" | "day" | "week" | "year" for calendar windows
    time_zone: str | None = None  # IANA name the calendar periods are cut in; None is UTC
    start: str | None = None  # local start of one period, ISO `YYYY-MM-DDTHH:MM`; None is the unit's start

    @classmethod
    def stored(cls, kind: str, minutes: int, text: str, calendar: str | None) -> SloWindow:
        """The window as a store row keeps it (kind, minutes, text, calendar): the time zone and start
        of a calendar window are read back from its text (`month from 2026-01-15T09:00 in Europe/Berlin`),
        which the spec reader wrote from validated values."""
        words = text.split() if kind == "calendar" else []
        zone = words[words.index("in") + 1] if "in" in words[:-1] else None
        start = words[words.index("from") + 1] if "from" in words[:-1] else None
        return cls(kind, minutes, text, calendar, time_zone=zone, start=start)

    @property
    def period_key(self) -> str:
        """What `fold_kernels.period_start` needs to cut this calendar window's periods: the unit
        alone ("month") in UTC without a start, else `unit|zone|start`; "" for a rolling window."""
        if self.kind != "calendar":
            return ""
        unit = self.calendar or "month"
        if self.time_zone in (None, "UTC") and self.start is None:
            return unit
        return f"{unit}|{self.time_zone or 'UTC'}|{self.start or ''}"


@dataclass(frozen=True)
class BurnRateAlert:
    """One multiwindow condition: fires while burn(long) > factor and burn(short) > factor."""

    severity: str  # "page" | "ticket"
    long_window: int  # minutes
    short_window: int  # minutes
    factor: float


@dataclass(frozen=True)
class Sli:
    """How good and valid events are counted.

    kind "ratio": good/valid events (from `good`+`valid`, `bad`+`valid`, or a ratio `metric` whose
    `direction` says whether it measures good or bad events).
    kind "threshold": a time-slice SLI; each minute with data is valid, and good when the measured
    value meets `threshold` (in the metric's base unit, seconds for latency) by `comparison`.
    """

    name: str
    kind: str  # "ratio" | "threshold"
    category: str  # "availability" | "latency" | "correctness" | other free text
    description: str = ""
    good_query: str | None = None
    bad_query: str | None = None
    valid_query: str | None = None
    ratio_query: str | None = None
    ratio_direction: str | None = None  # "good" | "bad" for ratio_query
    threshold_query: str | None = None
    threshold: float | None = None  # base units (seconds for durations)
    comparison: str = "<="  # good when value <comparison> threshold
    threshold_text: str | None = None  # as written, e.g. "400ms at p99"
    good_event: str | None = None  # human descriptions from the spec
    valid_event: str | None = None


@dataclass(frozen=True)
class Slo:
    """One SLO: id `<service>/<name>`, its SLI, target, window, alerts and policy texts."""

    service: str
    name: str
    owner: str
    sli: Sli
    target: float  # a fraction, 0 < target < 1
    window: SloWindow
    alerts: tuple[BurnRateAlert, ...]
    alerts_custom: bool  # True when the spec's own burn_rate_alerts replaced the defaults
    policy: dict[str, str] = field(default_factory=dict)  # policy state -> text
    review_cadence: str | None = None
    error_budget_text: str | None = None
    source_file: str = ""
    source_line: int = 0
    # Labels put on every exported rule, recordings and alerts (Sloth's service- and SLO-level labels;
    # native `labels`). Never one of RESERVED_LABELS: readers rename those to `spec_<name>`.
    labels: dict[str, str] = field(default_factory=dict)
    # The burn-rate alerts' name instead of SLOBurnRateHigh (Sloth's `alerting.name`; native `alerting.name`).
    alert_name: str | None = None
    # Per severity ("page", "ticket"): extra labels and annotations of the alerts of that kind.
    alert_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    alert_annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    # Severities with no alert at all: no burn-rate alert, and for "ticket" no SLOErrorBudgetExhausted.
    disabled_alerts: tuple[str, ...] = ()
    # The SLO period the default burn-rate factors (and `budget_consumed` shares) are computed for,
    # in minutes; None: the window's length (calendar windows: their nominal length).
    period_minutes: int | None = None

    @property
    def factor_period_minutes(self) -> int:
        """The period the alert factors are scaled to: `period_minutes`, else the window's length."""
        return self.period_minutes if self.period_minutes is not None else self.window.minutes

    @property
    def id(self) -> str:
        return f"{self.service}/{self.name}"

    @property
    def budget_minutes(self) -> float:
        """Time-based budget: (1 − target) × window, in minutes."""
        return (1.0 - self.target) * self.window.minutes


@dataclass(frozen=True)
class SpecWarning:
    """A non-fatal remark about a spec, printed as `file:line: field.path: message`."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"
