"""The model answer's validation (pure) and run_triage's promise never to raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from pipelines.incidents.contract import TriageContext
from pipelines.incidents.triage import answer_problems, run_triage, triage_tool

ALLOWED = ["rollback", "restart"]
GOOD = {
    "severity": "SEV3",
    "root_cause_hypothesis": "recent deploy",
    "recommended_action": "rollback",
    "confidence": 0.8,
    "rationale": "errors began after the deploy",
}

# (case, answer, problems)
CASES: list[tuple[str, Any, list[str]]] = [
    ("valid", GOOD, []),
    ("escalate is always allowed", {**GOOD, "recommended_action": "escalate"}, []),
    ("confidence 0 and 1 are in range", {**GOOD, "confidence": 1}, []),
    ("not an object", ["SEV3"], ["input: expected an object, got list"]),
    ("everything missing", {}, [f"{k}: missing" for k in sorted(GOOD)]),
    (
        "lower-case severity",
        {**GOOD, "severity": "sev3"},
        ["severity: 'sev3' is not one of SEV1, SEV2, SEV3, SEV4"],
    ),
    (
        "P2 is an alias, not an answer",
        {**GOOD, "severity": "P2"},
        ["severity: 'P2' is not one of SEV1, SEV2, SEV3, SEV4"],
    ),
    (
        "action as a list",
        {**GOOD, "recommended_action": ["rollback"]},
        ["recommended_action: ['rollback'] is not allow-listed (rollback, restart, escalate)"],
    ),
    ("negative confidence", {**GOOD, "confidence": -0.1}, ["confidence: -0.1 is not a number from 0 to 1"]),
    ("NaN confidence", {**GOOD, "confidence": float("nan")}, ["confidence: nan is not a number from 0 to 1"]),
    ("boolean confidence", {**GOOD, "confidence": True}, ["confidence: True is not a number from 0 to 1"]),
    (
        "rationale too long",
        {**GOOD, "rationale": "x" * 2001},
        ["rationale: expected non-empty text of at most 2000 characters"],
    ),
    ("extra key", {**GOOD, "command": "rm -rf /"}, ["command: not in the schema"]),
]


@pytest.mark.parametrize(("answer", "problems"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_answer_problems(answer: Any, problems: list[str]) -> None:
    assert answer_problems(answer, ALLOWED) == problems


def test_the_tool_schema_enumerates_the_allow_list_plus_escalate() -> None:
    tool = triage_tool(ALLOWED)
    props = tool["input_schema"]["properties"]
    assert tool["name"] == "record_triage"
    assert props["recommended_action"]["enum"] == ["rollback", "restart", "escalate"]
    assert tool["input_schema"]["additionalProperties"] is False
    assert sorted(tool["input_schema"]["required"]) == sorted(GOOD)


def test_run_triage_never_raises_on_a_malformed_context(tmp_path: Path) -> None:
    ctx = TriageContext(
        incident_id="INC-0001",
        service="svc",
        title="t",
        alert_text="a",
        source_severity="SEV3",
        slo_status=[{"slo": "svc/a", "burn_rates": "not a mapping", "budget_remaining": 0.5}],
        recent_deploys=[],
        runbook_text="",
        allowed_actions=["restart"],
        similar_incidents=[],
    )
    s = Settings(data_dir=tmp_path, specs_dir=tmp_path, rules_route_by_severity=True)
    result = run_triage(ctx, s)
    assert (result.method, result.severity, result.recommended_action) == ("rules", "SEV3", "escalate")
    assert result.error is not None and result.error.startswith("internal error: AttributeError")
