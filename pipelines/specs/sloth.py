"""Sloth specs read into the same model as native ones.

Sloth (`version: prometheus/v1`, or `apiVersion: sloth.slok.dev/v1` + `kind: PrometheusServiceLevel`
with camelCase fields): `objective` is a percentage, `events` error/total queries → bad + valid,
`raw.error_ratio_query` → a bad ratio metric; the window is Sloth's default 30d (or the `sloPeriod` of
an `AlertWindows` document in the same file, whose windows then replace the defaults); the alerts are
the default page and ticket pairs (Sloth's own), minus a disabled `page_alert` / `ticket_alert`.

Labels and annotations go where Sloth puts them: service- and SLO-level `labels` (plus Sloth's
`sloth_id`, `sloth_service`, `sloth_slo`) on every rule; `alerting.labels`/`annotations` and the page or
ticket alert's own on the alerts of that kind, with `sloth_severity: page|ticket`; `alerting.name` names
the burn-rate alerts. A Sloth `severity` label is kept as `spec_severity` (rule_meta). SLO plugins are
refused by name: they rewrite Sloth's own generated rules, which are not what `slo rules` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow
from pipelines.promql import split_ratio
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
    read_target,
    read_text,
    required_text,
)
from pipelines.specs.rule_meta import read_alert_name, read_disable, read_rule_labels
from pipelines.specs.values import (
    default_alert_adjustment,
    default_alerts,
    duration_text,
    parse_budget_fraction,
    parse_duration,
    parse_window,
)

SLOTH_API = "sloth.slok.dev/v1"
SLOTH_KIND = "PrometheusServiceLevel"
SLOTH_VERSION = "prometheus/v1"
SLOTH_WINDOW = "30d"  # Sloth's default SLO period
ALERT_WINDOWS_KIND = "AlertWindows"
PLUGINS_INSTEAD = (
    "remove it and write what the plugin does in the spec itself: queries as sli.events "
    "(error_query, total_query) or sli.raw, labels and annotations under labels/alerting "
    "(`slo rules` writes the rules, so plugins that rewrite Sloth's own rules have nothing to act on)"
)

SLOTH_NAMES = {
    "sloth": {
        "error_query": "error_query",
        "total_query": "total_query",
        "error_ratio_query": "error_ratio_query",
        "page_alert": "page_alert",
        "ticket_alert": "ticket_alert",
        "slo_plugins": "slo_plugins",
    },
    "sloth-crd": {
        "error_query": "errorQuery",
        "total_query": "totalQuery",
        "error_ratio_query": "errorRatioQuery",
        "page_alert": "pageAlert",
        "ticket_alert": "ticketAlert",
        "slo_plugins": "sloPlugins",
    },
}


@dataclass(frozen=True)
class SlothWindows:
    """An `AlertWindows` document: Sloth's SLO period and its page/ticket quick/slow windows."""

    window: SloWindow
    alerts: tuple[BurnRateAlert, ...]


def check_sloth_file(check: FileCheck, documents: list[tuple[yaml.Node, str]]) -> list[Entry]:
    """The Sloth documents of one file: an `AlertWindows` among them applies to the file's SLOs."""
    windows: SlothWindows | None = None
    slo_documents = []
    seen_windows: yaml.Node | None = None
    for root, form in documents:
        if form == "sloth-crd" and _kind(root) == ALERT_WINDOWS_KIND:
            if seen_windows is not None:
                check.problem(
                    root,
                    "kind",
                    f"a second AlertWindows in this file (the first is at line {line_of(seen_windows)}); "
                    "expected one: the SLOs of a file share one SLO period",
                )
                continue
            seen_windows = root
            windows = _alert_windows(check, root)
        else:
            slo_documents.append((root, form))
    if seen_windows is not None and not slo_documents:
        check.problem(
            seen_windows,
            "kind",
            "AlertWindows applies to the Sloth SLOs of its own file and this file has none (Sloth selects "
            "it with --default-slo-period, which a spec folder has no place for); expected it in the file "
            "of the SLOs it is for, or a native spec with period and burn_rate_alerts",
        )
    entries: list[Entry] = []
    for root, form in slo_documents:
        entries.extend(check_sloth(check, root, form, windows))
    return entries


def _kind(root: yaml.Node) -> str | None:
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "kind" and isinstance(value, yaml.ScalarNode):
            return str(value.value)
    return None


def check_sloth(
    check: FileCheck, root: yaml.Node, form: str, windows: SlothWindows | None = None
) -> list[Entry]:
    """A Sloth prometheus/v1 file (or its Kubernetes form): its SLOs, problems reported to `check`."""
    names = SLOTH_NAMES[form]
    spec_keys = ("service", "labels", "slos", names["slo_plugins"])
    if form == "sloth-crd":
        top = read_mapping(
            check, root, "", ("apiVersion", "kind", "metadata", "spec"), "a PrometheusServiceLevel"
        )
        if top is None:
            return []
        kind = read_text(check, top, "kind", "")
        if kind != SLOTH_KIND:
            check.problem(
                top.get("kind", root),
                "kind",
                f"'{kind}' is not a Sloth kind read here; expected {SLOTH_KIND} (or {ALERT_WINDOWS_KIND} "
                "beside the SLOs it is for)",
            )
            return []
        if "spec" not in top:
            check.problem(root, "spec", "required field is missing; expected service, labels and slos")
            return []
        prefix = "spec."
        spec = read_mapping(check, top["spec"], "spec", spec_keys, "service, labels and slos")
    else:
        prefix = ""
        spec = read_mapping(check, root, "", ("version", *spec_keys), "a Sloth prometheus/v1 spec")
    if spec is None:
        return []
    line = line_of(root)
    service = read_name(check, spec.get("service"), f"{prefix}service", line, "service name")
    if names["slo_plugins"] in spec:
        _refuse_plugins(check, spec[names["slo_plugins"]], f"{prefix}{names['slo_plugins']}", "SLO plugins")
    labels = read_labels(check, spec.get("labels"), f"{prefix}labels")
    rule_labels = read_rule_labels(check, spec.get("labels"), f"{prefix}labels")
    slos_node = spec.get("slos")
    if not isinstance(slos_node, yaml.SequenceNode) or not slos_node.value:
        got = "nothing" if slos_node is None else node_kind(slos_node)
        check.problem(slos_node or line, f"{prefix}slos", f"expected a non-empty list of SLOs, got {got}")
        return []
    entries = []
    for index, node in enumerate(slos_node.value):
        entry = _sloth_slo(
            check, node, f"{prefix}slos[{index}]", service, labels, rule_labels, names, windows
        )
        if entry is not None:
            entries.append(entry)
    return entries


def _sloth_slo(
    check: FileCheck,
    node: yaml.Node,
    path: str,
    service: str | None,
    service_labels: dict[str, str],
    service_rule_labels: dict[str, str],
    names: dict[str, str],
    windows: SlothWindows | None,
) -> Entry | None:
    fields = read_mapping(
        check,
        node,
        path,
        ("name", "objective", "description", "labels", "sli", "alerting", "plugins"),
        "a Sloth SLO",
    )
    if fields is None:
        return None
    before = len(check.problems)
    line = line_of(node)
    name = read_name(check, fields.get("name"), f"{path}.name", line, "SLO name")
    target = None
    if "objective" not in fields:
        check.problem(line, f"{path}.objective", "required field is missing; expected a percentage like 99.9")
    else:
        target = read_target(check, fields["objective"], f"{path}.objective", percent=True)
    labels = {**service_labels, **read_labels(check, fields.get("labels"), f"{path}.labels")}
    rule_labels = {**service_rule_labels, **read_rule_labels(check, fields.get("labels"), f"{path}.labels")}
    if "plugins" in fields:
        _refuse_plugins(check, fields["plugins"], f"{path}.plugins", "SLO plugins")
    description = read_text(check, fields, "description", path) or ""

    sli_path = f"{path}.sli"
    sli_fields = read_mapping(
        check, fields.get("sli"), sli_path, ("events", "raw", "plugin"), "events or raw"
    )
    if sli_fields is None and "sli" not in fields:
        check.problem(
            line, sli_path, "required field is missing; expected events (error and total queries) or raw"
        )
    good = bad = valid = ratio = None
    if sli_fields is not None:
        given = [key for key in ("events", "raw", "plugin") if key in sli_fields]
        if "plugin" in sli_fields:
            plugin_id = _plugin_ids(sli_fields["plugin"]) or "(no id)"
            check.problem(
                sli_fields["plugin"],
                f"{sli_path}.plugin",
                f"Sloth SLI plugins cannot be imported (here {plugin_id}): its queries live in the "
                "plugin's code, not in the spec; expected the queries it generates written as events "
                "(error_query and total_query with {{.window}}) or raw (error_ratio_query)",
            )
        elif len(given) != 1:
            where = sli_fields["raw"] if given else fields["sli"]
            check.problem(where, sli_path, "expected exactly one of events (error and total queries) or raw")
        elif given == ["events"]:
            events_path = f"{sli_path}.events"
            keys = (names["error_query"], names["total_query"])
            events = read_mapping(check, sli_fields["events"], events_path, keys, "error and total queries")
            if events is not None:
                ev = {k: (v, v) for k, v in events.items()}
                bad = required_text(check, ev, keys[0], events_path, line_of(sli_fields["events"]), "a query")
                valid = required_text(
                    check, ev, keys[1], events_path, line_of(sli_fields["events"]), "a query"
                )
        else:
            raw_path = f"{sli_path}.raw"
            key = names["error_ratio_query"]
            raw = read_mapping(check, sli_fields["raw"], raw_path, (key,), "an error ratio query")
            if raw is not None:
                ratio = required_text(
                    check,
                    {k: (v, v) for k, v in raw.items()},
                    key,
                    raw_path,
                    line_of(sli_fields["raw"]),
                    "a query",
                )
                if ratio is not None and split_ratio(ratio) is None:
                    check.problem(
                        raw[key],
                        f"{raw_path}.{key}",
                        "the error ratio needs exactly one top-level '/' (errors / total) so its events can "
                        "be counted; wrap parts in parentheses, or use events with error and total queries",
                    )

    window = windows.window if windows is not None else parse_window(SLOTH_WINDOW)
    base = windows.alerts if windows is not None else default_alerts(window.minutes)
    alerting = _sloth_alerting(check, fields.get("alerting"), f"{path}.alerting", names, base)
    alerts, category = alerting.alerts, alerting.category
    custom = windows is not None or bool(alerting.disabled)
    if service is None or name is None:
        return None
    if windows is None and alerts is not None:
        adjustment = default_alert_adjustment(window.minutes)
        if adjustment:
            check.warn(line, path, adjustment)
    owner = read_owner(check, labels, fields.get("labels") or line, f"{path}.labels")
    if len(check.problems) > before or target is None or alerts is None:
        return Entry(id=f"{service}/{name}", line=line, path=path, slo=None)
    sli = Sli(
        name=name,
        kind="ratio",
        category=category or default_category(name, "ratio"),
        description=description,
        good_query=good,
        bad_query=bad,
        valid_query=valid,
        ratio_query=ratio,
        ratio_direction="bad" if ratio is not None else None,
    )
    sloth_labels = {"sloth_id": f"{service}-{name}", "sloth_service": service, "sloth_slo": name}
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
        labels={**rule_labels, **sloth_labels},
        alert_name=alerting.name,
        alert_labels={sev: labels for sev, labels in alerting.labels.items() if sev not in alerting.disabled},
        alert_annotations={
            sev: notes
            for sev, notes in alerting.annotations.items()
            if notes and sev not in alerting.disabled
        },
        disabled_alerts=alerting.disabled,
    )
    return Entry(id=slo.id, line=line, path=path, slo=slo)


@dataclass
class _Alerting:
    alerts: tuple[BurnRateAlert, ...] | None
    category: str | None = None
    name: str | None = None
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    disabled: tuple[str, ...] = ()


def _sloth_alerting(
    check: FileCheck,
    node: yaml.Node | None,
    path: str,
    names: dict[str, str],
    alerts: tuple[BurnRateAlert, ...],
) -> _Alerting:
    """Sloth's alerting block: the alerts kept, the name, and the labels/annotations per severity."""
    severity_labels = {severity: {"sloth_severity": severity} for severity in ("page", "ticket")}
    fields = read_mapping(
        check,
        node,
        path,
        ("name", "labels", "annotations", names["page_alert"], names["ticket_alert"]),
        "alerting",
    )
    if fields is None:
        return _Alerting(alerts, labels=severity_labels) if node is None else _Alerting(None)
    category = read_labels(check, fields.get("labels"), f"{path}.labels").get("category")
    common_labels = read_rule_labels(check, fields.get("labels"), f"{path}.labels")
    common_notes = read_rule_labels(check, fields.get("annotations"), f"{path}.annotations", "annotations")
    labels: dict[str, dict[str, str]] = {}
    annotations: dict[str, dict[str, str]] = {}
    disabled: list[str] = []
    for severity in ("page", "ticket"):
        key = names[f"{severity}_alert"]
        alert_path = f"{path}.{key}"
        alert = read_mapping(
            check, fields.get(key), alert_path, ("disable", "labels", "annotations"), "an alert"
        )
        alert = alert or {}
        own_labels = read_rule_labels(check, alert.get("labels"), f"{alert_path}.labels")
        own_notes = read_rule_labels(
            check, alert.get("annotations"), f"{alert_path}.annotations", "annotations"
        )
        # Sloth: the alert kind's own labels over the common ones, and its sloth_severity over both.
        labels[severity] = {**common_labels, **own_labels, "sloth_severity": severity}
        annotations[severity] = {**common_notes, **own_notes}
        if "disable" in alert and read_disable(check, alert["disable"], f"{alert_path}.disable"):
            disabled.append(severity)
    kept = tuple(alert for alert in alerts if alert.severity not in disabled)
    name = read_alert_name(check, fields.get("name"), f"{path}.name")
    return _Alerting(kept, category, name, labels, annotations, tuple(disabled))


def _plugin_ids(node: yaml.Node) -> str:
    """The `id` values found anywhere under a plugin block, for the refusal message."""
    ids: list[str] = []

    def walk(item: yaml.Node) -> None:
        if isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                if (
                    isinstance(key, yaml.ScalarNode)
                    and key.value == "id"
                    and isinstance(value, yaml.ScalarNode)
                ):
                    ids.append(value.value)
                else:
                    walk(value)
        elif isinstance(item, yaml.SequenceNode):
            for value in item.value:
                walk(value)

    walk(node)
    return ", ".join(ids)


def _refuse_plugins(check: FileCheck, node: yaml.Node, path: str, what: str) -> None:
    ids = _plugin_ids(node)
    named = f" ({ids})" if ids else ""
    check.problem(node, path, f"Sloth {what}{named} cannot be imported: {PLUGINS_INSTEAD}")


def _alert_windows(check: FileCheck, root: yaml.Node) -> SlothWindows | None:
    """Sloth's AlertWindows: `spec.sloPeriod` and page/ticket quick/slow windows, each
    `errorBudgetPercent` (share of the period's budget the long window may burn), `shortWindow`,
    `longWindow`; the factor is errorBudgetPercent/100 × sloPeriod / longWindow, as Sloth computes it."""
    top = read_mapping(check, root, "", ("apiVersion", "kind", "metadata", "spec"), "an AlertWindows")
    if top is None:
        return None
    spec = read_mapping(
        check, top.get("spec"), "spec", ("sloPeriod", "page", "ticket"), "sloPeriod, page, ticket"
    )
    if spec is None:
        check.problem(root, "spec", "required field is missing; expected sloPeriod, page and ticket")
        return None
    before = len(check.problems)
    window: SloWindow | None = None
    period_text = read_text(check, spec, "sloPeriod", "spec")
    if period_text is None and "sloPeriod" not in spec:
        check.problem(
            root, "spec.sloPeriod", "required field is missing; expected a duration like 28d or 30d"
        )
    elif period_text is not None:
        try:
            window = parse_window(period_text)
        except ValueError as exc:
            check.problem(spec["sloPeriod"], "spec.sloPeriod", str(exc))
    alerts: list[BurnRateAlert] = []
    for severity in ("page", "ticket"):
        kinds = read_mapping(
            check, spec.get(severity), f"spec.{severity}", ("quick", "slow"), "quick and slow"
        )
        if kinds is None:
            check.problem(
                line_of(root), f"spec.{severity}", "required field is missing; expected quick and slow"
            )
            continue
        for speed in ("quick", "slow"):
            item_path = f"spec.{severity}.{speed}"
            item = read_mapping(
                check,
                kinds.get(speed),
                item_path,
                ("errorBudgetPercent", "shortWindow", "longWindow"),
                "a window",
            )
            if item is None:
                check.problem(
                    kinds.get(severity) or line_of(root),
                    item_path,
                    "required field is missing; expected errorBudgetPercent, shortWindow and longWindow",
                )
                continue
            values: dict[str, int] = {}
            for key in ("shortWindow", "longWindow"):
                text = read_text(check, item, key, item_path)
                if text is None:
                    if key not in item:
                        check.problem(
                            kinds[speed],
                            f"{item_path}.{key}",
                            "required field is missing; expected a duration like 1h",
                        )
                    continue
                try:
                    values[key] = parse_duration(text)
                except ValueError as exc:
                    check.problem(item[key], f"{item_path}.{key}", str(exc))
            share_text = read_text(check, item, "errorBudgetPercent", item_path)
            share = None
            if share_text is not None:
                try:
                    share = parse_budget_fraction(f"{share_text}%")
                except ValueError as exc:
                    check.problem(item["errorBudgetPercent"], f"{item_path}.errorBudgetPercent", str(exc))
            elif "errorBudgetPercent" not in item:
                check.problem(
                    kinds[speed],
                    f"{item_path}.errorBudgetPercent",
                    "required field is missing; expected a percentage of the period's budget like 2",
                )
            long_minutes, short_minutes = values.get("longWindow"), values.get("shortWindow")
            if long_minutes is None or short_minutes is None or share is None or window is None:
                continue
            if short_minutes >= long_minutes:
                check.problem(
                    item["shortWindow"],
                    f"{item_path}.shortWindow",
                    "is not shorter than longWindow; "
                    "expected a short window below the long one, like 5m with 1h",
                )
            elif long_minutes > window.minutes:
                check.problem(
                    item["longWindow"],
                    f"{item_path}.longWindow",
                    f"{duration_text(long_minutes)} is "
                    f"longer than sloPeriod {window.text}; expected a long window within the period",
                )
            else:
                alerts.append(
                    BurnRateAlert(
                        severity, long_minutes, short_minutes, share * window.minutes / long_minutes
                    )
                )
    if len(check.problems) > before or window is None:
        return None
    return SlothWindows(window=window, alerts=tuple(alerts))
