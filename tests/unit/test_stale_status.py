"""`slo status` and staleness: a failed pull's mark (beside the snapshot) holds until a later
published pull of that SLO succeeds; the JSON says `stale` with the reason, the table says STALE."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.cli import main, render_status
from pipelines.config import Settings
from pipelines.cycle import run_cycle
from pipelines.sources import Pull
from pipelines.specs import load_specs
from pipelines.staleness import mark_stale

SPEC = """\
service: shop
owner: team
slis:
  availability:
    good: 'sum(rate(ok_total[{{.window}}]))'
    valid: 'sum(rate(all_total[{{.window}}]))'
  errors:
    bad: 'sum(rate(err_total[{{.window}}]))'
    valid: 'sum(rate(all_total[{{.window}}]))'
slos:
  - sli: availability
    target: 99%
  - sli: errors
    target: 99%
"""
START = 29_620_800  # 2026-04-26T00:00Z in epoch minutes


def publish(settings: Settings, end: int) -> None:
    """A successful Prometheus-like pull of both SLOs up to `end`: 1000 events a minute, 1 bad."""
    slos, _ = load_specs([settings.specs_dir])
    minutes = range(START, end)
    buckets = pd.DataFrame(
        [(s.id, m, 999, 1000) for s in slos for m in minutes], columns=["slo_id", "minute", "good", "valid"]
    )
    run_cycle(settings, slos, Pull(buckets, end, "prometheus", high_water={s.id: end for s in slos}))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "shop.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLO_SPECS_DIR", str(tmp_path / "specs"))
    return Settings(data_dir=tmp_path / "data", specs_dir=tmp_path / "specs")


def status_rows(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    return {row["slo"]: row for row in json.loads(capsys.readouterr().out)}


def test_a_mark_holds_until_the_next_published_success(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(settings, START + 120)
    rows = status_rows(capsys)
    assert [(r["stale"], r["stale_reason"], r["stale_since"]) for r in rows.values()] == [
        (False, None, None)
    ] * 2

    failed_at = dt.datetime.now(dt.UTC)
    mark_stale(settings.data_dir, "prometheus", {"shop/errors": "Prometheus down"}, {}, now=failed_at)
    rows = status_rows(capsys)
    assert rows["shop/errors"]["stale"] is True
    assert rows["shop/errors"]["stale_reason"] == "Prometheus down"
    assert rows["shop/errors"]["stale_since"] == failed_at.isoformat().replace("+00:00", "Z")
    assert rows["shop/availability"]["stale"] is False
    # the numbers are the last good ones, with every field `slo status` had before
    assert rows["shop/errors"]["sli"] == pytest.approx(0.999)
    assert {"sli", "budget_remaining", "policy_state", "burn_rates", "alerts", "evaluated_at"} <= set(
        rows["shop/errors"]
    )

    publish(settings, START + 180)  # the source works again
    rows = status_rows(capsys)
    assert [r["stale"] for r in rows.values()] == [False, False]


def test_the_table_says_stale(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    publish(settings, START + 120)
    mark_stale(settings.data_dir, "prometheus", {"shop/errors": "did not answer within 30s"}, {})
    rows = list(status_rows(capsys).values())
    text = render_status(rows, color=False)
    lines = text.splitlines()
    assert lines[0].endswith("· 1 STALE (last pull failed: their last good data)")
    assert [line.split()[0] for line in lines if "STALE normal" in line] == ["shop/errors"]
    assert any(
        line.startswith("STALE since ") and line.endswith(": shop/errors: did not answer within 30s")
        for line in lines
    )
