"""OpenSLO `openslo/v1alpha` SLOs, the OpenSLO form Sloth reads (`sloth generate` accepts it).

Read as Sloth reads it: `kind: SLO`; each `spec.objectives[i]` with `ratioMetrics` (`good` and
`total`, `source: prometheus` or `sloth`, `queryType: promql`) and `target` (a fraction) is one SLO
named `<metadata.name>-<i>` of `spec.service`, with `spec.description`; one rolling time window
(Sloth supports 30 days only; any whole number of days or weeks is read here). The events are
`good` + `valid` (Sloth itself turns them into the error ratio `1 - good/total`; the events keep
busy minutes weighing more). v1alpha has no alerting: where Sloth then generates no alerts at all,
the product's default page and ticket alerts apply, as for OpenSLO v1 SLOs without alert policies.

Refused, with what to write instead: `thresholdMetric`/`indicator` SLIs, `Timeslices`, calendar
windows, several windows, other sources or query types, `counter: false` (gauges).
"""

from __future__ import annotations

import yaml

from pipelines.model import Sli, Slo, SloWindow
from pipelines.query_shape import event_query_problem
from pipelines.specs.nodes import (
    Entry,
    FileCheck,
    default_category,
    line_of,
    node_kind,
    read_labels,
    read_mapping,
    read_name,
    read_owner,
    read_text,
)
from pipelines.specs.values import (
    NAME_EXPECTED,
    NAME_PATTERN,
    default_alert_adjustment,
    default_alerts,
    parse_target,
    parse_window,
)

OPENSLO_V1ALPHA_API = "openslo/v1alpha"
SOURCES = ("prometheus", "sloth")
# v1alpha time window units read as rolling windows, in the native duration unit.
ROLLING_UNITS = {"day": "d", "week": "w"}
INSTEAD = "or write the SLO in openslo/v1 or the native format"


def check_openslo_v1alpha(check: FileCheck, root: yaml.Node) -> list[Entry]:
    """One `openslo/v1alpha` document: its SLOs (one per objective), problems reported to `check`."""
    top = read_mapping(check, root, "", ("apiVersion", "kind", "metadata", "spec"), "an OpenSLO v1alpha SLO")
    if top is None:
        return []
    kind = read_text(check, top, "kind", "")
    if kind != "SLO":
        check.problem(
            top.get("kind", root),
            "kind",
            f"'{kind}' is not read from openslo/v1alpha (Sloth reads only kind SLO); expected kind: SLO, "
            "or the object in openslo/v1",
        )
        return []
    line = line_of(root)
    metadata = read_mapping(check, top.get("metadata"), "metadata", ("name", "displayName", "labels"), "name")
    if metadata is None:
        check.problem(top.get("metadata", root), "metadata", "required field is missing; expected name")
        return []
    name = read_name(check, metadata.get("name"), "metadata.name", line, "SLO name")
    labels = read_labels(check, metadata.get("labels"), "metadata.labels")
    spec = read_mapping(
        check,
        top.get("spec"),
        "spec",
        ("service", "description", "budgetingMethod", "timeWindows", "objectives", "indicator"),
        "service, budgetingMethod, timeWindows and objectives",
    )
    if spec is None:
        if "spec" not in top:
            check.problem(root, "spec", "required field is missing; expected service and objectives")
        return []
    before = len(check.problems)
    service = read_name(check, spec.get("service"), "spec.service", line, "service name")
    description = read_text(check, spec, "description", "spec") or ""
    if "indicator" in spec:
        check.problem(
            spec["indicator"],
            "spec.indicator",
            "a v1alpha thresholdMetric indicator is not read (Sloth reads ratioMetrics only); expected "
            f"objectives[].ratioMetrics with good and total, {INSTEAD} (threshold SLIs with comparison)",
        )
    method = read_text(check, spec, "budgetingMethod", "spec")
    if method is not None and method != "Occurrences":
        check.problem(
            spec["budgetingMethod"],
            "spec.budgetingMethod",
            f"'{method}' is not read from openslo/v1alpha; expected Occurrences (events), {INSTEAD}",
        )
    window = _window(check, spec.get("timeWindows"), line)
    objectives = spec.get("objectives")
    if not isinstance(objectives, yaml.SequenceNode) or not objectives.value:
        got = "nothing" if objectives is None else node_kind(objectives)
        check.problem(
            objectives or line, "spec.objectives", f"expected a non-empty list of objectives, got {got}"
        )
        return []
    owner = read_owner(check, labels, metadata.get("labels") or line, "metadata.labels")
    entries = []
    for index, node in enumerate(objectives.value):
        path = f"spec.objectives[{index}]"
        slo_name = f"{name}-{index}" if name is not None else None
        if slo_name is not None and not NAME_PATTERN.fullmatch(slo_name):
            check.problem(node, path, f"'{slo_name}' is not an SLO name; {NAME_EXPECTED}")
            slo_name = None
        sli_target = _objective(check, node, path, slo_name or "sli", description)
        if service is None or slo_name is None:
            continue
        slo = None
        if sli_target is not None and window is not None and len(check.problems) == before:
            sli, target = sli_target
            alerts = default_alerts(window.minutes)
            adjustment = default_alert_adjustment(window.minutes)
            if adjustment:
                check.warn(line, "spec.timeWindows", adjustment)
            slo = Slo(
                service=service,
                name=slo_name,
                owner=owner,
                sli=sli,
                target=target,
                window=window,
                alerts=alerts,
                alerts_custom=False,
                source_file=check.file,
                source_line=line_of(node),
            )
        entries.append(Entry(id=f"{service}/{slo_name}", line=line_of(node), path=path, slo=slo))
    return entries


def _window(check: FileCheck, node: yaml.Node | None, line: int) -> SloWindow | None:
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != 1:
        got = (
            "nothing"
            if node is None
            else (f"{len(node.value)} windows" if isinstance(node, yaml.SequenceNode) else node_kind(node))
        )
        check.problem(
            node or line,
            "spec.timeWindows",
            f"expected one rolling window like [{{count: 30, unit: Day, isRolling: true}}], got {got}",
        )
        return None
    item = read_mapping(
        check,
        node.value[0],
        "spec.timeWindows[0]",
        ("count", "unit", "isRolling", "calendar"),
        "count, unit and isRolling",
    )
    if item is None:
        return None
    path = "spec.timeWindows[0]"
    rolling = read_text(check, item, "isRolling", path)
    if "calendar" in item or (rolling is not None and rolling.lower() != "true"):
        check.problem(
            item.get("calendar") or item["isRolling"],
            path,
            "calendar windows are not read from openslo/v1alpha (Sloth reads a rolling window only); "
            f"expected isRolling: true with a count of days, {INSTEAD} (window: month or quarter)",
        )
        return None
    count = read_text(check, item, "count", path)
    unit = read_text(check, item, "unit", path)
    if count is None or unit is None:
        if "count" not in item or "unit" not in item:
            check.problem(
                node.value[0], path, "required field is missing; expected count and unit, like 30 and Day"
            )
        return None
    suffix = ROLLING_UNITS.get(unit.lower())
    if suffix is None or not count.isdigit():
        check.problem(
            item["unit"] if suffix is None else item["count"],
            path,
            f"'{count} {unit}' is not a rolling window read here; expected a whole count of Day or Week "
            "(Sloth supports 30 Day)",
        )
        return None
    try:
        return parse_window(f"{count}{suffix}")
    except ValueError as exc:
        check.problem(item["count"], f"{path}.count", str(exc))
        return None


def _objective(
    check: FileCheck, node: yaml.Node, path: str, name: str, description: str
) -> tuple[Sli, float] | None:
    fields = read_mapping(
        check,
        node,
        path,
        ("displayName", "op", "value", "target", "timeSliceTarget", "ratioMetrics"),
        "an objective with ratioMetrics and target",
    )
    if fields is None:
        return None
    before = len(check.problems)
    target = None
    target_text = read_text(check, fields, "target", path)
    if target_text is None and "target" not in fields:
        check.problem(node, f"{path}.target", "required field is missing; expected a fraction like 0.999")
    elif target_text is not None:
        try:
            target = parse_target(target_text)
        except ValueError as exc:
            check.problem(fields["target"], f"{path}.target", str(exc))
    if "ratioMetrics" not in fields:
        check.problem(
            node,
            f"{path}.ratioMetrics",
            "required field is missing; expected ratioMetrics with good and total queries (Sloth reads only "
            f"ratio objectives), {INSTEAD}",
        )
        return None
    ratio_path = f"{path}.ratioMetrics"
    ratio = read_mapping(
        check, fields["ratioMetrics"], ratio_path, ("counter", "good", "total"), "good and total"
    )
    if ratio is None:
        return None
    counter = read_text(check, ratio, "counter", ratio_path)
    if counter is not None and counter.lower() == "false":
        check.problem(
            ratio["counter"],
            f"{ratio_path}.counter",
            "counter: false (gauges) is not read: the events are counted as per-minute increases of "
            "counters; expected counters (counter: true or left out), or a native threshold SLI on the gauge",
        )
    queries: dict[str, str] = {}
    for key in ("good", "total"):
        query = _query(check, ratio.get(key), f"{ratio_path}.{key}", node)
        if query is not None:
            queries[key] = query
    if len(check.problems) > before or target is None or len(queries) != 2:
        return None
    sli = Sli(
        name=name,
        kind="ratio",
        category=default_category(name, "ratio"),
        description=description,
        good_query=queries["good"],
        valid_query=queries["total"],
    )
    return sli, target


def _query(check: FileCheck, node: yaml.Node | None, path: str, parent: yaml.Node) -> str | None:
    fields = read_mapping(
        check, node, path, ("source", "queryType", "query", "metadata"), "source, queryType, query"
    )
    if fields is None:
        if node is None:
            check.problem(parent, path, "required field is missing; expected source, queryType and query")
        return None
    source = read_text(check, fields, "source", path)
    if source is not None and source.lower() not in SOURCES:
        check.problem(
            fields["source"],
            f"{path}.source",
            f"'{source}' is not a source read here; expected prometheus (or sloth), "
            f"{INSTEAD} for other sources",
        )
    query_type = read_text(check, fields, "queryType", path)
    if query_type is not None and query_type.lower() != "promql":
        check.problem(
            fields["queryType"], f"{path}.queryType", f"'{query_type}' is not read; expected promql"
        )
    query = read_text(check, fields, "query", path)
    if query is None:
        if "query" not in fields:
            check.problem(
                node or parent, f"{path}.query", "required field is missing; expected a PromQL query"
            )
        return None
    problem = event_query_problem(query)
    if problem is not None:
        check.problem(fields["query"], f"{path}.query", problem)
        return None
    return query.strip()
