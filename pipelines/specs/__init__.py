"""SLO spec files (native, OpenSLO v1, Sloth) read into the frozen model records, and written back.

`load_specs` reads files and directories and returns every `Slo` with the warnings, or raises
`SpecError` listing every problem as `file:line: field.path: what is wrong and expected`. One module
per format reads it (`native`, `openslo`, `sloth`); `nodes` holds the YAML node readers they share and
`values` the field value parsers; `write.native_yaml` prints any SLO in the native format.
"""

from pipelines.promql import split_ratio
from pipelines.specs.load import SPEC_SUFFIXES, load_specs, spec_format
from pipelines.specs.values import (
    DEFAULT_ALERT_RULES,
    ErrorBudget,
    default_alerts,
    parse_duration,
    parse_error_budget,
    parse_error_budget_parts,
    parse_target,
    parse_threshold,
    parse_window,
)
from pipelines.specs.write import native_yaml

__all__ = [
    "DEFAULT_ALERT_RULES",
    "SPEC_SUFFIXES",
    "ErrorBudget",
    "default_alerts",
    "load_specs",
    "native_yaml",
    "parse_duration",
    "parse_error_budget",
    "parse_error_budget_parts",
    "parse_target",
    "parse_threshold",
    "parse_window",
    "spec_format",
    "split_ratio",
]
