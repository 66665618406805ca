"""`slo report quarterly` end to end: the real CLI (subprocess) over a small evaluated store whose figures
are worked out by hand in `tests/support/review_store.py`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.analytics.alert_quality import (
    DEFAULT_SETTINGS,
    ENGINE_PAGES_SQL,
    merge_intervals,
    replay_pages,
    stored_engine_slos,
)
from pipelines.analytics.quarter import Quarter
from pipelines.analytics.render import SECTIONS, render_html
from pipelines.store import Snapshot
from pipelines.timeutil import minute_of
from tests.support.cli import slo
from tests.support.review_store import build_review_store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("review")
    build_review_store(base / "data", base / "specs")
    return base / "data"


def test_json_report_has_the_design_fields_with_hand_checked_figures(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q3.json"
    done = slo(
        data_dir,
        "report",
        "quarterly",
        "--quarter",
        "2026-Q3",
        "--format",
        "json",
        "-o",
        str(out),
        "--candidate",
        "1h/5m>2000",
    )
    assert done.returncode == 0, done.stderr
    r = json.loads(out.read_text())
    assert r["quarter"] == "2026-Q3"
    inc = r["incidents"]
    # INC-1, INC-3 resolved; INC-4 open (out of every duration); INC-2 belongs to Q2
    assert (inc["total"], inc["open"]) == (3, 1)
    assert inc["by_severity"] == {"SEV1": 1, "SEV2": 1, "SEV3": 1, "SEV4": 0}
    assert inc["ttr_minutes"] == {"count": 2, "p50": 27.5, "p90": 29.5, "mean": 27.5}  # 25 and 30
    assert inc["ttd_minutes"] == {"count": 2, "p50": 4.5, "p90": 5.7, "mean": 4.5}  # 3 and 6
    assert inc["tta_minutes"] == {"count": 1, "p50": 2.0, "p90": 2.0, "mean": 2.0}  # INC-3 never acked
    assert inc["ttm_minutes"] == {"count": 1, "p50": 15.0, "p90": 15.0, "mean": 15.0}
    assert [(i["id"], i["ttd_minutes"], i["ttr_minutes"], i["open"]) for i in inc["list"]] == [
        ("INC-1", 3.0, 25.0, False),
        ("INC-3", 6.0, 30.0, False),
        ("INC-4", None, None, True),
    ]
    slos = {s["slo"]: s for s in r["slos"]}
    assert (
        slos["checkout-api/availability"]["attainment"],
        slos["checkout-api/availability"]["budget_spent"],
    ) == (
        0.999008,
        0.9921,
    )
    assert (slos["search/availability"]["good"], slos["search/availability"]["valid"]) == (
        1_007_800,
        1_008_000,
    )
    assert r["repeats"]["repeats"][0]["repeat_of"] == "INC-2"
    assert r["repeats"]["with_open_action_items"] == 1
    metrics = {m["metric"]: m for m in r["success_metrics"]}
    # INC-1's post-mortem 20 h after resolution; INC-3 has none, 62.5 h after resolution at as_of 07-08
    assert metrics["postmortems_within_48h"]["detail"]["missed_ids"] == ["INC-3"]
    assert metrics["action_items_on_time"]["value"] == 0.5  # AI-1 on time, AI-2 open past 07-06
    assert (r["alert_quality"]["pages"], r["alert_quality"]["precision"]) == (3, 0.6667)
    assert r["deploys"]["incidents_list"][0]["minutes_after_deploy"] == 30.0
    assert [t["quarter"] for t in r["trend"]] == ["2026-Q2", "2026-Q3"]
    assert r["risks"] and r["recommendations"]
    # a candidate no outage can reach (burn ≤ 500 here: 50 % bad at 99.9 %) would have sent no page
    assert [(b["setting"], b["pages"]) for b in r["backtest"]][-1] == ("1h/5m>2000", 0)
    assert r["backtest"][0]["pages"] == 2


def test_markdown_report_has_every_section_with_its_figures(data_dir: Path) -> None:
    done = slo(data_dir, "report", "quarterly", "--quarter", "2026-Q3", "--format", "md")
    assert done.returncode == 0, done.stderr
    md = done.stdout
    for title in SECTIONS:
        assert f"\n## {title}\n" in md, title
    assert "- Incidents: 3 (SEV1 1, SEV2 1, SEV3 1, SEV4 0); previous quarter 1" in md
    assert "- MTTR SEV1: p50 25.0 min, p90 25.0 min (n=1) — target p50 < 30 min: met" in md
    assert "| checkout-api/availability | 99.9% | 99.901% | met | 99.2% |" in md
    assert "| INC-2 → INC-3 | search | 2 |" in md
    assert "| Post-mortems within 48 h (SEV1/SEV2) | 100% | 50.0% | missed |" in md
    assert "3 pages (alerts), 2 linked to an incident: precision 66.7%." in md


def test_html_report_escapes_the_names_it_quotes(data_dir: Path) -> None:
    done = slo(data_dir, "report", "quarterly", "--quarter", "2026-Q3", "--format", "json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    r["slos"][0]["slo"] = "<script>alert(1)</script>"
    page = render_html(r)
    assert "<script>alert(1)</script>" not in page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page


def test_backtest_of_the_spec_setting_replays_the_engine(data_dir: Path) -> None:
    q = Quarter(2026, 3)
    qs, qe = minute_of(q.start), minute_of(q.end)
    snap = Snapshot(data_dir)
    try:
        with snap.connection() as con:
            stored: dict[str, list[tuple[int, int]]] = {}
            for slo_id, _, s, e in con.execute(ENGINE_PAGES_SQL, [qs, qe]).fetchall():
                stored.setdefault(slo_id, []).append((s, e))
            replayed = {
                es.slo.id: replay_pages(con, es, DEFAULT_SETTINGS[:1], qs, min(qe, end or qe))[
                    DEFAULT_SETTINGS[0].name
                ]
                for es, end in stored_engine_slos(con)
            }
    finally:
        snap.close()
    assert replayed == {k: merge_intervals(stored.get(k, [])) for k in replayed}
    assert sum(len(v) for v in replayed.values()) == 2  # one page per Q3 outage


def test_usage_and_missing_snapshot_errors(tmp_path: Path) -> None:
    bad = slo(tmp_path, "report", "quarterly", "--quarter", "2026-Q5")
    assert bad.returncode == 2 and "expected e.g. 2026-Q3" in bad.stderr
    bad = slo(tmp_path, "report", "quarterly", "--candidate", "1h>3")
    assert bad.returncode == 2 and "expected LONG/SHORT>FACTOR" in bad.stderr
    missing = slo(tmp_path, "report", "quarterly", "--quarter", "2026-Q3")
    assert missing.returncode == 1 and "no published snapshot yet" in missing.stderr


ONCALL = """\
people: {alice: {}, bob: {}}
schedules:
  primary:
    layers:
      - {start: "2026-07-01T00:00:00Z", rotation_turn_length: 84h, users: [alice, bob]}
policies:
  default: {tiers: [{target: {schedule: primary}, timeout: 5m}]}
"""


def test_with_an_oncall_file_the_report_gives_the_load_per_engineer(data_dir: Path, tmp_path: Path) -> None:
    """Q3's data ends 07-08 00:00: alice is on call 07-01 00:00–07-04 12:00 and bob until 07-08, half a week
    each. The three pages: checkout-api 07-03 10:03 (alice), search 07-05 09:06 and 07-07 02:00 (bob)."""
    (tmp_path / "oncall.yaml").write_text(ONCALL)
    env = {"SLO_ONCALL_FILE": str(tmp_path / "oncall.yaml")}
    done = slo(data_dir, "report", "quarterly", "--quarter", "2026-Q3", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    oc = json.loads(done.stdout)["oncall"]
    assert (oc["method"], oc["schedules"], oc["unattributed_pages"]) == ("schedule", ["primary"], 0)
    assert [
        (p["person"], p["pages"], p["on_call_weeks"], p["pages_per_week"], p["under_target"])
        for p in oc["people"]
    ] == [
        ("bob", 2, 0.5, 4.0, True),
        ("alice", 1, 0.5, 2.0, True),
    ]
    assert oc["pages_per_week"] == [3]  # the keys it always had, still there
    md = slo(data_dir, "report", "quarterly", "--quarter", "2026-Q3", "--format", "md", env=env).stdout
    assert "| primary | bob | 2 | 0.5 | 4 | yes |" in md and "| primary | alice | 1 | 0.5 | 2 | yes |" in md
    assert "Method: the on-call schedule (primary): each page counts for whoever" in md.replace("\\", "")

    (tmp_path / "oncall.yaml").write_text("people: [alice]\n")  # a file that cannot be used: exit 1, named
    bad = slo(data_dir, "report", "quarterly", "--quarter", "2026-Q3", "--format", "json", env=env)
    assert bad.returncode == 1 and f"{tmp_path / 'oncall.yaml'}: people:" in bad.stderr, bad.stderr
