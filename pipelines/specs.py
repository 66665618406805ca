"""Load native SLO spec files (YAML) into the frozen model records, checking every field.

`load_specs` is pure: it reads the given files and either returns every `Slo` with the warnings, or
raises `SpecError` listing every problem found as `file:line: field.path: what is wrong and expected`.
The format is described in `slo_specs/README.md`; `slo_specs/checkout-api.yaml` is the reference example.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from pipelines.errors import SpecError, SpecProblem
from pipelines.model import (
    CALENDAR_NOMINAL_MINUTES,
    MINUTES_PER_DAY,
    BurnRateAlert,
    Sli,
    Slo,
    SloWindow,
    SpecWarning,
)
from pipelines.promql import QueryShapeError, per_minute_increase, ratio_parts, split_ratio, top_level_slashes

if TYPE_CHECKING:
    from pipelines.spec_import import OpenSloDocuments

SPEC_SUFFIXES = (".yaml", ".yml")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
DEFAULT_WINDOW = "30d"
MIN_WINDOW_MINUTES = 5
# A declared error_budget may differ from (1 − target) × period by this much (relative), for rounding.
ERROR_BUDGET_TOLERANCE = 0.005

# DESIGN §2 defaults: (severity, long window, short window, share of the budget the long window may burn).
DEFAULT_ALERT_RULES: tuple[tuple[str, int, int, float], ...] = (
    ("page", 60, 5, 0.02),
    ("page", 360, 30, 0.05),
    ("ticket", 1440, 120, 0.10),
    ("ticket", 4320, 360, 0.10),
)
SEVERITIES = ("page", "ticket")
SLI_CATEGORIES = ("availability", "latency", "correctness", "freshness", "throughput", "durability")
DIRECTIONS = ("good", "bad")
COMPARISONS = ("<=", "<", ">=", ">")
# Numerator words that make an undeclared ratio direction "bad" (the ratio counts failures).
BAD_NUMERATOR_WORDS = ("error", "fail")

# error_budget_policy keys as the seed writes them, mapped to model.POLICY_STATES.
POLICY_KEYS = {
    "budget_remaining_above_50pct": "normal",
    "budget_remaining_25_to_50pct": "freeze_review",
    "budget_remaining_below_25pct": "reliability_focus",
    "budget_exhausted": "exhausted",
}

TOP_FIELDS = ("service", "owner", "review_cadence", "slis", "slos", "error_budget_policy")
SLI_FIELDS = (
    "description",
    "good_event",
    "valid_event",
    "category",
    "good",
    "bad",
    "valid",
    "metric",
    "direction",
    "threshold",
    "comparison",
)
SLO_FIELDS = ("sli", "name", "target", "window", "error_budget", "burn_rate_alerts")
ALERT_FIELDS = ("severity", "long_window", "short_window", "burn_rate", "budget_consumed")
POLICY_FIELDS = (*POLICY_KEYS, *POLICY_KEYS.values())

SLI_FORMS = (
    "an SLI is one of: good + valid, bad + valid, metric (a ratio) with optional direction, "
    "or metric + threshold with optional comparison"
)

_TARGET_EXPECTED = "expected a percentage below 100 like 99.9%, or a fraction like 0.999"
_NAME_EXPECTED = "expected lowercase letters, digits, '-' and '_', starting with a letter or digit"
_DURATION_RE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNIT_SECONDS = (7 * 86400, 86400, 3600, 60, 1)
_DURATION_EXPECTED = "expected a whole number of minutes with units w, d, h, m, like 5m, 1h, 30d, 4w or 1h30m"

_THRESHOLD_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m)?(?:\s+at\s+p(\d+(?:\.\d+)?))?", re.IGNORECASE)
_THRESHOLD_UNIT_SECONDS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60)}
_QUANTILE_RE = re.compile(r"histogram_quantile\(\s*([0-9.]+)")

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


# ---------------------------------------------------------------------------------------------------
# Field parsers: pure, raise ValueError with a message saying what is expected.


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
    """A rolling window (`30d`, `28d`, `4w`, `7d`; at least 5m) or a calendar `month` / `quarter`."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text in CALENDAR_NOMINAL_MINUTES:
        return SloWindow(kind="calendar", minutes=CALENDAR_NOMINAL_MINUTES[text], text=text, calendar=text)
    try:
        minutes = parse_duration(text)
    except ValueError:
        raise ValueError(
            f"{_show(value)} is not a window; expected a rolling duration like 30d, 28d, 4w or 7d, "
            "or a calendar window: month, quarter"
        ) from None
    if minutes < MIN_WINDOW_MINUTES:
        raise ValueError(f"{_show(value)} is shorter than 5m; expected a window of at least 5m, like 30d")
    assert isinstance(text, str)
    return SloWindow(kind="rolling", minutes=minutes, text=text)


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
    return _parse_threshold(value)[0]


def default_alerts(window_minutes: int) -> tuple[BurnRateAlert, ...]:
    """DESIGN §2 multiwindow alerts scaled to the window: 14.4, 6, 3, 1 at 30d."""
    return tuple(
        BurnRateAlert(severity, long_minutes, short_minutes, fraction * window_minutes / long_minutes)
        for severity, long_minutes, short_minutes, fraction in DEFAULT_ALERT_RULES
    )


# ---------------------------------------------------------------------------------------------------
# Loading


def load_specs(paths: Sequence[str | Path]) -> tuple[list[Slo], list[SpecWarning]]:
    """Every SLO (sorted by id) and warning in the given files and directories, or `SpecError`.

    A directory contributes its `*.yaml` and `*.yml` files (sorted, not recursive). Every problem in
    every file is collected before raising; nothing is returned when there is any problem.
    """
    if isinstance(paths, (str, Path)):  # one path given bare: not a sequence of one-letter paths
        paths = [paths]
    from pipelines.spec_import import OpenSloDocuments

    problems: list[SpecProblem] = []
    warnings: list[SpecWarning] = []
    slos: list[Slo] = []
    first_seen: dict[str, tuple[str, int]] = {}
    # OpenSLO objects refer to each other across files: collect them all, then resolve.
    openslo = OpenSloDocuments()
    files = [(_FileCheck(display), path) for display, path in _spec_files(paths, problems)]
    entries = {id(check): _check_file(check, path, openslo) for check, path in files}
    for check, entry in openslo.resolve():
        entries[id(check)].append(entry)
    for check, _ in files:
        for entry in entries[id(check)]:
            if entry.id in first_seen:
                first_file, first_line = first_seen[entry.id]
                check.problem(
                    entry.line,
                    entry.path,
                    f"duplicate SLO id '{entry.id}' (first defined at {first_file}:{first_line}); "
                    "expected each <service>/<name> once: give one of them a different 'name'",
                )
            else:
                first_seen[entry.id] = (check.file, entry.line)
                if entry.slo is not None:
                    slos.append(entry.slo)
        problems.extend(sorted(check.problems, key=lambda p: p.line))
        warnings.extend(sorted(check.warnings, key=lambda w: w.line))
    if problems:
        raise SpecError(problems)
    return sorted(slos, key=lambda slo: slo.id), warnings


def _spec_files(paths: Sequence[str | Path], problems: list[SpecProblem]) -> list[tuple[str, Path]]:
    """(path as given, path) of every spec file named, directories expanded, each file once."""
    files: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())
            if not found:
                message = "directory has no spec files; expected *.yaml or *.yml files in it"
                problems.append(SpecProblem(str(given), 1, "(file)", message))
            members = [(str(p), p) for p in found]
        elif path.is_file():
            members = [(str(given), path)]
        else:
            problems.append(
                SpecProblem(
                    str(given),
                    1,
                    "(file)",
                    "no such file or directory; expected a spec file (.yaml) or a directory of them",
                )
            )
            members = []
        for display, member in members:
            if member.resolve() not in seen:
                seen.add(member.resolve())
                files.append((display, member))
    return files


@dataclass
class _FileCheck:
    """Problems and warnings found in one file so far."""

    file: str
    problems: list[SpecProblem] = field(default_factory=list)
    warnings: list[SpecWarning] = field(default_factory=list)

    def problem(self, where: yaml.Node | int, path: str, message: str) -> None:
        self.problems.append(SpecProblem(self.file, _line_of(where), path, message))

    def warn(self, where: yaml.Node | int, path: str, message: str) -> None:
        self.warnings.append(SpecWarning(self.file, _line_of(where), path, message))


@dataclass(frozen=True)
class _Entry:
    """One SLO list item whose id is known; `slo` is None when the item has problems."""

    id: str
    line: int
    path: str
    slo: Slo | None


def _check_file(check: _FileCheck, path: Path, openslo: OpenSloDocuments) -> list[_Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        check.problem(1, "(file)", f"cannot read the file ({exc}); expected a readable UTF-8 YAML file")
        return []
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        line, message = _yaml_error(exc, text)
        check.problem(line, "(yaml)", message)
        return []
    documents = [doc for doc in documents if not _is_null(doc)]
    if not documents:
        check.problem(1, "(document)", "the file is empty; expected a spec with service, owner, slis, slos")
        return []
    from pipelines.spec_import import check_sloth, spec_format

    entries: list[_Entry] = []
    for document in documents:
        form = spec_format(document)
        if form == "native":
            entries.extend(_check_document(check, document))
        elif form == "openslo":
            openslo.add(check, document)
        elif form.startswith("sloth"):
            entries.extend(check_sloth(check, document, form))
        else:
            check.problem(
                document,
                "apiVersion",
                f"'{form.removeprefix('unknown:')}' is not a spec format read here; expected openslo/v1, "
                "sloth.slok.dev/v1 (kind PrometheusServiceLevel), version: prometheus/v1 (Sloth), "
                "or a native spec (no apiVersion)",
            )
    return entries


def _yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """The line and message for a YAML syntax error, as PyYAML reports it."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = f"invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    else:
        position = getattr(exc, "position", 0) or 0
        line = text.count("\n", 0, position) + 1
        message = f"invalid YAML: {exc}"
    return line, f"{message}; expected well-formed YAML (check indentation, colons and quotes)"


def _check_document(check: _FileCheck, root: yaml.Node) -> list[_Entry]:
    """Check one YAML document (one service); return its SLO entries."""
    fields = _fields(check, root, "", TOP_FIELDS, "a spec with service, owner, slis, slos")
    if fields is None:
        return []
    root_line = _line_of(root)
    service = _required_text(check, fields, "service", "", root_line, "the service name, like checkout-api")
    if service is not None and not NAME_PATTERN.fullmatch(service):
        check.problem(
            fields["service"][1],
            "service",
            f"'{service}' is not a service name; expected lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit, like checkout-api",
        )
        service = None
    owner = _required_text(check, fields, "owner", "", root_line, "the owning team, like payments-team")
    review_cadence = _optional_text(check, fields, "review_cadence", "")
    policy = _check_policy(check, fields.get("error_budget_policy"))

    slis: dict[str, Sli | None] | None = None
    sli_keys: dict[str, yaml.Node] = {}
    if "slis" not in fields:
        check.problem(root_line, "slis", "required field is missing; expected a mapping of SLI name to SLI")
    else:
        slis, sli_keys = _check_slis(check, fields["slis"][1])

    if "slos" not in fields:
        check.problem(root_line, "slos", "required field is missing; expected a list of SLOs")
        return []
    slos_node = fields["slos"][1]
    if not isinstance(slos_node, yaml.SequenceNode) or not slos_node.value:
        got = "an empty list" if isinstance(slos_node, yaml.SequenceNode) else _kind(slos_node)
        check.problem(
            slos_node, "slos", f"expected a non-empty list of SLOs (with sli and target), got {got}"
        )
        return []

    entries: list[_Entry] = []
    used: set[str] = set()
    for index, item in enumerate(slos_node.value):
        entry = _check_slo(check, item, f"slos[{index}]", service, owner, review_cadence, slis, policy, used)
        if entry is not None:
            entries.append(entry)
    for sli_name, key_node in sli_keys.items():
        if sli_name not in used:
            message = f"no SLO uses this SLI; add an SLO with 'sli: {sli_name}' or remove it"
            check.warn(key_node, f"slis.{sli_name}", message)
    return entries


def _check_policy(check: _FileCheck, item: tuple[yaml.Node, yaml.Node] | None) -> dict[str, str]:
    """error_budget_policy: policy state → text, accepting the seed's keys or the state names."""
    if item is None:
        return {}
    fields = _fields(check, item[1], "error_budget_policy", POLICY_FIELDS, "policy texts per budget state")
    if fields is None:
        return {}
    policy: dict[str, str] = {}
    first_key: dict[str, str] = {}
    for key, (key_node, _) in fields.items():
        state = POLICY_KEYS.get(key, key)
        path = f"error_budget_policy.{key}"
        text = _optional_text(check, fields, key, "error_budget_policy")
        if state in first_key:
            check.problem(
                key_node,
                path,
                f"'{key}' sets the same state ({state}) as '{first_key[state]}'; expected one text per state",
            )
            continue
        first_key[state] = key
        if text is not None:
            policy[state] = text
    return policy


def _check_slis(
    check: _FileCheck, node: yaml.Node
) -> tuple[dict[str, Sli | None] | None, dict[str, yaml.Node]]:
    """slis: name → Sli (None for an SLI with problems, already reported), and name → key node."""
    fields = _fields(check, node, "slis", None, "a mapping of SLI name to SLI")
    if fields is None:
        return None, {}
    slis: dict[str, Sli | None] = {}
    for name, (key_node, value_node) in fields.items():
        path = f"slis.{name}"
        if not NAME_PATTERN.fullmatch(name):
            check.problem(key_node, path, f"'{name}' is not an SLI name; {_NAME_EXPECTED}")
            slis[name] = None
            continue
        slis[name] = _check_sli(check, name, key_node, value_node, path)
    return slis, {name: key_node for name, (key_node, _) in fields.items()}


def _check_sli(check: _FileCheck, name: str, key_node: yaml.Node, node: yaml.Node, path: str) -> Sli | None:
    fields = _fields(check, node, path, SLI_FIELDS, SLI_FORMS)
    if fields is None:
        return None
    before = len(check.problems)
    where = _line_of(key_node)
    description = _optional_text(check, fields, "description", path) or ""
    good_event = _optional_text(check, fields, "good_event", path)
    valid_event = _optional_text(check, fields, "valid_event", path)
    category = _optional_text(check, fields, "category", path)
    queries = {key: _optional_text(check, fields, key, path) for key in ("good", "bad", "valid", "metric")}

    def conflict(key: str, other: str) -> None:
        check.problem(fields[key][0], f"{path}.{key}", f"'{key}' cannot be used with '{other}'; {SLI_FORMS}")

    def needs(key: str, what: str) -> None:
        check.problem(fields[key][0], f"{path}.{key}", f"'{key}' needs {what}; {SLI_FORMS}")

    kind = "ratio"
    good_query = bad_query = valid_query = ratio_query = direction = threshold_query = None
    threshold: float | None = None
    threshold_text: str | None = None
    comparison = "<="
    if "good" in fields or "bad" in fields:
        events = "good" if "good" in fields else "bad"
        for key in ("bad", "metric", "direction", "threshold", "comparison"):
            if key in fields and key != events:
                conflict(key, events)
        if "valid" not in fields:
            check.problem(
                where,
                f"{path}.valid",
                f"'{events}' needs 'valid' (the query counting all valid events); {SLI_FORMS}",
            )
        good_query, bad_query, valid_query = queries["good"], queries["bad"], queries["valid"]
        if events == "good":
            bad_query = None
    elif "metric" in fields:
        if "valid" in fields:
            conflict("valid", "metric")
        metric = queries["metric"]
        if "threshold" in fields:
            kind = "threshold"
            threshold_query = metric
            if "direction" in fields:
                check.problem(
                    fields["direction"][0],
                    f"{path}.direction",
                    "'direction' is for ratio metrics; a threshold SLI uses 'comparison' (<=, <, >=, >)",
                )
            threshold_node = fields["threshold"][1]
            threshold_text = threshold_node.value if isinstance(threshold_node, yaml.ScalarNode) else None
            try:
                threshold, percentile = _parse_threshold(threshold_text)
            except ValueError as exc:
                check.problem(threshold_node, f"{path}.threshold", str(exc))
            else:
                _check_quantile(check, fields, path, metric, percentile)
            comparison_node = fields["comparison"][1] if "comparison" in fields else None
            if isinstance(comparison_node, yaml.ScalarNode) and comparison_node.style in (">", "|"):
                check.problem(
                    comparison_node,
                    f"{path}.comparison",
                    'a bare > or | starts a YAML block; expected a quoted comparison like ">=" or ">"',
                )
            elif comparison_node is not None:
                comparison = _optional_text(check, fields, "comparison", path) or comparison
                if comparison not in COMPARISONS:
                    check.problem(
                        fields["comparison"][1],
                        f"{path}.comparison",
                        f"'{comparison}' is not a comparison; expected one of: <=, <, >=, > "
                        "(quote '>' and '>=' in YAML)",
                    )
        else:
            kind = "ratio"
            ratio_query = metric
            if "comparison" in fields:
                needs("comparison", "'threshold'")
            direction = _ratio_direction(check, fields, path, metric)
    else:
        for key in ("valid", "direction", "threshold", "comparison"):
            if key in fields:
                needs(key, "'metric'" if key != "valid" else "'good' or 'bad'")
        if "valid" not in fields and not any(k in fields for k in ("direction", "threshold", "comparison")):
            check.problem(where, path, f"no query given; {SLI_FORMS}")

    if len(check.problems) == before and kind == "ratio":
        event_queries = {"good": good_query, "bad": bad_query, "valid": valid_query}
        _check_event_queries(check, fields, path, event_queries, ratio_query)
    if category is None:
        category = name if name in SLI_CATEGORIES else ("latency" if kind == "threshold" else "availability")
    if len(check.problems) > before:
        return None
    return Sli(
        name=name,
        kind=kind,
        category=category,
        description=description,
        good_query=good_query,
        bad_query=bad_query,
        valid_query=valid_query,
        ratio_query=ratio_query,
        ratio_direction=direction,
        threshold_query=threshold_query,
        threshold=threshold,
        comparison=comparison,
        threshold_text=threshold_text,
        good_event=good_event,
        valid_event=valid_event,
    )


def _check_event_queries(
    check: _FileCheck,
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    path: str,
    queries: dict[str, str | None],
    ratio_query: str | None,
) -> None:
    """Event queries must give a counter's per-minute increase (DESIGN §2), as the Prometheus pull
    asks for them: refused here, at the field's line, rather than at the first pull."""
    parts = [(key, key, q) for key, q in queries.items() if q]
    split = ratio_parts(ratio_query) if ratio_query else None
    if split is not None:
        parts = [("metric", "metric (numerator)", split[0]), ("metric", "metric (denominator)", split[1])]
    for key, label, query in parts:
        try:
            per_minute_increase(query)
        except QueryShapeError as exc:
            check.problem(fields[key][1], f"{path}.{key}", f"{label}: {exc}" if key != label else str(exc))
            return


def _ratio_direction(
    check: _FileCheck, fields: dict[str, tuple[yaml.Node, yaml.Node]], path: str, metric: str | None
) -> str | None:
    """The declared direction, or the one inferred from the numerator (with a warning)."""
    if metric is None:
        return None
    metric_node = fields["metric"][1]
    parts = split_ratio(metric)
    if parts is None:
        count = len(top_level_slashes(metric))
        found = "no top-level '/'" if count == 0 else f"{count} top-level '/'"
        check.problem(
            metric_node,
            f"{path}.metric",
            f"a ratio metric needs exactly one top-level '/' (numerator / denominator), found {found}; "
            "wrap parts in parentheses, or add 'threshold' for a threshold SLI",
        )
        return None
    if "direction" in fields:
        direction = _optional_text(check, fields, "direction", path)
        if direction not in DIRECTIONS:
            check.problem(
                fields["direction"][1],
                f"{path}.direction",
                f"'{direction}' is not a direction; expected good (the ratio counts good events) "
                "or bad (it counts bad events)",
            )
            return None
        return direction
    numerator = parts[0].lower()
    words = [word for word in BAD_NUMERATOR_WORDS if word in numerator]
    direction = "bad" if words else "good"
    reason = f"mentions '{words[0]}'" if words else "mentions neither 'error' nor 'fail'"
    check.warn(
        metric_node,
        f"{path}.metric",
        f"direction not given; inferred '{direction}' because its numerator {reason}; add 'direction: good' "
        "(the ratio counts good events) or 'direction: bad' (it counts bad events) to make it explicit",
    )
    return direction


def _check_quantile(
    check: _FileCheck,
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    path: str,
    metric: str | None,
    percentile: float | None,
) -> None:
    """Warn when "at p95" disagrees with the metric's histogram_quantile(0.99, ...)."""
    if metric is None or percentile is None:
        return
    match = _QUANTILE_RE.search(metric)
    if match is None:
        return
    try:
        quantile = float(match.group(1))
    except ValueError:
        return
    if not math.isclose(quantile * 100, percentile):
        check.warn(
            fields["threshold"][1],
            f"{path}.threshold",
            f"says p{percentile:g} but the metric computes histogram_quantile({match.group(1)}); "
            "expected the same percentile in both",
        )


def _check_slo(
    check: _FileCheck,
    node: yaml.Node,
    path: str,
    service: str | None,
    owner: str | None,
    review_cadence: str | None,
    slis: dict[str, Sli | None] | None,
    policy: dict[str, str],
    used: set[str],
) -> _Entry | None:
    fields = _fields(check, node, path, SLO_FIELDS, "an SLO with sli and target")
    if fields is None:
        return None
    before = len(check.problems)
    line = _line_of(node)

    sli: Sli | None = None
    sli_name = _required_text(check, fields, "sli", path, line, "the name of an SLI defined under slis")
    if sli_name is not None and slis is not None:
        used.add(sli_name)
        if sli_name not in slis:
            known = ", ".join(sorted(slis)) or "(none)"
            check.problem(
                fields["sli"][1],
                f"{path}.sli",
                f"'{sli_name}' is not defined under slis; expected one of: {known}",
            )
        else:
            sli = slis[sli_name]

    name = _optional_text(check, fields, "name", path)
    if name is not None and not NAME_PATTERN.fullmatch(name):
        check.problem(fields["name"][1], f"{path}.name", f"'{name}' is not an SLO name; {_NAME_EXPECTED}")
        name = None
    elif name is None and "name" not in fields:
        name = sli_name

    target: float | None = None
    target_text = _required_text(check, fields, "target", path, line, "a target like 99.9%")
    if target_text is not None:
        try:
            target = parse_target(target_text)
        except ValueError as exc:
            check.problem(fields["target"][1], f"{path}.target", str(exc))

    window: SloWindow | None = None
    window_text = _optional_text(check, fields, "window", path) if "window" in fields else DEFAULT_WINDOW
    if window_text is not None:
        try:
            window = parse_window(window_text)
        except ValueError as exc:
            check.problem(fields["window"][1], f"{path}.window", str(exc))

    budget_text = _optional_text(check, fields, "error_budget", path)
    if budget_text is not None:
        _check_error_budget(
            check, fields["error_budget"][1], f"{path}.error_budget", budget_text, target, target_text, window
        )

    alerts: tuple[BurnRateAlert, ...] | None = None
    custom = "burn_rate_alerts" in fields
    if window is not None:
        if custom:
            alerts = _check_alerts(check, fields["burn_rate_alerts"][1], f"{path}.burn_rate_alerts", window)
        else:
            alerts = default_alerts(window.minutes)
        if alerts is not None and target is not None:
            _check_reachable(check, fields, path, line, alerts, target, target_text, custom)

    if service is None or name is None:
        return None
    slo: Slo | None = None
    complete = sli is not None and owner is not None and target is not None and window is not None
    if complete and alerts is not None and len(check.problems) == before:
        assert sli is not None and owner is not None and target is not None and window is not None
        slo = Slo(
            service=service,
            name=name,
            owner=owner,
            sli=sli,
            target=target,
            window=window,
            alerts=alerts,
            alerts_custom=custom,
            policy=dict(policy),
            review_cadence=review_cadence,
            error_budget_text=budget_text,
            source_file=check.file,
            source_line=line,
        )
    return _Entry(id=f"{service}/{name}", line=line, path=path, slo=slo)


def _check_error_budget(
    check: _FileCheck,
    node: yaml.Node,
    path: str,
    text: str,
    target: float | None,
    target_text: str | None,
    window: SloWindow | None,
) -> None:
    """A declared error budget must equal (1 − target) × window, pro-rated to its period."""
    try:
        budget = parse_error_budget_parts(text)
    except ValueError as exc:
        check.problem(node, path, str(exc))
        return
    if target is None or window is None:
        return
    # The window's budget, (1 − target) × window, pro-rated to the declared period: (1 − target) × period.
    expected = (1.0 - target) * budget.period_minutes
    if abs(budget.minutes - expected) <= ERROR_BUDGET_TOLERANCE * expected:
        return
    period = _duration_text(budget.period_minutes)
    period_text = budget.period if budget.period == period else f"{budget.period} ({period})"
    suggestion = f"{expected / budget.unit_minutes:.6g} {budget.unit}/{budget.period}"
    check.problem(
        node,
        path,
        f"'{text}' is {budget.minutes:.6g} minutes per {period_text}, but target {target_text} "
        f"over window {window.text} allows (1 − {target:.6g}) × {period} = {expected:.6g} minutes; "
        f"expected '{suggestion}' (within 0.5%), or leave error_budget out",
    )


def _check_alerts(
    check: _FileCheck, node: yaml.Node, path: str, window: SloWindow
) -> tuple[BurnRateAlert, ...] | None:
    """A spec's own burn_rate_alerts list, which replaces the defaults."""
    if not isinstance(node, yaml.SequenceNode):
        check.problem(
            node,
            path,
            f"expected a list of alerts (severity, long_window, short_window, burn_rate), got {_kind(node)}",
        )
        return None
    if not node.value:
        message = "empty list: this SLO has no burn-rate alerts; leave the field out for the defaults"
        check.warn(node, path, message)
    before = len(check.problems)
    alerts: list[BurnRateAlert] = []
    for index, item in enumerate(node.value):
        alert = _check_alert(check, item, f"{path}[{index}]", window)
        if alert is not None:
            alerts.append(alert)
    return tuple(alerts) if len(check.problems) == before else None


def _check_alert(check: _FileCheck, node: yaml.Node, path: str, window: SloWindow) -> BurnRateAlert | None:
    expected = "an alert with severity, long_window, short_window, burn_rate"
    fields = _fields(check, node, path, ALERT_FIELDS, expected)
    if fields is None:
        return None
    before = len(check.problems)
    line = _line_of(node)
    severity = _required_text(check, fields, "severity", path, line, "page or ticket")
    if severity is not None and severity not in SEVERITIES:
        message = f"'{severity}' is not a severity; expected page or ticket"
        check.problem(fields["severity"][1], f"{path}.severity", message)

    windows: dict[str, int] = {}
    for key in ("long_window", "short_window"):
        text = _required_text(check, fields, key, path, line, "a duration like 1h or 5m")
        if text is not None:
            try:
                windows[key] = parse_duration(text)
            except ValueError as exc:
                check.problem(fields[key][1], f"{path}.{key}", str(exc))
    long_minutes, short_minutes = windows.get("long_window"), windows.get("short_window")
    if long_minutes is not None and short_minutes is not None and short_minutes >= long_minutes:
        check.problem(
            fields["short_window"][1],
            f"{path}.short_window",
            f"short_window {fields['short_window'][1].value} is not shorter than long_window "
            f"{fields['long_window'][1].value}; expected a short window below the long one, like 5m with 1h",
        )
    if long_minutes is not None and long_minutes > window.minutes:
        check.problem(
            fields["long_window"][1],
            f"{path}.long_window",
            f"long_window {fields['long_window'][1].value} is longer than the SLO window {window.text}; "
            "expected a long_window within the window",
        )

    factor: float | None = None
    given = [key for key in ("burn_rate", "budget_consumed") if key in fields]
    if len(given) != 1:
        wrong = (
            "'burn_rate' and 'budget_consumed' cannot be used together"
            if given
            else "required field is missing"
        )
        check.problem(
            fields["budget_consumed"][0] if len(given) == 2 else line,
            f"{path}.burn_rate",
            f"{wrong}; expected exactly one of burn_rate (like 14.4x) or budget_consumed (like 2%)",
        )
    elif given[0] == "burn_rate":
        text = _optional_text(check, fields, "burn_rate", path)
        if text is not None:
            try:
                factor = _parse_burn_rate(text)
            except ValueError as exc:
                check.problem(fields["burn_rate"][1], f"{path}.burn_rate", str(exc))
    else:
        text = _optional_text(check, fields, "budget_consumed", path)
        if text is not None:
            try:
                fraction = _parse_budget_fraction(text)
            except ValueError as exc:
                check.problem(fields["budget_consumed"][1], f"{path}.budget_consumed", str(exc))
            else:
                if long_minutes is not None:
                    factor = fraction * window.minutes / long_minutes

    if len(check.problems) > before:
        return None
    assert severity is not None and long_minutes is not None and short_minutes is not None
    assert factor is not None
    return BurnRateAlert(severity, long_window=long_minutes, short_window=short_minutes, factor=factor)


def _check_reachable(
    check: _FileCheck,
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    path: str,
    line: int,
    alerts: tuple[BurnRateAlert, ...],
    target: float,
    target_text: str | None,
    custom: bool,
) -> None:
    """Warn about alerts that can never fire: the burn rate cannot exceed 1 / (1 − target)."""
    highest = 1.0 / (1.0 - target)
    for index, alert in enumerate(alerts):
        if alert.factor < highest:
            continue
        where: yaml.Node | int = line
        alert_path = f"{path}.burn_rate_alerts[{index}]" if custom else f"{path}.target"
        if custom:
            where = fields["burn_rate_alerts"][1].value[index]
        elif "target" in fields:
            where = fields["target"][1]
        origin = "" if custom else "default "
        check.warn(
            where,
            alert_path,
            f"{origin}{alert.severity} alert with burn rate {alert.factor:.6g} over "
            f"{_duration_text(alert.long_window)} can never fire: at target {target_text} the highest "
            f"possible burn rate is {highest:.6g} (every event bad); expected a lower burn rate "
            "(burn_rate_alerts) or a higher target",
        )


# ---------------------------------------------------------------------------------------------------
# Small value parsers used by the checks.


def _parse_threshold(value: object) -> tuple[float, float | None]:
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


def _parse_burn_rate(value: str) -> float:
    """A burn-rate factor as written: `14.4x`, `14.4`, `6x`."""
    text = value.strip()
    number = _decimal(text[:-1] if text[-1:] in ("x", "X") else text)
    if number is None or number <= 0:
        raise ValueError(f"{_show(value)} is not a burn rate; expected a positive factor like 14.4x or 6")
    return float(number)


def _parse_budget_fraction(value: str) -> float:
    """A share of the error budget: `2%` or `0.02`."""
    number, percent = _decimal_with_percent(value)
    fraction = None if number is None else (number / 100 if percent else number)
    if fraction is None or not 0 < fraction <= 1:
        raise ValueError(
            f"{_show(value)} is not a share of the budget; "
            "expected a percentage like 2% or a fraction like 0.02"
        )
    return float(fraction)


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


def _duration_text(minutes: int) -> str:
    """43200 → '30d', 90 → '1h30m'."""
    parts = []
    for unit, size in (("d", MINUTES_PER_DAY), ("h", 60), ("m", 1)):
        if minutes >= size:
            parts.append(f"{minutes // size}{unit}")
            minutes %= size
    return "".join(parts) or "0m"


def _show(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


# ---------------------------------------------------------------------------------------------------
# YAML node helpers: the structure is read from composed nodes so every value keeps its line.


def _line_of(where: yaml.Node | int) -> int:
    return where if isinstance(where, int) else where.start_mark.line + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if _is_null(node):
        return "nothing"
    return f"'{node.value}'"


def _fields(
    check: _FileCheck, node: yaml.Node, path: str, allowed: Sequence[str] | None, expected: str
) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
    """name → (key node, value node) of a mapping; reports non-mappings, duplicates and unknown names."""
    if not isinstance(node, yaml.MappingNode):
        check.problem(node, path or "(document)", f"expected {expected}, got {_kind(node)}")
        return None
    fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or _is_null(key_node):
            check.problem(key_node, path or "(document)", f"field names must be text, got {_kind(key_node)}")
            continue
        key = key_node.value
        key_path = f"{path}.{key}" if path else key
        if key in fields:
            check.problem(key_node, key_path, f"duplicate field '{key}'; expected each field once")
        elif allowed is not None and key not in allowed:
            check.problem(key_node, key_path, f"unknown field '{key}'; expected one of: {', '.join(allowed)}")
        else:
            fields[key] = (key_node, value_node)
    return fields


def _optional_text(
    check: _FileCheck, fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str, path: str
) -> str | None:
    """The text of a scalar field, None when absent; empty values and lists/mappings are problems."""
    if key not in fields:
        return None
    node = fields[key][1]
    key_path = f"{path}.{key}" if path else key
    if not isinstance(node, yaml.ScalarNode):
        check.problem(node, key_path, f"expected a single value, got {_kind(node)}")
        return None
    if _is_null(node) or not node.value.strip():
        check.problem(node, key_path, "is empty; expected a value")
        return None
    return node.value.strip()


def _required_text(
    check: _FileCheck,
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    key: str,
    path: str,
    line: int,
    expected: str,
) -> str | None:
    key_path = f"{path}.{key}" if path else key
    if key not in fields:
        check.problem(line, key_path, f"required field is missing; expected {expected}")
        return None
    return _optional_text(check, fields, key, path)
