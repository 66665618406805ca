"""OpenSLO v1 and Sloth prometheus/v1 specs read into the same model as native ones, and any SLO printed
back in the native format. Pure: `pipelines.specs.load_specs` hands it composed YAML nodes.

OpenSLO v1 (`apiVersion: openslo/v1`) objects may sit in any file of the specs directory and refer to
each other by name: an `SLO` names its `SLI` (`indicatorRef`, or inline `indicator`) and its
`AlertPolicy`s (`alertPolicyRef`, or inline), a policy its `AlertCondition`s (`conditionRef`, or
inline). So OpenSLO documents are collected from every file first and resolved at the end.

How the OpenSLO concepts map (say it once, here):
- `ratioMetric` good/total, bad/total → good + valid, bad + valid events; `raw` + `rawType` → a ratio
  metric with direction good (success) or bad (failure), split at its top-level '/'.
- `thresholdMetric` + objective `op`/`value` → a threshold SLI evaluated per minute (lt <, lte <=, …).
- `budgetingMethod: Timeslices` → minute time slices (`timeSliceWindow` must be 1m); with a ratio
  metric a minute is good when its ratio meets `timeSliceTarget`. `RatioTimeslices` is refused.
- `timeWindow` rolling `duration` (m h d w) → that rolling window; calendar `1M` / `1Q` → month, quarter.
- One SLO per objective; with several objectives the SLO names are `<name>-<objective name or number>`.
- `AlertCondition` `kind: burnrate`: `threshold` is the factor, `lookbackWindow` the long window and
  `alertAfter` the short window (this product debounces with the short window instead of `for:`);
  severity page/critical → page, ticket/warning → ticket.
- The owner is `metadata.labels.owner` (or `team`); OpenSLO has no error-budget policy texts.

Sloth (`version: prometheus/v1`, or `apiVersion: sloth.slok.dev/v1` + `kind: PrometheusServiceLevel`
with camelCase fields): `objective` is a percentage, `events` error/total queries → bad + valid,
`raw.error_ratio_query` → a bad ratio metric; the window is Sloth's default 30d; the alerts are the
default page and ticket pairs (Sloth's own), minus a disabled `page_alert` / `ticket_alert`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow
from pipelines.specs import (
    NAME_PATTERN,
    SLI_CATEGORIES,
    _duration_text,
    _Entry,
    _fields,
    _FileCheck,
    _is_null,
    _kind,
    _line_of,
    _optional_text,
    _required_text,
    default_alerts,
    parse_duration,
    parse_target,
    parse_window,
    split_ratio,
)

OPENSLO_API = "openslo/v1"
SLOTH_API = "sloth.slok.dev/v1"
SLOTH_KIND = "PrometheusServiceLevel"
SLOTH_VERSION = "prometheus/v1"
SLOTH_WINDOW = "30d"  # Sloth's default SLO period
UNKNOWN_OWNER = "unknown"

OPENSLO_KINDS = (
    "SLO",
    "SLI",
    "AlertPolicy",
    "AlertCondition",
    "DataSource",
    "Service",
    "AlertNotificationTarget",
)
_NAME_EXPECTED = "expected lowercase letters, digits, '-' and '_', starting with a letter or digit"
_SEVERITY_ALIASES = {"page": "page", "critical": "page", "ticket": "ticket", "warning": "ticket"}
_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_CALENDAR_DURATIONS = {"1M": "month", "1Q": "quarter"}


def spec_format(root: yaml.Node) -> str:
    """'native', 'openslo', 'sloth', 'sloth-crd', or 'unknown:<what>' for a document's root node."""
    if not isinstance(root, yaml.MappingNode):
        return "native"
    top = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    api = top.get("apiVersion")
    if api is not None:
        value = api.value if isinstance(api, yaml.ScalarNode) else None
        if value == OPENSLO_API:
            return "openslo"
        if value == SLOTH_API:
            return "sloth-crd"
        return f"unknown:{value}"
    version = top.get("version")
    if isinstance(version, yaml.ScalarNode) and version.value == SLOTH_VERSION:
        return "sloth"
    return "native"


# ---------------------------------------------------------------------------------------------------
# Small checks shared by both formats


def _number(check: _FileCheck, node: yaml.Node, path: str, expected: str) -> Decimal | None:
    if isinstance(node, yaml.ScalarNode) and not _is_null(node) and node.tag != "tag:yaml.org,2002:bool":
        try:
            number = Decimal(node.value.strip())
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return number
    check.problem(node, path, f"{_kind(node)} is not a number; {expected}")
    return None


def _target(check: _FileCheck, node: yaml.Node, path: str, percent: bool) -> float | None:
    """A target fraction from a fraction (`0.999`) or a percentage (`99.9`), strictly between 0 and 1."""
    expected = "expected a percentage below 100 like 99.9" if percent else "expected a fraction like 0.999"
    number = _number(check, node, path, expected)
    if number is None:
        return None
    fraction = number / 100 if percent else number
    if fraction == 1:
        check.problem(
            node, path, f"{node.value} leaves no error budget (100% allows no failures); {expected}"
        )
        return None
    if not 0 < fraction < 1:
        check.problem(node, path, f"{node.value} is out of range; {expected}")
        return None
    return float(fraction)


def _name(check: _FileCheck, node: yaml.Node | None, path: str, line: int, what: str) -> str | None:
    if node is None:
        check.problem(line, path, f"required field is missing; expected the {what}")
        return None
    if not isinstance(node, yaml.ScalarNode) or _is_null(node) or not node.value.strip():
        check.problem(node, path, f"expected the {what}, got {_kind(node)}")
        return None
    value = node.value.strip()
    if not NAME_PATTERN.fullmatch(value):
        check.problem(node, path, f"'{value}' is not a valid {what}; {_NAME_EXPECTED}")
        return None
    return value


def _mapping(
    check: _FileCheck, node: yaml.Node | None, path: str, allowed: Sequence[str] | None, expected: str
) -> dict[str, yaml.Node] | None:
    """name → value node of a mapping field (unknown names are problems), None when absent or wrong."""
    if node is None:
        return None
    fields = _fields(check, node, path, allowed, expected)
    return None if fields is None else {key: value for key, (_, value) in fields.items()}


def _text(check: _FileCheck, fields: dict[str, yaml.Node], key: str, path: str) -> str | None:
    return _optional_text(check, {k: (v, v) for k, v in fields.items()}, key, path)


def _labels(check: _FileCheck, node: yaml.Node | None, path: str) -> dict[str, str]:
    """Labels as text; OpenSLO allows a list of values, the first is used."""
    fields = _mapping(check, node, path, None, "a mapping of label names to values")
    labels: dict[str, str] = {}
    for key, value in (fields or {}).items():
        if (
            isinstance(value, yaml.SequenceNode)
            and value.value
            and isinstance(value.value[0], yaml.ScalarNode)
        ):
            labels[key] = value.value[0].value
        elif isinstance(value, yaml.ScalarNode) and not _is_null(value):
            labels[key] = value.value
    return labels


def _owner(check: _FileCheck, labels: dict[str, str], where: yaml.Node | int, path: str) -> str:
    owner = labels.get("owner") or labels.get("team")
    if owner:
        return owner
    check.warn(
        where,
        path,
        f"no owner; using '{UNKNOWN_OWNER}': expected a label owner (or team), like owner: payments-team",
    )
    return UNKNOWN_OWNER


def _category(name: str, kind: str) -> str:
    """As native specs default it: the SLI's name when it is a category, else by kind."""
    return name if name in SLI_CATEGORIES else ("latency" if kind == "threshold" else "availability")


# ---------------------------------------------------------------------------------------------------
# Sloth


SLOTH_NAMES = {
    "sloth": {
        "error_query": "error_query",
        "total_query": "total_query",
        "error_ratio_query": "error_ratio_query",
        "page_alert": "page_alert",
        "ticket_alert": "ticket_alert",
    },
    "sloth-crd": {
        "error_query": "errorQuery",
        "total_query": "totalQuery",
        "error_ratio_query": "errorRatioQuery",
        "page_alert": "pageAlert",
        "ticket_alert": "ticketAlert",
    },
}


def check_sloth(check: _FileCheck, root: yaml.Node, form: str) -> list[_Entry]:
    """A Sloth prometheus/v1 file (or its Kubernetes form): its SLOs, problems reported to `check`."""
    names = SLOTH_NAMES[form]
    if form == "sloth-crd":
        top = _mapping(
            check, root, "", ("apiVersion", "kind", "metadata", "spec"), "a PrometheusServiceLevel"
        )
        if top is None:
            return []
        kind = _text(check, top, "kind", "")
        if kind != SLOTH_KIND:
            check.problem(
                top.get("kind", root), "kind", f"'{kind}' is not a Sloth kind; expected {SLOTH_KIND}"
            )
            return []
        if "spec" not in top:
            check.problem(root, "spec", "required field is missing; expected service, labels and slos")
            return []
        prefix = "spec."
        spec = _mapping(check, top["spec"], "spec", ("service", "labels", "slos"), "service, labels and slos")
    else:
        prefix = ""
        spec = _mapping(
            check, root, "", ("version", "service", "labels", "slos"), "a Sloth prometheus/v1 spec"
        )
    if spec is None:
        return []
    line = _line_of(root)
    service = _name(check, spec.get("service"), f"{prefix}service", line, "service name")
    labels = _labels(check, spec.get("labels"), f"{prefix}labels")
    slos_node = spec.get("slos")
    if not isinstance(slos_node, yaml.SequenceNode) or not slos_node.value:
        got = "nothing" if slos_node is None else _kind(slos_node)
        check.problem(slos_node or line, f"{prefix}slos", f"expected a non-empty list of SLOs, got {got}")
        return []
    entries = []
    for index, node in enumerate(slos_node.value):
        entry = _sloth_slo(check, node, f"{prefix}slos[{index}]", service, labels, names)
        if entry is not None:
            entries.append(entry)
    return entries


def _sloth_slo(
    check: _FileCheck,
    node: yaml.Node,
    path: str,
    service: str | None,
    service_labels: dict[str, str],
    names: dict[str, str],
) -> _Entry | None:
    fields = _mapping(
        check, node, path, ("name", "objective", "description", "labels", "sli", "alerting"), "a Sloth SLO"
    )
    if fields is None:
        return None
    before = len(check.problems)
    line = _line_of(node)
    name = _name(check, fields.get("name"), f"{path}.name", line, "SLO name")
    target = None
    if "objective" not in fields:
        check.problem(line, f"{path}.objective", "required field is missing; expected a percentage like 99.9")
    else:
        target = _target(check, fields["objective"], f"{path}.objective", percent=True)
    labels = {**service_labels, **_labels(check, fields.get("labels"), f"{path}.labels")}
    description = _text(check, fields, "description", path) or ""

    sli_path = f"{path}.sli"
    sli_fields = _mapping(check, fields.get("sli"), sli_path, ("events", "raw", "plugin"), "events or raw")
    if sli_fields is None and "sli" not in fields:
        check.problem(
            line, sli_path, "required field is missing; expected events (error and total queries) or raw"
        )
    good = bad = valid = ratio = None
    if sli_fields is not None:
        given = [key for key in ("events", "raw", "plugin") if key in sli_fields]
        if "plugin" in sli_fields:
            check.problem(
                sli_fields["plugin"],
                f"{sli_path}.plugin",
                "Sloth SLI plugins cannot be imported (their queries live in the plugin); "
                "expected events (error and total queries) or raw",
            )
        elif len(given) != 1:
            where = sli_fields["raw"] if given else fields["sli"]
            check.problem(where, sli_path, "expected exactly one of events (error and total queries) or raw")
        elif given == ["events"]:
            events_path = f"{sli_path}.events"
            keys = (names["error_query"], names["total_query"])
            events = _mapping(check, sli_fields["events"], events_path, keys, "error and total queries")
            if events is not None:
                ev = {k: (v, v) for k, v in events.items()}
                bad = _required_text(
                    check, ev, keys[0], events_path, _line_of(sli_fields["events"]), "a query"
                )
                valid = _required_text(
                    check, ev, keys[1], events_path, _line_of(sli_fields["events"]), "a query"
                )
        else:
            raw_path = f"{sli_path}.raw"
            key = names["error_ratio_query"]
            raw = _mapping(check, sli_fields["raw"], raw_path, (key,), "an error ratio query")
            if raw is not None:
                ratio = _required_text(
                    check,
                    {k: (v, v) for k, v in raw.items()},
                    key,
                    raw_path,
                    _line_of(sli_fields["raw"]),
                    "a query",
                )
                if ratio is not None and split_ratio(ratio) is None:
                    check.problem(
                        raw[key],
                        f"{raw_path}.{key}",
                        "the error ratio needs exactly one top-level '/' (errors / total) so its events can "
                        "be counted; wrap parts in parentheses, or use events with error and total queries",
                    )

    alerts, custom, category = _sloth_alerting(check, fields.get("alerting"), f"{path}.alerting", names)
    if service is None or name is None:
        return None
    owner = _owner(check, labels, fields.get("labels") or line, f"{path}.labels")
    if len(check.problems) > before or target is None or alerts is None:
        return _Entry(id=f"{service}/{name}", line=line, path=path, slo=None)
    sli = Sli(
        name=name,
        kind="ratio",
        category=category or _category(name, "ratio"),
        description=description,
        good_query=good,
        bad_query=bad,
        valid_query=valid,
        ratio_query=ratio,
        ratio_direction="bad" if ratio is not None else None,
    )
    window = parse_window(SLOTH_WINDOW)
    slo = Slo(
        service=service,
        name=name,
        owner=owner,
        sli=sli,
        target=target,
        window=window,
        alerts=alerts,
        alerts_custom=custom,
        source_file=check.file,
        source_line=line,
    )
    return _Entry(id=slo.id, line=line, path=path, slo=slo)


def _sloth_alerting(
    check: _FileCheck, node: yaml.Node | None, path: str, names: dict[str, str]
) -> tuple[tuple[BurnRateAlert, ...] | None, bool, str | None]:
    """(alerts, whether they differ from the defaults, category label) from Sloth's alerting block."""
    window = parse_window(SLOTH_WINDOW)
    alerts = default_alerts(window.minutes)
    fields = _mapping(
        check,
        node,
        path,
        ("name", "labels", "annotations", names["page_alert"], names["ticket_alert"]),
        "alerting",
    )
    if fields is None:
        return (alerts, False, None) if node is None else (None, False, None)
    category = _labels(check, fields.get("labels"), f"{path}.labels").get("category")
    disabled = set()
    for severity in ("page", "ticket"):
        key = names[f"{severity}_alert"]
        alert = _mapping(
            check, fields.get(key), f"{path}.{key}", ("disable", "labels", "annotations"), "an alert"
        )
        if alert is None or "disable" not in alert:
            continue
        flag = alert["disable"]
        if not isinstance(flag, yaml.ScalarNode) or flag.value.lower() not in ("true", "false"):
            check.problem(
                flag, f"{path}.{key}.disable", f"{_kind(flag)} is not true or false; expected true or false"
            )
        elif flag.value.lower() == "true":
            disabled.add(severity)
    kept = tuple(alert for alert in alerts if alert.severity not in disabled)
    return kept, bool(disabled), category


# ---------------------------------------------------------------------------------------------------
# OpenSLO


@dataclass
class _Object:
    """One OpenSLO object: the file it is in, its metadata.name and its spec node."""

    check: _FileCheck
    kind: str
    name: str
    root: yaml.Node
    metadata: dict[str, yaml.Node]
    spec: yaml.Node | None


@dataclass(frozen=True)
class _Indicator:
    """An OpenSLO SLI, checked: its form and Prometheus queries."""

    name: str
    description: str
    form: str  # "good" | "bad" | "raw" | "threshold"
    query: str  # good, bad, raw or threshold query
    total: str | None = None
    raw_type: str | None = None  # "success" | "failure"


@dataclass
class OpenSloDocuments:
    """OpenSLO objects collected from every spec file, resolved into SLOs once all are read."""

    objects: dict[str, dict[str, _Object]] = field(default_factory=dict)
    slos: list[_Object] = field(default_factory=list)
    _indicators: dict[int, _Indicator | None] = field(default_factory=dict)
    _conditions: dict[int, BurnRateAlert | None] = field(default_factory=dict)
    _policies: dict[int, list[tuple[_Where, yaml.Node, BurnRateAlert | None]] | None] = field(
        default_factory=dict
    )

    def add(self, check: _FileCheck, root: yaml.Node) -> None:
        """Collect one `apiVersion: openslo/v1` document (problems with its envelope go to `check`)."""
        top = _mapping(check, root, "", ("apiVersion", "kind", "metadata", "spec"), "an OpenSLO object")
        if top is None:
            return
        obj = self._object(check, root, top, "")
        if obj is None:
            return
        if obj.kind == "SLO":
            self.slos.append(obj)
            return
        known = self.objects.setdefault(obj.kind, {})
        if obj.name in known:
            first = known[obj.name]
            check.problem(
                obj.metadata.get("name", root),
                "metadata.name",
                f"duplicate {obj.kind} '{obj.name}' (first defined at {first.check.file}:"
                f"{_line_of(first.root)}); expected each {obj.kind} name once",
            )
            return
        known[obj.name] = obj

    def _object(
        self,
        check: _FileCheck,
        root: yaml.Node,
        top: dict[str, yaml.Node],
        path: str,
        kind: str | None = None,
    ) -> _Object | None:
        prefix = f"{path}." if path else ""
        found = _text(check, top, "kind", path)
        if found is None:
            check.problem(
                root,
                f"{prefix}kind",
                f"required field is missing; expected one of: {', '.join(OPENSLO_KINDS)}",
            )
            return None
        if found not in OPENSLO_KINDS or (kind is not None and found != kind):
            expected = kind or ", ".join(OPENSLO_KINDS)
            check.problem(
                top["kind"], f"{prefix}kind", f"'{found}' is not an OpenSLO v1 kind here; expected {expected}"
            )
            return None
        metadata = _mapping(
            check,
            top.get("metadata"),
            f"{prefix}metadata",
            ("name", "displayName", "labels", "annotations"),
            "metadata",
        )
        if metadata is None:
            if "metadata" not in top:
                check.problem(
                    root, f"{prefix}metadata", "required field is missing; expected metadata with a name"
                )
            return None
        name = _name(check, metadata.get("name"), f"{prefix}metadata.name", _line_of(root), f"{found} name")
        if name is None:
            return None
        return _Object(check, found, name, root, metadata, top.get("spec"))

    def resolve(self) -> list[tuple[_FileCheck, _Entry]]:
        """Every OpenSLO SLO objective as an entry of the file it is defined in."""
        out: list[tuple[_FileCheck, _Entry]] = []
        for obj in self.slos:
            out += [(obj.check, entry) for entry in self._slo(obj)]
        # Objects no SLO refers to are still checked (a typo must not pass silently) and named.
        for kind, checked in (("SLI", self._indicators), ("AlertPolicy", self._policies)):
            for obj in self.objects.get(kind, {}).values():
                if id(obj.root) not in checked:
                    if kind == "SLI":
                        self._indicator(obj, "spec")
                    else:
                        self._policy_conditions(obj, "spec")
                    obj.check.warn(obj.root, "metadata.name", f"no SLO uses the {kind} '{obj.name}'")
        for obj in self.objects.get("AlertCondition", {}).values():
            if id(obj.root) not in self._conditions:
                self._condition(obj, "spec")
                obj.check.warn(
                    obj.root, "metadata.name", f"no AlertPolicy uses the AlertCondition '{obj.name}'"
                )
        return out

    # --- SLO ------------------------------------------------------------------------------------

    def _slo(self, obj: _Object) -> list[_Entry]:
        check = obj.check
        before = len(check.problems)
        line = _line_of(obj.root)
        allowed = (
            "description",
            "service",
            "indicator",
            "indicatorRef",
            "timeWindow",
            "budgetingMethod",
            "objectives",
            "alertPolicies",
        )
        spec = _mapping(check, obj.spec, "spec", allowed, "an SLO spec")
        if spec is None:
            if obj.spec is None:
                check.problem(
                    line, "spec", "required field is missing; expected service, indicator, objectives"
                )
            return []
        service = _name(check, spec.get("service"), "spec.service", line, "service name")
        labels = _labels(check, obj.metadata.get("labels"), "metadata.labels")
        owner = _owner(check, labels, obj.metadata.get("labels") or line, "metadata.labels")
        indicator = self._indicator_of(check, spec, line)
        window = self._window(check, spec.get("timeWindow"))
        method = _text(check, spec, "budgetingMethod", "spec")
        if method is None and "budgetingMethod" not in spec:
            check.problem(
                line, "spec.budgetingMethod", "required field is missing; expected Occurrences or Timeslices"
            )
        elif method is not None and method not in ("Occurrences", "Timeslices"):
            why = (
                "averages the slices' ratios, which this product does not compute; "
                if method == "RatioTimeslices"
                else ""
            )
            check.problem(
                spec["budgetingMethod"],
                "spec.budgetingMethod",
                f"'{method}' {why}expected Occurrences or Timeslices",
            )
            method = None
        alerts, custom = self._alerts(check, spec.get("alertPolicies"), window)

        objectives = spec.get("objectives")
        if not isinstance(objectives, yaml.SequenceNode) or not objectives.value:
            got = "nothing" if objectives is None else _kind(objectives)
            check.problem(
                objectives or line, "spec.objectives", f"expected a non-empty list of objectives, got {got}"
            )
            return []
        if service is None:
            return []
        entries: list[_Entry] = []
        for index, node in enumerate(objectives.value):
            path = f"spec.objectives[{index}]"
            entry = self._objective(
                check,
                node,
                path,
                obj,
                index,
                len(objectives.value),
                service,
                owner,
                indicator,
                method,
                window,
            )
            if entry is None:
                continue
            ok = entry.slo is not None and alerts is not None and len(check.problems) == before
            slo = None
            if ok:
                assert entry.slo is not None and alerts is not None
                slo = replace(entry.slo, alerts=alerts, alerts_custom=custom)
            entries.append(replace(entry, slo=slo))
        return entries

    def _objective(
        self,
        check: _FileCheck,
        node: yaml.Node,
        path: str,
        obj: _Object,
        index: int,
        count: int,
        service: str,
        owner: str,
        indicator: _Indicator | None,
        method: str | None,
        window: SloWindow | None,
    ) -> _Entry | None:
        allowed = (
            "displayName",
            "name",
            "op",
            "value",
            "target",
            "targetPercent",
            "timeSliceTarget",
            "timeSliceWindow",
        )
        fields = _mapping(check, node, path, allowed, "an objective with target or targetPercent")
        if fields is None:
            return None
        line = _line_of(node)
        before = len(check.problems)
        name = obj.name
        if count > 1:
            suffix = _text(check, fields, "name", path) or str(index + 1)
            name = f"{obj.name}-{suffix}"
            if not NAME_PATTERN.fullmatch(name):
                check.problem(
                    fields.get("name", node),
                    f"{path}.name",
                    f"'{name}' is not a valid SLO name; {_NAME_EXPECTED}",
                )
                return None
        target = None
        given = [key for key in ("target", "targetPercent") if key in fields]
        if len(given) != 1:
            message = (
                "'target' and 'targetPercent' cannot be used together"
                if given
                else "required field is missing"
            )
            check.problem(
                fields.get("targetPercent", line),
                f"{path}.target",
                f"{message}; expected target like 0.999 or targetPercent like 99.9",
            )
        else:
            target = _target(
                check, fields[given[0]], f"{path}.{given[0]}", percent=given[0] == "targetPercent"
            )
        sli = self._sli(check, fields, path, line, indicator, method) if indicator is not None else None
        if sli is not None and sli.kind == "threshold" and count > 1:
            # each objective has its own threshold, so its own SLI (as a native spec would name it)
            sli = replace(sli, name=name)
        entry = _Entry(id=f"{service}/{name}", line=line, path=path, slo=None)
        if sli is None or target is None or window is None or len(check.problems) > before:
            return entry
        slo = Slo(
            service=service,
            name=name,
            owner=owner,
            sli=sli,
            target=target,
            window=window,
            alerts=default_alerts(window.minutes),
            alerts_custom=False,
            source_file=check.file,
            source_line=_line_of(obj.root),
        )
        return replace(entry, slo=slo)

    def _sli(
        self,
        check: _FileCheck,
        fields: dict[str, yaml.Node],
        path: str,
        line: int,
        indicator: _Indicator,
        method: str | None,
    ) -> Sli | None:
        """The model SLI for one objective: the indicator read with the budgeting method."""
        base = Sli(
            name=indicator.name,
            kind="ratio",
            category=_category(
                indicator.name,
                "threshold" if indicator.form == "threshold" or method == "Timeslices" else "ratio",
            ),
            description=indicator.description,
        )
        if method is None:
            return None
        slices = method == "Timeslices"
        if slices:
            self._slice_window(check, fields, path, line)
        if indicator.form == "threshold":
            op = _text(check, fields, "op", path)
            if op is None and "op" not in fields:
                check.problem(
                    line, f"{path}.op", "required for a thresholdMetric; expected lt, lte, gt or gte"
                )
            elif op is not None and op not in _OPS:
                check.problem(
                    fields["op"], f"{path}.op", f"'{op}' is not an operator; expected lt, lte, gt or gte"
                )
            if "value" not in fields:
                check.problem(
                    line, f"{path}.value", "required for a thresholdMetric; expected the threshold, like 0.4"
                )
                return None
            value = _number(check, fields["value"], f"{path}.value", "expected the threshold, like 0.4")
            if value is None or op not in _OPS:
                return None
            return replace(
                base,
                kind="threshold",
                threshold_query=indicator.query,
                threshold=float(value),
                comparison=_OPS[op],
                threshold_text=str(fields["value"].value),
            )
        if slices:
            if "timeSliceTarget" not in fields:
                check.problem(
                    line,
                    f"{path}.timeSliceTarget",
                    "required with Timeslices; expected a share of good events like 0.95",
                )
                return None
            share = _number(
                check, fields["timeSliceTarget"], f"{path}.timeSliceTarget", "expected a share like 0.95"
            )
            if share is None:
                return None
            if not 0 < share <= 1:
                check.problem(
                    fields["timeSliceTarget"],
                    f"{path}.timeSliceTarget",
                    f"{share} is out of range; expected a share in (0, 1] like 0.95",
                )
                return None
            # A minute is good when its good ratio is at least the share (bad ratio at most 1 − share).
            if indicator.form == "raw":
                query = indicator.query
                counts_good = indicator.raw_type == "success"
            else:
                query = f"({indicator.query})\n/\n({indicator.total})"
                counts_good = indicator.form == "good"
            threshold = share if counts_good else 1 - share
            return replace(
                base,
                kind="threshold",
                threshold_query=query,
                threshold=float(threshold),
                comparison=">=" if counts_good else "<=",
                threshold_text=str(threshold),
            )
        if indicator.form == "good":
            return replace(base, good_query=indicator.query, valid_query=indicator.total)
        if indicator.form == "bad":
            return replace(base, bad_query=indicator.query, valid_query=indicator.total)
        direction = "good" if indicator.raw_type == "success" else "bad"
        return replace(base, ratio_query=indicator.query, ratio_direction=direction)

    def _slice_window(self, check: _FileCheck, fields: dict[str, yaml.Node], path: str, line: int) -> None:
        node = fields.get("timeSliceWindow")
        if node is None:
            check.problem(line, f"{path}.timeSliceWindow", "required with Timeslices; expected 1m")
            return
        text = node.value.strip() if isinstance(node, yaml.ScalarNode) else ""
        if text not in ("1m", "1"):
            check.problem(
                node,
                f"{path}.timeSliceWindow",
                f"{_kind(node)}: time slices are one minute here (SLIs are counted in one-minute buckets); "
                "expected 1m",
            )

    def _window(self, check: _FileCheck, node: yaml.Node | None) -> SloWindow | None:
        path = "spec.timeWindow"
        if node is None:
            return parse_window("30d")
        if not isinstance(node, yaml.SequenceNode) or len(node.value) != 1:
            check.problem(node, path, f"expected a list of exactly one time window, got {_kind(node)}")
            return None
        item_path = f"{path}[0]"
        fields = _mapping(
            check, node.value[0], item_path, ("duration", "isRolling", "calendar"), "a time window"
        )
        if fields is None:
            return None
        duration = _required_text(
            check,
            {k: (v, v) for k, v in fields.items()},
            "duration",
            item_path,
            _line_of(node.value[0]),
            "a duration like 30d or 1M",
        )
        if duration is None:
            return None
        rolling_node = fields.get("isRolling")
        rolling = (
            rolling_node.value.lower() == "true"
            if isinstance(rolling_node, yaml.ScalarNode)
            else "calendar" not in fields
        )
        where = fields["duration"]
        if not rolling:
            if duration not in _CALENDAR_DURATIONS:
                check.problem(
                    where,
                    f"{item_path}.duration",
                    f"'{duration}' is not a supported calendar window; expected 1M (month) or 1Q (quarter)",
                )
                return None
            return parse_window(_CALENDAR_DURATIONS[duration])
        if duration[-1:] in ("M", "Q", "Y"):
            check.problem(
                where,
                f"{item_path}.duration",
                f"'{duration}' is a rolling window in months, quarters or years, which have no fixed length; "
                "expected days or weeks like 30d or 4w, or a calendar window (isRolling: false)",
            )
            return None
        try:
            return parse_window(duration)
        except ValueError as exc:
            check.problem(where, f"{item_path}.duration", str(exc))
            return None

    # --- SLI --------------------------------------------------------------------------------------

    def _indicator_of(self, check: _FileCheck, spec: dict[str, yaml.Node], line: int) -> _Indicator | None:
        given = [key for key in ("indicator", "indicatorRef") if key in spec]
        if len(given) != 1:
            message = (
                "'indicator' and 'indicatorRef' cannot be used together"
                if given
                else "required field is missing"
            )
            check.problem(
                spec.get("indicatorRef", line),
                "spec.indicator",
                f"{message}; expected an inline indicator or indicatorRef",
            )
            return None
        if given[0] == "indicatorRef":
            ref = _text(check, spec, "indicatorRef", "spec")
            target = self.objects.get("SLI", {}).get(ref or "")
            if ref is not None and target is None:
                known = ", ".join(sorted(self.objects.get("SLI", {}))) or "(none)"
                check.problem(
                    spec["indicatorRef"],
                    "spec.indicatorRef",
                    f"no SLI named '{ref}' in the specs; expected one of: {known}",
                )
            return None if target is None else self._indicator(target, "spec")
        node = spec["indicator"]
        top = _mapping(
            check, node, "spec.indicator", ("apiVersion", "kind", "metadata", "spec"), "an inline SLI"
        )
        if top is None:
            return None
        top.setdefault(
            "kind", yaml.ScalarNode("tag:yaml.org,2002:str", "SLI", node.start_mark, node.end_mark)
        )
        inline = self._object(check, node, top, "spec.indicator", kind="SLI")
        return None if inline is None else self._indicator(inline, "spec.indicator.spec")

    def _indicator(self, obj: _Object, path: str) -> _Indicator | None:
        """The checked SLI, checked once however many SLOs refer to it."""
        key = id(obj.root)
        if key not in self._indicators:
            self._indicators[key] = self._check_indicator(obj, path)
        return self._indicators[key]

    def _check_indicator(self, obj: _Object, path: str) -> _Indicator | None:
        check = obj.check
        line = _line_of(obj.root)
        spec = _mapping(
            check, obj.spec, path, ("description", "thresholdMetric", "ratioMetric"), "an SLI spec"
        )
        if spec is None:
            if obj.spec is None:
                check.problem(
                    line, path, "required field is missing; expected ratioMetric or thresholdMetric"
                )
            return None
        description = _text(check, spec, "description", path) or ""
        given = [key for key in ("thresholdMetric", "ratioMetric") if key in spec]
        if len(given) != 1:
            check.problem(
                spec.get("ratioMetric", line), path, "expected exactly one of ratioMetric or thresholdMetric"
            )
            return None
        if given == ["thresholdMetric"]:
            query = self._query(check, spec["thresholdMetric"], f"{path}.thresholdMetric")
            return None if query is None else _Indicator(obj.name, description, "threshold", query)
        ratio_path = f"{path}.ratioMetric"
        ratio = _mapping(
            check,
            spec["ratioMetric"],
            ratio_path,
            ("counter", "good", "bad", "total", "raw", "rawType"),
            "good/bad + total, or raw + rawType",
        )
        if ratio is None:
            return None
        where = _line_of(spec["ratioMetric"])
        if "raw" in ratio:
            for key in ("good", "bad", "total"):
                if key in ratio:
                    check.problem(
                        ratio[key],
                        f"{ratio_path}.{key}",
                        f"'{key}' cannot be used with 'raw'; expected raw + rawType, or good/bad + total",
                    )
            raw_type = _text(check, ratio, "rawType", ratio_path)
            if raw_type not in ("success", "failure"):
                check.problem(
                    ratio.get("rawType", where),
                    f"{ratio_path}.rawType",
                    "expected success (good/total) or failure (bad/total)",
                )
            query = self._query(check, ratio["raw"], f"{ratio_path}.raw")
            if query is not None and split_ratio(query) is None:
                check.problem(
                    ratio["raw"],
                    f"{ratio_path}.raw",
                    "a raw ratio needs exactly one top-level '/' (numerator / denominator) so its events can "
                    "be counted; wrap parts in parentheses, or use good/bad + total",
                )
                return None
            if query is None or raw_type not in ("success", "failure"):
                return None
            return _Indicator(obj.name, description, "raw", query, raw_type=raw_type)
        events = [key for key in ("good", "bad") if key in ratio]
        if len(events) != 1 or "total" not in ratio:
            check.problem(
                ratio.get("bad", where),
                ratio_path,
                "expected exactly one of good or bad, with total (or raw + rawType)",
            )
            return None
        numerator = self._query(check, ratio[events[0]], f"{ratio_path}.{events[0]}")
        total = self._query(check, ratio["total"], f"{ratio_path}.total")
        if numerator is None or total is None:
            return None
        return _Indicator(obj.name, description, events[0], numerator, total=total)

    def _query(self, check: _FileCheck, node: yaml.Node, path: str) -> str | None:
        """The Prometheus query of a metric: `metricSource` with type Prometheus and `spec.query`."""
        outer = _mapping(check, node, path, ("metricSource",), "a metricSource")
        if outer is None:
            return None
        if "metricSource" not in outer:
            check.problem(
                node,
                f"{path}.metricSource",
                "required field is missing; expected type: Prometheus and spec.query",
            )
            return None
        source_path = f"{path}.metricSource"
        source = _mapping(
            check, outer["metricSource"], source_path, ("metricSourceRef", "type", "spec"), "a metric source"
        )
        if source is None:
            return None
        kind = _text(check, source, "type", source_path)
        ref = _text(check, source, "metricSourceRef", source_path)
        if kind is None and ref is not None:
            data_source = self.objects.get("DataSource", {}).get(ref)
            if data_source is None:
                check.problem(
                    source["metricSourceRef"],
                    f"{source_path}.metricSourceRef",
                    f"no DataSource named '{ref}' in the specs; expected a DataSource of type Prometheus, "
                    "or type: Prometheus here",
                )
                return None
            ds_spec = _mapping(data_source.check, data_source.spec, "spec", None, "a DataSource spec") or {}
            kind = _text(data_source.check, ds_spec, "type", "spec")
        if kind is None or kind.lower() != "prometheus":
            got = f"'{kind}'" if kind else "no type"
            check.problem(
                source.get("type", outer["metricSource"]),
                f"{source_path}.type",
                f"{got}: only Prometheus metrics can be read; expected type: Prometheus",
            )
            return None
        spec = _mapping(check, source.get("spec"), f"{source_path}.spec", None, "spec with a query")
        if spec is None or "query" not in spec:
            check.problem(
                source.get("spec", outer["metricSource"]),
                f"{source_path}.spec.query",
                "required field is missing; expected a PromQL query",
            )
            return None
        return _text(check, spec, "query", f"{source_path}.spec")

    # --- alerts -----------------------------------------------------------------------------------

    def _alerts(
        self, check: _FileCheck, node: yaml.Node | None, window: SloWindow | None
    ) -> tuple[tuple[BurnRateAlert, ...] | None, bool]:
        if window is None:
            return None, False
        if node is None:
            return default_alerts(window.minutes), False
        path = "spec.alertPolicies"
        if not isinstance(node, yaml.SequenceNode):
            check.problem(node, path, f"expected a list of alert policies, got {_kind(node)}")
            return None, True
        alerts: list[BurnRateAlert] = []
        ok = True
        for index, item in enumerate(node.value):
            policy = self._policy(check, item, f"{path}[{index}]")
            if policy is None:
                ok = False
                continue
            for condition_path, condition_node, alert in policy:
                if alert is None:
                    ok = False
                elif alert.long_window > window.minutes:
                    condition_path.check.problem(
                        condition_node,
                        f"{condition_path.path}.lookbackWindow",
                        f"lookbackWindow {_duration_text(alert.long_window)} is longer than the SLO window "
                        f"{window.text}; expected a lookbackWindow within the window",
                    )
                    ok = False
                else:
                    alerts.append(alert)
        return (tuple(alerts) if ok else None), True

    def _policy(
        self, check: _FileCheck, node: yaml.Node, path: str
    ) -> list[tuple[_Where, yaml.Node, BurnRateAlert | None]] | None:
        top = _mapping(
            check,
            node,
            path,
            ("alertPolicyRef", "apiVersion", "kind", "metadata", "spec"),
            "an alert policy or alertPolicyRef",
        )
        if top is None:
            return None
        if "alertPolicyRef" in top:
            ref = _text(check, top, "alertPolicyRef", path)
            target = self.objects.get("AlertPolicy", {}).get(ref or "")
            if target is None:
                known = ", ".join(sorted(self.objects.get("AlertPolicy", {}))) or "(none)"
                check.problem(
                    top["alertPolicyRef"],
                    f"{path}.alertPolicyRef",
                    f"no AlertPolicy named '{ref}' in the specs; expected one of: {known}",
                )
                return None
            return self._policy_conditions(target, "spec")
        inline = self._object(check, node, top, path, kind="AlertPolicy")
        return None if inline is None else self._policy_conditions(inline, f"{path}.spec")

    def _policy_conditions(
        self, obj: _Object, path: str
    ) -> list[tuple[_Where, yaml.Node, BurnRateAlert | None]] | None:
        """The policy's conditions, checked once however many SLOs refer to it."""
        key = id(obj.root)
        if key not in self._policies:
            self._policies[key] = self._check_policy(obj, path)
        return self._policies[key]

    def _check_policy(
        self, obj: _Object, path: str
    ) -> list[tuple[_Where, yaml.Node, BurnRateAlert | None]] | None:
        check = obj.check
        allowed = (
            "description",
            "alertWhenNoData",
            "alertWhenResolved",
            "alertWhenBreaching",
            "conditions",
            "notificationTargets",
        )
        spec = _mapping(check, obj.spec, path, allowed, "an AlertPolicy spec")
        if spec is None:
            if obj.spec is None:
                check.problem(obj.root, path, "required field is missing; expected conditions")
            return None
        conditions = spec.get("conditions")
        if not isinstance(conditions, yaml.SequenceNode) or not conditions.value:
            got = "nothing" if conditions is None else _kind(conditions)
            check.problem(
                conditions or obj.root,
                f"{path}.conditions",
                f"expected a non-empty list of alert conditions, got {got}",
            )
            return None
        out: list[tuple[_Where, yaml.Node, BurnRateAlert | None]] = []
        for index, item in enumerate(conditions.value):
            item_path = f"{path}.conditions[{index}]"
            top = _mapping(
                check,
                item,
                item_path,
                ("conditionRef", "apiVersion", "kind", "metadata", "spec"),
                "an alert condition or conditionRef",
            )
            if top is None:
                out.append((_Where(check, item_path), item, None))
                continue
            if "conditionRef" in top:
                ref = _text(check, top, "conditionRef", item_path)
                target = self.objects.get("AlertCondition", {}).get(ref or "")
                if target is None:
                    known = ", ".join(sorted(self.objects.get("AlertCondition", {}))) or "(none)"
                    check.problem(
                        top["conditionRef"],
                        f"{item_path}.conditionRef",
                        f"no AlertCondition named '{ref}' in the specs; expected one of: {known}",
                    )
                    out.append((_Where(check, item_path), item, None))
                    continue
                out.append(
                    (_Where(target.check, "spec.condition"), target.root, self._condition(target, "spec"))
                )
            else:
                inline = self._object(check, item, top, item_path, kind="AlertCondition")
                alert = None if inline is None else self._condition(inline, f"{item_path}.spec")
                out.append((_Where(check, f"{item_path}.spec.condition"), item, alert))
        return out

    def _condition(self, obj: _Object, path: str) -> BurnRateAlert | None:
        key = id(obj.root)
        if key not in self._conditions:
            self._conditions[key] = self._check_condition(obj, path)
        return self._conditions[key]

    def _check_condition(self, obj: _Object, path: str) -> BurnRateAlert | None:
        check = obj.check
        line = _line_of(obj.root)
        spec = _mapping(
            check, obj.spec, path, ("description", "severity", "condition"), "an AlertCondition spec"
        )
        if spec is None:
            if obj.spec is None:
                check.problem(line, path, "required field is missing; expected severity and condition")
            return None
        before = len(check.problems)
        severity_text = _required_text(
            check, {k: (v, v) for k, v in spec.items()}, "severity", path, line, "page or ticket"
        )
        severity = _SEVERITY_ALIASES.get((severity_text or "").lower())
        if severity_text is not None and severity is None:
            check.problem(
                spec["severity"],
                f"{path}.severity",
                f"'{severity_text}' is not a severity; expected page (or critical), ticket (or warning)",
            )
        cpath = f"{path}.condition"
        condition = _mapping(
            check,
            spec.get("condition"),
            cpath,
            ("kind", "op", "threshold", "lookbackWindow", "alertAfter"),
            "a burnrate condition",
        )
        if condition is None:
            if "condition" not in spec:
                check.problem(
                    line,
                    cpath,
                    "required field is missing; expected kind: burnrate, threshold, lookbackWindow and "
                    "alertAfter",
                )
            return None
        cline = _line_of(spec["condition"])
        kind = _text(check, condition, "kind", cpath)
        if (kind or "").lower() != "burnrate":
            check.problem(
                condition.get("kind", cline),
                f"{cpath}.kind",
                f"'{kind}' conditions cannot be imported; expected kind: burnrate",
            )
        op = _text(check, condition, "op", cpath)
        if op is not None and op not in ("gt", "gte"):
            check.problem(
                condition["op"],
                f"{cpath}.op",
                f"'{op}' cannot fire on a high burn rate; expected gt (burn rates are compared with a "
                "strict >)",
            )
        elif op == "gte":
            check.warn(
                condition["op"],
                f"{cpath}.op",
                "gte is read as gt: burn-rate conditions are strict (>) here (DESIGN §2)",
            )
        factor = None
        if "threshold" not in condition:
            check.problem(
                cline,
                f"{cpath}.threshold",
                "required field is missing; expected the burn-rate factor, like 14.4",
            )
        else:
            factor = _number(
                check,
                condition["threshold"],
                f"{cpath}.threshold",
                "expected the burn-rate factor, like 14.4",
            )
            if factor is not None and factor <= 0:
                check.problem(
                    condition["threshold"],
                    f"{cpath}.threshold",
                    f"{factor} is not positive; expected a burn-rate factor like 14.4",
                )
        windows: dict[str, int] = {}
        for key, what in (
            ("lookbackWindow", "the long window, like 1h"),
            ("alertAfter", "the short window, like 5m"),
        ):
            text = _required_text(check, {k: (v, v) for k, v in condition.items()}, key, cpath, cline, what)
            if text is not None:
                try:
                    windows[key] = parse_duration(text)
                except ValueError as exc:
                    check.problem(condition[key], f"{cpath}.{key}", str(exc))
        long, short = windows.get("lookbackWindow"), windows.get("alertAfter")
        if long is not None and short is not None and short >= long:
            check.problem(
                condition["alertAfter"],
                f"{cpath}.alertAfter",
                "alertAfter is the short window and must be shorter than lookbackWindow; expected e.g. "
                "5m with 1h",
            )
        if (
            len(check.problems) > before
            or severity is None
            or factor is None
            or long is None
            or short is None
        ):
            return None
        return BurnRateAlert(severity, long_window=long, short_window=short, factor=float(factor))


@dataclass(frozen=True)
class _Where:
    """Where to report a problem found after resolving a reference: the file and the field path."""

    check: _FileCheck
    path: str


# ---------------------------------------------------------------------------------------------------
# The native form


def native_yaml(slos: Iterable[Slo]) -> str:
    """The native YAML of these SLOs: one document per service (and owner, cadence and policy)."""
    documents: list[dict[str, Any]] = []
    for slo in slos:
        key = (slo.service, slo.owner, slo.review_cadence, tuple(sorted(slo.policy.items())))
        doc = next((d for d in documents if d["_key"] == key), None)
        if doc is None:
            doc = {"_key": key, "service": slo.service, "owner": slo.owner}
            if slo.review_cadence:
                doc["review_cadence"] = slo.review_cadence
            doc["slis"], doc["slos"] = {}, []
            if slo.policy:
                doc["error_budget_policy"] = dict(slo.policy)
            documents.append(doc)
        sli_name = slo.sli.name
        native_sli = _native_sli(slo.sli)
        if doc["slis"].get(sli_name, native_sli) != native_sli:
            sli_name = slo.name if slo.name not in doc["slis"] else f"{slo.name}-sli"
            native_sli = _native_sli(replace(slo.sli, name=sli_name))
        doc["slis"][sli_name] = native_sli
        entry: dict[str, Any] = {"sli": sli_name}
        if slo.name != sli_name:
            entry["name"] = slo.name
        entry["target"] = _target_text(slo.target)
        entry["window"] = slo.window.text
        if slo.error_budget_text:
            entry["error_budget"] = slo.error_budget_text
        if slo.alerts_custom:
            entry["burn_rate_alerts"] = [
                {
                    "severity": alert.severity,
                    "long_window": _duration_text(alert.long_window),
                    "short_window": _duration_text(alert.short_window),
                    "burn_rate": f"{alert.factor!r}x",
                }
                for alert in slo.alerts
            ]
        doc["slos"].append(entry)
    for doc in documents:
        doc.pop("_key")
        # keep the policy last, as in the seed
        if "error_budget_policy" in doc:
            doc["error_budget_policy"] = doc.pop("error_budget_policy")
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def _target_text(target: float) -> str | float:
    """`99.9%` when that reads back as exactly the same number, else the fraction itself."""
    text = f"{target * 100:.10g}%"
    return text if parse_target(text) == target else target


def _native_sli(sli: Sli) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sli.description:
        out["description"] = sli.description
    out["category"] = sli.category
    if sli.kind == "threshold":
        out["metric"] = sli.threshold_query
        out["threshold"] = sli.threshold_text or repr(sli.threshold)
        if sli.comparison != "<=":
            out["comparison"] = sli.comparison
    elif sli.ratio_query is not None:
        out["metric"] = sli.ratio_query
        out["direction"] = sli.ratio_direction
    else:
        if sli.good_query is not None:
            out["good"] = sli.good_query
        if sli.bad_query is not None:
            out["bad"] = sli.bad_query
        out["valid"] = sli.valid_query
    if sli.good_event:
        out["good_event"] = sli.good_event
    if sli.valid_event:
        out["valid_event"] = sli.valid_event
    return out


class _Dumper(yaml.SafeDumper):
    """Multi-line queries as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)
