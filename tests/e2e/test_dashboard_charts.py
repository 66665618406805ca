"""The dashboard's charts as a person sees them in headless Chromium: dates on every time axis, an
incident drawn exactly over its own span (and not at all outside the chart's range), y labels that
do not overlap, and an "as of" instant in the URL that changes the page and survives a reload.

Pixel positions come from the rendered SVG (getBoundingClientRect) and Plotly's own axis mapping
(`d2p`), so "the bar starts where the incident starts" is checked on screen, not in the figure JSON.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import pytest

from pipelines.store import Snapshot
from tests.e2e.conftest import Server
from tests.e2e.test_dashboard_browser import open_page, wait_idle
from tests.support.dashboard_store import DemoStore

pytestmark = pytest.mark.e2e

SLO = "checkout-api/availability"  # rolling 30 days; DASH-1 open on it, demo incidents back to April
MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
DATE_LABEL = re.compile(rf"^({MONTHS}) \d{{2}}( \d{{2}}:\d{{2}})?$|^({MONTHS}) \d{{4}}$")

# Per chart on the page: every x axis, its type, title and tick label texts as drawn.
AXES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const L = gd._fullLayout;
  return Object.keys(L).filter(k => /^xaxis\\d*$/.test(k)).map(k => {
    const ax = L[k];
    const texts = [...gd.querySelectorAll('.xaxislayer-above .' + ax._id + 'tick text')];
    return {axis: ax._id, type: ax.type, title: (ax.title && ax.title.text) || '',
            ticks: texts.map(t => t.textContent).filter(t => t.trim() !== '')};
  });
})"""

# The incident lane: every bar drawn on x5/y5 with its incident id, its pixel extent on screen and
# where Plotly's own axis puts given instants (so the test compares pixels with pixels).
BARS_JS = """([starts, stops]) => {
  const gd = document.querySelector('.js-plotly-plot');
  const xa = gd._fullLayout.xaxis5;
  const left = gd.getBoundingClientRect().left + xa._offset;
  const bars = [];
  for (const g of gd.querySelectorAll('.subplot.x5y5 .barlayer .trace')) {
    const cd = g.__data__;
    for (const p of g.querySelectorAll('path')) {
      const r = p.getBoundingClientRect();
      bars.push({id: String(cd[0].trace.y[0]), x0: r.left, x1: r.right});
    }
  }
  const at = (v) => left + xa.d2p(v);
  return {bars, starts: starts.map(at), stops: stops.map(at), range: xa.range};
}"""

# Every y axis's tick labels as boxes on screen, per axis, and the chart's own left edge.
YTICKS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const L = gd._fullLayout, edge = gd.getBoundingClientRect().left;
  return Object.keys(L).filter(k => /^yaxis\\d*$/.test(k)).map(k => {
    const id = L[k]._id;
    const boxes = [...gd.querySelectorAll('.yaxislayer-above .' + id + 'tick text')]
      .filter(t => t.textContent.trim() !== '')
      .map(t => { const r = t.getBoundingClientRect();
                  return {text: t.textContent, l: r.left, r: r.right, t: r.top, b: r.bottom}; });
    return {axis: id, edge, boxes};
  });
})"""


def slo_page(chromium: Any, dashboard: Server, query: str) -> tuple[Any, Any, list[str]]:
    context, page, errors = open_page(chromium, dashboard, f"slo?{query}")
    page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=30_000)
    wait_idle(page)
    # Plotly draws tick labels after layout: wait until the bottom axis has some.
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot .xaxislayer-above text').length > 0",
        timeout=15_000,
    )
    return context, page, errors


def incident_spans(store: DemoStore, slo_id: str) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """Each incident linked to the SLO with its impact span (open: up to the evaluation instant)."""
    with Snapshot(store.data_dir).connection() as con:
        rows = con.execute(
            """SELECT id, impact_start, coalesce(resolved_at, ?) FROM incidents
               WHERE slo_id = ? OR id IN (SELECT incident_id FROM incident_slos WHERE slo_id = ?)
               ORDER BY impact_start""",
            [store.evaluated_at, slo_id, slo_id],
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


@pytest.mark.parametrize(
    "query",
    [
        f"slo={quote(SLO, safe='')}",
        "slo=inventory%2Fcorrectness",  # a calendar quarter window
        f"slo={quote(SLO, safe='')}&range=1d",
        f"slo={quote(SLO, safe='')}&range=90d",
    ],
)
def test_every_time_axis_of_the_slo_page_has_date_tick_labels(
    chromium: Any, dashboard: Server, query: str
) -> None:
    context, page, errors = slo_page(chromium, dashboard, query)
    try:
        charts = page.evaluate(AXES_JS)
        print(f"{query}: {charts}")
        axes = [a for chart in charts for a in chart]
        assert len(axes) == 5, "the SLO figure has five rows on one time axis"
        for axis in axes:
            assert axis["type"] == "date", axis
            assert len(axis["ticks"]) >= 2, axis
            assert all(DATE_LABEL.match(t) for t in axis["ticks"]), axis
        assert [a["title"] for a in axes if "UTC" in a["title"]] == ["time (UTC)"]
        assert errors == []
    finally:
        context.close()


def test_other_pages_time_axes_are_dates(chromium: Any, dashboard: Server) -> None:
    """Any date axis on the analytics and quarterly pages has date labels too (their other x axes
    are quarters, weeks or settings: categories, not time)."""
    for path in ("analytics", "quarterly"):
        context, page, errors = open_page(chromium, dashboard, path)
        try:
            page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=60_000)
            wait_idle(page, timeout=90)
            axes = [a for chart in page.evaluate(AXES_JS) for a in chart]
            print(f"{path}: {[(a['axis'], a['type'], a['ticks'][:3]) for a in axes]}")
            assert axes, f"{path}: no chart"
            assert not [a for a in axes if a["type"] == "linear" and not a["ticks"]], axes
            for axis in (a for a in axes if a["type"] == "date"):
                assert axis["ticks"] and all(re.search(MONTHS, t) for t in axis["ticks"]), axis
            assert errors == []
        finally:
            context.close()


def test_an_incident_band_spans_exactly_the_incident(
    chromium: Any, dashboard: Server, store: DemoStore
) -> None:
    spans = incident_spans(store, SLO)
    start = store.evaluated_at - dt.timedelta(days=30)
    inside = [s for s in spans if s[2] > start]
    outside = [s for s in spans if s[2] <= start]
    print(f"incidents on {SLO}: inside the 30 days {inside}; before them {[s[0] for s in outside]}")
    assert inside and outside, "the demo has incidents on this SLO both inside and before its window"
    context, page, errors = slo_page(chromium, dashboard, f"slo={quote(SLO, safe='')}")
    try:
        fmt = "%Y-%m-%d %H:%M:%S"
        clipped = [(i, max(a, start), b) for i, a, b in inside]
        got = page.evaluate(
            BARS_JS, [[a.strftime(fmt) for _, a, _ in clipped], [b.strftime(fmt) for _, _, b in clipped]]
        )
        drawn = {b["id"]: b for b in got["bars"]}
        print(f"bars (px): {got['bars']}; expected starts {got['starts']} stops {got['stops']}")
        # Only the incidents inside the chart's range are drawn: nothing from April or August.
        assert sorted(drawn) == sorted(i for i, _, _ in inside)
        for (iid, _, _), x0, x1 in zip(clipped, got["starts"], got["stops"], strict=True):
            bar = drawn[iid]
            assert bar["x0"] == pytest.approx(x0, abs=1.5), iid
            # A bar narrower than a pixel is drawn one pixel wide.
            assert bar["x1"] == pytest.approx(max(x1, x0 + 1), abs=1.5), iid
        assert errors == []
    finally:
        context.close()


def test_y_axis_labels_are_readable_and_do_not_overlap(chromium: Any, dashboard: Server) -> None:
    context, page, errors = slo_page(chromium, dashboard, f"slo={quote(SLO, safe='')}&range=90d")
    try:
        axes = [a for chart in page.evaluate(YTICKS_JS) for a in chart]
        labelled = [a for a in axes if a["boxes"]]
        print({a["axis"]: [b["text"] for b in a["boxes"]] for a in axes})
        # SLI, budget, burn rate and the incident lanes (the state row has no labels).
        assert len(labelled) == 4
        for axis in labelled:
            boxes = axis["boxes"]
            for b in boxes:
                assert b["l"] >= axis["edge"] - 0.5, f"{axis['axis']} label {b['text']!r} cut off"
            for a, b in itertools.combinations(boxes, 2):
                overlap = min(a["b"], b["b"]) - max(a["t"], b["t"])
                assert overlap <= 0.5, f"{axis['axis']}: {a['text']!r} overlaps {b['text']!r}"
        assert errors == []
    finally:
        context.close()


def test_as_of_in_the_url_changes_the_page_and_survives_a_reload(
    chromium: Any, dashboard: Server, store: DemoStore
) -> None:
    # An instant during an old incident: the page must show it open then, the axis ending there.
    iid, impact_start, resolved = next(
        s for s in incident_spans(store, SLO) if s[2] < store.evaluated_at - dt.timedelta(days=40)
    )
    at = impact_start + (resolved - impact_start) / 2
    at = at.replace(second=0, microsecond=0)
    at_text = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"as of {at_text}: during {iid} ({impact_start} → {resolved})")
    context, page, errors = slo_page(chromium, dashboard, f"slo={quote(SLO, safe='')}&at={at_text}")
    try:
        for attempt in ("first load", "after reload"):
            body = page.inner_text("body")
            assert f"As of {at_text}" in body, attempt
            assert f"evaluated at {at_text}" in body, attempt
            got = page.evaluate(BARS_JS, [[], []])
            end = dt.datetime.fromisoformat(str(got["range"][1])[:19])
            print(f"{attempt}: bars {[b['id'] for b in got['bars']]}, axis ends {end}")
            assert end == at, attempt
            assert iid in {b["id"] for b in got["bars"]}, attempt
            assert f"at={at_text}" in page.url.replace("%3A", ":"), attempt
            page.reload(wait_until="domcontentloaded")
            page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=30_000)
            wait_idle(page)
        # Clearing the field returns to the latest instant and takes `at` out of the URL.
        field = page.get_by_role("textbox", name="As of (UTC)")
        field.fill("")
        field.press("Enter")
        page.get_by_text(f"evaluated at {store.evaluated_at:%Y-%m-%dT%H:%M:%S}Z").wait_for(timeout=15_000)
        assert "at" not in parse_qs(urlparse(page.url).query)
        assert errors == []
    finally:
        context.close()
