"""Labels, annotations and alert names that specs put on the exported rules (Sloth's and native).

Shared by the Sloth and native readers so both check them the same way: names must be Prometheus
label names, values single texts; a label the product sets itself (`model.RESERVED_LABELS`, e.g. a
Sloth `severity: critical`) is kept under `spec_<name>` with a warning, so that DESIGN §3's
`severity` (page | ticket) keeps its meaning for routing.
"""

from __future__ import annotations

import re

import yaml

from pipelines.model import RESERVED_LABELS
from pipelines.specs.nodes import FileCheck, is_null, node_kind, read_mapping

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
LABEL_NAME_EXPECTED = (
    "expected a Prometheus label name: letters, digits and '_', not starting with a digit or '__'"
)
# Prometheus alert names are metric-name-like in practice; Sloth requires the same.
ALERT_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
RENAMED_PREFIX = "spec_"


def renamed(name: str) -> str:
    """The name a spec's label is exported under: `spec_<name>` for reserved names, else itself."""
    return f"{RENAMED_PREFIX}{name}" if name in RESERVED_LABELS else name


def read_rule_labels(
    check: FileCheck, node: yaml.Node | None, path: str, what: str = "labels"
) -> dict[str, str]:
    """A mapping of Prometheus label (or annotation) names to texts; reserved label names renamed.

    `what` is "labels" or "annotations"; annotations keep every name (the product's own annotations
    are replaced by a spec's, as Sloth's are).
    """
    fields = read_mapping(check, node, path, None, f"a mapping of {what[:-1]} names to values")
    out: dict[str, str] = {}
    if fields is None:
        return out
    keys = {key.value: key for key, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
    for name, value in fields.items():
        where = keys.get(name, value)
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            check.problem(
                where, f"{path}.{name}", f"'{name}' is not a valid {what[:-1]} name; {LABEL_NAME_EXPECTED}"
            )
            continue
        if not isinstance(value, yaml.ScalarNode) or is_null(value):
            check.problem(value, f"{path}.{name}", f"expected a text value, got {node_kind(value)}")
            continue
        target = renamed(name) if what == "labels" else name
        if target != name:
            check.warn(
                where,
                f"{path}.{name}",
                f"'{name}' is a label the exported rules set themselves (severity is page or "
                f"ticket); it is exported as '{target}': match on {target} in Alertmanager routes, or "
                f"rename the label",
            )
        out[target] = value.value
    return out


def read_alert_name(check: FileCheck, node: yaml.Node | None, path: str) -> str | None:
    if node is None:
        return None
    if not isinstance(node, yaml.ScalarNode) or is_null(node) or not ALERT_NAME.fullmatch(node.value):
        shown = node.value if isinstance(node, yaml.ScalarNode) else node_kind(node)
        check.problem(
            node,
            path,
            f"'{shown}' is not an alert name; expected letters, digits, '_' and ':' "
            "like MyServiceHighErrorRate",
        )
        return None
    return node.value


def read_disable(check: FileCheck, node: yaml.Node, path: str) -> bool | None:
    """`disable: true|false`; None (and a problem) for anything else."""
    if not isinstance(node, yaml.ScalarNode) or node.value.lower() not in ("true", "false"):
        check.problem(node, path, f"{node_kind(node)} is not true or false; expected true or false")
        return None
    return node.value.lower() == "true"
