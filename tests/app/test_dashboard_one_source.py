"""One source per figure (issue 16): the fleet and alerts pages show `slo status`'s own headline
(N alerting, M paging) and the same firing-alert count; the stale banner shows exactly where
`slo status --json` says `stale: true`; the Alerts page's "Recent" list keeps to its range; the fleet
table's key columns come first and its budget bars take the policy state's colour.

Under Streamlit's AppTest on the real demo store; the CLI runs as a subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from dashboard.charts import STATE_COLORS
from pipelines.staleness import mark_stale
from tests.app.test_dashboard_pages import page
from tests.support.dashboard_store import DemoStore, build_demo_store, cli


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    return build_demo_store(tmp_path_factory)


def use(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("SLO_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SLO_SERVICE_URL", "http://127.0.0.1:9")  # nothing listens: no service


def metrics(at: object) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}  # type: ignore[attr-defined]


def test_fleet_and_alerts_pages_show_the_clis_headline_and_one_firing_count(
    store: DemoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, store.data_dir)
    text = cli(store.data_dir, "status")
    assert text.returncode == 0, text.stderr
    found = re.search(r"(\d+) alerting \((\d+) paging\)", text.stdout)
    assert found, text.stdout[:300]
    alerting, paging = found.groups()
    fleet = metrics(page("fleet"))
    alerts_page = page("alerts", since="1440")
    alerts = metrics(alerts_page)
    listed = alerts_page.dataframe[0].value
    print(f"slo status: {alerting} alerting ({paging} paging); fleet {fleet}; alerts {alerts}")
    assert fleet["SLOs alerting"] == alerts["SLOs alerting"] == alerting
    # The firing alerts the Alerts page lists, counted by hand, are the count both pages show.
    by_hand = int((listed["state"] == "firing").sum())
    assert fleet["firing alerts"] == alerts["firing alerts"] == str(by_hand)
    # The demo store's two received alerts that never resolved are among them.
    firing_titles = set(listed.loc[listed["state"] == "firing", "title"])
    assert {"CheckoutErrorRateHigh", "Report queue backlog"} <= firing_titles


def test_the_stale_banner_is_where_slo_status_says_stale(
    store: DemoStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(store.data_dir, data, ignore=shutil.ignore_patterns("writer.lock"))
    use(monkeypatch, data)
    # Nothing failed: the CLI says stale nowhere, and the page shows no stale banner (however old
    # the demo's last evaluation: that is a note, not "stale").
    rows = json.loads(cli(data, "status", "--json").stdout)
    assert not any(r["stale"] for r in rows)
    at = page("fleet")
    assert not [w.value for w in at.warning if "stale" in w.value.lower()]
    # A failed pull marks one SLO stale (the writer's own function): the CLI and the page agree.
    mark_stale(data, "prometheus", {"search/latency": "prometheus did not answer within 30s"}, {})
    rows = json.loads(cli(data, "status", "--json").stdout)
    stale = {r["slo"]: r["stale_reason"] for r in rows if r["stale"]}
    print(f"slo status --json stale: {stale}")
    assert stale == {"search/latency": "prometheus did not answer within 30s"}
    for name, params in (("fleet", {}), ("slo", {"slo": "search/latency"})):
        at = page(name, **params)
        banner = [w.value for w in at.warning if "stale" in w.value.lower()]
        print(f"{name}: {banner}")
        assert len(banner) == 1
        assert "prometheus did not answer within 30s" in banner[0] and "search/latency" in banner[0]
    at = page("slo", slo="search/availability")  # not stale: no banner on its own page
    assert not [w.value for w in at.warning if "stale" in w.value.lower()]


def test_alerts_recent_list_keeps_to_its_range(store: DemoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, store.data_dir)
    week = page("alerts", since=str(7 * 1440)).dataframe[0].value
    quarter = page("alerts", since=str(90 * 1440)).dataframe[0].value
    since = pd.Timestamp(store.evaluated_at - dt.timedelta(days=7))
    last_seen = week["ends_at"].fillna(week["starts_at"])
    old = week[(week["state"] != "firing") & (last_seen < since)]
    print(
        f"last 7 days: {len(week)} alerts (earliest start {week['starts_at'].min()}); 90 days: {len(quarter)}"
    )
    assert old.empty, old[["source", "title", "starts_at", "ends_at"]]
    # The longer range does hold older alerts (the demo's history): the filter has something to drop.
    older = quarter[quarter["ends_at"].fillna(quarter["starts_at"]) < since]
    assert len(older) > 0 and len(quarter) > len(week)


def test_fleet_key_columns_first_and_budget_bars_in_the_policy_states_colour(
    store: DemoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, store.data_dir)
    at = page("fleet")
    frame = at.dataframe[0]
    config = json.loads(frame.proto.columns)
    shown = list(frame.proto.column_order)
    print(f"column order: {shown}")
    assert shown[:5] == ["state", "slo", "budget_bar", "alerts", "policy"]
    assert config["state"]["pinned"] is True and config["slo"]["pinned"] is True
    by_slo = {r["slo"]: r for r in store.status}
    table = frame.value
    colours = []
    for row in table.itertuples():
        svg = unquote(row.budget_bar)
        fills = re.findall(r"fill='(#[0-9a-f]{6})'", svg)
        state = by_slo[row.slo]["policy_state"]
        budget = by_slo[row.slo]["budget_remaining"]
        assert fills[1] == STATE_COLORS[state], (row.slo, state, fills)
        assert f"{budget * 100:.1f}%" in svg, row.slo
        colours.append((row.slo, state, round(budget * 100, 1), fills[1]))
    print(colours)
    # The fullest budgets are not red (the progress column's one colour was red for every row).
    full = [c for c in colours if c[2] >= 90]
    assert full and all(c[3] not in (STATE_COLORS["exhausted"], "#ff4b4b") for c in full)


def test_fleet_as_of_is_slo_status_at_that_instant(store: DemoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, store.data_dir)
    at_text = (store.evaluated_at - dt.timedelta(days=45)).strftime("%Y-%m-%dT%H:%M:00Z")
    done = cli(store.data_dir, "status", "--json", "--at", at_text)
    assert done.returncode == 0, done.stderr
    expected = {r["slo"]: r for r in json.loads(done.stdout)}
    at = page("fleet", at=at_text)
    captions = " ".join(c.value for c in at.caption)
    assert f"Evaluated at {at_text}" in captions
    assert any(f"As of {at_text}" in i.value for i in at.info)
    table = at.dataframe[0].value
    then = {row.slo: (row.budget, row.state) for row in table.itertuples()}
    now = {r["slo"]: r["budget_remaining"] for r in store.status}
    print(f"as of {at_text}: {[(s, round(b, 1)) for s, (b, _) in list(then.items())[:4]]}")
    assert set(then) == set(expected)
    for slo, (budget, state) in then.items():
        assert budget == pytest.approx(expected[slo]["budget_remaining"] * 100, rel=1e-12), slo
        assert (expected[slo]["policy_state"] or "no data") in state, slo
    # It is another instant's figures, not the latest ones again.
    assert any(abs(then[s][0] - now[s] * 100) > 0.05 for s in then)
    assert metrics(at)["firing alerts"] == "—"  # a "now" figure, not shown as of another instant
    # A bad instant is said, not a traceback.
    at = page("fleet", at="yesterday")
    assert any("not an ISO 8601 time" in e.value for e in at.error)
