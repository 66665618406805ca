"""Sloth specs read into the same model as native ones.

Sloth (`version: prometheus/v1`, or `apiVersion: sloth.slok.dev/v1` + `kind: PrometheusServiceLevel`
with camelCase fields): `objective` is a percentage, `events` error/total queries → bad + valid,
`raw.error_ratio_query` → a bad ratio metric; the window is Sloth's default 30d; the alerts are the
default page and ticket pairs (Sloth's own), minus a disabled `page_alert` / `ticket_alert`.
"""

from __future__ import annotations

import yaml

from pipelines.model import BurnRateAlert, Sli, Slo
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
from pipelines.specs.values import default_alerts, parse_window

SLOTH_API = "sloth.slok.dev/v1"
SLOTH_KIND = "PrometheusServiceLevel"
SLOTH_VERSION = "prometheus/v1"
SLOTH_WINDOW = "30d"  # Sloth's default SLO period

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


def check_sloth(check: FileCheck, root: yaml.Node, form: str) -> list[Entry]:
    """A Sloth prometheus/v1 file (or its Kubernetes form): its SLOs, problems reported to `check`."""
    names = SLOTH_NAMES[form]
    if form == "sloth-crd":
        top = read_mapping(
            check, root, "", ("apiVersion", "kind", "metadata", "spec"), "a PrometheusServiceLevel"
        )
        if top is None:
            return []
        kind = read_text(check, top, "kind", "")
        if kind != SLOTH_KIND:
            check.problem(
                top.get("kind", root), "kind", f"'{kind}' is not a Sloth kind; expected {SLOTH_KIND}"
            )
            return []
        if "spec" not in top:
            check.problem(root, "spec", "required field is missing; expected service, labels and slos")
            return []
        prefix = "spec."
        spec = read_mapping(
            check, top["spec"], "spec", ("service", "labels", "slos"), "service, labels and slos"
        )
    else:
        prefix = ""
        spec = read_mapping(
            check, root, "", ("version", "service", "labels", "slos"), "a Sloth prometheus/v1 spec"
        )
    if spec is None:
        return []
    line = line_of(root)
    service = read_name(check, spec.get("service"), f"{prefix}service", line, "service name")
    labels = read_labels(check, spec.get("labels"), f"{prefix}labels")
    slos_node = spec.get("slos")
    if not isinstance(slos_node, yaml.SequenceNode) or not slos_node.value:
        got = "nothing" if slos_node is None else node_kind(slos_node)
        check.problem(slos_node or line, f"{prefix}slos", f"expected a non-empty list of SLOs, got {got}")
        return []
    entries = []
    for index, node in enumerate(slos_node.value):
        entry = _sloth_slo(check, node, f"{prefix}slos[{index}]", service, labels, names)
        if entry is not None:
            entries.append(entry)
    return entries


def _sloth_slo(
    check: FileCheck,
    node: yaml.Node,
    path: str,
    service: str | None,
    service_labels: dict[str, str],
    names: dict[str, str],
) -> Entry | None:
    fields = read_mapping(
        check, node, path, ("name", "objective", "description", "labels", "sli", "alerting"), "a Sloth SLO"
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

    alerts, custom, category = _sloth_alerting(check, fields.get("alerting"), f"{path}.alerting", names)
    if service is None or name is None:
        return None
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
    return Entry(id=slo.id, line=line, path=path, slo=slo)


def _sloth_alerting(
    check: FileCheck, node: yaml.Node | None, path: str, names: dict[str, str]
) -> tuple[tuple[BurnRateAlert, ...] | None, bool, str | None]:
    """(alerts, whether they differ from the defaults, category label) from Sloth's alerting block."""
    window = parse_window(SLOTH_WINDOW)
    alerts = default_alerts(window.minutes)
    fields = read_mapping(
        check,
        node,
        path,
        ("name", "labels", "annotations", names["page_alert"], names["ticket_alert"]),
        "alerting",
    )
    if fields is None:
        return (alerts, False, None) if node is None else (None, False, None)
    category = read_labels(check, fields.get("labels"), f"{path}.labels").get("category")
    disabled = set()
    for severity in ("page", "ticket"):
        key = names[f"{severity}_alert"]
        alert = read_mapping(
            check, fields.get(key), f"{path}.{key}", ("disable", "labels", "annotations"), "an alert"
        )
        if alert is None or "disable" not in alert:
            continue
        flag = alert["disable"]
        if not isinstance(flag, yaml.ScalarNode) or flag.value.lower() not in ("true", "false"):
            check.problem(
                flag,
                f"{path}.{key}.disable",
                f"{node_kind(flag)} is not true or false; expected true or false",
            )
        elif flag.value.lower() == "true":
            disabled.add(severity)
    kept = tuple(alert for alert in alerts if alert.severity not in disabled)
    return kept, bool(disabled), category
