"""Any SLO printed back in the native format (`slo validate --print-native`): what the importers read,
as a native spec that loads to the same SLOs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import yaml

from pipelines.model import Sli, Slo
from pipelines.specs.values import duration_text, parse_target


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
                    "long_window": duration_text(alert.long_window),
                    "short_window": duration_text(alert.short_window),
                    "burn_rate": f"{alert.factor!r}x",
                }
                for alert in slo.alerts
            ]
        entry.update(_rule_meta(slo))
        doc["slos"].append(entry)
    for doc in documents:
        doc.pop("_key")
        # keep the policy last, as in the seed
        if "error_budget_policy" in doc:
            doc["error_budget_policy"] = doc.pop("error_budget_policy")
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def _rule_meta(slo: Slo) -> dict[str, Any]:
    """`period`, `labels` and `alerting` (name, per kind labels/annotations/disable) when the SLO has them."""
    out: dict[str, Any] = {}
    if slo.period_minutes is not None:
        out["period"] = duration_text(slo.period_minutes)
    if slo.labels:
        out["labels"] = dict(slo.labels)
    alerting: dict[str, Any] = {}
    if slo.alert_name:
        alerting["name"] = slo.alert_name
    for severity in ("page", "ticket"):
        kind: dict[str, Any] = {}
        if severity in slo.disabled_alerts:
            kind["disable"] = True
        else:
            if slo.alert_labels.get(severity):
                kind["labels"] = dict(slo.alert_labels[severity])
            if slo.alert_annotations.get(severity):
                kind["annotations"] = dict(slo.alert_annotations[severity])
        if kind:
            alerting[severity] = kind
    if alerting:
        out["alerting"] = alerting
    return out


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
