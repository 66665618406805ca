"""Seed 004's technical analysis and remediation plan, from the facts of a store built through the real
cycle (tests/support/review_store.py: every figure there is checkable by hand)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.cycle import open_writer as Writer
from pipelines.incidents import analysis
from pipelines.incidents.fold import incident
from pipelines.incidents.steps.documents import analysis_facts
from tests.support.review_store import build_review_store


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("analysis")
    build_review_store(base / "data", base / "specs")
    with Writer(base / "data") as writer:
        writer.db.execute("INSERT INTO incident_slos VALUES ('INC-1', 'checkout-api/availability', NULL)")
        writer.db.execute(
            "UPDATE incidents SET root_cause_category = 'capacity', root_cause = 'planner pool exhausted', "
            "fix = 'raised the planner pool' WHERE id = 'INC-2'"
        )
        writer.publish()
    return base / "data"


def test_a_deploy_half_an_hour_before_the_start_ranks_first_with_the_sli_evidence(data_dir: Path) -> None:
    with Writer(data_dir) as writer:
        inc = incident(writer.db, "INC-1")
        assert inc is not None
        facts = analysis_facts(writer.db, inc, inc["resolved_at"])
    # 10:00-10:25: 25 minutes of 100 events, 20 of them 50 % bad → 1,000 of 2,500 (40 %); target 99.9 %
    # → burn rate 0.4 / 0.001 = 400.
    (slo,) = facts["slos"]
    assert (slo["bad"], slo["valid"], slo["bad_minutes"]) == (1000, 2500, 20)
    ranked = analysis.rank(inc, facts)
    # v2 at 09:30, 30 min before the start: 0.80; with a suspect deploy the infrastructure guess is 0.15.
    assert [(h.key, h.score) for h in ranked] == [("deploy", 0.8), ("infrastructure", 0.15)]
    text = analysis.render_technical_analysis(inc, ranked, facts)
    assert "checkout-api/availability: 1,000 of 2,500 events bad (40.00%), burn rate 400.0" in text
    assert "20 bad minute(s)" in text
    assert "1. **the deploy of v2 at 2026-07-03 09:30 UTC** (score 0.80)" in text
    assert "deployed 30 min before the impact start (2026-07-03 10:00 UTC): cart cache change" in text
    plan = analysis.render_remediation_plan(inc, ranked, facts)
    assert "| 1 | Roll back checkout-api from v2 to the version before it" in plan
    assert "| on-call | redeploy v2 once the cause is fixed |" in plan
    assert "error rate back under 0.1% (burn rate below 1)" in plan
    assert "not resolved in 30 min → next level (the escalation matrix)" in plan  # SEV1


def test_a_recurrence_of_a_past_root_cause_ranks_above_the_infrastructure_guess(data_dir: Path) -> None:
    with Writer(data_dir) as writer:
        inc = incident(writer.db, "INC-3")
        assert inc is not None
        facts = analysis_facts(writer.db, inc, inc["resolved_at"])
    assert facts["deploys"] == []  # search never deployed
    ranked = analysis.rank(inc, facts)
    # INC-2 had the same fingerprint (search/x) and a recorded capacity cause: 0.60; no deploy: 0.35.
    assert [(h.key, h.score) for h in ranked] == [("recurrence:capacity", 0.6), ("infrastructure", 0.35)]
    text = analysis.render_technical_analysis(inc, ranked, facts)
    assert "INC-2 (same alert, SEV2): planner pool exhausted; fix: raised the planner pool" in text
    assert "no deploy of the service in the 24 h before the start" in text
    plan = analysis.render_remediation_plan(inc, ranked, facts)
    assert "| 1 | Apply the fix that worked in INC-2: raised the planner pool" in plan
    assert "not resolved in 2 h → next level (the escalation matrix)" in plan  # SEV2


def test_the_triage_hypothesis_is_weighed_by_its_confidence() -> None:
    t0 = dt.datetime(2026, 6, 1, 10)
    inc = {"id": "INC-9", "service": "shop", "title": "errors", "severity": "SEV3", "impact_start": t0,
           "detected_at": t0}  # fmt: skip
    triage = {"attempt": 1, "method": "model", "severity": "SEV3", "root_cause_hypothesis": "bad cache",
              "recommended_action": "restart", "confidence": 0.9}  # fmt: skip
    deploys = [
        {"deployed_at": t0 - dt.timedelta(hours=3), "version": "v8", "description": None, "who": "bob"},
        {"deployed_at": t0 - dt.timedelta(days=2), "version": "v7", "description": None, "who": None},
    ]
    ranked = analysis.rank(inc, {"slos": [], "deploys": deploys, "similar": [], "triage": triage})
    # v8 3 h before: 0.50; triage 0.5 × 0.9 = 0.45; infrastructure 0.15 (a suspect deploy exists).
    assert [(h.key, h.score) for h in ranked] == [("deploy", 0.5), ("triage", 0.45), ("infrastructure", 0.15)]
    assert ranked[0].step == "Roll back shop from v8 to v7"
    assert ranked[0].owner == "bob (deployed it), with the on-call"
