"""Done-when of the quarterly review: the demo's review has every section with non-trivial figures, and
its HTML opens in headless Chromium without console errors.

The store is the real `slo demo` (its metrics and its incident flow, nothing added), the quarter is the
last full one before today, as a person reading the demo would pick it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.analytics.render import SECTIONS
from tests.e2e.test_report_html import CHROMIUM_FLAGS
from tests.support.messages_api import messages_server
from tests.support.realparts import require_binary
from tests.support.review_text import Section, html_sections, markdown_sections

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def last_full_quarter(today: dt.date) -> str:
    q = (today.month - 1) // 3  # 0-based index of this quarter
    year, prev = (today.year, q) if q > 0 else (today.year - 1, 4)
    return f"{year}-Q{prev}"


def test_last_full_quarter_by_hand() -> None:
    assert last_full_quarter(dt.date(2026, 11, 23)) == "2026-Q3"
    assert last_full_quarter(dt.date(2026, 1, 1)) == "2025-Q4"
    assert last_full_quarter(dt.date(2026, 4, 1)) == "2026-Q1"


def _cli(data_dir: Path, *args: str, model_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["SLO_DATA_DIR"] = str(data_dir)
    if model_url:
        env.update(ANTHROPIC_API_KEY="sk-test-not-a-secret-0123", ANTHROPIC_BASE_URL=model_url)
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("demo-review")
    built = _cli(base / "data", "demo", "--json")
    assert built.returncode == 0, built.stderr
    quarter = last_full_quarter(dt.datetime.now(dt.UTC).date())
    for fmt in ("json", "html"):
        done = _cli(base / "data", "report", "quarterly", "--quarter", quarter, "--format", fmt,
                    "-o", str(base / f"review.{fmt}"))  # fmt: skip
        assert done.returncode == 0, done.stderr
    # No --quarter: the review opens on the last full quarter, as the person above picked it
    done = _cli(base / "data", "report", "quarterly", "--format", "md", "-o", str(base / "review.md"))
    assert done.returncode == 0, done.stderr
    assert f"(md, {quarter})" in done.stderr
    return base, quarter


def test_every_section_of_the_demo_review_has_figures(demo: tuple[Path, str]) -> None:
    base, quarter = demo
    review: dict[str, Any] = json.loads((base / "review.json").read_text())
    assert review["quarter"] == quarter
    assert len(review["slos"]) == 17  # every demo SLO has its row
    head = review["headline"]
    assert head["slos_measured"] == 17 and 0 < head["budget_spent_median"] < 1
    incidents = review["incidents"]
    assert incidents["total"] > 0
    assert incidents["total"] == sum(incidents["by_severity"].values())
    assert sum(1 for n in incidents["by_severity"].values() if n > 0) >= 2  # a severity mix, not one kind
    resolved = incidents["total"] - incidents["open"]
    for key in ("ttd_minutes", "ttr_minutes"):
        stats = incidents[key]
        assert stats["count"] == resolved > 0, key
        assert 0 <= stats["p50"] <= stats["p90"], key
    assert len(incidents["quarter_over_quarter"]) == 4  # TTD, TTA, TTM, TTR against last quarter
    assert review["repeats"]["count"] >= 1 and review["repeats"]["chains"]  # the demo's recurrence
    assert len(review["success_metrics"]) == 6  # seed 002's six targets
    assert review["oncall"]["weeks"] >= 12 and review["oncall"]["pages_per_week"]
    quality = review["alert_quality"]
    assert quality["pages"] > 0 and quality["incidents"] > 0
    assert 0 < quality["precision"] <= 1 and 0 < quality["recall"] <= 1
    assert len(review["backtest"]) >= 2  # the spec's settings and at least one alternative
    assert review["deploys"]["deploys"] > 0
    assert review["burn_down"] and review["risks"] and review["recommendations"]


def test_demo_review_html_opens_in_chromium_without_errors(demo: tuple[Path, str]) -> None:
    chromium = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    base, _ = demo
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((base / "review.html").as_uri(), wait_until="load", timeout=30_000)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15_000)
            titles = page.locator("section h2").all_inner_texts()
            charts = page.locator(".js-plotly-plot").count()
            burn_traces = page.evaluate("document.getElementById('chart-burn_down').data.map(t => t.name)")
            # every table's columns fit its box at a laptop's width: none cut off or scrolled away
            overflow = page.evaluate(
                """[...document.querySelectorAll('.table-wrap')].map(w => ({
                     header: w.querySelector('th').innerText, scroll: w.scrollWidth, width: w.clientWidth,
                     cells: [...w.querySelectorAll('th, td')].filter(c => c.scrollWidth > c.clientWidth + 1)
                                                              .map(c => c.innerText)}))"""
            )
        finally:
            browser.close()
    assert errors == []
    assert titles == list(SECTIONS)
    assert charts >= 5
    review = json.loads((base / "review.json").read_text())
    # not 17 overlapping lines: the 5 SLOs that spent the most of the quarter's budget
    by_spent = sorted(review["slos"], key=lambda s: (-s["budget_spent"], s["slo"]))
    assert burn_traces == [s["slo"] for s in by_spent[:5]]
    print(overflow)
    assert len(overflow) >= 10
    assert [w for w in overflow if w["scroll"] > w["width"] + 1 or w["cells"]] == []


# -- The review holds (issue 16): one figure per quantity, in every section and every format ----------


def _percent(text: str) -> float:
    return float(text.rstrip("%").replace(",", ""))


def _formats(base: Path) -> tuple[dict[str, Any], dict[str, Section], dict[str, Section]]:
    review = json.loads((base / "review.json").read_text())
    md = markdown_sections((base / "review.md").read_text())
    page = html_sections((base / "review.html").read_text())
    return review, md, page


def test_markdown_and_html_say_the_same_in_every_section(demo: tuple[Path, str]) -> None:
    _, md, page = _formats(demo[0])
    assert list(md) == list(page) == list(SECTIONS)
    for title in SECTIONS:
        assert md[title] == page[title], title
    assert sum(len(s.tables) for s in md.values()) >= 10


def test_every_slo_has_one_outcome_everywhere(demo: tuple[Path, str]) -> None:
    review, md, _ = _formats(demo[0])
    slos = {s["slo"]: s for s in review["slos"]}
    head = review["headline"]
    for s in slos.values():  # JSON: `met` and `exhausted` are the outcome, never beside it
        assert s["met"] == (s["outcome"] == "met") and s["exhausted"] == (s["outcome"] == "exhausted")
        assert (
            (s["outcome"] == "exhausted")
            == (s["health"] == "exhausted")
            == (s["policy_minutes"]["exhausted"] > 0)
        )
    header, *rows = md["SLOs"].tables[0]
    col = {name: i for i, name in enumerate(header)}
    table = {row[0]: row for row in rows}
    assert set(table) == set(slos)
    outcomes = [table[slo][col["Outcome"]] for slo in slos]
    assert outcomes == [s["outcome"] for s in slos.values()]
    assert [table[slo][col["Trend"]] for slo in slos] == [s["trend"] for s in slos.values()]
    for slo, s in slos.items():
        exhausted_hours = table[slo][col["Hours normal / freeze / focus / exhausted"]].split(" / ")[3]
        assert (exhausted_hours != "0") == (s["outcome"] == "exhausted"), slo
    # the headline counts the table's outcomes
    counts = {o: outcomes.count(o) for o in ("met", "missed", "exhausted")}
    assert (head["slos_met"], head["slos_missed"], head["slos_exhausted"]) == (
        counts["met"], counts["missed"], counts["exhausted"]
    )  # fmt: skip
    met, missed, exhausted_n = counts["met"], counts["missed"], counts["exhausted"]
    first = md["Headline"].items[0]
    assert first.startswith(f"SLOs met: {met} of {len(rows)} ({missed} missed, {exhausted_n} exhausted")
    assert counts["exhausted"] >= 1  # the demo has an exhausted SLO: the check is not vacuous
    # risks and recommendations name exactly the exhausted / missed SLOs
    exhausted = sorted(slo for slo, s in slos.items() if s["outcome"] == "exhausted")
    risks = md["Top risks"].items
    assert sorted(slo for slo in slos if any(r.startswith(f"{slo} exhausted") for r in risks)) == exhausted
    for slo, s in slos.items():
        if any(r.startswith(f"{slo} missed its target") for r in risks):
            assert s["outcome"] == "missed", slo
    policy = next(r for r in md["Recommendations"].items if r.startswith("Apply the error-budget policy"))
    assert sorted(policy.split(" to ", 1)[1].split(".")[0].split(", ")) == exhausted
    # health: the service groups add up to the headline's counts
    _, *groups = md["SLOs"].tables[1]
    health = head["slo_health"]
    assert [sum(int(g[i]) for g in groups) for i in (1, 2, 3)] == [
        health["healthy"], health["at_risk"], health["exhausted"]
    ]  # fmt: skip
    assert sum(health.values()) == head["slos_measured"] == len(rows)


def test_no_percentage_prints_equal_to_its_target_unless_it_is(demo: tuple[Path, str]) -> None:
    base = demo[0]
    review, md, _ = _formats(base)
    slos = {s["slo"]: s for s in review["slos"]}
    header, *rows = md["SLOs"].tables[0]
    col = {name: i for i, name in enumerate(header)}
    previous = f"Attainment {review['previous_quarter']}"
    checked = 0
    for row in rows:
        s = slos[row[0]]
        target = _percent(row[col["Target"]])
        assert target == pytest.approx(s["target"] * 100)
        for key, column in (("attainment", "Attainment"), ("previous_attainment", previous)):
            printed = _percent(row[col[column]])
            # the printed comparison is the true one: equal only when equal, below only when below
            assert (printed == target) == (s[key] == s["target"]), (row[0], column)
            assert (printed < target) == (s[key] < s["target"]), (row[0], column)
            checked += 1
        spent = _percent(row[col["Budget spent"]])
        assert (spent >= 100) == (s["budget_spent"] >= 1), row[0]
    assert checked == 2 * len(slos)
    # every "attainment x% vs target y%" sentence, in every section
    text = (base / "review.md").read_text()
    quoted = re.findall(r"attainment ([\d.]+)% vs target ([\d.]+)%", text)
    assert quoted  # the exhausted SLO's risk quotes one
    for shown, target in quoted:
        match = [s for s in slos.values() if s["target"] * 100 == pytest.approx(float(target))]
        assert float(shown) != float(target) or any(s["attainment"] == s["target"] for s in match)


def test_each_figure_reads_the_same_in_every_section(demo: tuple[Path, str]) -> None:
    review, md, _ = _formats(demo[0])
    quarter = review["quarter"]
    durations = {row[0]: row for row in md["Incidents"].tables[0][1:]}
    change = {row[0]: row for row in md["Incidents"].tables[1][1:]}
    trend = {row[0]: row for row in md["Incident trends"].tables[0][1:]}
    metrics = {row[0]: row for row in md["Post-mortem and action-item compliance"].tables[0][1:]}
    headline = "\n".join(md["Headline"].items)
    ttr_p50, ttd_p50 = durations["TTR"][2], durations["TTD"][2]
    # TTR p50: headline, durations table, quarter-over-quarter table, trend table
    assert f"TTR, all severities: p50 {ttr_p50} min" in headline
    assert change["TTR"][1] == ttr_p50 == trend[quarter][6]
    assert change["TTD"][1] == ttd_p50
    assert float(ttr_p50.replace(",", "")) == pytest.approx(
        review["incidents"]["ttr_minutes"]["p50"], abs=0.05
    )
    # MTTD / MTTR: headline and success metrics
    mttd, mttr = review["headline"]["mttd_sev1_sev2"], review["headline"]["mttr_sev1"]
    assert f"MTTD SEV1/SEV2: p50 {metrics['MTTD (SEV1/SEV2)'][2]}," in headline
    assert f"MTTR SEV1: p50 {metrics['MTTR (SEV1)'][2]}," in headline
    assert mttd["p50"] is not None and mttr["p50"] is not None
    # incident counts: headline, text, trend table, severity split
    total = review["incidents"]["total"]
    assert f"Incidents: {total} (" in headline
    assert md["Incidents"].texts[0].startswith(f"{total} incidents, ")
    assert trend[quarter][1] == str(total)
    assert sum(int(n) for n in trend[quarter][2:6]) == total


def test_each_recall_is_named_and_one_per_table(demo: tuple[Path, str]) -> None:
    review, md, _ = _formats(demo[0])
    text = (demo[0] / "review.md").read_text()
    assert re.findall(r"recall(?! \()", text, flags=re.IGNORECASE) == []  # never a bare "recall"
    quality = md["Alert quality"]
    backtests = [t for t in quality.tables if t[0][0] == "Backtest setting"]
    assert len(backtests) == 2  # against incidents, and against the demo's injected events
    named = set()
    for table in backtests:
        [recall] = [h for h in table[0] if "recall" in h]
        named.add(recall)
    assert len(named) == 2
    aq = review["alert_quality"]
    assert (
        f"recall (incidents preceded by a received alert or an engine page) {aq['recall'] * 100:.1f}%"
        in (quality.texts[0])
    )


def test_per_slo_quarter_over_quarter_follows_the_stated_rule(demo: tuple[Path, str]) -> None:
    review, md, _ = _formats(demo[0])
    assert (
        "better / worse when the share of the quarter's error budget spent fell / rose by more than 10"
        in (md["SLOs"].texts[0])
    )
    for s in review["slos"]:
        assert s["previous_attainment"] is not None, s["slo"]  # the demo has the previous quarter
        moved = s["budget_spent"] - s["previous_budget_spent"]
        expected = "better" if moved < -0.10 else "worse" if moved > 0.10 else "same"
        assert s["trend"] == expected, s["slo"]
        assert s["attainment_change"] == pytest.approx(s["attainment"] - s["previous_attainment"], abs=1e-6)
    assert {s["trend"] for s in review["slos"]} - {"same"}  # something moved in the demo


def test_an_empty_quarter_says_so_and_exits_1(demo: tuple[Path, str]) -> None:
    done = _cli(demo[0] / "data", "report", "quarterly", "--quarter", "2019-Q1")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "2019-Q1 has no data: no SLO has events in it and no incident started in it" in done.stderr


def test_a_false_direction_claim_is_rejected_and_the_reader_sees_why(demo: tuple[Path, str]) -> None:
    """The demo's SEV1 MTTR got worse against the previous quarter: a model saying it improved by 90 %
    is rejected, and the HTML a person opens shows the rule-written summary and the reason."""
    chromium = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    base, quarter = demo
    review = json.loads((base / "review.json").read_text())
    mttr = review["headline"]["mttr_sev1"]
    assert mttr["p50"] > mttr["previous_p50"]  # worse: the claim below is false on both counts
    claim = "MTTR improved by 90% this quarter."
    with messages_server(claim) as model:
        done = _cli(base / "data", "report", "quarterly", "--quarter", quarter, "--format", "html",
                    "-o", str(base / "summary.html"), model_url=f"http://127.0.0.1:{model.port}")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(model.requests) == 1
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((base / "summary.html").as_uri(), wait_until="load", timeout=30_000)
            heading = page.locator(".summary strong").inner_text()
            text = page.locator(".summary p").inner_text()
        finally:
            browser.close()
    print(heading)
    assert heading.startswith("Executive summary (rule-written; the model's summary was rejected: ")
    assert "“90%” is not the change in MTTR (SEV1) p50" in heading
    assert "“improved” but MTTR (SEV1) p50 went up" in heading
    assert claim not in text and text.startswith(f"In {quarter}, ")


def test_what_the_reader_sees_speaks_no_design_document_words(demo: tuple[Path, str]) -> None:
    base = demo[0]
    design_words = re.compile(r"DESIGN|§|\bseed 0\d\d\b|\bissue \d+\b", re.IGNORECASE)
    md, page = (
        markdown_sections((base / "review.md").read_text()),
        html_sections((base / "review.html").read_text()),
    )
    for sections in (md, page):
        for title, s in sections.items():
            for line in [*s.texts, *s.items, *(" | ".join(row) for t in s.tables for row in t)]:
                assert not design_words.search(line), (title, line)
    usage = _cli(base / "data", "report", "quarterly", "--help")
    assert usage.returncode == 0 and "--quarter" in usage.stdout
    assert not design_words.search(usage.stdout), usage.stdout
