"""Known answers for the rules exporter: query windowing, error-ratio forms, names and labels."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.errors import ExportError
from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow
from pipelines.promql import QueryShapeError as QueryError
from pipelines.promql import as_template, bad_slice, error_ratio, fill_window, over_window
from pipelines.rules import duration_text, export_rules, rule_windows
from pipelines.specs import load_specs

REPO = Path(__file__).resolve().parents[2]


def _slo(sli: Sli, **changes: object) -> Slo:
    slo = Slo(
        service="shop",
        name="availability",
        owner="shop-team",
        sli=sli,
        target=0.999,
        window=SloWindow(kind="rolling", minutes=43200, text="30d"),
        alerts=(BurnRateAlert("page", 60, 5, 14.4), BurnRateAlert("ticket", 4320, 360, 1.0)),
        alerts_custom=False,
        policy={"normal": "Ship.", "exhausted": "Freeze {{ deploys }}."},
    )
    return dataclasses.replace(slo, **changes)  # type: ignore[arg-type]


RATIO = Sli(name="availability", kind="ratio", category="availability")


@pytest.mark.parametrize(
    ("query", "template", "rewritten"),
    [
        ("sum(increase(x[{{.window}}]))", "sum(increase(x[{{.window}}]))", False),
        ("sum(increase(x[{{ .window }}]))", "sum(increase(x[{{ .window }}]))", False),
        # literal ranges are set to the window (the seed's rate(...[5m]) ratio)
        ('sum(rate(x{code!~"5.."}[5m]))', 'sum(rate(x{code!~"5.."}[{{.window}}]))', True),
        (
            "sum(rate(x[1h30m])) + sum(rate(y[5m]))",
            "sum(rate(x[{{.window}}])) + sum(rate(y[{{.window}}]))",
            True,
        ),
        # a bracket inside a quoted label value is not a range
        ('sum(rate(x{path="/a[5m]"}[1m]))', 'sum(rate(x{path="/a[5m]"}[{{.window}}]))', True),
        # a bare counter is summed over the window
        ("business_logic_errors_total", "sum(increase(business_logic_errors_total[{{.window}}]))", True),
        ('errors_total{code="500"}', 'sum(increase(errors_total{code="500"}[{{.window}}]))', True),
    ],
)
def test_as_template(query: str, template: str, rewritten: bool) -> None:
    assert as_template(query, _slo(RATIO), "good") == (template, rewritten)


@pytest.mark.parametrize("placeholder", ["{{.window}}", "{{ .window }}", "{{window}}", "{{ window }}"])
def test_the_source_and_the_rules_read_the_same_window_placeholder(placeholder: str) -> None:
    """One definition: a query the Prometheus source pulls per minute is one the rules put over each
    window (the dotless form used to pull but fail `slo rules`)."""
    query = f"sum(increase(x[{placeholder}]))"
    assert fill_window(query) == "sum(increase(x[1m]))"
    template, rewritten = as_template(query, _slo(RATIO), "good")
    assert (over_window(template, "30d"), rewritten) == ("sum(increase(x[30d]))", False)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(x) + sum(y)", "has no range selector and no {{.window}}"),
        ("max_over_time(x[1h:1m])", "uses a subquery and no {{.window}}"),
    ],
)
def test_as_template_refuses_queries_without_a_window(query: str, message: str) -> None:
    with pytest.raises(QueryError, match="shop/availability: the good query") as info:
        as_template(query, _slo(RATIO), "good")
    assert message in str(info.value)


def test_error_ratio_of_each_sli_form() -> None:
    good = dataclasses.replace(RATIO, good_query="g[{{.window}}]", valid_query="v[{{.window}}]")
    assert error_ratio(_slo(good)).expr("5m") == "1 - (\n  g[5m]\n)\n/\n(\n  v[5m]\n)"
    bad = dataclasses.replace(RATIO, bad_query="b[{{.window}}]", valid_query="v[{{.window}}]")
    assert error_ratio(_slo(bad)).expr("1h") == "(\n  b[1h]\n)\n/\n(\n  v[1h]\n)"
    # a ratio metric is split at its top-level '/'; its direction says whether it counts bad events
    metric = dataclasses.replace(RATIO, ratio_query="(errors_total) / requests_total", ratio_direction="bad")
    expected = "(\n  sum(increase(errors_total[6h]))\n)\n/\n(\n  sum(increase(requests_total[6h]))\n)"
    assert error_ratio(_slo(metric)).expr("6h") == expected
    good_metric = dataclasses.replace(metric, ratio_direction="good")
    assert error_ratio(_slo(good_metric)).expr("6h").startswith("1 - (\n  sum(increase(errors_total[6h]))")


@pytest.mark.parametrize(
    ("comparison", "operator"),
    [("<=", "> bool"), ("<", ">= bool"), (">=", "< bool"), (">", "<= bool")],
)
def test_a_bad_slice_misses_the_threshold(comparison: str, operator: str) -> None:
    sli = Sli(name="latency", kind="threshold", category="latency", threshold_query="q", threshold=0.4)
    sli = dataclasses.replace(sli, comparison=comparison)
    # NaN (no traffic) is dropped by `>= -Inf`, so a minute without data is no slice at all
    assert bad_slice(sli) == f"(\n  q\n) >= -Inf {operator} 0.4"


def test_windows_cover_the_standard_ones_alerts_and_period() -> None:
    slo = _slo(RATIO, alerts=(BurnRateAlert("page", 90, 10, 10.0),))
    assert [duration_text(m) for m in rule_windows(slo)] == [
        "5m",
        "10m",
        "30m",
        "1h",
        "1h30m",
        "2h",
        "6h",
        "1d",
        "3d",
        "30d",
    ]


def _group(slo: Slo) -> dict[str, object]:
    rules = export_rules([slo], "https://runbooks.example.test/")
    parsed = yaml.safe_load(rules.render())
    assert parsed == {"groups": rules.groups}  # the rendered text says exactly what was built
    [group] = parsed["groups"]
    return group


def test_alerts_named_and_labelled_as_design_section_3() -> None:
    sli = dataclasses.replace(RATIO, bad_query="b[{{.window}}]", valid_query="v[{{.window}}]")
    group = _group(_slo(sli))
    assert group["name"] == "slo:shop/availability"
    rules = group["rules"]
    alerts = [r for r in rules if "alert" in r]
    assert [(a["alert"], a["labels"]) for a in alerts] == [
        (
            "SLOBurnRateHigh",
            {
                "service": "shop",
                "slo": "shop/availability",
                "severity": "page",
                "long_window": "1h",
                "short_window": "5m",
            },
        ),
        (
            "SLOBurnRateHigh",
            {
                "service": "shop",
                "slo": "shop/availability",
                "severity": "ticket",
                "long_window": "3d",
                "short_window": "6h",
            },
        ),
        ("SLOErrorBudgetExhausted", {"service": "shop", "slo": "shop/availability", "severity": "ticket"}),
    ]
    # (long > factor × budget) and (short > factor × budget), strict '>', divided by the budget so
    # that $value is the burn rate; 14.4 × 0.001 = 0.0144; no `for:`
    assert alerts[0]["expr"] == (
        "(\n"
        '  slo:sli_error:ratio_rate1h{slo="shop/availability"} > 0.0144\n'
        "  and\n"
        '  slo:sli_error:ratio_rate5m{slo="shop/availability"} > 0.0144\n'
        ")\n"
        "/ 0.001"
    )
    assert all("for" not in a for a in alerts)
    assert alerts[2]["expr"] == 'slo:error_budget_remaining:ratio{slo="shop/availability"} <= 0'
    assert alerts[0]["annotations"]["runbook_url"] == "https://runbooks.example.test/shop/"
    records = [r["record"] for r in rules if "record" in r]
    assert records == [
        *(f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")),
        "slo:objective:ratio",
        "slo:error_budget_remaining:ratio",
    ]
    remaining = next(r for r in rules if r.get("record") == "slo:error_budget_remaining:ratio")
    assert remaining["expr"] == '1 - slo:sli_error:ratio_rate30d{slo="shop/availability"} / 0.001'


def test_policy_annotation_picks_the_state_text_and_escapes_template_braces() -> None:
    sli = dataclasses.replace(RATIO, bad_query="b[{{.window}}]", valid_query="v[{{.window}}]")
    alerts = [r for r in _group(_slo(sli))["rules"] if "alert" in r]
    policy = alerts[0]["annotations"]["policy"]
    assert "{{ if gt . 0.5 }}normal: Ship.{{ else if ge . 0.25 }}freeze_review: no policy text" in policy
    # the spec's own "{{" is printed literally, never run as a template action
    assert 'exhausted: Freeze {{ "{{" }} deploys }}.' in policy
    assert alerts[2]["annotations"]["policy"] == 'exhausted: Freeze {{ "{{" }} deploys }}.'


def test_calendar_windows_are_approximated_and_said_so() -> None:
    sli = dataclasses.replace(RATIO, bad_query="b[{{.window}}]", valid_query="v[{{.window}}]")
    quarter = SloWindow(kind="calendar", minutes=129600, text="quarter", calendar="quarter")
    rules = export_rules([_slo(sli, window=quarter)])
    assert "slo:sli_error:ratio_rate90d" in rules.render()
    assert rules.notes == [
        "shop/availability: the calendar quarter is approximated by a rolling 90d (Prometheus has no "
        "calendar ranges); `slo status` computes the calendar window exactly"
    ]


def test_unexportable_slos_are_all_named_and_nothing_is_exported() -> None:
    sum_only = dataclasses.replace(RATIO, good_query="sum(g)", valid_query="sum(v[{{.window}}])")
    two = [_slo(sum_only), _slo(sum_only, name="other")]
    with pytest.raises(ExportError) as info:
        export_rules(two)
    message = str(info.value)
    assert "shop/availability: the good query 'sum(g)' has no range selector" in message
    assert "shop/other: the good query" in message


def test_seed_spec_exports_every_slo() -> None:
    slos, _ = load_specs([REPO / "slo_specs"])
    rules = export_rules(slos)
    assert [g["name"] for g in rules.groups] == [f"slo:{s.id}" for s in slos]
    text = rules.render()
    # the seed's ratio of rate(...[5m]) is put over each window; its bare counters are summed
    assert 'sum(rate(http_requests_total{service="checkout-api", status!~"5.."}[1d]))' in text
    assert "sum(increase(business_logic_errors_total[3d]))" in text


def test_slo_rules_refuses_an_unexportable_spec_and_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "shop.yaml"
    spec.write_text(
        "service: shop\nowner: shop-team\nslis:\n  availability:\n"
        "    good: sum(good_total)\n    valid: sum(increase(all_total[{{.window}}]))\n"
        "slos:\n  - sli: availability\n    target: 99%\n"
    )
    out = tmp_path / "rules.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "rules", str(spec), "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    # refused by the spec loader, at the query's line, before any rule is written
    assert f"{spec}:5: slis.availability.good: no range selector (like [5m] or [{{{{.window}}}}]) in " \
        "'sum(good_total)'" in result.stderr  # fmt: skip
    assert not out.exists() and list(tmp_path.iterdir()) == [spec]


def test_rules_read_spec_numbers_as_the_engine_does() -> None:
    from pipelines import engine, rules

    for value in (0.9995, 14.4, 13.440000000000001, 0.6666666666666667, 6.0, 0.99):
        assert rules.exact(value) == engine.exact(value)


@pytest.mark.parametrize(
    ("factor", "target", "threshold"),
    [(14.4, 0.9995, "0.0072"), (6.0, 0.9995, "0.003"), (1.0, 0.99, "0.01"), (13.44, 0.995, "0.0672")],
)
def test_alert_thresholds_are_exact_products(factor: float, target: float, threshold: str) -> None:
    # 14.4 × (1 − 0.9995) in floats is 0.007200000000000001; the rule must say 0.0072 so that an error
    # ratio exactly on the threshold stays silent, as the engine's strict '>' on exact fractions says.
    sli = dataclasses.replace(RATIO, bad_query="b[{{.window}}]", valid_query="v[{{.window}}]")
    slo = _slo(sli, target=target, alerts=(BurnRateAlert("page", 60, 5, factor),))
    alert = next(r for r in export_rules([slo]).groups[0]["rules"] if r.get("alert") == "SLOBurnRateHigh")
    assert f'slo:sli_error:ratio_rate1h{{slo="shop/availability"}} > {threshold}\n' in alert["expr"]
