"""Round trip (issue 14): for generated OpenSLO v1 and native specs, load → `--native` → load gives the
same SLOs (every model field but the source location). Bounded: a few dozen examples each, well
under 20 s. The generators write what real files hold: every SLI form, rolling and calendar windows
with and without time zone and start, the OpenSLO defaults (no alertAfter, no condition kind, empty
alertPolicies) and custom alerts."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.model import Slo
from pipelines.specs import load_specs, native_yaml

EVENT_QUERIES = (
    'sum(rate(http_requests_total{code!~"5.."}[5m]))',
    "http_requests_total",
    'sum(increase(http_requests_total{route="/pay"}[{{.window}}]))',
    "sum by (region) (rate(http_requests_total[5m]))",
)
THRESHOLD_QUERIES = (
    "max(queue_age_seconds)",
    'histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{job="api"}[1m])) by (le))',
)
RAW_QUERY = "sum(rate(ok_total[5m])) / sum(rate(all_total[5m]))"
TARGETS = (0.9, 0.99, 0.995, 0.999, 0.9995)
ZONES = (None, "UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata")
STARTS = (None, "2026-01-01 00:00:00", "2026-01-05 09:00:00", "2025-07-15 12:30:00")
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _round_trip(text: str, name: str) -> tuple[list[Slo], list[Slo]]:
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / name
        first.write_text(text, encoding="utf-8")
        slos, _ = load_specs([first])
        again = Path(tmp) / "native.yaml"
        again.write_text(native_yaml(slos), encoding="utf-8")
        back, _ = load_specs([again])
    return slos, back


def _without_source(slos: list[Slo]) -> list[Slo]:
    return [dataclasses.replace(s, source_file="", source_line=0) for s in slos]


def _metric(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}


@st.composite
def openslo_slo(draw: st.DrawFn, index: int) -> dict[str, Any]:
    form = draw(st.sampled_from(("good", "bad", "raw", "threshold")))
    method = draw(st.sampled_from(("Occurrences", "Timeslices")))
    objective: dict[str, Any] = {}
    if draw(st.booleans()):
        objective["target"] = draw(st.sampled_from(TARGETS))
    else:
        objective["targetPercent"] = round(draw(st.sampled_from(TARGETS)) * 100, 4)
    if form == "threshold":
        spec: dict[str, Any] = {"thresholdMetric": _metric(draw(st.sampled_from(THRESHOLD_QUERIES)))}
        objective |= {"op": draw(st.sampled_from(("lt", "lte", "gt", "gte"))), "value": 0.25}
    elif form == "raw":
        raw_type = draw(st.sampled_from(("success", "failure")))
        spec = {"ratioMetric": {"rawType": raw_type, "raw": _metric(RAW_QUERY)}}
    else:
        spec = {
            "ratioMetric": {
                "counter": True,
                form: _metric(draw(st.sampled_from(EVENT_QUERIES))),
                "total": _metric(draw(st.sampled_from(EVENT_QUERIES))),
            }
        }
    if method == "Timeslices":
        objective["timeSliceWindow"] = draw(st.sampled_from(("1m", 1)))
        objective["timeSliceTarget"] = draw(st.sampled_from((0.75, 0.95, 1)))
    duration = draw(st.sampled_from(("7d", "28d", "4w", "30d", "1d", "1w", "1M", "1Q", "1Y")))
    window: dict[str, Any] = {"duration": duration}
    if duration in ("1d", "1w", "1M", "1Q", "1Y"):
        zone, start = draw(st.sampled_from(ZONES)), draw(st.sampled_from(STARTS))
        calendar = {
            key: value for key, value in (("timeZone", zone), ("startTime", start)) if value is not None
        }
        window["calendar"] = calendar or None
        window["isRolling"] = False
    else:
        window["isRolling"] = True
    slo: dict[str, Any] = {
        "service": "shop",
        "indicator": {"metadata": {"name": f"sli-{index}"}, "spec": spec},
        "timeWindow": [window],
        "budgetingMethod": method,
        "objectives": [objective],
    }
    policies = draw(st.sampled_from(("absent", "empty", "null", "inline")))
    if policies == "empty":
        slo["alertPolicies"] = []
    elif policies == "null":
        slo["alertPolicies"] = None
    elif policies == "inline":
        condition: dict[str, Any] = {"threshold": draw(st.sampled_from((14.4, 6, 2))), "lookbackWindow": "1h"}
        if draw(st.booleans()):
            condition["kind"] = "burnrate"
        if draw(st.booleans()):
            condition["alertAfter"] = draw(st.sampled_from(("5m", "0m")))
        severity = draw(st.sampled_from(("page", "ticket")))
        slo["alertPolicies"] = [
            {
                "kind": "AlertPolicy",
                "metadata": {"name": f"burn-{index}"},
                "spec": {
                    "conditions": [
                        {
                            "kind": "AlertCondition",
                            "metadata": {"name": f"fast-{index}"},
                            "spec": {"severity": severity, "condition": condition},
                        }
                    ]
                },
            }
        ]
    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": f"slo-{index}", "labels": {"owner": "shop-team"}},
        "spec": slo,
    }


@st.composite
def openslo_file(draw: st.DrawFn) -> str:
    objects = [draw(openslo_slo(i)) for i in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):  # the list form, as `oslo fmt` prints it
        return yaml.safe_dump(objects, sort_keys=False)
    return yaml.safe_dump_all(objects, sort_keys=False)


@SETTINGS
@given(openslo_file())
def test_openslo_round_trips_through_the_native_form(text: str) -> None:
    slos, back = _round_trip(text, "openslo.yaml")
    assert slos, text
    assert _without_source(back) == _without_source(slos)


@st.composite
def native_file(draw: st.DrawFn) -> str:
    slis: dict[str, Any] = {
        "events": {
            "good": draw(st.sampled_from(EVENT_QUERIES)),
            "valid": draw(st.sampled_from(EVENT_QUERIES)),
        },
        "errors": {"bad": draw(st.sampled_from(EVENT_QUERIES)), "valid": "sum(rate(all_total[5m]))"},
        "ratio": {"metric": RAW_QUERY, "direction": draw(st.sampled_from(("good", "bad")))},
        "latency": {"metric": draw(st.sampled_from(THRESHOLD_QUERIES)), "threshold": "300ms at p99"},
    }
    windows = (
        "30d",
        "28d",
        "4w",
        "1w3d",
        "month",
        "quarter",
        "week",
        "day",
        "year",
        "month in Europe/Berlin",
        "week from 2026-01-07T08:00 in America/Los_Angeles",
        "quarter from 2026-02-01T00:00",
    )
    slos = []
    for index in range(draw(st.integers(1, 4))):
        entry: dict[str, Any] = {
            "sli": draw(st.sampled_from(sorted(slis))),
            "name": f"slo-{index}",
            "target": draw(st.sampled_from(("99.9%", "99", 0.995, "0.9995"))),
            "window": draw(st.sampled_from(windows)),
        }
        if draw(st.booleans()):
            entry["burn_rate_alerts"] = [
                {"severity": "page", "long_window": "1h", "short_window": "5m", "burn_rate": "14.4x"},
                {"severity": "ticket", "long_window": "6h", "short_window": "30m", "budget_consumed": "5%"},
            ]
        slos.append(entry)
    document: dict[str, Any] = {"service": "shop", "owner": "shop-team", "slis": slis, "slos": slos}
    if draw(st.booleans()):
        document["error_budget_policy"] = {"normal": "Ship", "exhausted": "Freeze deploys"}
    return yaml.safe_dump(document, sort_keys=False)


@SETTINGS
@given(native_file())
def test_native_round_trips_through_the_native_form(text: str) -> None:
    slos, back = _round_trip(text, "native.yaml")
    assert slos, text
    assert _without_source(back) == _without_source(slos)
