"""The native spec format (`slo_specs/README.md`; `slo_specs/checkout-api.yaml` is the reference
example): one document per service, every field checked, problems reported at their line."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import yaml

from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow
from pipelines.promql import QueryShapeError, per_minute_increase, ratio_parts, split_ratio, top_level_slashes
from pipelines.specs.nodes import (
    Entry,
    FileCheck,
    default_category,
    line_of,
    mapping_fields,
    node_kind,
    optional_text,
    required_text,
)
from pipelines.specs.rule_meta import read_alert_name, read_disable, read_rule_labels
from pipelines.specs.values import (
    DEFAULT_WINDOW,
    NAME_EXPECTED,
    NAME_PATTERN,
    default_alert_adjustment,
    default_alerts,
    duration_text,
    parse_budget_fraction,
    parse_burn_rate,
    parse_duration,
    parse_error_budget_parts,
    parse_target,
    parse_threshold_percentile,
    parse_window,
)

# A declared error_budget may differ from (1 − target) × period by this much (relative), for rounding.
ERROR_BUDGET_TOLERANCE = 0.005
SEVERITIES = ("page", "ticket")
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
SLO_FIELDS = (
    "sli",
    "name",
    "target",
    "window",
    "error_budget",
    "burn_rate_alerts",
    "period",
    "labels",
    "alerting",
)
ALERTING_FIELDS = ("name", "labels", "annotations", "page", "ticket")
ALERTING_KIND_FIELDS = ("labels", "annotations", "disable")
ALERT_FIELDS = ("severity", "long_window", "short_window", "burn_rate", "budget_consumed")
POLICY_FIELDS = (*POLICY_KEYS, *POLICY_KEYS.values())

SLI_FORMS = (
    "an SLI is one of: good + valid, bad + valid, metric (a ratio) with optional direction, "
    "or metric + threshold with optional comparison"
)
_QUANTILE_RE = re.compile(r"histogram_quantile\(\s*([0-9.]+)")


def check_native(check: FileCheck, root: yaml.Node) -> list[Entry]:
    """Check one YAML document (one service); return its SLO entries."""
    fields = mapping_fields(check, root, "", TOP_FIELDS, "a spec with service, owner, slis, slos")
    if fields is None:
        return []
    root_line = line_of(root)
    service = required_text(check, fields, "service", "", root_line, "the service name, like checkout-api")
    if service is not None and not NAME_PATTERN.fullmatch(service):
        check.problem(
            fields["service"][1],
            "service",
            f"'{service}' is not a service name; expected lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit, like checkout-api",
        )
        service = None
    owner = required_text(check, fields, "owner", "", root_line, "the owning team, like payments-team")
    review_cadence = optional_text(check, fields, "review_cadence", "")
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
        got = "an empty list" if isinstance(slos_node, yaml.SequenceNode) else node_kind(slos_node)
        check.problem(
            slos_node, "slos", f"expected a non-empty list of SLOs (with sli and target), got {got}"
        )
        return []

    entries: list[Entry] = []
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


def _check_policy(check: FileCheck, item: tuple[yaml.Node, yaml.Node] | None) -> dict[str, str]:
    """error_budget_policy: policy state → text, accepting the seed's keys or the state names."""
    if item is None:
        return {}
    fields = mapping_fields(
        check, item[1], "error_budget_policy", POLICY_FIELDS, "policy texts per budget state"
    )
    if fields is None:
        return {}
    policy: dict[str, str] = {}
    first_key: dict[str, str] = {}
    for key, (key_node, _) in fields.items():
        state = POLICY_KEYS.get(key, key)
        path = f"error_budget_policy.{key}"
        text = optional_text(check, fields, key, "error_budget_policy")
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
    check: FileCheck, node: yaml.Node
) -> tuple[dict[str, Sli | None] | None, dict[str, yaml.Node]]:
    """slis: name → Sli (None for an SLI with problems, already reported), and name → key node."""
    fields = mapping_fields(check, node, "slis", None, "a mapping of SLI name to SLI")
    if fields is None:
        return None, {}
    slis: dict[str, Sli | None] = {}
    for name, (key_node, value_node) in fields.items():
        path = f"slis.{name}"
        if not NAME_PATTERN.fullmatch(name):
            check.problem(key_node, path, f"'{name}' is not an SLI name; {NAME_EXPECTED}")
            slis[name] = None
            continue
        slis[name] = _check_sli(check, name, key_node, value_node, path)
    return slis, {name: key_node for name, (key_node, _) in fields.items()}


def _check_sli(check: FileCheck, name: str, key_node: yaml.Node, node: yaml.Node, path: str) -> Sli | None:
    fields = mapping_fields(check, node, path, SLI_FIELDS, SLI_FORMS)
    if fields is None:
        return None
    before = len(check.problems)
    where = line_of(key_node)
    description = optional_text(check, fields, "description", path) or ""
    good_event = optional_text(check, fields, "good_event", path)
    valid_event = optional_text(check, fields, "valid_event", path)
    category = optional_text(check, fields, "category", path)
    queries = {key: optional_text(check, fields, key, path) for key in ("good", "bad", "valid", "metric")}

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
                threshold, percentile = parse_threshold_percentile(threshold_text)
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
                comparison = optional_text(check, fields, "comparison", path) or comparison
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
        category = default_category(name, kind)
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
    check: FileCheck,
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
    check: FileCheck, fields: dict[str, tuple[yaml.Node, yaml.Node]], path: str, metric: str | None
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
        direction = optional_text(check, fields, "direction", path)
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
    check: FileCheck,
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
    check: FileCheck,
    node: yaml.Node,
    path: str,
    service: str | None,
    owner: str | None,
    review_cadence: str | None,
    slis: dict[str, Sli | None] | None,
    policy: dict[str, str],
    used: set[str],
) -> Entry | None:
    fields = mapping_fields(check, node, path, SLO_FIELDS, "an SLO with sli and target")
    if fields is None:
        return None
    before = len(check.problems)
    line = line_of(node)

    sli: Sli | None = None
    sli_name = required_text(check, fields, "sli", path, line, "the name of an SLI defined under slis")
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

    name = optional_text(check, fields, "name", path)
    if name is not None and not NAME_PATTERN.fullmatch(name):
        check.problem(fields["name"][1], f"{path}.name", f"'{name}' is not an SLO name; {NAME_EXPECTED}")
        name = None
    elif name is None and "name" not in fields:
        name = sli_name

    target: float | None = None
    target_text = required_text(check, fields, "target", path, line, "a target like 99.9%")
    if target_text is not None:
        try:
            target = parse_target(target_text)
        except ValueError as exc:
            check.problem(fields["target"][1], f"{path}.target", str(exc))

    window: SloWindow | None = None
    window_text = optional_text(check, fields, "window", path) if "window" in fields else DEFAULT_WINDOW
    if window_text is not None:
        try:
            window = parse_window(window_text)
        except ValueError as exc:
            check.problem(fields["window"][1], f"{path}.window", str(exc))

    budget_text = optional_text(check, fields, "error_budget", path)
    if budget_text is not None:
        _check_error_budget(
            check, fields["error_budget"][1], f"{path}.error_budget", budget_text, target, target_text, window
        )

    period: int | None = None
    period_text = optional_text(check, fields, "period", path)
    if period_text is not None:
        try:
            period = parse_duration(period_text)
        except ValueError as exc:
            check.problem(fields["period"][1], f"{path}.period", str(exc))
        else:
            if period < 60:
                check.problem(
                    fields["period"][1],
                    f"{path}.period",
                    f"'{period_text}' is shorter than an hour; expected the SLO period the alert factors are "
                    "computed for, like 28d or 4w (or leave it out: the window's length)",
                )
                period = None

    labels = read_rule_labels(check, fields["labels"][1], f"{path}.labels") if "labels" in fields else {}
    alerting = (
        _check_alerting(check, fields["alerting"][1], f"{path}.alerting") if "alerting" in fields else None
    )

    alerts: tuple[BurnRateAlert, ...] | None = None
    custom = "burn_rate_alerts" in fields
    if window is not None:
        if custom:
            alerts = _check_alerts(
                check, fields["burn_rate_alerts"][1], f"{path}.burn_rate_alerts", window, period
            )
        else:
            alerts = default_alerts(window.minutes, period)
            adjustment = default_alert_adjustment(window.minutes, period)
            if adjustment:
                check.warn(fields["window"][1] if "window" in fields else line, f"{path}.window", adjustment)
        if alerts is not None and alerting is not None and alerting.disabled:
            alerts = tuple(alert for alert in alerts if alert.severity not in alerting.disabled)
            custom = True
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
            labels=labels,
            alert_name=alerting.name if alerting else None,
            alert_labels=alerting.labels if alerting else {},
            alert_annotations=alerting.annotations if alerting else {},
            disabled_alerts=alerting.disabled if alerting else (),
            period_minutes=period,
        )
    return Entry(id=f"{service}/{name}", line=line, path=path, slo=slo)


@dataclass(frozen=True)
class _Alerting:
    name: str | None
    labels: dict[str, dict[str, str]]
    annotations: dict[str, dict[str, str]]
    disabled: tuple[str, ...]


def _check_alerting(check: FileCheck, node: yaml.Node, path: str) -> _Alerting | None:
    """`alerting`: the burn-rate alerts' name, labels and annotations for both kinds, and per kind
    (`page`, `ticket`) its own labels, annotations and `disable: true` (no alert of that kind at all)."""
    fields = mapping_fields(check, node, path, ALERTING_FIELDS, "name, labels, annotations, page, ticket")
    if fields is None:
        return None
    value = {key: v for key, (_, v) in fields.items()}
    name = read_alert_name(check, value.get("name"), f"{path}.name")
    common_labels = read_rule_labels(check, value.get("labels"), f"{path}.labels")
    common_notes = read_rule_labels(check, value.get("annotations"), f"{path}.annotations", "annotations")
    labels: dict[str, dict[str, str]] = {}
    annotations: dict[str, dict[str, str]] = {}
    disabled: list[str] = []
    for severity in SEVERITIES:
        kind_path = f"{path}.{severity}"
        kind_fields = (
            mapping_fields(
                check, value[severity], kind_path, ALERTING_KIND_FIELDS, "labels, annotations, disable"
            )
            if severity in value
            else {}
        ) or {}
        kind = {key: v for key, (_, v) in kind_fields.items()}
        if "disable" in kind and read_disable(check, kind["disable"], f"{kind_path}.disable"):
            disabled.append(severity)
            continue
        own_labels = {**common_labels, **read_rule_labels(check, kind.get("labels"), f"{kind_path}.labels")}
        own_notes = {
            **common_notes,
            **read_rule_labels(check, kind.get("annotations"), f"{kind_path}.annotations", "annotations"),
        }
        if own_labels:
            labels[severity] = own_labels
        if own_notes:
            annotations[severity] = own_notes
    return _Alerting(name, labels, annotations, tuple(disabled))


def _check_error_budget(
    check: FileCheck,
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
    period = duration_text(budget.period_minutes)
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
    check: FileCheck, node: yaml.Node, path: str, window: SloWindow, period: int | None = None
) -> tuple[BurnRateAlert, ...] | None:
    """A spec's own burn_rate_alerts list, which replaces the defaults."""
    if not isinstance(node, yaml.SequenceNode):
        check.problem(
            node,
            path,
            "expected a list of alerts (severity, long_window, short_window, burn_rate), "
            f"got {node_kind(node)}",
        )
        return None
    if not node.value:
        message = "empty list: this SLO has no burn-rate alerts; leave the field out for the defaults"
        check.warn(node, path, message)
    before = len(check.problems)
    alerts: list[BurnRateAlert] = []
    for index, item in enumerate(node.value):
        alert = _check_alert(check, item, f"{path}[{index}]", window, period)
        if alert is not None:
            alerts.append(alert)
    return tuple(alerts) if len(check.problems) == before else None


def _check_alert(
    check: FileCheck, node: yaml.Node, path: str, window: SloWindow, period: int | None = None
) -> BurnRateAlert | None:
    expected = "an alert with severity, long_window, short_window, burn_rate"
    fields = mapping_fields(check, node, path, ALERT_FIELDS, expected)
    if fields is None:
        return None
    before = len(check.problems)
    line = line_of(node)
    severity = required_text(check, fields, "severity", path, line, "page or ticket")
    if severity is not None and severity not in SEVERITIES:
        message = f"'{severity}' is not a severity; expected page or ticket"
        check.problem(fields["severity"][1], f"{path}.severity", message)

    windows: dict[str, int] = {}
    for key in ("long_window", "short_window"):
        text = required_text(check, fields, key, path, line, "a duration like 1h or 5m")
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
        text = optional_text(check, fields, "burn_rate", path)
        if text is not None:
            try:
                factor = parse_burn_rate(text)
            except ValueError as exc:
                check.problem(fields["burn_rate"][1], f"{path}.burn_rate", str(exc))
    else:
        text = optional_text(check, fields, "budget_consumed", path)
        if text is not None:
            try:
                fraction = parse_budget_fraction(text)
            except ValueError as exc:
                check.problem(fields["budget_consumed"][1], f"{path}.budget_consumed", str(exc))
            else:
                if long_minutes is not None:  # a share of the period's budget (the window's by default)
                    factor = fraction * (window.minutes if period is None else period) / long_minutes

    if len(check.problems) > before:
        return None
    assert severity is not None and long_minutes is not None and short_minutes is not None
    assert factor is not None
    return BurnRateAlert(severity, long_window=long_minutes, short_window=short_minutes, factor=factor)


def _check_reachable(
    check: FileCheck,
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
            f"{duration_text(alert.long_window)} can never fire: at target {target_text} the highest "
            f"possible burn rate is {highest:.6g} (every event bad); expected a lower burn rate "
            "(burn_rate_alerts) or a higher target",
        )
