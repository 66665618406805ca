"""OpenSLO v1 specs read into the same model as native ones. Pure: `pipelines.specs.load_specs` hands
it composed YAML nodes.

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
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field, replace
from decimal import Decimal

import yaml

from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow
from pipelines.promql import (
    SLICE_WINDOW,
    WINDOW_PLACEHOLDER,
    fill_window,
    per_minute_increase,
    split_ratio,
)
from pipelines.query_shape import event_query_problem
from pipelines.specs.nodes import (
    Entry,
    FileCheck,
    default_category,
    is_null,
    line_of,
    node_kind,
    read_labels,
    read_mapping,
    read_name,
    read_number,
    read_owner,
    read_target,
    read_text,
    required_text,
)
from pipelines.specs.values import (
    NAME_EXPECTED,
    NAME_PATTERN,
    calendar_window,
    check_time_zone,
    default_alert_adjustment,
    default_alerts,
    duration_text,
    parse_duration,
    parse_local_start,
    parse_window,
)

OPENSLO_API = "openslo/v1"

OPENSLO_KINDS = (
    "SLO",
    "SLI",
    "AlertPolicy",
    "AlertCondition",
    "DataSource",
    "Service",
    "AlertNotificationTarget",
)
_SEVERITY_ALIASES = {"page": "page", "critical": "page", "ticket": "ticket", "warning": "ticket"}
_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
# A threshold slice with timeSliceTarget below 1 samples its minute at this step (a common scrape interval).
SLICE_SAMPLE_STEP = "15s"
_CALENDAR_DURATIONS = {"1d": "day", "1w": "week", "1M": "month", "1Q": "quarter", "1Y": "year"}


@dataclass
class _Object:
    """One OpenSLO object: the file it is in, its metadata.name and its spec node."""

    check: FileCheck
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

    def add(self, check: FileCheck, root: yaml.Node) -> None:
        """Collect one `apiVersion: openslo/v1` document (problems with its envelope go to `check`)."""
        top = read_mapping(check, root, "", ("apiVersion", "kind", "metadata", "spec"), "an OpenSLO object")
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
                f"{line_of(first.root)}); expected each {obj.kind} name once",
            )
            return
        known[obj.name] = obj

    def _object(
        self,
        check: FileCheck,
        root: yaml.Node,
        top: dict[str, yaml.Node],
        path: str,
        kind: str | None = None,
    ) -> _Object | None:
        prefix = f"{path}." if path else ""
        found = read_text(check, top, "kind", path)
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
        metadata = read_mapping(
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
        name = read_name(
            check, metadata.get("name"), f"{prefix}metadata.name", line_of(root), f"{found} name"
        )
        if name is None:
            return None
        return _Object(check, found, name, root, metadata, top.get("spec"))

    def resolve(self) -> list[tuple[FileCheck, Entry]]:
        """Every OpenSLO SLO objective as an entry of the file it is defined in."""
        out: list[tuple[FileCheck, Entry]] = []
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

    def _slo(self, obj: _Object) -> list[Entry]:
        check = obj.check
        before = len(check.problems)
        line = line_of(obj.root)
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
        spec = read_mapping(check, obj.spec, "spec", allowed, "an SLO spec")
        if spec is None:
            if obj.spec is None:
                check.problem(
                    line, "spec", "required field is missing; expected service, indicator, objectives"
                )
            return []
        service = read_name(check, spec.get("service"), "spec.service", line, "service name")
        labels = read_labels(check, obj.metadata.get("labels"), "metadata.labels")
        owner = read_owner(check, labels, obj.metadata.get("labels") or line, "metadata.labels")
        indicator = self._indicator_of(check, spec, line)
        window = self._window(check, spec.get("timeWindow"))
        method = read_text(check, spec, "budgetingMethod", "spec")
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
        if window is not None and not custom:
            adjustment = default_alert_adjustment(window.minutes)  # a short window's defaults (DESIGN §2)
            if adjustment:
                check.warn(spec.get("timeWindow") or obj.root, "spec.timeWindow", adjustment)

        objectives = spec.get("objectives")
        if not isinstance(objectives, yaml.SequenceNode) or not objectives.value:
            got = "nothing" if objectives is None else node_kind(objectives)
            check.problem(
                objectives or line, "spec.objectives", f"expected a non-empty list of objectives, got {got}"
            )
            return []
        if service is None:
            return []
        entries: list[Entry] = []
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
        check: FileCheck,
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
    ) -> Entry | None:
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
        fields = read_mapping(check, node, path, allowed, "an objective with target or targetPercent")
        if fields is None:
            return None
        line = line_of(node)
        before = len(check.problems)
        name = obj.name
        if count > 1:
            suffix = read_text(check, fields, "name", path) or str(index + 1)
            name = f"{obj.name}-{suffix}"
            if not NAME_PATTERN.fullmatch(name):
                check.problem(
                    fields.get("name", node),
                    f"{path}.name",
                    f"'{name}' is not a valid SLO name; {NAME_EXPECTED}",
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
            target = read_target(
                check, fields[given[0]], f"{path}.{given[0]}", percent=given[0] == "targetPercent"
            )
        sli = self._sli(check, fields, path, line, indicator, method) if indicator is not None else None
        if sli is not None and sli.kind == "threshold" and count > 1:
            # each objective has its own threshold, so its own SLI (as a native spec would name it)
            sli = replace(sli, name=name)
        entry = Entry(id=f"{service}/{name}", line=line, path=path, slo=None)
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
            source_line=line_of(obj.root),
        )
        return replace(entry, slo=slo)

    def _sli(
        self,
        check: FileCheck,
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
            category=default_category(
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
            op = read_text(check, fields, "op", path)
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
            value = read_number(check, fields["value"], f"{path}.value", "expected the threshold, like 0.4")
            share: Decimal | None = Decimal(1)
            if slices and "timeSliceTarget" in fields:
                share = self._slice_share(check, fields, path)
            if value is None or op not in _OPS or not share:
                return None
            if share < 1:
                # timeSliceTarget below 1: the minute is good when at least that share of its sample
                # instants (every SLICE_SAMPLE_STEP) meet the threshold; `>= -Inf` drops NaN (no data).
                met = f"(\n{_indent(indicator.query)}\n) >= -Inf {_OPS[op]} bool {float(value)!r}"
                return replace(
                    base,
                    kind="threshold",
                    threshold_query=f"avg_over_time((\n{_indent(met)}\n)[{SLICE_WINDOW}:{SLICE_SAMPLE_STEP}])",
                    threshold=float(share),
                    comparison=">=",
                    threshold_text=str(share),
                )
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
            share = self._slice_share(check, fields, path)
            if share is None:
                return None
            # A minute is good when its good ratio is at least the share (bad ratio at most 1 − share).
            if indicator.form == "raw":
                query = indicator.query
                counts_good = indicator.raw_type == "success"
            else:
                # Counters: the slice is the minute's own ratio, good (or bad) increase over total
                # increase in that minute, never a ratio of the counters' lifetime totals.
                assert indicator.total is not None
                query = f"{_slice_part(indicator.query)}\n/\n{_slice_part(indicator.total)}"
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

    def _slice_share(self, check: FileCheck, fields: dict[str, yaml.Node], path: str) -> Decimal | None:
        """timeSliceTarget, a share in (0, 1]."""
        share = read_number(
            check, fields["timeSliceTarget"], f"{path}.timeSliceTarget", "expected a share like 0.95"
        )
        if share is not None and not 0 < share <= 1:
            check.problem(
                fields["timeSliceTarget"],
                f"{path}.timeSliceTarget",
                f"{share} is out of range; expected a share in (0, 1] like 0.95",
            )
            return None
        return share

    def _slice_window(self, check: FileCheck, fields: dict[str, yaml.Node], path: str, line: int) -> None:
        node = fields.get("timeSliceWindow")
        if node is None:
            check.problem(line, f"{path}.timeSliceWindow", "required with Timeslices; expected 1m")
            return
        text = node.value.strip() if isinstance(node, yaml.ScalarNode) else ""
        if text not in ("1m", "1"):
            check.problem(
                node,
                f"{path}.timeSliceWindow",
                f"{node_kind(node)}: time slices are one minute here "
                "(SLIs are counted in one-minute buckets); expected 1m",
            )

    def _window(self, check: FileCheck, node: yaml.Node | None) -> SloWindow | None:
        path = "spec.timeWindow"
        if node is None:
            return parse_window("30d")
        if not isinstance(node, yaml.SequenceNode) or len(node.value) != 1:
            check.problem(node, path, f"expected a list of exactly one time window, got {node_kind(node)}")
            return None
        item_path = f"{path}[0]"
        fields = read_mapping(
            check, node.value[0], item_path, ("duration", "isRolling", "calendar"), "a time window"
        )
        if fields is None:
            return None
        duration = required_text(
            check,
            {k: (v, v) for k, v in fields.items()},
            "duration",
            item_path,
            line_of(node.value[0]),
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
                    f"'{duration}' is not a supported calendar window; expected 1d (day), 1w (week), "
                    "1M (month), 1Q (quarter) or 1Y (year), or a rolling window (isRolling: true)",
                )
                return None
            return self._calendar(check, fields.get("calendar"), f"{item_path}.calendar", duration)
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

    def _calendar(
        self, check: FileCheck, node: yaml.Node | None, path: str, duration: str
    ) -> SloWindow | None:
        """A calendar window: `timeZone` (IANA, default UTC) and `startTime` (local, default the
        unit's natural start) validated and carried in the model."""
        unit = _CALENDAR_DURATIONS[duration]
        if node is None or is_null(node):
            return calendar_window(unit)
        fields = read_mapping(check, node, path, ("startTime", "timeZone"), "startTime and timeZone")
        if fields is None:
            return None
        values: dict[str, str | None] = {}
        for key in ("timeZone", "startTime"):
            values[key] = read_text(check, fields, key, path) if key in fields else None
        try:
            zone = check_time_zone(values["timeZone"]) if values["timeZone"] is not None else None
        except ValueError as exc:
            check.problem(fields["timeZone"], f"{path}.timeZone", str(exc))
            return None
        try:
            start = parse_local_start(values["startTime"]) if values["startTime"] is not None else None
        except ValueError as exc:
            check.problem(fields["startTime"], f"{path}.startTime", str(exc))
            return None
        return calendar_window(unit, zone, start)

    # --- SLI --------------------------------------------------------------------------------------

    def _indicator_of(self, check: FileCheck, spec: dict[str, yaml.Node], line: int) -> _Indicator | None:
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
            ref = read_text(check, spec, "indicatorRef", "spec")
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
        top = read_mapping(
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
        line = line_of(obj.root)
        spec = read_mapping(
            check, obj.spec, path, ("description", "thresholdMetric", "ratioMetric"), "an SLI spec"
        )
        if spec is None:
            if obj.spec is None:
                check.problem(
                    line, path, "required field is missing; expected ratioMetric or thresholdMetric"
                )
            return None
        description = read_text(check, spec, "description", path) or ""
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
        ratio = read_mapping(
            check,
            spec["ratioMetric"],
            ratio_path,
            ("counter", "good", "bad", "total", "raw", "rawType"),
            "good/bad + total, or raw + rawType",
        )
        if ratio is None:
            return None
        where = line_of(spec["ratioMetric"])
        if "raw" in ratio:
            for key in ("good", "bad", "total"):
                if key in ratio:
                    check.problem(
                        ratio[key],
                        f"{ratio_path}.{key}",
                        f"'{key}' cannot be used with 'raw'; expected raw + rawType, or good/bad + total",
                    )
            raw_type = read_text(check, ratio, "rawType", ratio_path)
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
        counter = ratio.get("counter")
        if isinstance(counter, yaml.ScalarNode) and counter.value.strip().lower() == "false":
            # A gauge's good/total are not event counts: neither its increase nor its sum over a
            # window counts events, and the engine counts whole events per minute.
            check.problem(
                counter,
                f"{ratio_path}.counter",
                "counter: false (gauges) cannot be counted as events here; expected counter: true with "
                "counter queries (like http_requests_total), or raw + rawType with the gauge ratio, or "
                "a thresholdMetric on the gauge with budgetingMethod: Timeslices",
            )
            return None
        numerator = self._query(check, ratio[events[0]], f"{ratio_path}.{events[0]}", events=True)
        total = self._query(check, ratio["total"], f"{ratio_path}.total", events=True)
        if numerator is None or total is None:
            return None
        return _Indicator(obj.name, description, events[0], numerator, total=total)

    def _query(self, check: FileCheck, node: yaml.Node, path: str, events: bool = False) -> str | None:
        """The Prometheus query of a metric: `metricSource` with type Prometheus and `spec.query`;
        with `events`, one the pull and the rules can count events from (`query_shape`)."""
        outer = read_mapping(check, node, path, ("metricSource",), "a metricSource")
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
        source = read_mapping(
            check, outer["metricSource"], source_path, ("metricSourceRef", "type", "spec"), "a metric source"
        )
        if source is None:
            return None
        kind = read_text(check, source, "type", source_path)
        ref = read_text(check, source, "metricSourceRef", source_path)
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
            ds_spec = (
                read_mapping(data_source.check, data_source.spec, "spec", None, "a DataSource spec") or {}
            )
            kind = read_text(data_source.check, ds_spec, "type", "spec")
        if kind is None or kind.lower() != "prometheus":
            got = f"'{kind}'" if kind else "no type"
            check.problem(
                source.get("type", outer["metricSource"]),
                f"{source_path}.type",
                f"{got}: only Prometheus metrics can be read; expected type: Prometheus",
            )
            return None
        spec = read_mapping(check, source.get("spec"), f"{source_path}.spec", None, "spec with a query")
        if spec is None or "query" not in spec:
            check.problem(
                source.get("spec", outer["metricSource"]),
                f"{source_path}.spec.query",
                "required field is missing; expected a PromQL query",
            )
            return None
        query = read_text(check, spec, "query", f"{source_path}.spec")
        problem = event_query_problem(query) if events and query is not None else None
        if problem is not None:
            check.problem(spec["query"], f"{source_path}.spec.query", problem)
            return None
        return query

    # --- alerts -----------------------------------------------------------------------------------

    def _alerts(
        self, check: FileCheck, node: yaml.Node | None, window: SloWindow | None
    ) -> tuple[tuple[BurnRateAlert, ...] | None, bool]:
        if window is None:
            return None, False
        if node is None or is_null(node) or (isinstance(node, yaml.SequenceNode) and not node.value):
            # absent, `alertPolicies:` or `alertPolicies: []` (what `oslo fmt` writes): no policy of
            # the spec's own, so the DESIGN §2 defaults, as for a native spec without burn_rate_alerts
            return default_alerts(window.minutes), False
        path = "spec.alertPolicies"
        if not isinstance(node, yaml.SequenceNode):
            check.problem(node, path, f"expected a list of alert policies, got {node_kind(node)}")
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
                        f"lookbackWindow {duration_text(alert.long_window)} is longer than the SLO window "
                        f"{window.text}; expected a lookbackWindow within the window",
                    )
                    ok = False
                else:
                    alerts.append(alert)
        return (tuple(alerts) if ok else None), True

    def _policy(
        self, check: FileCheck, node: yaml.Node, path: str
    ) -> list[tuple[_Where, yaml.Node, BurnRateAlert | None]] | None:
        top = read_mapping(
            check,
            node,
            path,
            ("alertPolicyRef", "apiVersion", "kind", "metadata", "spec"),
            "an alert policy or alertPolicyRef",
        )
        if top is None:
            return None
        if "alertPolicyRef" in top:
            ref = read_text(check, top, "alertPolicyRef", path)
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
        spec = read_mapping(check, obj.spec, path, allowed, "an AlertPolicy spec")
        if spec is None:
            if obj.spec is None:
                check.problem(obj.root, path, "required field is missing; expected conditions")
            return None
        conditions = spec.get("conditions")
        if not isinstance(conditions, yaml.SequenceNode) or not conditions.value:
            got = "nothing" if conditions is None else node_kind(conditions)
            check.problem(
                conditions or obj.root,
                f"{path}.conditions",
                f"expected a non-empty list of alert conditions, got {got}",
            )
            return None
        out: list[tuple[_Where, yaml.Node, BurnRateAlert | None]] = []
        for index, item in enumerate(conditions.value):
            item_path = f"{path}.conditions[{index}]"
            top = read_mapping(
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
                ref = read_text(check, top, "conditionRef", item_path)
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
        line = line_of(obj.root)
        spec = read_mapping(
            check, obj.spec, path, ("description", "severity", "condition"), "an AlertCondition spec"
        )
        if spec is None:
            if obj.spec is None:
                check.problem(line, path, "required field is missing; expected severity and condition")
            return None
        before = len(check.problems)
        severity_text = required_text(
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
        condition = read_mapping(
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
        cline = line_of(spec["condition"])
        # OpenSLO v1: the condition kind defaults to burnrate.
        kind = read_text(check, condition, "kind", cpath) if "kind" in condition else "burnrate"
        if (kind or "").lower() != "burnrate":
            check.problem(
                condition.get("kind", cline),
                f"{cpath}.kind",
                f"'{kind}' conditions cannot be imported; expected kind: burnrate",
            )
        op = read_text(check, condition, "op", cpath)
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
                "gte is read as gt: burn-rate conditions are strict (>) here",
            )
        factor = None
        if "threshold" not in condition:
            check.problem(
                cline,
                f"{cpath}.threshold",
                "required field is missing; expected the burn-rate factor, like 14.4",
            )
        else:
            factor = read_number(
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
            if key == "alertAfter" and _is_zero_duration(condition.get(key)):
                continue  # OpenSLO v1: alertAfter defaults to 0m (handled below)
            text = required_text(check, {k: (v, v) for k, v in condition.items()}, key, cpath, cline, what)
            if text is not None:
                try:
                    windows[key] = parse_duration(text)
                except ValueError as exc:
                    check.problem(condition[key], f"{cpath}.{key}", str(exc))
        long, short = windows.get("lookbackWindow"), windows.get("alertAfter")
        if long is not None and "alertAfter" not in windows:
            # alertAfter 0m (the default): no debounce asked for. This product debounces with a short
            # window instead of `for:`; it takes the SRE Workbook's ratio, 1/12 of the long window
            # (1h → 5m, 6h → 30m, 1d → 2h, 3d → 6h), at least one minute.
            short = max(1, long // 12)
            check.warn(
                condition.get("alertAfter", cline),
                f"{cpath}.alertAfter",
                f"no alertAfter (OpenSLO default 0m): the short window is {duration_text(short)}, "
                f"1/12 of lookbackWindow {duration_text(long)} as in the SRE Workbook; write alertAfter to "
                "choose it",
            )
        if long is not None and short is not None and short >= long:
            check.problem(
                condition.get("alertAfter", cline),
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


def _indent(query: str) -> str:
    return textwrap.indent(textwrap.dedent(query.strip()), "  ")


def _slice_part(query: str) -> str:
    """One side of a Timeslices counter ratio as the minute's increase of one series: a query already
    written that way with {{.window}} (`sum(increase(x[{{.window}}]))`) is kept as written; any other
    (`x_total`, `rate(x[5m])`, no sum) becomes `sum(increase(x[1m]))`."""
    per_minute = per_minute_increase(query)
    if WINDOW_PLACEHOLDER.search(query) and per_minute == fill_window(query):
        return f"({query.strip()})"
    return per_minute


def _is_zero_duration(node: yaml.Node | None) -> bool:
    """No alertAfter, or one of zero length (`0m`, `0s`, `0`): OpenSLO's default."""
    if node is None or is_null(node):
        return True
    if not isinstance(node, yaml.ScalarNode):
        return False
    text = node.value.strip()
    return text.rstrip("smhdw").strip() in ("0", "") and text[:1] == "0"


@dataclass(frozen=True)
class _Where:
    """Where to report a problem found after resolving a reference: the file and the field path."""

    check: FileCheck
    path: str
