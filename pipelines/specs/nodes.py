"""Reading composed YAML nodes so every value keeps its line: the per-file problem list (`FileCheck`),
an SLO found in a file (`Entry`), and the field readers every spec format uses to report problems."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import yaml

from pipelines.errors import SpecProblem
from pipelines.model import Slo, SpecWarning
from pipelines.specs.values import NAME_EXPECTED, NAME_PATTERN, SLI_CATEGORIES

UNKNOWN_OWNER = "unknown"


@dataclass
class FileCheck:
    """Problems and warnings found in one file so far."""

    file: str
    problems: list[SpecProblem] = field(default_factory=list)
    warnings: list[SpecWarning] = field(default_factory=list)

    def problem(self, where: yaml.Node | int, path: str, message: str) -> None:
        self.problems.append(SpecProblem(self.file, line_of(where), path, message))

    def warn(self, where: yaml.Node | int, path: str, message: str) -> None:
        self.warnings.append(SpecWarning(self.file, line_of(where), path, message))


@dataclass(frozen=True)
class Entry:
    """One SLO list item whose id is known; `slo` is None when the item has problems."""

    id: str
    line: int
    path: str
    slo: Slo | None


def line_of(where: yaml.Node | int) -> int:
    return where if isinstance(where, int) else where.start_mark.line + 1


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if is_null(node):
        return "nothing"
    return f"'{node.value}'"


def mapping_fields(
    check: FileCheck, node: yaml.Node, path: str, allowed: Sequence[str] | None, expected: str
) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
    """name → (key node, value node) of a mapping; reports non-mappings, duplicates and unknown names."""
    if not isinstance(node, yaml.MappingNode):
        check.problem(node, path or "(document)", f"expected {expected}, got {node_kind(node)}")
        return None
    fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or is_null(key_node):
            check.problem(
                key_node, path or "(document)", f"field names must be text, got {node_kind(key_node)}"
            )
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


def optional_text(
    check: FileCheck, fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str, path: str
) -> str | None:
    """The text of a scalar field, None when absent; empty values and lists/mappings are problems."""
    if key not in fields:
        return None
    node = fields[key][1]
    key_path = f"{path}.{key}" if path else key
    if not isinstance(node, yaml.ScalarNode):
        check.problem(node, key_path, f"expected a single value, got {node_kind(node)}")
        return None
    if is_null(node) or not node.value.strip():
        check.problem(node, key_path, "is empty; expected a value")
        return None
    return node.value.strip()


def required_text(
    check: FileCheck,
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
    return optional_text(check, fields, key, path)


# ---------------------------------------------------------------------------------------------------
# Readers shared by the Sloth and OpenSLO formats


def read_number(check: FileCheck, node: yaml.Node, path: str, expected: str) -> Decimal | None:
    if isinstance(node, yaml.ScalarNode) and not is_null(node) and node.tag != "tag:yaml.org,2002:bool":
        try:
            number = Decimal(node.value.strip())
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return number
    check.problem(node, path, f"{node_kind(node)} is not a number; {expected}")
    return None


def read_target(check: FileCheck, node: yaml.Node, path: str, percent: bool) -> float | None:
    """A target fraction from a fraction (`0.999`) or a percentage (`99.9`), strictly between 0 and 1."""
    expected = "expected a percentage below 100 like 99.9" if percent else "expected a fraction like 0.999"
    number = read_number(check, node, path, expected)
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


def read_name(check: FileCheck, node: yaml.Node | None, path: str, line: int, what: str) -> str | None:
    if node is None:
        check.problem(line, path, f"required field is missing; expected the {what}")
        return None
    if not isinstance(node, yaml.ScalarNode) or is_null(node) or not node.value.strip():
        check.problem(node, path, f"expected the {what}, got {node_kind(node)}")
        return None
    value = node.value.strip()
    if not NAME_PATTERN.fullmatch(value):
        check.problem(node, path, f"'{value}' is not a valid {what}; {NAME_EXPECTED}")
        return None
    return value


def read_mapping(
    check: FileCheck, node: yaml.Node | None, path: str, allowed: Sequence[str] | None, expected: str
) -> dict[str, yaml.Node] | None:
    """name → value node of a mapping field (unknown names are problems), None when absent or wrong."""
    if node is None:
        return None
    fields = mapping_fields(check, node, path, allowed, expected)
    return None if fields is None else {key: value for key, (_, value) in fields.items()}


def read_text(check: FileCheck, fields: dict[str, yaml.Node], key: str, path: str) -> str | None:
    return optional_text(check, {k: (v, v) for k, v in fields.items()}, key, path)


def read_labels(check: FileCheck, node: yaml.Node | None, path: str) -> dict[str, str]:
    """Labels as text; OpenSLO allows a list of values, the first is used."""
    fields = read_mapping(check, node, path, None, "a mapping of label names to values")
    labels: dict[str, str] = {}
    for key, value in (fields or {}).items():
        if (
            isinstance(value, yaml.SequenceNode)
            and value.value
            and isinstance(value.value[0], yaml.ScalarNode)
        ):
            labels[key] = value.value[0].value
        elif isinstance(value, yaml.ScalarNode) and not is_null(value):
            labels[key] = value.value
    return labels


def read_owner(check: FileCheck, labels: dict[str, str], where: yaml.Node | int, path: str) -> str:
    owner = labels.get("owner") or labels.get("team")
    if owner:
        return owner
    check.warn(
        where,
        path,
        f"no owner; using '{UNKNOWN_OWNER}': expected a label owner (or team), like owner: payments-team",
    )
    return UNKNOWN_OWNER


def default_category(name: str, kind: str) -> str:
    """As native specs default it: the SLI's name when it is a category, else by kind."""
    return name if name in SLI_CATEGORIES else ("latency" if kind == "threshold" else "availability")
