"""OpenSLO specs through the real promtool (issue 14): the rules of every OpenSLO fixture pass
`promtool check rules`, and a Timeslices SLO over counters records a minute in which every request
fails as a bad slice (`promtool test rules`), where main's lifetime ratio called it good."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.rules import export_rules
from pipelines.specs import load_specs
from tests.support.realparts import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FORMS = ROOT / "tests" / "unit" / "specs" / "openslo_forms"

REFUNDS = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: refund-minutes, labels: {owner: payments-team}}
spec:
  service: payments
  indicator:
    metadata: {name: refund-minutes}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: refunds_ok_total}}}
        total: {metricSource: {type: Prometheus, spec: {query: refunds_total}}}
  budgetingMethod: Timeslices
  objectives:
    - {target: 0.99, timeSliceTarget: 0.99, timeSliceWindow: 1m}
"""


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_of_the_openslo_fixtures_pass_promtool_check(tmp_path: Path) -> None:
    tool = require_binary("promtool")
    out = tmp_path / "rules.yaml"
    made = run([sys.executable, "-m", "pipelines.cli", "rules", str(FORMS), "-o", str(out)], cwd=ROOT)
    assert made.returncode == 0, made.stderr
    check = run([tool, "check", "rules", str(out)])
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 59 rules found" in check.stdout  # 4 SLOs; see the group sizes in rules.py


def test_a_minute_where_every_request_fails_is_a_bad_slice(tmp_path: Path) -> None:
    """1000 healthy minutes of 100 refunds each, then minute 1000…1001 in which all 100 fail, then
    healthy again. The slice at 1001m is that minute's ratio, 0/100: bad (1). Main divided the
    counters themselves, 100000/100100 = 0.999 ≥ 0.99: good (0)."""
    tool = require_binary("promtool")
    spec = tmp_path / "refunds.yaml"
    spec.write_text(REFUNDS, encoding="utf-8")
    slos, _ = load_specs([spec])
    (tmp_path / "rules.yaml").write_text(export_rules(slos).render(), encoding="utf-8")
    labels = 'service="payments",slo="payments/refund-minutes"'
    expected = {"999m": 0, "1000m": 0, "1001m": 1, "1002m": 0}
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": "refunds_total", "values": "0+100x1100"},
                    # 100000 at minute 1000 and again at 1001 (no success that minute), then +100 a minute
                    {"series": "refunds_ok_total", "values": "0+100x1000 100000 100100+100x98"},
                ],
                "promql_expr_test": [
                    {
                        "expr": "slo:sli_error:slice",
                        "eval_time": at,
                        "exp_samples": [{"labels": f"slo:sli_error:slice{{{labels}}}", "value": value}],
                    }
                    for at, value in expected.items()
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    result = run([tool, "test", "rules", "test.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
