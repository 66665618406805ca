"""The exported rules against the real promtool: `check rules` on every spec, and `test rules` cases
whose firing minutes are computed by hand in the comments.

Prometheus 2.x reads a range `[W]` at time t as the samples in [t − W, t], both ends included, and
`increase` over counters that start at 0 is exact when the samples sit on the range's ends (no
extrapolation: a counter is never extrapolated below zero). So with one sample a minute the error
ratio over W is simply (errors added in W) / (requests added in W).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.rules import export_rules, rule_windows
from pipelines.specs import load_specs
from tests.support.realparts import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = "https://runbooks.example.test"

SHOP_SPEC = """\
service: shop
owner: shop-team
slis:
  availability:
    bad: sum(increase(shop_errors_total[{{.window}}]))
    valid: sum(increase(shop_requests_total[{{.window}}]))
  latency:
    metric: max(shop_latency_seconds)
    threshold: 300ms
slos:
  - sli: availability
    target: 99%
    window: 30d
  - sli: latency
    target: 99%
    window: 30d
error_budget_policy:
  normal: "Ship features."
  freeze_review: "Review risky deploys."
  reliability_focus: "Only reliability work."
  exhausted: "Freeze deploys."
"""


def promtool() -> str:
    return require_binary("promtool")


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


# --- promtool check rules on every spec the product ships --------------------------------------


@pytest.mark.parametrize("specs", ["slo_specs", "pipelines/demo/specs"])
def test_promtool_accepts_the_rules_for_shipped_specs(specs: str, tmp_path: Path) -> None:
    tool = promtool()
    out = tmp_path / "rules.yaml"
    result = run([sys.executable, "-m", "pipelines.cli", "rules", specs, "-o", str(out)], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    slos, _ = load_specs([ROOT / specs])
    # Per SLO: one ratio per window (7 standard ones + the period: 30d, 28d or 90d here), a slice rule
    # for threshold SLIs, objective, budget remaining, one alert per condition, the exhausted alert.
    assert {len(rule_windows(s)) for s in slos} == {8}
    expected = sum(8 + (s.sli.kind == "threshold") + 2 + len(s.alerts) + 1 for s in slos)
    check = run([tool, "check", "rules", str(out)])
    print(check.stdout, check.stderr)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {expected} rules found" in check.stdout


# --- promtool test rules: the page and ticket alerts fire at hand-computed minutes -------------


def _alert(
    slo: str, severity: str, long: str, short: str, burn: str, factor: str, policy: str
) -> dict[str, Any]:
    """An expected SLOBurnRateHigh, annotations written out as a person reads them."""
    share = {"1h": "2%", "6h": "5%", "1d": "10%", "3d": "10%"}[long]
    return {
        "exp_labels": {
            "service": "shop",
            "slo": slo,
            "severity": severity,
            "long_window": long,
            "short_window": short,
        },
        "exp_annotations": {
            "summary": f"{slo} is burning its error budget {factor}x too fast ({severity}, {long}/{short})",
            "description": (
                f"Burn rate {burn} over {long} (and above {factor} over {short}) against target 99% over "
                f"30d; at this pace {share} of the 30d error budget goes every {long}."
            ),
            "policy": policy,
            "runbook_url": f"{RUNBOOKS}/shop/",
        },
    }


AVAILABILITY = "shop/availability"
LATENCY = "shop/latency"
FREEZE = "freeze_review: Review risky deploys."
FOCUS = "reliability_focus: Only reliability work."
EXHAUSTED = "exhausted: Freeze deploys."

# Requests grow by 100 a minute from minute 0. Errors stay 0 up to minute T0 = 1440 (one day of
# healthy history), then every request fails: at t = T0 + k the errors added over a window W are
# 100·min(k, W). Target 99 % → budget 0.01; default factors at 30d: 14.4, 6, 3, 1.
#   error ratio 1h = k/60       page 1h/5m    k/60 > 0.144         → k > 8.64   first at k = 9
#   error ratio 6h = k/360      page 6h/30m   k/360 > 0.06         → k > 21.6   first at k = 22
#   error ratio 1d = k/1440     ticket 1d/2h  k/1440 > 0.03        → k > 43.2   first at k = 44
#   3d and 30d hold all 1440+k minutes of history:
#                               ticket 3d/6h  k/(1440+k) > 0.01    → k > 14.55  first at k = 15
#   budget remaining r = 1 − (k/(1440+k))/0.01: exhausted (r ≤ 0) first at k = 15;
#   at k = 9 r = 0.379 (freeze_review), at k = 14 r = 0.0372 (reliability_focus).
# The short windows (5m, 30m, 2h, 6h) are far above their factors by then (1, 22/30, 44/120, 15/360).
# Burn rates printed: k=9: (9/60)/0.01 = 15.00; k=14: 23.33; k=22: (22/360)/0.01 = 6.11;
# k=15: (15/1455)/0.01 = 1.03; k=44: (44/1440)/0.01 = 3.06.
AVAILABILITY_CASES: list[tuple[int, list[dict[str, Any]]]] = [
    (8, []),  # 1h ratio 8/60 = 0.1333: burn 13.33, just below 14.4
    (9, [_alert(AVAILABILITY, "page", "1h", "5m", "15.00", "14.4", FREEZE)]),
    (14, [_alert(AVAILABILITY, "page", "1h", "5m", "23.33", "14.4", FOCUS)]),
    (
        15,  # 3d ratio 15/1455 = 0.0103 > 0.01 (at k = 14: 14/1454 = 0.00963, silent)
        [
            _alert(AVAILABILITY, "page", "1h", "5m", "25.00", "14.4", EXHAUSTED),
            _alert(AVAILABILITY, "ticket", "3d", "6h", "1.03", "1", EXHAUSTED),
        ],
    ),
    (
        21,  # 6h ratio 21/360 = 0.0583: burn 5.83, just below 6
        [
            _alert(AVAILABILITY, "page", "1h", "5m", "35.00", "14.4", EXHAUSTED),
            _alert(AVAILABILITY, "ticket", "3d", "6h", "1.44", "1", EXHAUSTED),
        ],
    ),
    (
        22,
        [
            _alert(AVAILABILITY, "page", "1h", "5m", "36.67", "14.4", EXHAUSTED),
            _alert(AVAILABILITY, "page", "6h", "30m", "6.11", "6", EXHAUSTED),
            _alert(AVAILABILITY, "ticket", "3d", "6h", "1.50", "1", EXHAUSTED),
        ],
    ),
    (
        43,  # 1d ratio 43/1440 = 0.02986: burn 2.99, just below 3
        [
            _alert(AVAILABILITY, "page", "1h", "5m", "71.67", "14.4", EXHAUSTED),
            _alert(AVAILABILITY, "page", "6h", "30m", "11.94", "6", EXHAUSTED),
            _alert(AVAILABILITY, "ticket", "3d", "6h", "2.90", "1", EXHAUSTED),
        ],
    ),
    (
        44,
        [
            _alert(AVAILABILITY, "page", "1h", "5m", "73.33", "14.4", EXHAUSTED),
            _alert(AVAILABILITY, "page", "6h", "30m", "12.22", "6", EXHAUSTED),
            _alert(AVAILABILITY, "ticket", "1d", "2h", "3.06", "3", EXHAUSTED),
            _alert(AVAILABILITY, "ticket", "3d", "6h", "2.96", "1", EXHAUSTED),
        ],
    ),
]


def _exhausted(remaining: str) -> dict[str, Any]:
    return {
        "exp_labels": {"service": "shop", "slo": AVAILABILITY, "severity": "ticket"},
        "exp_annotations": {
            "summary": f"{AVAILABILITY} has exhausted its error budget",
            "description": f"Budget remaining {remaining} of the 30d error budget at target 99%.",
            "policy": EXHAUSTED,
            "runbook_url": f"{RUNBOOKS}/shop/",
        },
    }


def _promtool_test(
    tmp_path: Path,
    series: list[dict[str, str]],
    alert_tests: list[dict[str, Any]],
    expr_tests: list[dict[str, Any]] | None = None,
    spec_text: str = SHOP_SPEC,
) -> str:
    """Generate the rules for SHOP_SPEC, write a promtool unit-test file, run it; return its output."""
    tool = promtool()
    spec = tmp_path / "shop.yaml"
    spec.write_text(spec_text)
    slos, _ = load_specs([spec])
    (tmp_path / "rules.yaml").write_text(export_rules(slos, RUNBOOKS).render())
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": alert_tests,
                "promql_expr_test": expr_tests or [],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = run([tool, "test", "rules", "test.yaml"], cwd=tmp_path)
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_burn_rate_alerts_fire_at_the_hand_computed_minutes(tmp_path: Path) -> None:
    series = [
        {"series": "shop_requests_total", "values": "0+100x1500"},
        # 0 at minutes 0…1440, then 100, 200, … from minute 1441: 100 errors a minute after T0.
        {"series": "shop_errors_total", "values": "0x1440 100+100x59"},
    ]
    alert_tests = [
        {"eval_time": f"{1440 + k}m", "alertname": "SLOBurnRateHigh", "exp_alerts": alerts}
        for k, alerts in AVAILABILITY_CASES
    ] + [
        # r at k = 14: 1 − (14/1454)/0.01 = 0.0371 > 0: silent. At k = 15: 1 − (15/1455)/0.01 = −0.0309.
        {"eval_time": "1454m", "alertname": "SLOErrorBudgetExhausted", "exp_alerts": []},
        {"eval_time": "1455m", "alertname": "SLOErrorBudgetExhausted", "exp_alerts": [_exhausted("-3.093%")]},
    ]
    assert "SUCCESS" in _promtool_test(tmp_path, series, alert_tests)


def test_an_error_ratio_exactly_on_the_threshold_stays_silent(tmp_path: Path) -> None:
    # DESIGN §2: burn > factor is strict. One alert, page 1h/5m at 14.4x, target 99 %. Requests grow
    # by 100 a minute; errors: none up to minute 60, then 100 a minute for 8 minutes, 64 in the ninth,
    # 100 a minute again. At 69m the 1h window holds 864 errors of 6000 requests: 864/6000 = 0.144 =
    # 14.4 × 0.01 exactly, burn 14.4, not above 14.4: silent. At 70m: 964/6000 = 0.1607, burn 16.07:
    # firing (5m: 564/500, far above). Budget remaining at 70m: 1 − (964/7000)/0.01 < 0: exhausted.
    spec = SHOP_SPEC.replace(
        "    window: 30d\n  - sli: latency",
        "    window: 30d\n    burn_rate_alerts:\n"
        "      - {severity: page, long_window: 1h, short_window: 5m, burn_rate: 14.4x}\n  - sli: latency",
    )
    series = [
        {"series": "shop_requests_total", "values": "0+100x90"},
        {"series": "shop_errors_total", "values": "0x60 100+100x7 864 964+100x20"},
    ]
    alert_tests = [
        {"eval_time": "69m", "alertname": "SLOBurnRateHigh", "exp_alerts": []},
        {
            "eval_time": "70m",
            "alertname": "SLOBurnRateHigh",
            "exp_alerts": [_alert(AVAILABILITY, "page", "1h", "5m", "16.07", "14.4", EXHAUSTED)],
        },
    ]
    assert "SUCCESS" in _promtool_test(tmp_path, series, alert_tests, spec_text=spec)


def test_time_slice_alerts_fire_at_the_hand_computed_minutes(tmp_path: Path) -> None:
    # Latency 0.1 s (meets 300 ms) for minutes 0…360, then 0.5 s: every later minute is a bad slice.
    # The slice recording holds one sample per rule evaluation (every minute), and a range [W] at t
    # holds the samples in [t − W, t], both ends included (Prometheus 2.x). At t = 360 + k:
    #   1h: 61 samples, k bad      page 1h/5m    k/61 > 0.144        → k > 8.78  first at k = 9
    #   3d (all history): 361 + k samples, k bad; 6h: 361 samples, k bad
    #                              ticket 3d/6h  k/(361+k) > 0.01    → k > 3.65  first at k = 4
    # Budget remaining 1 − (k/(361+k))/0.01 is below 0 from k = 4 on: the policy text is "exhausted".
    # Burn rates printed: k=4: (4/365)/0.01 = 1.10; k=8: (8/369)/0.01 = 2.17; k=9: (9/61)/0.01 = 14.75
    # and (9/370)/0.01 = 2.43.
    series = [{"series": "shop_latency_seconds", "values": "0.1x360 0.5x30"}]
    ticket = _alert(LATENCY, "ticket", "3d", "6h", "{burn}", "1", EXHAUSTED)

    def with_burn(alert: dict[str, Any], burn: str) -> dict[str, Any]:
        annotations = dict(alert["exp_annotations"])
        annotations["description"] = annotations["description"].replace("{burn}", burn)
        return {"exp_labels": alert["exp_labels"], "exp_annotations": annotations}

    cases: list[tuple[int, list[dict[str, Any]]]] = [
        (3, []),  # 3/364 = 0.0082: burn 0.82, below 1
        (4, [with_burn(ticket, "1.10")]),
        (8, [with_burn(ticket, "2.17")]),  # 1h: 8/61 = 0.131, burn 13.11: page silent
        (9, [_alert(LATENCY, "page", "1h", "5m", "14.75", "14.4", EXHAUSTED), with_burn(ticket, "2.43")]),
    ]
    alert_tests = [
        {"eval_time": f"{360 + k}m", "alertname": "SLOBurnRateHigh", "exp_alerts": alerts}
        for k, alerts in cases
    ]
    assert "SUCCESS" in _promtool_test(tmp_path, series, alert_tests)


def test_the_guide_configs_are_accepted_by_promtool_and_amtool(tmp_path: Path) -> None:
    """The prometheus.yml and alertmanager.yml in the README guide are real, valid configs."""
    tool, amtool = promtool(), require_binary("amtool")
    guide = (ROOT / "docs" / "alerting.md").read_text()
    prometheus_yml, alertmanager_yml = re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL)

    rules = tmp_path / "slo.rules.yaml"
    made = run([sys.executable, "-m", "pipelines.cli", "rules", "slo_specs", "-o", str(rules)], cwd=ROOT)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_yml.replace("/etc/prometheus/rules/slo.rules.yaml", str(rules)))
    checked = run([tool, "check", "config", str(config)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 44 rules found" in checked.stdout  # the seed's 3 SLOs: 14 + 15 + 15 rules

    token = tmp_path / "slo_ingest_token"
    token.write_text("not-a-real-token\n")
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(alertmanager_yml.replace("/etc/alertmanager/slo_ingest_token", str(token)))
    checked = run([amtool, "check-config", str(am_config)])
    print(checked.stdout, checked.stderr)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout and " - 2 receivers" in checked.stdout
    # the route really sends both alerts to the ingest endpoint
    routed = run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={am_config}",
            "alertname=SLOBurnRateHigh",
            "severity=page",
        ]
    )
    assert routed.stdout.strip() == "slo-serve", routed.stdout + routed.stderr


def test_a_minute_without_data_is_no_slice(tmp_path: Path) -> None:
    # A p99 over no traffic is NaN: such a minute is neither good nor bad (DESIGN §2: valid only with
    # data). Minutes 0-1 NaN, 2: 0.5 s (bad), 3: 0.1 s (good). The 5m error ratio at 3m averages
    # the two slices that exist: (1 + 0) / 2 = 0.5.
    series = [{"series": "shop_latency_seconds", "values": "NaN NaN 0.5 0.1"}]
    slice_labels = 'slo:sli_error:slice{service="shop",slo="shop/latency"}'
    ratio_labels = 'slo:sli_error:ratio_rate5m{service="shop",slo="shop/latency"}'
    expr_tests = [
        {"expr": "slo:sli_error:slice", "eval_time": "1m", "exp_samples": []},
        {
            "expr": "slo:sli_error:slice",
            "eval_time": "2m",
            "exp_samples": [{"labels": slice_labels, "value": 1}],
        },
        {
            "expr": "slo:sli_error:slice",
            "eval_time": "3m",
            "exp_samples": [{"labels": slice_labels, "value": 0}],
        },
        {
            "expr": 'slo:sli_error:ratio_rate5m{slo="shop/latency"}',
            "eval_time": "3m",
            "exp_samples": [{"labels": ratio_labels, "value": 0.5}],
        },
    ]
    assert "SUCCESS" in _promtool_test(tmp_path, series, [], expr_tests)
