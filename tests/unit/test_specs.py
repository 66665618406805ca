"""Known answers for the native spec loader: field parsers, the seed example, and broken specs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.errors import SpecError
from pipelines.model import BurnRateAlert, SloWindow
from pipelines.specs import (
    default_alerts,
    load_specs,
    parse_duration,
    parse_error_budget,
    parse_target,
    parse_threshold,
    parse_window,
    split_ratio,
)

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "slo_specs" / "checkout-api.yaml"
SPECS = Path(__file__).resolve().parent / "specs"

# --- field parsers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("5m", 5),
        ("1h", 60),
        ("30d", 43200),
        ("4w", 40320),
        ("1h30m", 90),
        ("1w3d", 14400),
        ("120s", 2),
        (" 2h ", 120),
    ],
)
def test_parse_duration(text: str, minutes: int) -> None:
    assert parse_duration(text) == minutes


@given(days=st.integers(0, 400), hours=st.integers(0, 23), minutes=st.integers(0, 59))
def test_parse_duration_adds_its_parts(days: int, hours: int, minutes: int) -> None:
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n) or "1m"
    assert parse_duration(text) == (days * 1440 + hours * 60 + minutes or 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("90s", "'90s' is not a whole number of minutes (minute granularity)"),
        ("30x", "'30x' is not a duration; expected a whole number of minutes with units w, d, h, m"),
        ("30", "'30' is not a duration"),
        ("1.5h", "'1.5h' is not a duration"),
        ("30m1h", "'30m1h' is not a duration"),
        ("0m", "'0m' is zero; expected a positive duration"),
        ("", "'' is not a duration"),
        (30, "30 is not a duration"),
    ],
)
def test_parse_duration_rejects(text: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("value", "fraction"),
    [
        ("99.95%", 0.9995),
        ("99.95", 0.9995),
        (99.95, 0.9995),
        ("0.9995", 0.9995),
        (0.9995, 0.9995),
        ("99.9", 0.999),
        ("99%", 0.99),
        (99, 0.99),
        ("90", 0.9),
        ("50%", 0.5),
        ("0.5%", 0.005),
    ],
)
def test_parse_target(value: object, fraction: float) -> None:
    assert parse_target(value) == fraction


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("100%", "'100%' leaves no error budget (100% allows no failures); expected a target below 100%"),
        ("100", "'100' leaves no error budget"),
        (1, "1 leaves no error budget"),
        (
            "101%",
            "'101%' is not a target; expected a percentage below 100 like 99.9%, or a fraction like 0.999",
        ),
        ("0%", "'0%' is not a target"),
        ("-5", "'-5' is not a target"),
        ("high", "'high' is not a target"),
        (True, "True is not a target"),
    ],
)
def test_parse_target_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_target(value)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("30d", SloWindow("rolling", 43200, "30d")),
        ("28d", SloWindow("rolling", 40320, "28d")),
        ("4w", SloWindow("rolling", 40320, "4w")),
        ("7d", SloWindow("rolling", 10080, "7d")),
        ("5m", SloWindow("rolling", 5, "5m")),
        ("month", SloWindow("calendar", 43200, "month", "month")),
        ("quarter", SloWindow("calendar", 129600, "quarter", "quarter")),
    ],
)
def test_parse_window(text: str, window: SloWindow) -> None:
    assert parse_window(text) == window


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30x", "'30x' is not a window; expected a rolling duration like 30d, 28d, 4w or 7d, or a calendar"),
        # `year` is a calendar window since issue 14 (OpenSLO 1Y); a unit nobody reads still is not
        ("decade", "'decade' is not a window"),
        ("month in Mars/Olympus", "'Mars/Olympus' is not a time zone in the IANA database"),
        ("month from not-a-date", "'not-a-date' is not a date"),
        ("4m", "'4m' is shorter than 5m; expected a window of at least 5m"),
    ],
)
def test_parse_window_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_window(text)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("21.6 minutes/month", 21.6),  # (1 − 0.9995) × 30d
        ("7.2 hours/month", 432.0),  # (1 − 0.99) × 30d
        ("4.32 min/30d", 4.32),
        ("43m/30d", 43.0),
        ("10.8 hours/quarter", 648.0),
        ("90 seconds per day", 1.5),
        ("1 day/quarter", 1440.0),
    ],
)
def test_parse_error_budget(text: str, minutes: float) -> None:
    assert parse_error_budget(text) == pytest.approx(minutes, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("21.6 minutes", "'21.6 minutes' is not an error budget; expected an amount of time per period"),
        ("21.6 parsecs/month", "'21.6 parsecs/month' has an unknown unit 'parsecs'"),
        ("21.6 minutes/fortnight", "'21.6 minutes/fortnight' has an unknown period 'fortnight'"),
    ],
)
def test_parse_error_budget_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_error_budget(text)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("400ms at p99", 0.4), ("0.4s", 0.4), ("250ms", 0.25), ("2s at p95", 2.0), ("15m", 900.0), (0.4, 0.4)],
)
def test_parse_threshold(value: object, seconds: float) -> None:
    assert parse_threshold(value) == seconds


@pytest.mark.parametrize("value", ["fast", "400 ms at 99", "p99 < 400ms", "-1s"])
def test_parse_threshold_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="is not a threshold; expected a duration with unit ms, s or m"):
        parse_threshold(value)


@pytest.mark.parametrize(
    ("query", "parts"),
    [
        ("a / b", ("a", "b")),
        (
            'sum(rate(x{path="/api"}[5m])) / sum(rate(y[5m]))',
            ('sum(rate(x{path="/api"}[5m]))', "sum(rate(y[5m]))"),
        ),
        ("(a / b)", None),
        ("a / b / c", None),
        ("histogram_quantile(0.99, x)", None),
    ],
)
def test_split_ratio(query: str, parts: tuple[str, str] | None) -> None:
    assert split_ratio(query) == parts


@pytest.mark.parametrize(
    ("window", "factors"),
    [
        (43200, (14.4, 6.0, 3.0, 1.0)),  # 30d: the SRE Workbook numbers
        (40320, (13.44, 5.6, 2.8, 1.0)),  # 28d: 0.933 raised to 1 (no default alert below 1)
        (10080, (3.36, 1.4, 1.0, 1.0)),  # 7d: 0.7 and 0.233 raised to 1
    ],
)
def test_default_alerts(window: int, factors: tuple[float, ...]) -> None:
    alerts = default_alerts(window)
    assert [(a.severity, a.long_window, a.short_window) for a in alerts] == [
        ("page", 60, 5),
        ("page", 360, 30),
        ("ticket", 1440, 120),
        ("ticket", 4320, 360),
    ]
    for alert, factor in zip(alerts, factors, strict=True):
        assert alert.factor == pytest.approx(factor, rel=0, abs=1e-12)


# --- the seed example --------------------------------------------------------------------------


def test_seed_example_loads_with_warnings() -> None:
    slos, warnings = load_specs([SEED])
    by_id = {slo.id: slo for slo in slos}
    assert list(by_id) == ["checkout-api/availability", "checkout-api/correctness", "checkout-api/latency"]

    availability = by_id["checkout-api/availability"]
    assert (availability.target, availability.window.minutes, availability.window.kind) == (
        0.9995,
        43200,
        "rolling",
    )
    assert availability.alerts == (BurnRateAlert("page", 60, 5, 14.4), BurnRateAlert("ticket", 360, 30, 6.0))
    assert availability.alerts_custom
    assert (availability.sli.kind, availability.sli.ratio_direction) == ("ratio", "good")
    assert availability.sli.ratio_query is not None and 'status!~"5.."' in availability.sli.ratio_query
    assert availability.error_budget_text == "21.6 minutes/month"
    assert availability.budget_minutes == pytest.approx(21.6)
    assert (availability.owner, availability.review_cadence) == ("payments-team", "monthly")
    assert (availability.source_file, availability.source_line) == (str(SEED), 31)

    latency = by_id["checkout-api/latency"]
    assert (latency.sli.kind, latency.sli.threshold, latency.sli.comparison) == ("threshold", 0.4, "<=")
    assert latency.sli.threshold_text == "400ms at p99"
    assert latency.target == 0.99
    assert latency.alerts == default_alerts(43200)
    assert not latency.alerts_custom
    assert latency.budget_minutes == pytest.approx(432.0)  # "7.2 hours/month"

    correctness = by_id["checkout-api/correctness"]
    assert (correctness.target, correctness.sli.kind) == (0.9999, "ratio")
    assert (correctness.sli.ratio_direction, correctness.sli.category) == ("bad", "correctness")
    assert correctness.sli.good_event == "No business logic error"

    assert availability.policy == {
        "normal": "Normal feature development",
        "freeze_review": "Feature freeze review with Eng Manager",
        "reliability_focus": "All hands on reliability work until budget recovers",
        "exhausted": "Freeze all non-critical deploys, conduct review with VP Eng",
    }
    hint = (
        "add 'direction: good' (the ratio counts good events) or 'direction: bad' (it counts bad events) "
        "to make it explicit"
    )
    assert [str(w) for w in warnings] == [
        f"{SEED}:9: slis.availability.metric: direction not given; inferred 'good' because its numerator "
        f"mentions neither 'error' nor 'fail'; {hint}",
        f"{SEED}:27: slis.correctness.metric: direction not given; inferred 'bad' because its numerator "
        f"mentions 'error'; {hint}",
    ]


def test_directory_loads_every_yaml_and_skips_the_readme() -> None:
    slos, _ = load_specs([SEED.parent])  # README.md would fail to load as a spec
    seed = [slo for slo in slos if slo.service == "checkout-api"]
    assert [slo.id for slo in seed] == [
        "checkout-api/availability",
        "checkout-api/correctness",
        "checkout-api/latency",
    ]
    assert seed[0].source_file == str(SEED.parent / "checkout-api.yaml")


# --- the explicit forms ------------------------------------------------------------------------


def test_every_sli_form_and_custom_alerts() -> None:
    path = SPECS / "valid_forms.yaml"
    slos, warnings = load_specs([path])
    assert warnings == []
    by_id = {slo.id: slo for slo in slos}
    assert list(by_id) == [
        "search/availability",
        "search/cache-hits",
        "search/errors",
        "search/index-age",
        "search/latency",
        "suggest/availability",
    ]

    good = by_id["search/availability"].sli
    assert (good.kind, good.category, good.bad_query) == ("ratio", "availability", None)
    assert good.good_query == 'sum(rate(search_requests_total{code!~"5.."}[{{.window}}]))'
    assert good.valid_query == "sum(rate(search_requests_total[{{.window}}]))"
    assert by_id["search/availability"].window == SloWindow("rolling", 40320, "28d")
    assert by_id["search/availability"].alerts == default_alerts(40320)

    errors = by_id["search/errors"]
    assert (errors.sli.bad_query, errors.sli.good_query) == (
        "sum(rate(search_wrong_results_total[{{.window}}]))",
        None,
    )
    assert (errors.sli.category, errors.target) == ("correctness", 0.999)
    assert errors.window == SloWindow("calendar", 43200, "month", "month")

    hits = by_id["search/cache-hits"]
    assert (hits.name, hits.sli.name, hits.sli.ratio_direction, hits.target) == (
        "cache-hits",
        "hits",
        "good",
        0.9,
    )
    # budget_consumed: factor = share × 7d / long window
    assert hits.alerts_custom
    assert [(a.severity, a.long_window, a.short_window) for a in hits.alerts] == [
        ("page", 60, 5),
        ("ticket", 1440, 120),
    ]
    assert hits.alerts[0].factor == pytest.approx(0.02 * 10080 / 60, abs=1e-12)  # 3.36
    assert hits.alerts[1].factor == pytest.approx(0.1 * 10080 / 1440, abs=1e-12)  # 0.7

    latency = by_id["search/latency"].sli
    assert (latency.kind, latency.threshold, latency.comparison, latency.category) == (
        "threshold",
        0.25,
        "<",
        "latency",
    )
    assert by_id["search/latency"].window.calendar == "quarter"
    assert by_id["search/latency"].alerts[0].factor == pytest.approx(43.2, abs=1e-12)  # 0.02 × 90d / 1h

    age = by_id["search/index-age"]
    assert (age.sli.kind, age.sli.threshold, age.sli.category) == ("threshold", 900.0, "latency")
    assert age.window.minutes == 14400

    assert by_id["search/errors"].policy == {"normal": "Ship features", "exhausted": "Freeze deploys"}
    assert by_id["suggest/availability"].policy == {}
    assert by_id["suggest/availability"].sli.bad_query == "sum(increase(suggest_errors_total[1m]))"


@pytest.mark.parametrize(
    ("target", "window", "budget"),
    [
        ("99.95%", "30d", "21.6 minutes/month"),
        ("99.0%", "30d", "7.2 hours/month"),
        ("99.9%", "month", "43.2 minutes/month"),
        ("99.9%", "7d", "43.2 minutes/month"),  # pro-rated: 10.08 minutes per 7d is 43.2 per 30d
        ("99.9%", "30d", "10.08 min/week"),
        ("99.9%", "quarter", "2.16 hours/quarter"),
        ("99.95%", "30d", "21.5 minutes/month"),  # 0.46% off: within the 0.5% tolerance
    ],
)
def test_error_budget_agrees(tmp_path: Path, target: str, window: str, budget: str) -> None:
    path = _spec(tmp_path, f'    target: {target}\n    window: {window}\n    error_budget: "{budget}"\n')
    slos, _ = load_specs([path])
    assert slos[0].error_budget_text == budget


@pytest.mark.parametrize(
    ("target", "budget", "allowed"),
    [
        ("99.95%", "21.4 minutes/month", "21.6 minutes"),
        ("99.0%", "7.2 hours/week", "100.8 minutes"),
    ],
)
def test_error_budget_disagrees(tmp_path: Path, target: str, budget: str, allowed: str) -> None:
    path = _spec(tmp_path, f'    target: {target}\n    error_budget: "{budget}"\n')
    assert f"= {allowed}; expected" in _problems(path)[0]


def test_custom_alert_checks(tmp_path: Path) -> None:
    path = _spec(
        tmp_path,
        "    target: 99.9%\n"
        "    burn_rate_alerts:\n"
        "      - severity: page\n"  # line 11
        "        long_window: 1h\n"
        "        short_window: 5m\n"
        "        burn_rate: 14.4x\n"
        "        budget_consumed: 2%\n"  # line 15
        "      - severity: ticket\n"  # line 16
        "        long_window: 60d\n"
        "        short_window: 1h\n"
        "        burn_rate: 1\n",
    )
    assert _problems(path) == [
        f"{path}:15: slos[0].burn_rate_alerts[0].burn_rate: 'burn_rate' and 'budget_consumed' cannot be used "
        "together; expected exactly one of burn_rate (like 14.4x) or budget_consumed (like 2%)",
        f"{path}:17: slos[0].burn_rate_alerts[1].long_window: long_window 60d is longer than the SLO "
        "window 30d; expected a long_window within the window",
    ]


def test_unreachable_default_alert_warns(tmp_path: Path) -> None:
    path = _spec(tmp_path, "    target: 90%\n")
    _, warnings = load_specs([path])
    assert [str(w) for w in warnings] == [
        f"{path}:9: slos[0].target: default page alert with burn rate 14.4 over 1h can never fire: "
        "at target 90% the highest possible burn rate is 10 (every event bad); "
        "expected a lower burn rate (burn_rate_alerts) or a higher target"
    ]


def test_direction_and_ratio_shape(tmp_path: Path) -> None:
    path = tmp_path / "ratio.yaml"
    path.write_text(
        "service: api\n"
        "owner: team-a\n"
        "slis:\n"
        "  failures:\n"
        "    metric: sum(rate(requests_failed_total[5m])) / sum(rate(requests_total[5m]))\n"
        "  success:\n"
        "    metric: requests_ok_total / requests_total\n"
        "    direction: up\n"
        "  gauge:\n"
        '    metric: up{job="api"}\n'
        "slos:\n"
        "  - sli: failures\n"
        "    target: 99%\n"
        "  - sli: success\n"
        "    target: 99%\n"
        "  - sli: gauge\n"
        "    target: 99%\n"
    )
    with pytest.raises(SpecError) as raised:
        load_specs([path])
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:8: slis.success.direction: 'up' is not a direction; expected good (the ratio counts good "
        "events) or bad (it counts bad events)",
        f"{path}:10: slis.gauge.metric: a ratio metric needs exactly one top-level '/' "
        "(numerator / denominator), found no top-level '/'; wrap parts in parentheses, "
        "or add 'threshold' for a threshold SLI",
    ]


def test_threshold_comparison_and_percentile_hints(tmp_path: Path) -> None:
    text = (
        "service: api\n"
        "owner: team-a\n"
        "slis:\n"
        "  latency:\n"
        "    metric: histogram_quantile(0.95, sum(rate(x_bucket[5m])) by (le))\n"
        "    threshold: 400ms at p99\n"
        "    comparison: COMPARISON\n"
        "slos:\n"
        "  - sli: latency\n"
        "    target: 99%\n"
    )
    path = tmp_path / "latency.yaml"
    path.write_text(text.replace("COMPARISON", ">"))
    assert _problems(path) == [
        f"{path}:7: slis.latency.comparison: a bare > or | starts a YAML block; "
        'expected a quoted comparison like ">=" or ">"'
    ]
    path.write_text(text.replace("COMPARISON", '">="'))
    slos, warnings = load_specs([path])
    assert (slos[0].sli.comparison, slos[0].sli.threshold) == (">=", 0.4)
    assert [str(w) for w in warnings] == [
        f"{path}:6: slis.latency.threshold: says p99 but the metric computes histogram_quantile(0.95); "
        "expected the same percentile in both"
    ]


def test_several_documents_in_one_file_and_state_names_as_policy_keys(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    one = (SPECS / "duplicate" / "a.yaml").read_text()
    path.write_text(
        one + "error_budget_policy:\n  exhausted: stop\n---\n" + one.replace("service: api", "service: web")
    )
    slos, _ = load_specs([path])
    assert [(slo.id, slo.policy, slo.source_line) for slo in slos] == [
        ("api/availability", {"exhausted": "stop"}, 8),
        ("web/availability", {}, 20),
    ]


# --- broken specs: one exact line each -----------------------------------------------------------

FORMS = (
    "an SLI is one of: good + valid, bad + valid, metric (a ratio) with optional direction, "
    "or metric + threshold with optional comparison"
)

BROKEN = [
    (
        "unknown_key.yaml",
        "5: slis.availability.descripton: unknown field 'descripton'; expected one of: description, "
        "good_event, valid_event, category, good, bad, valid, metric, direction, threshold, comparison",
    ),
    ("missing_target.yaml", "8: slos[0].target: required field is missing; expected a target like 99.9%"),
    (
        "target_100.yaml",
        "9: slos[0].target: '100%' leaves no error budget (100% allows no failures); expected a target below "
        "100% like 99.9%",
    ),
    (
        "target_101.yaml",
        "12: slos[1].target: '101%' is not a target; "
        "expected a percentage below 100 like 99.9%, or a fraction like 0.999",
    ),
    (
        "bad_window.yaml",
        "10: slos[0].window: '30x' is not a window; "
        "expected a rolling duration like 30d, 28d, 4w or 7d, or a calendar window: month, quarter",
    ),
    (
        "unknown_sli.yaml",
        "15: slos[2].sli: 'availabilty' is not defined under slis; expected one of: availability, latency",
    ),
    (
        "good_without_valid.yaml",
        f"4: slis.availability.valid: 'good' needs 'valid' (the query counting all valid events); {FORMS}",
    ),
    ("good_and_metric.yaml", f"7: slis.availability.metric: 'metric' cannot be used with 'good'; {FORMS}"),
    (
        "error_budget_mismatch.yaml",
        "11: slos[0].error_budget: '20 minutes/month' is 20 minutes per month (30d), but target 99.95% over "
        "window 30d allows (1 − 0.9995) × 30d = 21.6 minutes; expected '21.6 minutes/month' (within 0.5%), "
        "or leave error_budget out",
    ),
    (
        "short_not_shorter.yaml",
        "17: slos[0].burn_rate_alerts[1].short_window: short_window 6h is not shorter than long_window 6h; "
        "expected a short window below the long one, like 5m with 1h",
    ),
    (
        "seconds_window.yaml",
        "13: slos[0].burn_rate_alerts[0].short_window: '90s' is not a whole number of minutes "
        "(minute granularity); "
        "expected a whole number of minutes with units w, d, h, m, like 5m, 1h, 30d, 4w or 1h30m",
    ),
    (  # an event query must give a counter's per-minute increase, as the Prometheus pull asks for it
        "irate_query.yaml",
        "5: slis.availability.good: irate() does not give a counter's per-minute increase; expected counters "
        "inside rate(...[window]) or increase(...[window]), or a bare counter selector such as "
        'requests_total{code=~"5.."}',
    ),
    (
        "gauge_ratio.yaml",
        "5: slis.correctness.metric: metric (denominator): no range selector (like [5m] or [{{.window}}]) in "
        "'time() - process_start_time_seconds'; expected counters inside rate(...[window]) or "
        'increase(...[window]), or a bare counter selector such as requests_total{code=~"5.."}',
    ),
    (
        "yaml_syntax.yaml",
        "10: (yaml): invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection started at line 8); "
        "expected well-formed YAML (check indentation, colons and quotes)",
    ),
]


@pytest.mark.parametrize(("name", "line"), BROKEN, ids=[name for name, _ in BROKEN])
def test_broken_spec_reports_one_exact_line(name: str, line: str) -> None:
    path = SPECS / name
    assert _problems(path) == [f"{path}:{line}"]


def test_duplicate_slo_id_across_two_files() -> None:
    directory = SPECS / "duplicate"
    assert _problems(directory) == [
        f"{directory / 'b.yaml'}:9: slos[0]: duplicate SLO id 'api/availability' (first defined at "
        f"{directory / 'a.yaml'}:8); expected each <service>/<name> once: give one of them a different 'name'"
    ]


def test_every_problem_in_a_file_is_reported() -> None:
    path = SPECS / "three_problems.yaml"
    assert _problems(path) == [
        f"{path}:1: service: 'Checkout API' is not a service name; "
        "expected lowercase letters, digits, '-' and '_', starting with a letter or digit, like checkout-api",
        f"{path}:12: slos[0].burn_rate_alerts[0].severity: 'critical' is not a severity; "
        "expected page or ticket",
        f"{path}:18: slos[1].target: '0%' is not a target; expected a percentage below 100 like 99.9%, or a "
        "fraction like 0.999",
    ]


def test_problems_from_several_files_are_all_reported_and_nothing_is_returned() -> None:
    with pytest.raises(SpecError) as raised:
        load_specs([SEED, SPECS / "target_100.yaml", SPECS / "bad_window.yaml"])
    assert [(Path(p.file).name, p.line, p.path) for p in raised.value.problems] == [
        ("target_100.yaml", 9, "slos[0].target"),
        ("bad_window.yaml", 8, "slos[0]"),  # api/availability again: a duplicate id, though broken
        ("bad_window.yaml", 10, "slos[0].window"),
    ]
    first_line = str(raised.value).splitlines()[0]
    assert first_line == (
        f"{SPECS / 'target_100.yaml'}:9: slos[0].target: '100%' leaves no error budget "
        "(100% allows no failures); expected a target below 100% like 99.9%"
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", "1: (document): the file is empty; expected a spec with service, owner, slis, slos"),
        ("- a\n- b\n", "1: (document): expected a spec with service, owner, slis, slos, got a list"),
        (
            "service: api\nowner: a\nowner: b\nslis: {}\nslos: []\n",
            "3: owner: duplicate field 'owner'; expected each field once",
        ),
        (
            "service: api\nowner: a\nslis: {}\nslos: []\n",
            "4: slos: expected a non-empty list of SLOs (with sli and target), got an empty list",
        ),
        (
            "owner: a\nslis: {}\nslos:\n  - sli: x\n    target: 99%\n",
            "1: service: required field is missing; expected the service name, like checkout-api",
        ),
    ],
)
def test_document_shape_problems(tmp_path: Path, text: str, line: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert _problems(path)[0] == f"{path}:{line}"


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert _problems(missing) == [
        f"{missing}:1: (file): no such file or directory; expected a spec file (.yaml) or a directory of them"
    ]
    assert _problems(tmp_path) == [
        f"{tmp_path}:1: (file): directory has no spec files; expected *.yaml or *.yml files in it"
    ]


def test_policy_alias_and_state_name_for_the_same_state(tmp_path: Path) -> None:
    path = _spec(
        tmp_path,
        "    target: 99%\nerror_budget_policy:\n  budget_exhausted: stop\n  exhausted: halt\n",
    )
    assert _problems(path) == [
        f"{path}:12: error_budget_policy.exhausted: 'exhausted' sets the same state (exhausted) as "
        "'budget_exhausted'; expected one text per state"
    ]


# --- helpers -------------------------------------------------------------------------------------


def _spec(tmp_path: Path, slo_fields: str) -> Path:
    """A one-SLO spec whose SLO item (line 8) continues with `slo_fields`."""
    path = tmp_path / "spec.yaml"
    path.write_text(
        "service: api\n"
        "owner: team-a\n"
        "slis:\n"
        "  availability:\n"
        '    good: sum(rate(http_requests_total{code!~"5.."}[5m]))\n'
        "    valid: sum(rate(http_requests_total[5m]))\n"
        "slos:\n"
        "  - sli: availability\n" + slo_fields
    )
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as raised:
        load_specs([path])
    return [str(problem) for problem in raised.value.problems]
