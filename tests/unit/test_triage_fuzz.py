"""Fuzzed inputs: quoting always holds, validation never crashes, the rules always answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.config import Settings
from pipelines.incidents.contract import SEVERITIES, TriageContext
from pipelines.incidents.routing import decide_route
from pipelines.incidents.triage import answer_problems, run_triage
from pipelines.incidents.untrusted import quote

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_quoted_text_is_always_three_lines_and_round_trips(text: str) -> None:
    block, nonce = quote(text)
    first, body, last = block.split("\n")  # exactly three lines, whatever the text holds
    assert (first, last) == (f"<untrusted_alert id={nonce}>", f"</untrusted_alert id={nonce}>")
    assert json.loads(body) == text


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["severity", "recommended_action", "confidence", "rationale", "root_cause_hypothesis", "other"]
        ),
        json_values,
    )
)
def test_validation_never_crashes_and_accepts_only_valid_answers(answer: dict[str, Any]) -> None:
    problems = answer_problems(answer, ["restart"])
    if not problems:
        assert answer["severity"] in SEVERITIES
        assert answer["recommended_action"] in ("restart", "escalate")
        assert 0 <= answer["confidence"] <= 1


status_objects = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "slo": st.text(max_size=10),
            "sli": json_values,
            "budget_remaining": json_values,
            "policy_state": json_values,
            "burn_rates": st.dictionaries(
                st.sampled_from(["5m", "1h", "6h", "30m", "1d", "2h", "3d"]), json_values
            ),
            "alerts": st.lists(
                st.dictionaries(st.sampled_from(["severity", "long_window"]), json_values), max_size=3
            ),
            "evaluated_at": json_values,
        },
    ),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(
    status=status_objects,
    deploys=st.lists(
        st.dictionaries(st.sampled_from(["deployed_at", "version", "description"]), json_values), max_size=3
    ),
    similar=st.lists(
        st.dictionaries(st.sampled_from(["id", "remediation_action", "remediation_status"]), json_values),
        max_size=3,
    ),
    text=st.text(max_size=80),
    source=st.sampled_from([None, "SEV1", "SEV2", "SEV3", "SEV4", "P2", ""]),
)
def test_the_rules_always_answer_and_the_route_is_always_defined(
    status: list[dict[str, Any]],
    deploys: list[dict[str, Any]],
    similar: list[dict[str, Any]],
    text: str,
    source: str | None,
) -> None:
    ctx = TriageContext("INC-0001", "svc", "title", text, source, status, deploys, "", ["restart"], similar)
    s = Settings(data_dir=Path("unused"), specs_dir=Path("unused"), rules_route_by_severity=True)
    result = run_triage(ctx, s)
    assert result.method == "rules"
    assert result.severity in SEVERITIES
    assert result.recommended_action in ("restart", "escalate")
    assert 0 <= result.confidence <= 1
    decision = decide_route(result.severity, result, ["restart"], set())
    assert decision.route in ("escalate", "auto_remediate")
    assert decision.action in (None, "restart")
