"""The pure half of the Prometheus source: spec queries → per-minute PromQL, chunks, answers → buckets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import pytest

from pipelines import promql
from pipelines.config import PrometheusSettings
from pipelines.errors import SpecError, StoreError
from pipelines.sources.prometheus import display_url, http_error, pull_ranges
from pipelines.specs import load_specs
from pipelines.staleness import SourceState, StaleMark, current_marks, mark_stale, read_marks

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # the window placeholder becomes the one-minute bucket, rates become increases
        ("sum(rate(x_total[{{.window}}]))", "sum(increase(x_total[1m]))"),
        ("sum(increase(x_total[{{ .window }}]))", "sum(increase(x_total[1m]))"),
        # a fixed range is a smoothing choice of the author: buckets are per minute (DESIGN §2)
        ('sum(rate(x_total{code!~"5.."}[5m]))', 'sum(increase(x_total{code!~"5.."}[1m]))'),
        # labels kept by the query are summed away: one series per query
        ("sum by (code) (rate(x_total[5m]))", "sum(sum by (code) (increase(x_total[1m])))"),
        ("rate(x_total[1h])", "sum(increase(x_total[1m]))"),
        # a bare counter (the seed's `business_logic_errors_total / requests_total`)
        ("requests_total", "sum(increase(requests_total[1m]))"),
        ('requests_total{path!="/healthz"}', 'sum(increase(requests_total{path!="/healthz"}[1m]))'),
        # a slash inside a label value is not a division, irate inside a label value is not irate
        ('sum(rate(x_total{path="/api/irate("}[5m]))', 'sum(increase(x_total{path="/api/irate("}[1m]))'),
        # already increase over 1m, already one series
        ("sum(increase(x_total[1m]))", "sum(increase(x_total[1m]))"),
        (
            "sum(rate(a_total[5m])) + sum(rate(b_total[5m]))",
            "sum(sum(increase(a_total[1m])) + sum(increase(b_total[1m])))",
        ),
    ],
)
def test_per_minute_increase(query: str, expected: str) -> None:
    assert promql.per_minute_increase(query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(irate(x_total[5m]))", "irate() does not give a counter's per-minute increase"),
        ("avg_over_time(queue_depth[5m])", "avg_over_time() does not give"),
        ("sum(rate(x_total[5m:1m]))", "subqueries ([range:step]) cannot give per-minute increases"),
        ("time() - last_build_timestamp_seconds", "no range selector"),
        ("sum(x_total)", "no range selector"),
        ("   ", "the query is empty"),
    ],
)
def test_queries_that_are_not_counters_are_refused_with_the_reason(query: str, message: str) -> None:
    with pytest.raises(promql.QueryShapeError) as caught:
        promql.per_minute_increase(query)
    assert message in str(caught.value)
    assert "expected counters inside rate(...[window]) or increase(...[window])" in str(caught.value)


def test_the_seed_spec_turns_into_per_minute_queries() -> None:
    slos, _ = load_specs([REPO / "slo_specs" / "checkout-api.yaml"])
    plans = {s.id: promql.plan_queries(s) for s in slos}
    availability = plans["checkout-api/availability"]
    # The ratio of rates splits at its '/'; with no direction given the numerator counts good events.
    assert (
        availability.good == 'sum(increase(http_requests_total{service="checkout-api", status!~"5.."}[1m]))'
    )
    assert availability.valid == 'sum(increase(http_requests_total{service="checkout-api"}[1m]))'
    assert availability.bad is None
    # `business_logic_errors_total / requests_total`: direction inferred bad (numerator says error).
    correctness = plans["checkout-api/correctness"]
    assert (correctness.bad, correctness.valid, correctness.good) == (
        "sum(increase(business_logic_errors_total[1m]))",
        "sum(increase(requests_total[1m]))",
        None,
    )
    # A threshold SLI is evaluated as written, once a minute.
    latency = plans["checkout-api/latency"]
    assert latency.kind == "threshold"
    assert latency.threshold is not None and latency.threshold.startswith("histogram_quantile(0.99,")
    assert [role for role, _ in latency.named()] == ["threshold"]


def test_a_ratio_that_cannot_be_split_says_which_field(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "service: s\nowner: o\nslis:\n  hits:\n"
        "    metric: 'sum(irate(hits_total[5m])) / sum(rate(all_total[5m]))'\n    direction: good\n"
        "slos:\n  - sli: hits\n    target: 99%\n"
    )
    # The native loader refuses it at the field's line (`slo validate` says so before any pull) ...
    with pytest.raises(SpecError) as refused:
        load_specs([spec])
    assert str(refused.value).startswith(f"{spec}:5: slis.hits.metric: metric (numerator): irate() does not")
    # ... and the pull's planner says which field for an SLO that reached it another way (an import).
    spec.write_text(spec.read_text().replace("irate(", "rate("))
    slos, _ = load_specs([spec])
    bad = dataclasses.replace(
        slos[0],
        sli=dataclasses.replace(
            slos[0].sli, ratio_query=slos[0].sli.ratio_query.replace("rate(", "irate(", 1)
        ),
    )
    with pytest.raises(promql.QueryShapeError) as caught:
        promql.plan_queries(bad)
    assert str(caught.value).startswith("slis.hits.metric (numerator): irate() does not give")


@pytest.mark.parametrize(
    ("start", "end", "max_points", "expected"),
    [
        (0, 25_000, 10_000, [(0, 10_000), (10_000, 20_000), (20_000, 25_000)]),
        (100, 101, 10_000, [(100, 101)]),
        (0, 30, 10, [(0, 10), (10, 20), (20, 30)]),
        (5, 5, 10, []),
    ],
)
def test_minute_chunks(start: int, end: int, max_points: int, expected: list[tuple[int, int]]) -> None:
    chunks = promql.minute_chunks(start, end, max_points)
    assert chunks == expected
    for a, b in chunks:
        first, last = promql.range_params((a, b))
        # instants (a+1)·60 … b·60 inclusive: b − a points, below Prometheus's 11,000 limit
        assert (last - first) // 60 + 1 == b - a <= max_points < 11_000


def test_a_month_of_minutes_needs_five_requests_per_query() -> None:
    chunks = promql.minute_chunks(0, 43_200, 10_000)
    assert len(chunks) == 5
    covered = [m for a, b in chunks for m in range(a, b)]
    assert covered == list(range(43_200))  # every minute once, no gap, no duplicate


def test_series_values_labels_each_answer_with_the_bucket_it_closes() -> None:
    # The value at 12:01 is the increase over [12:00, 12:01): bucket 12:00.
    noon = int(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC).timestamp()) // 60
    answer = [{"metric": {}, "values": [[(noon + 1) * 60, "7"], [(noon + 2) * 60, "3.0000000001"]]}]
    assert promql.series_values(answer, (noon, noon + 2)) == {noon: 7.0, noon + 1: 3.0000000001}
    # an instant outside the chunk (a server answering more than asked) is dropped
    assert promql.series_values(answer, (noon, noon + 1)) == {noon: 7.0}
    assert promql.series_values([], (noon, noon + 2)) == {}


def test_series_values_refuses_several_series() -> None:
    two = [{"metric": {"le": "0.1"}, "values": []}, {"metric": {"le": "0.2"}, "values": []}]
    with pytest.raises(ValueError, match="returned 2 series"):
        promql.series_values(two, (0, 10))


def test_chunks_answering_the_same_minute_give_one_bucket() -> None:
    merged = promql.merge_chunks([{1: 5.0, 2: 6.0}, {2: 6.5, 3: 7.0}])
    assert merged == {1: 5.0, 2: 6.5, 3: 7.0}


def test_ratio_buckets_from_good_and_valid() -> None:
    frame, clipped = promql.ratio_buckets(
        "s/a",
        valid={0: 10.0, 1: 5.0, 2: math.nan, 3: 4.0, 4: 0.0},
        good={0: 9.999999999, 1: 6.0},  # minute 1: good > valid (queries disagree); 3: no good series
    )
    assert frame.to_dict("list") == {
        "slo_id": ["s/a"] * 4,
        "minute": [0, 1, 3, 4],
        "good": [10, 5, 0, 0],
        "valid": [10, 5, 4, 0],
    }
    assert clipped == 1


def test_ratio_buckets_from_bad_and_valid() -> None:
    frame, clipped = promql.ratio_buckets("s/a", valid={0: 10.0, 1: 8.0}, bad={0: 3.0})
    assert (frame["good"].tolist(), frame["valid"].tolist(), clipped) == ([7, 8], [10, 8], 0)


@pytest.mark.parametrize(
    ("comparison", "good"),
    [("<=", [1, 1, 0]), ("<", [1, 0, 0]), (">=", [0, 1, 1]), (">", [0, 0, 1])],
)
def test_threshold_buckets(comparison: str, good: list[int]) -> None:
    # NaN (a quantile over no requests) is no data: not a valid minute.
    values = {0: 0.2, 1: 0.3, 2: 0.31, 3: math.nan}
    frame = promql.threshold_buckets("s/latency", values, 0.3, comparison)
    assert frame["minute"].tolist() == [0, 1, 2]
    assert frame["good"].tolist() == good
    assert frame["valid"].tolist() == [1, 1, 1]


def test_pull_ranges_from_flag_high_water_or_window() -> None:
    slos, _ = load_specs([REPO / "slo_specs" / "checkout-api.yaml"])
    end = 1_000_000
    at = dt.datetime(2026, 1, 1)
    states = {
        "checkout-api/availability": SourceState(end - 100, at),
        "checkout-api/latency": SourceState(end + 20, at),
    }
    ranges = pull_ranges(slos, None, end, states, overlap=10)
    assert ranges == {
        "checkout-api/availability": (end - 110, end),  # high-water mark minus the overlap
        "checkout-api/correctness": (end - 43_200, end),  # never pulled: its 30d window
    }  # latency is already past `end`: nothing to pull
    assert pull_ranges(slos, end - 5, end, states, overlap=10) == {s.id: (end - 5, end) for s in slos}


def test_settings_from_the_environment() -> None:
    default = PrometheusSettings.from_env({})
    assert (default.timeout, default.retries, default.parallel, default.max_points) == (30.0, 2, 4, 10_000)
    assert default.problems == ()
    bad = PrometheusSettings.from_env(
        {
            "PROMETHEUS_URL": "127.0.0.1:9090",
            "PROMETHEUS_TIMEOUT": "soon",
            "PROMETHEUS_MAX_POINTS": "20000",
            "PROMETHEUS_TOKEN": "t",
            "PROMETHEUS_USER": "u",
        }
    )
    assert bad.problems == (
        "PROMETHEUS_TIMEOUT='soon': expected a number from 0.1 to 600",
        "PROMETHEUS_MAX_POINTS='20000': expected a whole number from 1 to 10999",
        "PROMETHEUS_TOKEN and PROMETHEUS_USER/PROMETHEUS_PASSWORD: set one of them, not both",
        "PROMETHEUS_USER and PROMETHEUS_PASSWORD: basic auth needs both",
        "PROMETHEUS_URL='127.0.0.1:9090': expected http://host:port or https://…",
    )
    secret = PrometheusSettings.from_env({"PROMETHEUS_USER": "u", "PROMETHEUS_PASSWORD": "hunter2"})
    assert secret.problems == () and "hunter2" not in repr(secret)


@pytest.mark.parametrize(
    ("text", "kind", "transient", "message"),
    [
        (
            'HTTP Status Code 400 (b\'{"status":"error","errorType":"bad_data","error":"parse error"}\')',
            "rejected",
            False,
            "Prometheus rejected the query (HTTP 400) — bad_data: parse error",
        ),
        (
            "HTTP Status Code 503 (b'Service Unavailable')",
            "http",
            True,
            "answered HTTP 503 — Service Unavailable",
        ),
        ("HTTP Status Code 401 (b'Unauthorized')", "auth", False, "refused the credentials (HTTP 401)"),
        ("HTTP Status Code 404 (b'')", "http", False, "no Prometheus API at http://p:9090 (HTTP 404)"),
    ],
)
def test_http_errors_are_classified(text: str, kind: str, transient: bool, message: str) -> None:
    error = http_error(text, "http://p:9090")
    assert (error.kind, error.transient) == (kind, transient)
    assert message in str(error)


def test_display_url_hides_credentials() -> None:
    assert (
        display_url("https://user:secret@prom.example:9090/prometheus")
        == "https://prom.example:9090/prometheus"
    )


def test_stale_marks_hold_until_a_later_success(tmp_path: Path) -> None:
    t0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    first = mark_stale(tmp_path, "prometheus", {"s/a": "down"}, {}, now=t0)
    assert first["s/a"].since == "2026-06-01T12:00:00Z"
    # still failing a minute later: the reason is the latest, `since` is when it went stale
    mark_stale(
        tmp_path, "prometheus", {"s/a": "timeout", "s/b": "down"}, {}, now=t0 + dt.timedelta(minutes=1)
    )
    marks = read_marks(tmp_path)
    assert marks["s/a"] == StaleMark(
        "s/a", "prometheus", "timeout", "2026-06-01T12:01:00Z", "2026-06-01T12:00:00Z"
    )
    # s/a succeeded at 12:02 (published), s/b did not
    states = {"s/a": SourceState(100, dt.datetime(2026, 6, 1, 12, 2))}
    assert sorted(current_marks(marks, states)) == ["s/b"]
    # a new failure after that success starts a new stale period
    again = mark_stale(tmp_path, "prometheus", {"s/a": "down"}, states, now=t0 + dt.timedelta(minutes=3))
    assert again["s/a"].since == "2026-06-01T12:03:00Z"


def test_a_damaged_stale_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "stale.json").write_text("{not json")
    with pytest.raises(StoreError) as caught:
        read_marks(tmp_path)
    assert f"{tmp_path}/stale.json: not a stale-marks file" in str(caught.value)
