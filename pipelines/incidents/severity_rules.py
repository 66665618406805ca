"""Seed 002's severity triggers as rules: pure, applied by triage, by a human command and by the scope step.

    data_integrity     any data integrity concern            → SEV1 at once
    customer_reported  customer-reported incidents           → at least SEV2
    scope_doubled      the impact's scope doubled            → one level up (SEV1 stays SEV1)

A rule only ever raises a severity (SEV1 is the highest); an upgrade says which rule, from what, to what,
and why (`Upgrade.reason`), and lands on the timeline as `severity_upgraded`.

- Triage (`steps/triage.py`) looks for the first two in the incident's title and its alerts' text
  (`detect`): "data integrity", "data corruption", "data loss", "corrupted", "integrity check failed"…;
  "customer-reported", "reported by customers", "customer complaint", a `reported_by: customer` label.
  The text is untrusted, but the worst a crafted alert can do here is page sooner, never silence one.
- A person applies any of the three: `slo incidents severity-trigger ID --trigger data-integrity`, or
  the command route with `{"command": "severity_trigger", "args": {"trigger": "scope_doubled"}}`.
- The scope step (`steps/severity.py`) raises an open incident one level when the number of distinct
  alerts firing on it (fingerprints; the engine's once per SLO) reaches twice what it had when it was
  triaged (or last raised for scope).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pipelines.incidents.contract import SEVERITIES

TRIGGERS: dict[str, str] = {
    "data_integrity": "any data integrity concern → SEV1",
    "customer_reported": "customer-reported → at least SEV2",
    "scope_doubled": "impact scope doubled → one level up",
}
# An incident not classified yet is taken as SEV3 (an Alertmanager `warning`, the rules' default).
UNCLASSIFIED = "SEV3"

_DATA_INTEGRITY = re.compile(
    r"\bdata[\s_-]*(?:integrity|corruption|loss|lost)\b"
    r"|\bcorrupt(?:ed|ion|s)?\b"
    r"|\bintegrity[\s_-]*(?:check|violation|error|failure|issue|problem|concern)s?\b",
    re.IGNORECASE,
)
_CUSTOMER_REPORTED = re.compile(
    r"\bcustomers?[\s_-]*(?:reported|reports?|complaints?|tickets?|escalations?)\b"
    r"|\breported[\s_-]*by[\s_-]*(?:an?\s+|our\s+|the\s+)?customers?\b"
    r"|\"(?:reported_by|reporter|origin)\":\s*\"customers?\"",
    re.IGNORECASE,
)
_DETECTORS = (("data_integrity", _DATA_INTEGRITY), ("customer_reported", _CUSTOMER_REPORTED))


@dataclass(frozen=True)
class Upgrade:
    trigger: str
    before: str | None
    after: str
    evidence: str  # what showed it: the words found, who asked, the scope counted

    @property
    def reason(self) -> str:
        return f"{TRIGGERS[self.trigger]} ({self.evidence})"

    def message(self) -> str:
        return f"severity {self.before or 'unclassified'} → {self.after}: {self.reason}"


def canonical_trigger(value: object) -> str | None:
    """`data-integrity`, `Data integrity`, `data_integrity` → `data_integrity`; None when unknown."""
    if not isinstance(value, str):
        return None
    key = re.sub(r"[\s-]+", "_", value.strip().lower())
    return key if key in TRIGGERS else None


def detect(text: str) -> dict[str, str]:
    """The triggers `text` shows, each with the words that showed it (at most 60 characters)."""
    found: dict[str, str] = {}
    for name, pattern in _DETECTORS:
        match = pattern.search(text)
        if match:
            found[name] = match.group(0)[:60]
    return found


def raised(severity: str | None, trigger: str) -> str:
    """The severity after `trigger` (never lower than `severity`; SEV1 is the highest)."""
    level = SEVERITIES.index(severity) if severity in SEVERITIES else SEVERITIES.index(UNCLASSIFIED)
    if trigger == "data_integrity":
        target = 0
    elif trigger == "customer_reported":
        target = min(level, 1)
    elif trigger == "scope_doubled":
        target = max(level - 1, 0)
    else:
        raise ValueError(f"unknown severity trigger {trigger!r}; expected one of {', '.join(TRIGGERS)}")
    if severity in SEVERITIES:
        target = min(target, level)
    return SEVERITIES[target]


def apply(severity: str | None, evidence: Mapping[str, str]) -> tuple[str | None, list[Upgrade]]:
    """Apply each trigger of `evidence` (trigger → evidence) in turn; the final severity and the
    upgrades that changed it (a trigger that raises nothing is left out)."""
    upgrades: list[Upgrade] = []
    for trigger, why in evidence.items():
        after = raised(severity, trigger)
        if after != severity:
            upgrades.append(Upgrade(trigger, severity, after, why))
            severity = after
    return severity, upgrades


def scope_doubled(baseline: int, scope: int) -> bool:
    """Whether `scope` (distinct alerts firing) is at least twice `baseline` (at least one)."""
    return scope >= 2 * max(baseline, 1)


def most_severe(severities: Iterable[str | None]) -> str | None:
    """The most severe of `severities` (None when none is known)."""
    known = [SEVERITIES.index(s) for s in severities if s in SEVERITIES]
    return SEVERITIES[min(known)] if known else None
