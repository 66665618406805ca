"""Sloth specs as teams write them (issue 14, Sloth half): labels, annotations and the alert name
carried into the exported rules where Sloth puts them; `disable` for every alert of that kind; the
SLO period (AlertWindows, native `period`); openslo/v1alpha; plugins refused by name; no default
alert below a burn rate of 1. Fixtures: tests/unit/specs/sloth/ (written for these tests)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.errors import SpecError
from pipelines.model import Slo
from pipelines.rules import export_rules
from pipelines.specs import load_specs, native_yaml
from pipelines.specs.values import default_alerts
from tests.support.realparts import require_binary

REPO = Path(__file__).resolve().parents[2]
SLOTH = Path(__file__).resolve().parent / "specs" / "sloth"


def _rules(slos: list[Slo]) -> list[dict[str, Any]]:
    groups = yaml.safe_load(export_rules(slos).render())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts(slos: list[Slo], severity: str | None = None) -> list[dict[str, Any]]:
    return [
        r for r in _rules(slos) if "alert" in r and (severity is None or r["labels"]["severity"] == severity)
    ]


def _problems(text: str, tmp_path: Path, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_specs([path])
    return str(caught.value)


def _without_source(slos: list[Slo]) -> list[Slo]:
    return [dataclasses.replace(s, source_file="", source_line=0) for s in slos]


# --- labels, annotations, alert name ---------------------------------------------------------


@pytest.mark.parametrize("spec", ["routing.yaml", "routing_k8s.yaml"])
def test_sloth_labels_and_annotations_go_where_sloth_puts_them(spec: str) -> None:
    slos, warnings = load_specs([SLOTH / spec])
    rules = _rules(slos)
    records = [r for r in rules if "record" in r]
    # service- and SLO-level labels (and Sloth's own sloth_* labels) on every recording rule
    spec_labels = {"owner": "orders-team", "repo": "acme/orders", "tier": "1", "category": "availability",
                   "sloth_id": "orders-requests-availability", "sloth_service": "orders",
                   "sloth_slo": "requests-availability"}  # fmt: skip
    assert records and all(r["labels"].items() >= spec_labels.items() for r in records)
    pages, tickets = _alerts(slos, "page"), _alerts(slos, "ticket")
    assert len(pages) == 2 and len(tickets) == 3  # two ticket conditions and SLOErrorBudgetExhausted
    for alert in pages:
        assert alert["alert"] == "OrdersHighErrorRate"  # alerting.name, for page and ticket alike
        assert alert["labels"]["routing_key"] == "orders-oncall"
        assert "slack_channel" not in alert["labels"]
        # the team's severity is kept under another name; the product's stays page|ticket (DESIGN §3)
        assert (alert["labels"]["severity"], alert["labels"]["spec_severity"]) == ("page", "critical")
        assert alert["labels"]["sloth_severity"] == "page"
        assert alert["annotations"]["summary"] == "Orders API is failing too many requests"
        assert alert["annotations"]["runbook"] == "https://runbooks.example.test/orders/availability"
        assert alert["labels"].items() >= spec_labels.items()
    for alert in tickets:
        assert alert["labels"]["slack_channel"] == "#orders-alerts"
        assert "routing_key" not in alert["labels"]
        assert (alert["labels"]["severity"], alert["labels"]["spec_severity"]) == ("ticket", "warning")
    names = sorted(a["alert"] for a in tickets)
    assert names == ["OrdersHighErrorRate", "OrdersHighErrorRate", "SLOErrorBudgetExhausted"]
    exhausted = next(a for a in tickets if a["alert"] == "SLOErrorBudgetExhausted")
    assert (
        exhausted["annotations"]["summary"] == "orders/requests-availability has exhausted its error budget"
    )
    # one warning per renamed severity label, at its line
    renamed = [w for w in warnings if "spec_severity" in w.message]
    line = 29 if spec == "routing.yaml" else 32
    assert [w.line for w in renamed] == [line, line + 4]
    assert str(renamed[0]).startswith(f"{SLOTH / spec}:{line}: ")
    assert renamed[0].path.endswith(("page_alert.labels.severity", "pageAlert.labels.severity"))


def test_slo_rules_for_a_sloth_spec_passes_promtool_check_rules(tmp_path: Path) -> None:
    tool = require_binary("promtool")
    out = tmp_path / "rules.yaml"
    specs = [
        str(SLOTH / name)
        for name in ("routing.yaml", "period_28d.yaml", "ticket_disabled.yaml", "v1alpha.yaml")
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "rules", *specs, "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    check = subprocess.run([tool, "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    text = out.read_text()
    assert "routing_key: orders-oncall" in text and "slack_channel: '#orders-alerts'" in text
    # 6 SLOs; rules counted by hand: routing 8 ratios + objective + budget + 4 alerts + exhausted = 15,
    # period_28d 15 (28d is its period window), ticket_disabled 8+2+2 = 12 (no exhausted) and
    # 8+2+2+1 = 13, v1alpha 15 + 15: 85.
    assert "SUCCESS: 85 rules found" in check.stdout


def test_disable_drops_every_alert_of_that_kind() -> None:
    slos = {s.name: s for s in load_specs([SLOTH / "ticket_disabled.yaml"])[0]}
    no_tickets = _alerts([slos["query-errors"]])
    assert [a["labels"]["severity"] for a in no_tickets] == ["page", "page"]
    assert all(a["alert"] == "SearchQueryErrors" for a in no_tickets)  # no SLOErrorBudgetExhausted
    no_pages = _alerts([slos["index-freshness"]])
    assert [(a["alert"], a["labels"]["severity"]) for a in no_pages] == [
        ("SearchIndexStale", "ticket"),
        ("SearchIndexStale", "ticket"),
        ("SLOErrorBudgetExhausted", "ticket"),
    ]
    assert all(a["labels"]["slack_channel"] == "#search" for a in no_pages)


@pytest.mark.parametrize(
    "spec", ["routing.yaml", "routing_k8s.yaml", "period_28d.yaml", "ticket_disabled.yaml", "v1alpha.yaml"]
)
def test_native_form_keeps_labels_name_period_and_disable(spec: str, tmp_path: Path) -> None:
    slos, _ = load_specs([SLOTH / spec])
    native = tmp_path / "native.yaml"
    native.write_text(native_yaml(slos))
    again, warnings = load_specs([native])
    assert _without_source(again) == _without_source(slos)
    assert warnings == []  # renamed labels are written under their new names
    assert _rules(again) == _rules(slos)


# --- the SLO period -----------------------------------------------------------------------------


def test_alert_windows_set_sloths_28d_period() -> None:
    (slo,) = load_specs([SLOTH / "period_28d.yaml"])[0]
    assert slo.window.text == "28d"
    # Sloth's factors for 28d: errorBudgetPercent/100 × 28d / long window
    assert [(a.severity, a.long_window, a.short_window) for a in slo.alerts] == [
        ("page", 60, 5), ("page", 360, 30), ("ticket", 1440, 120), ("ticket", 4320, 360),
    ]  # fmt: skip
    assert [a.factor for a in slo.alerts] == pytest.approx([13.44, 5.6, 2.8, 0.9333333333])
    exprs = [a["expr"] for a in _alerts([slo]) if a["alert"] == "GatewayAvailability"]
    assert "> 0.00672\n" in exprs[0]  # 13.44 × 0.0005


def test_alert_windows_alone_in_a_file_is_refused(tmp_path: Path) -> None:
    text = (SLOTH / "period_28d.yaml").read_text().split("\n---\n")[0]
    message = _problems(text, tmp_path)
    assert "spec.yaml:3: kind: AlertWindows applies to the Sloth SLOs of its own file" in message
    assert "expected it in the file of the SLOs it is for" in message


NATIVE_PERIOD = """\
service: shop
owner: shop-team
slis:
  availability:
    bad: 'sum(rate(errors_total[{{.window}}]))'
    valid: 'sum(rate(requests_total[{{.window}}]))'
slos:
  - sli: availability
    target: 99.9%
    window: quarter
    period: 28d
  - sli: availability
    name: custom
    target: 99.9%
    window: 30d
    period: 28d
    burn_rate_alerts:
      - {severity: page, long_window: 1h, short_window: 5m, budget_consumed: 2%}
"""


def test_native_period_scales_the_factors(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(NATIVE_PERIOD)
    slos = {s.name: s for s in load_specs([path])[0]}
    quarter = slos["availability"]
    assert quarter.window.calendar == "quarter" and quarter.period_minutes == 40320
    assert quarter.alerts == default_alerts(90 * 1440, 40320)
    # the defaults for a 28d period; the slow ticket's 0.933 is raised to 1 (no default alert below 1),
    # unlike Sloth's own AlertWindows above, which are the spec's own windows
    assert [a.factor for a in quarter.alerts] == pytest.approx([13.44, 5.6, 2.8, 1.0])
    assert slos["custom"].alerts[0].factor == pytest.approx(13.44)  # 2% of a 28d budget in 1h
    (page, *_) = _alerts([quarter])
    assert "2% of the 28d error budget goes every 1h" in page["annotations"]["description"]


# --- openslo/v1alpha ------------------------------------------------------------------------------


def test_openslo_v1alpha_reads_as_sloth_does() -> None:
    slos = load_specs([SLOTH / "v1alpha.yaml"])[0]
    assert [(s.id, s.target, s.window.text) for s in slos] == [
        ("catalog/requests-availability-0", 0.999, "30d"),
        ("catalog/requests-availability-1", 0.99, "30d"),
    ]
    first = slos[0].sli
    assert first.good_query == 'sum(rate(http_requests_total{job="catalog",code!~"5.."}[{{.window}}]))'
    assert first.valid_query == 'sum(rate(http_requests_total{job="catalog"}[{{.window}}]))'
    assert first.description == "Catalog API requests answered without a 5xx."
    assert slos[0].alerts == default_alerts(43200)


V1ALPHA = (SLOTH / "v1alpha.yaml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("budgetingMethod: Occurrences", "budgetingMethod: Timeslices",
         "10: spec.budgetingMethod: 'Timeslices' is not read from openslo/v1alpha; expected Occurrences"),
        ("      isRolling: true", "      isRolling: false",
         "35: spec.timeWindows[0]: calendar windows are not read from openslo/v1alpha"),
        ("    - ratioMetrics:\n        good:", "    - ratioMetrics:\n        counter: false\n        good:",
         "13: spec.objectives[0].ratioMetrics.counter: counter: false (gauges) is not read"),
        ("source: prometheus", "source: datadog",
         "14: spec.objectives[0].ratioMetrics.good.source: 'datadog' is not a source read here"),
    ],
)  # fmt: skip
def test_openslo_v1alpha_refusals_say_what_to_write(
    old: str, new: str, expected: str, tmp_path: Path
) -> None:
    assert old in V1ALPHA
    message = _problems(V1ALPHA.replace(old, new, 1), tmp_path)
    assert f"spec.yaml:{expected}" in message
    # every refusal says what to write instead
    (line,) = [text for text in message.splitlines() if f"spec.yaml:{expected}" in text]
    assert "; expected " in line or ", expected " in line


# --- plugins ----------------------------------------------------------------------------------------

PLUGIN_SPEC = """\
version: "prometheus/v1"
service: "orders"
labels: {owner: orders-team}
slo_plugins:
  chain:
    - id: "sloth.dev/contrib/rule_intervals/v1"
      config: {interval: {default: 2m}}
slos:
  - name: "availability"
    objective: 99.9
    plugins:
      chain:
        - id: "sloth.dev/contrib/alert_for/v1"
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
"""

PLUGIN_CRD = """\
apiVersion: sloth.slok.dev/v1
kind: PrometheusServiceLevel
metadata: {name: orders}
spec:
  service: "orders"
  labels: {owner: orders-team}
  sloPlugins:
    chain:
      - id: "sloth.dev/core/debug/v1"
        priority: 9999999
  slos:
    - name: "availability"
      objective: 99.9
      sli:
        plugin:
          id: "sloth-common/kubernetes/apiserver/availability"
"""


def test_slo_plugins_are_refused_by_name(tmp_path: Path) -> None:
    message = _problems(PLUGIN_SPEC, tmp_path)
    assert (
        "spec.yaml:5: slo_plugins: Sloth SLO plugins (sloth.dev/contrib/rule_intervals/v1) cannot be imported"
        in message
    )
    assert (
        "spec.yaml:12: slos[0].plugins: Sloth SLO plugins (sloth.dev/contrib/alert_for/v1) cannot be imported"
        in message
    )
    assert "write what the plugin does in the spec itself" in message
    crd = _problems(PLUGIN_CRD, tmp_path, "crd.yaml")
    assert (
        "crd.yaml:8: spec.sloPlugins: Sloth SLO plugins (sloth.dev/core/debug/v1) cannot be imported" in crd
    )
    assert (
        "crd.yaml:16: spec.slos[0].sli.plugin: Sloth SLI plugins cannot be imported "
        "(here sloth-common/kubernetes/apiserver/availability)" in crd
    )
    assert "expected the queries it generates written as events" in crd


def test_plugin_refusal_exits_1_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text(PLUGIN_SPEC)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", str(tmp_path / "orders.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{tmp_path / 'orders.yaml'}:5: slo_plugins: Sloth SLO plugins" in result.stdout + result.stderr


# --- default alerts for short windows ------------------------------------------------------------


@pytest.mark.parametrize("window", [60, 360, 720, 1440, 2 * 1440, 3 * 1440, 4 * 1440, 5 * 1440 - 1])
def test_short_windows_get_no_default_alert_below_burn_rate_1(window: int) -> None:
    alerts = default_alerts(window)
    assert all(a.factor >= 1 for a in alerts)
    assert all(a.long_window <= window for a in alerts)


def test_a_rolling_1d_slo_gets_documented_alternatives_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(NATIVE_PERIOD.split("  - sli: availability\n    name: custom")[0].replace(
        "window: quarter\n    period: 28d", "window: 1d"))  # fmt: skip
    (slo,), warnings = load_specs([path])
    # the Workbook would page at 0.48 over 1h and look back 3d: factors raised to 1, 3d left out
    assert [(a.severity, a.long_window, a.short_window, a.factor) for a in slo.alerts] == [
        ("page", 60, 5, 1.0), ("page", 360, 30, 1.0), ("ticket", 1440, 120, 1.0),
    ]  # fmt: skip
    (warning,) = warnings
    assert (warning.line, warning.path) == (10, "slos[0].window")
    assert "expected burn_rate_alerts written for this window, or a window of 5d or more" in warning.message
    assert "0.0333" not in export_rules([slo]).render()


# --- the period through `slo run` and `slo status` -----------------------------------------------

STATUS_SPEC = """\
service: shop
owner: team
slis:
  availability:
    good: 'sum(rate(ok_total[5m]))'
    valid: 'sum(rate(all_total[5m]))'
slos:
  - sli: availability
    target: 99%
    window: 30d
    period: 28d
"""


def test_status_fires_at_the_factor_of_the_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "shop.yaml").write_text(STATUS_SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLO_SPECS_DIR", str(tmp_path / "specs"))
    # 2026-06-01 00:00 … 00:59, 100 events a minute; 00:50 … 00:57 all bad, 00:58 40 bad: 840 bad of
    # 6000 in the hour, burn 14.0 — above 13.44 (2% of a 28d budget in 1h), below 30d's 14.4.
    good = {m: 0 for m in range(50, 58)} | {58: 60}
    rows = "".join(f"shop/availability,2026-06-01T00:{m:02d}:00Z,{good.get(m, 100)},100\n" for m in range(60))
    (tmp_path / "events.csv").write_text("slo,timestamp,good,valid\n" + rows)
    assert main(["run", "--source", "csv", "--events", str(tmp_path / "events.csv")]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    (row,) = yaml.safe_load(capsys.readouterr().out)
    page = [a for a in row["alerts"] if (a["long_window"], a["short_window"]) == ("1h", "5m")]
    assert [(a["severity"], a["factor"]) for a in page] == [("page", pytest.approx(13.44))]
    assert row["burn_rates"]["1h"] == pytest.approx(14.0, abs=0.3)
