"""OpenSLO v1 and Sloth prometheus/v1 specs: the same SLOs as their hand-written native equivalents,
precise `file:line: field.path` errors, and the native form loading back to the same SLOs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.errors import SpecError
from pipelines.model import BurnRateAlert, Slo
from pipelines.specs import load_specs, native_yaml

REPO = Path(__file__).resolve().parents[2]
IMPORT = Path(__file__).resolve().parent / "specs" / "import"


def _without_source(slos: list[Slo]) -> list[Slo]:
    return [dataclasses.replace(s, source_file="", source_line=0) for s in slos]


@pytest.mark.parametrize(
    ("imported", "native"),
    [
        ("openslo_checkout.yaml", "native_checkout.yaml"),
        ("sloth_shop.yaml", "native_shop.yaml"),
        ("sloth_crd.yaml", "native_shop.yaml"),
    ],
)
def test_imported_specs_equal_their_native_equivalent(imported: str, native: str) -> None:
    got, warnings = load_specs([IMPORT / imported])
    expected, _ = load_specs([IMPORT / native])
    assert warnings == []
    # Model equality on every field: SLI queries, kind, category, description, target, window,
    # alerts and whether they replace the defaults, owner, policy. Only the source location differs.
    assert _without_source(got) == _without_source(expected)
    assert len(got) == len(expected) > 0


def test_openslo_mapping_known_answers() -> None:
    slos = {s.name: s for s in load_specs([IMPORT / "openslo_checkout.yaml"])[0]}
    availability = slos["availability"]
    assert availability.target == 0.9995 and availability.window.text == "30d"
    # alertPolicyRef → AlertPolicy → conditionRef + an inline condition; alertAfter is the short window
    assert availability.alerts == (BurnRateAlert("page", 60, 5, 14.4), BurnRateAlert("ticket", 360, 30, 6.0))
    assert availability.alerts_custom
    # Timeslices with thresholdMetric op lte value 0.3: a minute is good when p99 <= 0.3 s
    latency = slos["latency"]
    assert (latency.sli.kind, latency.sli.threshold, latency.sli.comparison) == ("threshold", 0.3, "<=")
    assert (latency.window.kind, latency.window.calendar) == ("calendar", "month")
    # a raw failure ratio is a ratio metric counting bad events
    assert slos["correctness"].sli.ratio_direction == "bad"
    assert slos["correctness"].window.calendar == "quarter"
    # Timeslices over a bad/total ratio: a minute is good when at most 1 − 0.95 of it is bad
    freshness = slos["freshness"].sli
    assert (freshness.kind, freshness.threshold, freshness.comparison) == ("threshold", 0.05, "<=")
    assert slos["freshness"].owner == "commerce-team"  # from the `team` label
    # no alertPolicies: the defaults scaled to 4w (page 1h at 2% of 28 days = 13.44)
    assert not slos["freshness"].alerts_custom
    assert slos["freshness"].alerts[0].factor == pytest.approx(13.44)


def test_several_objectives_make_several_slos() -> None:
    slos = load_specs([IMPORT / "openslo_objectives.yaml"])[0]
    # named by the objective's name, else its number; each threshold its own SLI
    assert [(s.id, s.sli.name, s.sli.comparison, s.sli.threshold, s.target) for s in slos] == [
        ("search/latency-2", "latency-2", "<=", 1.0, 0.999),
        ("search/latency-p90", "latency-p90", "<", 0.2, 0.99),
    ]
    assert all(s.sli.category == "latency" and s.window.text == "30d" for s in slos)


def test_sloth_mapping_known_answers() -> None:
    slos = {s.name: s for s in load_specs([IMPORT / "sloth_shop.yaml"])[0]}
    availability = slos["requests-availability"]
    assert availability.target == 0.999 and availability.window.text == "30d"
    # ticket_alert disabled: only Sloth's two page conditions remain (factors 14.4 and 6)
    assert [(a.severity, a.long_window, a.short_window) for a in availability.alerts] == [
        ("page", 60, 5),
        ("page", 360, 30),
    ]
    assert [a.factor for a in availability.alerts] == pytest.approx([14.4, 6.0])
    assert availability.sli.bad_query is not None and "429" in availability.sli.bad_query
    assert availability.sli.category == "availability" and availability.owner == "shop-team"
    assert slos["checkout-errors"].alerts_custom is False and len(slos["checkout-errors"].alerts) == 4


def test_openslo_references_resolve_across_files(tmp_path: Path) -> None:
    # The SLI and the alert policy in one file, the SLO in another: the specs directory is one set.
    text = (IMPORT / "openslo_checkout.yaml").read_text()
    documents = text.split("\n---\n")
    (tmp_path / "objects.yaml").write_text("\n---\n".join(documents[:4]))
    (tmp_path / "slos.yaml").write_text(documents[4])
    slos, _ = load_specs([tmp_path])
    assert [s.id for s in slos] == ["checkout-api/availability"]
    assert slos[0].source_file == str(tmp_path / "slos.yaml")
    assert slos[0].sli.good_query is not None


# --- broken imported specs: the same precise errors as native ones ------------------------------

OPENSLO_SLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
  labels: {{owner: shop-team}}
spec:
  service: shop
  {indicator}
  budgetingMethod: {method}
  objectives:
    - {objective}
"""
RATIO = (
    "indicator: {metadata: {name: availability}, spec: {ratioMetric: {"
    "good: {metricSource: {type: Prometheus, spec: {query: 'sum(g[{{.window}}])'}}}, "
    "total: {metricSource: {type: Prometheus, spec: {query: 'sum(t[{{.window}}])'}}}}}}"
)


def _openslo(indicator: str = RATIO, method: str = "Occurrences", objective: str = "target: 0.99") -> str:
    return OPENSLO_SLO.format(indicator=indicator, method=method, objective=objective)


SLOTH = """\
version: prometheus/v1
service: shop
labels: {{owner: shop-team}}
slos:
  - name: availability
    {objective}
    sli:
      {sli}
"""
SLOTH_EVENTS = "events: {error_query: 'sum(e[{{.window}}])', total_query: 'sum(t[{{.window}}])'}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            _openslo(objective="target: 1.5"),
            "11: spec.objectives[0].target: 1.5 is out of range; expected a fraction like 0.999",
        ),
        (
            _openslo(objective="targetPercent: 100"),
            "11: spec.objectives[0].targetPercent: 100 leaves no error budget (100% allows no failures)",
        ),
        (
            _openslo(indicator="indicatorRef: availabilty"),
            "8: spec.indicatorRef: no SLI named 'availabilty' in the specs; expected one of: (none)",
        ),
        (
            _openslo(method="RatioTimeslices"),
            "9: spec.budgetingMethod: 'RatioTimeslices' averages the slices' ratios, which this product does "
            "not compute; expected Occurrences or Timeslices",
        ),
        (
            _openslo(
                method="Timeslices", objective="{target: 0.99, timeSliceTarget: 0.9, timeSliceWindow: 5m}"
            ),
            "11: spec.objectives[0].timeSliceWindow: '5m': time slices are one minute here",
        ),
        (
            _openslo(indicator=RATIO.replace("type: Prometheus", "type: Datadog", 1)),
            "8: spec.indicator.spec.ratioMetric.good.metricSource.type: 'Datadog': only Prometheus metrics "
            "can be read; expected type: Prometheus",
        ),
        (
            _openslo(objective="{target: 0.99, tagret: 1}"),
            "11: spec.objectives[0].tagret: unknown field 'tagret'; expected one of: displayName, name, op",
        ),
        (
            "apiVersion: openslo/v2alpha\nkind: SLO\n",
            "1: apiVersion: 'openslo/v2alpha' is not a spec format read here; expected openslo/v1",
        ),
        (
            SLOTH.format(objective="objective: 100", sli=SLOTH_EVENTS),
            "6: slos[0].objective: 100 leaves no error budget (100% allows no failures)",
        ),
        (
            SLOTH.format(objective="objetive: 99.9", sli=SLOTH_EVENTS),
            "6: slos[0].objetive: unknown field 'objetive'; expected one of: name, objective, description",
        ),
        (
            SLOTH.format(objective="objective: 99.9", sli="plugin: {id: sloth-common/availability}"),
            "8: slos[0].sli.plugin: Sloth SLI plugins cannot be imported",
        ),
        (
            SLOTH.format(objective="objective: 99.9", sli="raw: {error_ratio_query: 'sum(e) / sum(t) / 2'}"),
            "8: slos[0].sli.raw.error_ratio_query: the error ratio needs exactly one top-level '/'",
        ),
    ],
)
def test_broken_imported_specs_say_file_line_and_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_specs([path])
    assert any(str(p).startswith(f"{path}:{problem}") for p in info.value.problems), [
        str(p) for p in info.value.problems
    ]


ALERTS = """\
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: burn}
spec:
  conditions:
    - kind: AlertCondition
      metadata: {name: fast}
      spec:
        severity: sev1
        condition: {kind: burnrate, op: lt, threshold: 14.4, lookbackWindow: 1h, alertAfter: 1h}
"""


def test_broken_alert_conditions_report_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        _openslo().replace("  objectives:", "  alertPolicies: [{alertPolicyRef: burn}]\n  objectives:")
        + ALERTS
    )
    with pytest.raises(SpecError) as info:
        load_specs([path])
    path_text = str(path)
    assert [str(p).removeprefix(path_text + ":") for p in info.value.problems] == [
        "22: spec.conditions[0].spec.severity: 'sev1' is not a severity; expected page (or critical), ticket "
        "(or warning)",
        "23: spec.conditions[0].spec.condition.op: 'lt' cannot fire on a high burn rate; expected gt (burn "
        "rates are compared with a strict >)",
        "23: spec.conditions[0].spec.condition.alertAfter: alertAfter is the short window and must be "
        "shorter than lookbackWindow; expected e.g. 5m with 1h",
    ]


def test_one_broken_import_applies_nothing_and_exits_1(tmp_path: Path) -> None:
    shutil.copy(REPO / "slo_specs" / "checkout-api.yaml", tmp_path / "native.yaml")
    shutil.copy(IMPORT / "sloth_shop.yaml", tmp_path / "sloth.yaml")
    (tmp_path / "openslo.yaml").write_text(_openslo(objective="target: 1.5"))
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{tmp_path / 'openslo.yaml'}:11: spec.objectives[0].target: 1.5 is out of range" in result.stderr
    assert "1 problem(s); nothing was applied" in result.stderr


def test_native_ids_and_imported_ids_must_not_collide(tmp_path: Path) -> None:
    shutil.copy(IMPORT / "sloth_shop.yaml", tmp_path / "a_sloth.yaml")
    shutil.copy(IMPORT / "native_shop.yaml", tmp_path / "b_native.yaml")
    with pytest.raises(SpecError) as info:
        load_specs([tmp_path])
    assert str(info.value.problems[0]).startswith(
        f"{tmp_path / 'b_native.yaml'}:17: slos[0]: duplicate SLO id 'shop/requests-availability' "
        f"(first defined at {tmp_path / 'a_sloth.yaml'}:8)"
    )


# --- the native form ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "specs",
    [
        IMPORT / "openslo_checkout.yaml",
        IMPORT / "openslo_objectives.yaml",
        IMPORT / "sloth_shop.yaml",
        IMPORT / "sloth_crd.yaml",
        REPO / "slo_specs",
        REPO / "pipelines" / "demo" / "specs",
    ],
)
def test_native_form_loads_back_to_the_same_slos(specs: Path, tmp_path: Path) -> None:
    slos, _ = load_specs([specs])
    native = tmp_path / "native.yaml"
    native.write_text(native_yaml(slos))
    again, warnings = load_specs([native])
    assert _without_source(again) == _without_source(slos)
    assert warnings == []  # the native form says everything explicitly (e.g. a ratio's direction)


def test_validate_native_prints_the_native_form(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", "--native", str(IMPORT / "sloth_shop.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("service: shop\nowner: shop-team\nslis:\n  checkout-errors:\n")
    assert (
        "  target: 99.9%\n  window: 30d\n  burn_rate_alerts:\n  - severity: page\n    long_window: 1h\n"
        in result.stdout
    )


def test_objects_no_slo_uses_are_still_checked(tmp_path: Path) -> None:
    path = tmp_path / "orphans.yaml"
    path.write_text(
        "apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: orphan}\nspec:\n  ratioMetric:\n"
        "    good: {metricSource: {type: Prometheus, spec: {query: 'sum(a[{{.window}}])'}}}\n"
    )
    with pytest.raises(SpecError) as info:
        load_specs([path])
    assert [str(p) for p in info.value.problems] == [
        f"{path}:6: spec.ratioMetric: expected exactly one of good or bad, with total (or raw + rawType)"
    ]


def test_imported_specs_load_next_to_native_ones_from_the_specs_dir(tmp_path: Path) -> None:
    shutil.copy(REPO / "slo_specs" / "checkout-api.yaml", tmp_path / "checkout-api.yaml")
    shutil.copy(IMPORT / "sloth_shop.yaml", tmp_path / "shop.yml")
    shutil.copy(IMPORT / "openslo_objectives.yaml", tmp_path / "search.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLO_SPECS_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert [s["slo"] for s in json.loads(result.stdout)["slos"]] == [
        "checkout-api/availability",
        "checkout-api/correctness",
        "checkout-api/latency",
        "search/latency-2",
        "search/latency-p90",
        "shop/checkout-errors",
        "shop/requests-availability",
    ]
