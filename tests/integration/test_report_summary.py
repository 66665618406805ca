"""The model-written executive summary: the real anthropic SDK against a local server speaking the
Messages API. The model sees only the computed figures; each sentence is checked as claims about the
figures it names, and a rejected summary is replaced by the rule-written one, with the reason, in every
format.

The store's figures, by hand (`tests/support/review_store.py`), 2026-Q3 against 2026-Q2: 2 of 2 SLOs
met; 3 incidents (1 before); MTTD SEV1/SEV2 p50 4.5 min (4.0 before: worse); MTTR SEV1 p50 25.0 min
(no SEV1 before); TTR, all severities, p50 27.5 min (40.0 before: 31.25 % better); post-mortems within
48 h 50 % (1 of 2); action items on time 50 %.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.analytics import claims
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.render import render_html, render_markdown
from pipelines.analytics.review import build_review
from pipelines.analytics.summary import attach_summary, rule_summary
from pipelines.store import Snapshot
from tests.support.messages_api import MessagesServer, messages_server
from tests.support.realparts import free_port
from tests.support.review_store import build_review_store
from tests.support.review_text import html_sections, markdown_sections

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-not-a-secret-0123"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("summary")
    build_review_store(base / "data", base / "specs")
    return base / "data"


@pytest.fixture
def model() -> Iterator[MessagesServer]:
    with messages_server() as server:
        yield server


@pytest.fixture(scope="module")
def review(data_dir: Path) -> dict[str, Any]:
    snap = Snapshot(data_dir)
    try:
        with snap.connection() as con:
            return build_review(con, Quarter(2026, 3), with_backtest=False)
    finally:
        snap.close()


def report(data_dir: Path, model: MessagesServer, fmt: str) -> str:
    env = dict(os.environ)
    env.update(
        SLO_DATA_DIR=str(data_dir), ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=f"http://127.0.0.1:{model.port}"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "report",
            "quarterly",
            "--quarter",
            "2026-Q3",
            "--format",
            fmt,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_summary_quoting_only_the_figures_is_added_and_marked(
    data_dir: Path, model: MessagesServer
) -> None:
    model.answer = (
        "In 2026-Q3 both SLOs met their targets (2 of 2) and there were 3 incidents, 1 of them SEV1. "
        "SEV1 MTTR was 25.0 min against a target under 30 min; 1 repeat incident struck while action items "
        "were open, so finish them first."
    )
    r = json.loads(report(data_dir, model, "json"))
    assert r["executive_summary"] == {
        "text": model.answer,
        "model": "claude-sonnet-4-6",
        "model_written": True,
    }
    [request] = model.requests
    assert request["path"] == "/v1/messages"
    assert KEY in (request["headers"].get("Authorization", "") + request["headers"].get("X-Api-Key", ""))
    figures = request["body"]["messages"][0]["content"]
    assert figures.startswith("Figures (JSON):")
    given = json.loads(figures.removeprefix("Figures (JSON):\n"))
    assert set(given) == {
        "quarter",
        "previous_quarter",
        "headline",
        "success_metrics",
        "top_risks",
        "recommendations",
    }
    md = render_markdown(r)
    assert "> **Executive summary (model-written)**" in md
    assert KEY not in md and KEY not in json.dumps(r)


def test_a_false_summary_is_replaced_by_the_rule_written_one_in_every_format(
    data_dir: Path, model: MessagesServer
) -> None:
    model.answer = (
        "In 2026-Q3 incidents fell by 87 percent and MTTR was 25.0 min. "
        "100% of post-mortems were held on time. INC-0042 took 42 hours to resolve."
    )
    r = json.loads(report(data_dir, model, "json"))
    assert len(model.requests) == 1
    summary = r["executive_summary"]
    assert summary["model_written"] is False
    assert summary["text"] == rule_summary(r)
    assert summary["rejected_model_summary"]["text"] == model.answer
    reason = summary["rejected_model_summary"]["reason"]
    assert r["executive_summary_rejected"] == reason
    print(reason)
    # each false claim is named: the amount, the direction (3 incidents against 1), the share, the hours
    assert "“87 percent” is not the change in incidents" in reason
    assert "“fell” but incidents went up: 1 the previous quarter, 3 this quarter" in reason
    assert "“100%” is not post-mortems within 48 h" in reason
    assert "“42 hours” is not" in reason
    assert "“25.0 min”" not in reason  # the true claim passes
    heading = f"Executive summary (rule-written; the model's summary was rejected: {reason})"
    md, page = (
        markdown_sections(report(data_dir, model, "md")),
        html_sections(report(data_dir, model, "html")),
    )
    for sections in (md, page):
        assert sections["Headline"].texts[:2] == [heading, rule_summary(r)]
    assert model.answer not in render_markdown(r) and model.answer not in render_html(r)


def test_the_rule_written_summary_holds_its_own_claims(review: dict[str, Any]) -> None:
    text = rule_summary(review)
    print(text)
    assert claims.check(text, claims.quantities(review)) == []
    assert "2 of 2 SLOs met their targets" in text
    assert "MTTD (SEV1/SEV2) p50 was 4.5 min against a target of p50 < 5 min, worse than 4.0 min" in text
    assert "50.0% of SEV1/SEV2 post-mortems were held within 48 h (target 100%)" in text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # true claims, each tied to the figure it names
        ("Time to resolve improved by 31% to 27.5 min.", None),  # 40 → 27.5: 31.25 % shorter
        ("MTTD worsened from 4.0 to 4.5 min against a target under 5 min.", None),
        ("Incidents rose from 1 to 3; 50% of post-mortems were held within 48 h.", None),
        ("SEV1 MTTR was 25.0 min.", None),
        # false amounts
        ("Time to resolve improved by 90%.", "“90%” is not the change in time to resolve"),
        ("MTTR was 42 min.", "“42 min” is not MTTR (SEV1) p50"),
        ("100% of post-mortems were on time.", "“100%” is not post-mortems within 48 h"),
        # a figure of another quantity does not count (4.5 is MTTD, not MTTR)
        ("MTTR was 4.5 min.", "“4.5 min” is not MTTR (SEV1) p50"),
        # an identifier's digits are not a figure
        ("INC-0042 took 42 hours to resolve.", "“42 hours” is not tied to any figure"),
        # false directions
        ("MTTD improved this quarter.", "“improved” but MTTD (SEV1/SEV2) p50 went up: 4.0 min the previous"),
        ("Incidents fell.", "“fell” but incidents went up"),
        ("Time to resolve worsened.", "“worsened” but time to resolve (all severities) p50 went down"),
        ("MTTR improved.", "“improved”: MTTR (SEV1) p50 has no previous-quarter figure"),
    ],
)
def test_claims_are_checked_against_the_figure_they_name(
    review: dict[str, Any], text: str, problem: str | None
) -> None:
    found = claims.check(text, claims.quantities(review))
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(problem), found


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("MTTR improved by 50%.", True),  # 50 → 25 min
        ("MTTR improved by 25 min.", True),
        ("MTTR improved by 90%.", False),  # improved, but by another amount
        ("MTTR worsened by 50%.", False),
    ],
)
def test_mttr_improved_by_90_percent_is_rejected_unless_it_did(
    review: dict[str, Any], text: str, holds: bool
) -> None:
    """The same store with a previous-quarter SEV1 MTTR of 50 min (by hand: 25 is 50 % less)."""
    improved = copy.deepcopy(review)
    improved["headline"]["mttr_sev1"]["previous_p50"] = 50.0
    assert (claims.check(text, claims.quantities(improved)) == []) is holds


def test_a_failed_model_call_leaves_the_rule_written_summary_and_says_why(review: dict[str, Any]) -> None:
    r = copy.deepcopy(review)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the SDK's connection fails
    attach_summary(r, {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": closed})
    assert r["executive_summary"]["model_written"] is False
    assert r["executive_summary"]["text"] == rule_summary(r)
    assert r["executive_summary_rejected"] == "model call failed: APIConnectionError"
    assert "the model's summary was rejected: model call failed: APIConnectionError" in render_markdown(r)
