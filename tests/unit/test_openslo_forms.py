"""OpenSLO v1 files as their authors write them (issue 14): lists of objects, documents and single
objects mixed in one folder; the spec's documented defaults; Timeslices over counters; calendar
windows in a time zone from a start time; and the refusals, each `file:line: field.path: message`.

Fixtures: tests/unit/specs/openslo_forms/ (one folder, three files in the three forms) and
tests/unit/specs/openslo_refused/ (one refusal each).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.fold_kernels import period_start
from pipelines.model import BurnRateAlert, SloWindow
from pipelines.specs import load_specs, native_yaml, parse_window
from tests.unit.test_known_answers import Scenario, buckets, minute_of

SPECS = Path(__file__).resolve().parent / "specs"
FORMS = SPECS / "openslo_forms"
REFUSED = SPECS / "openslo_refused"


def validate(*paths: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_documents_and_single_objects_in_one_folder() -> None:
    """catalog.yaml is a YAML list (as `oslo fmt` prints), slos.yaml three documents referring to the
    list's SLI and AlertPolicy by name, refunds.yaml one bare object. Main refused the list:
    "(document): expected a spec with service, owner, slis, slos, got a list"."""
    slos, warnings = load_specs([FORMS])
    assert [s.id for s in slos] == [
        "payments/payment-availability",
        "payments/payment-monthly",
        "payments/payment-weekly",
        "payments/refund-minutes",
    ]
    availability = slos[0]
    # the SLI from the list, read through its DataSource (no `type` at the metric)
    assert availability.sli.good_query == 'payments_requests_total{code!~"5.."}'
    assert availability.sli.valid_query == "payments_requests_total"
    assert availability.target == 0.999
    assert (availability.window.text, availability.owner) == ("28d", "payments-team")
    # the AlertPolicy of the list: fast-burn has no `kind` (OpenSLO default burnrate) and no alertAfter
    # (default 0m); slow-burn says alertAfter: 0m. The short window is then 1/12 of the lookback.
    assert availability.alerts == (
        BurnRateAlert("page", 60, 5, 14.4),
        BurnRateAlert("ticket", 4320, 360, 1.0),
    )
    assert availability.alerts_custom
    assert sorted((w.file.rsplit("/", 1)[-1], w.line, w.path) for w in warnings) == [
        ("catalog.yaml", 43, "spec.condition.alertAfter"),
        ("catalog.yaml", 57, "spec.condition.alertAfter"),
    ]
    assert "the short window is 5m, 1/12 of lookbackWindow 1h" in warnings[0].message


def test_empty_alert_policies_take_the_default_alerts() -> None:
    """`alertPolicies: []` (weekly) and `alertPolicies:` with nothing (monthly): no policy of the
    spec's own, so the DESIGN §2 defaults scaled to the window, as for a native spec without alerts.
    Main refused both ("expected a list of alert policies")."""
    slos = {s.name: s for s in load_specs([FORMS])[0]}
    for name, days in (("payment-weekly", 7), ("payment-monthly", 30)):
        assert not slos[name].alerts_custom
        # page 1h at 2% of the window: 0.02 × days × 24
        assert slos[name].alerts[0] == BurnRateAlert("page", 60, 5, pytest.approx(0.02 * days * 24))


DEFAULTS = """\
apiVersion: openslo/v1
kind: AlertCondition
metadata: {name: fast}
spec:
  severity: page
  condition: {threshold: 14.4, lookbackWindow: 1h}
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: burn}
spec:
  conditions: [{conditionRef: fast}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: with-policy, labels: {owner: web-team}}
spec:
  service: web
  indicator:
    metadata: {name: ok}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'web_requests_total{code!~"5.."}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: web_requests_total}}}
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
  alertPolicies: [{alertPolicyRef: burn}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: empty-policies, labels: {owner: web-team}}
spec:
  service: web
  indicatorRef: ok-ref
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
  alertPolicies:
---
apiVersion: openslo/v1
kind: SLI
metadata: {name: ok-ref}
spec:
  ratioMetric:
    counter: true
    good: {metricSource: {type: Prometheus, spec: {query: 'web_requests_total{code!~"5.."}'}}}
    total: {metricSource: {type: Prometheus, spec: {query: web_requests_total}}}
"""


def test_openslo_defaults_in_plain_documents(tmp_path: Path) -> None:
    """Each default on its own, in `---` documents main did read: a condition without `kind` and
    `alertAfter` (main: "'None' conditions cannot be imported", "alertAfter: required field is
    missing") and `alertPolicies:` with nothing (main: "expected a list of alert policies")."""
    spec = tmp_path / "web.yaml"
    spec.write_text(DEFAULTS, encoding="utf-8")
    slos = {s.name: s for s in load_specs([spec])[0]}
    assert slos["with-policy"].alerts == (BurnRateAlert("page", 60, 5, 14.4),)
    # the DESIGN §2 defaults at 30d
    assert slos["empty-policies"].alerts == tuple(
        BurnRateAlert(severity, long, short, pytest.approx(factor))
        for severity, long, short, factor in (
            ("page", 60, 5, 14.4),
            ("page", 360, 30, 6.0),
            ("ticket", 1440, 120, 3.0),
            ("ticket", 4320, 360, 1.0),
        )
    )
    assert not slos["empty-policies"].alerts_custom


def test_calendar_time_zone_and_start_are_carried() -> None:
    slos = {s.name: s for s in load_specs([FORMS])[0]}
    assert slos["payment-weekly"].window == SloWindow(
        kind="calendar",
        minutes=7 * 1440,
        text="week from 2026-01-05T09:00 in Europe/Berlin",
        calendar="week",
        time_zone="Europe/Berlin",
        start="2026-01-05T09:00",
    )
    monthly = slos["payment-monthly"].window
    assert (monthly.calendar, monthly.time_zone, monthly.start) == ("month", "America/Los_Angeles", None)


def test_timeslices_over_counters_take_each_minutes_own_increase() -> None:
    """Main wrote `(refunds_ok_total)/(sum by (region) (rate(refunds_total[5m])))`: the counters'
    lifetime ratio (bare counters) and a 5-minute rate, so a minute where every refund fails could
    still count as good. Now both sides are the minute's increase, summed to one series."""
    (refunds,) = load_specs([FORMS / "refunds.yaml"])[0]  # one object, no list: main read it too
    assert refunds.sli.kind == "threshold"
    assert refunds.sli.threshold_query == (
        "sum(increase(refunds_ok_total[1m]))\n/\nsum(sum by (region) (increase(refunds_total[1m])))"
    )
    assert (refunds.sli.comparison, refunds.sli.threshold) == (">=", 0.99)


def test_threshold_metric_honours_a_time_slice_target_below_one(tmp_path: Path) -> None:
    spec = tmp_path / "latency.yaml"
    spec.write_text(
        """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: search-latency, labels: {owner: search-team}}
spec:
  service: search
  indicator:
    metadata: {name: search-latency}
    spec:
      thresholdMetric:
        metricSource: {type: Prometheus, spec: {query: max(search_latency_seconds)}}
  budgetingMethod: Timeslices
  objectives:
    - {op: lte, value: 0.25, target: 0.99, timeSliceTarget: 0.75, timeSliceWindow: 1m}
""",
        encoding="utf-8",
    )
    sli = load_specs([spec])[0][0].sli
    # the minute is good when at least 3 of its 4 sample instants (every 15 s) meet 250 ms
    assert sli.threshold_query == (
        "avg_over_time((\n  (\n    max(search_latency_seconds)\n  ) >= -Inf <= bool 0.25\n)[1m:15s])"
    )
    assert (sli.comparison, sli.threshold, sli.threshold_text) == (">=", 0.75, "0.75")


@pytest.mark.parametrize(
    ("fixture", "line", "path", "message"),
    [
        (
            "mars.yaml",
            19,
            "spec.timeWindow[0].calendar.timeZone",
            "'Mars/Olympus' is not a time zone in the IANA database; expected an IANA time zone name",
        ),
        (
            "not_a_date.yaml",
            19,
            "spec.timeWindow[0].calendar.startTime",
            "'not-a-date' is not a date; expected a local date and time without a zone",
        ),
        (
            "gauge.yaml",
            12,
            "spec.indicator.spec.ratioMetric.counter",
            "counter: false (gauges) cannot be counted as events here; expected counter: true",
        ),
        (
            # OpenSLO's own README query: no range, so neither the pull nor the rules can count events
            "readme_query.yaml",
            17,
            "spec.indicator.spec.ratioMetric.good.metricSource.spec.query",
            "no range selector (like [5m] or [{{.window}}]) in 'sum(localhost_server_requests{",
        ),
        (
            # Sloth's subquery shape: validated on main, then the pull refused it and --native did
            # not load back
            "sloth_subquery.yaml",
            6,
            "slos[0]",
            "slis.pods-ready.bad: subqueries ([range:step]) cannot give per-minute increases",
        ),
    ],
)
def test_refusals_name_the_line_the_field_and_what_to_write(
    fixture: str, line: int, path: str, message: str
) -> None:
    result = validate(REFUSED / fixture)
    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{REFUSED / fixture}:{line}: {path}: {message}"), first
    assert "nothing was applied" in result.stderr


def test_native_form_says_the_same_calendar_and_loads_back() -> None:
    slos, _ = load_specs([FORMS])
    again_text = native_yaml(slos)
    assert "window: week from 2026-01-05T09:00 in Europe/Berlin" in again_text
    assert "window: month in America/Los_Angeles" in again_text


@pytest.mark.parametrize(
    ("window", "at", "expected"),
    [
        # Europe/Berlin is UTC+1 in winter: March starts at 2026-02-28T23:00Z
        ("month in Europe/Berlin", "2026-02-28T22:59", "2026-01-31T23:00"),
        ("month in Europe/Berlin", "2026-02-28T23:00", "2026-02-28T23:00"),
        ("month in Europe/Berlin", "2026-03-31T21:59", "2026-02-28T23:00"),  # CEST from Mar 29
        ("month in Europe/Berlin", "2026-03-31T22:00", "2026-03-31T22:00"),
        # America/Los_Angeles is UTC−8 in winter: March starts at 2026-03-01T08:00Z
        ("month in America/Los_Angeles", "2026-03-01T07:59", "2026-02-01T08:00"),
        ("month in America/Los_Angeles", "2026-03-01T08:00", "2026-03-01T08:00"),
        ("quarter in America/Los_Angeles", "2026-04-01T06:59", "2026-01-01T08:00"),  # PDT: UTC−7
        ("quarter in America/Los_Angeles", "2026-04-01T07:00", "2026-04-01T07:00"),
        # weeks from Monday 09:00 Berlin time; days from midnight in Los Angeles; years from July
        ("week from 2026-01-05T09:00 in Europe/Berlin", "2026-03-02T07:59", "2026-02-23T08:00"),
        ("week from 2026-01-05T09:00 in Europe/Berlin", "2026-03-02T08:00", "2026-03-02T08:00"),
        ("day in America/Los_Angeles", "2026-07-04T06:59", "2026-07-03T07:00"),
        ("year from 2025-07-01T00:00", "2026-06-30T23:59", "2025-07-01T00:00"),
        ("month from 2026-01-31T00:00", "2026-03-01T00:00", "2026-02-28T00:00"),  # clamped to Feb 28
        # UTC without a start: the vectorised month/quarter path, as before
        ("month", "2026-02-28T23:00", "2026-02-01T00:00"),
        ("quarter", "2026-04-01T00:00", "2026-04-01T00:00"),
    ],
)
def test_period_start_in_a_time_zone(window: str, at: str, expected: str) -> None:
    key = parse_window(window).period_key
    got = period_start(np.array([minute_of(at)], dtype=np.int64), key)
    assert got.tolist() == [minute_of(expected)]


def test_the_engine_restarts_a_berlin_month_at_berlin_midnight(tmp_path: Path) -> None:
    """Three buckets of 100 events at 99 % (1 bad allowed each): 22:58Z and 22:59Z on Feb 28 are still
    February in Berlin (23:58, 23:59 local), 23:00Z is March 1 00:00 there. The UTC month of the same
    SLO keeps all three until March 1 00:00Z."""
    sc = Scenario(tmp_path)
    spec = """\
service: cal
owner: team
slis:
  availability: {good: 'sum(rate(ok_total[5m]))', valid: 'sum(rate(all_total[5m]))'}
slos:
  - {sli: availability, name: berlin, target: 99%, window: month in Europe/Berlin}
  - {sli: availability, name: utc, target: 99%, window: month}
"""
    sc.specs(spec)
    rows = []
    for slo in ("cal/berlin", "cal/utc"):
        for when, bad in (("2026-02-28T22:58", 3), ("2026-02-28T22:59", 0), ("2026-02-28T23:00", 0)):
            rows.append((slo, minute_of(when), 100 - bad, 100))
    sc.run(buckets(rows), minute_of("2026-02-28T23:30"))
    # at 23:00Z (T − 1 = 22:59Z, Berlin's February): both months hold the first two buckets
    at_2300 = sc.status(minute_of("2026-02-28T23:00"))
    assert (at_2300["cal/berlin"]["valid"], at_2300["cal/utc"]["valid"]) == (200, 200)
    assert at_2300["cal/berlin"]["budget_remaining"] == pytest.approx(1 - 3 / 2)
    # at 23:01Z (T − 1 = 23:00Z = March in Berlin): Berlin's month holds only the 23:00Z bucket
    at_2301 = sc.status(minute_of("2026-02-28T23:01"))
    assert at_2301["cal/berlin"]["valid"] == 100
    assert at_2301["cal/berlin"]["budget_remaining"] == pytest.approx(1.0)
    assert at_2301["cal/utc"]["valid"] == 300
    assert at_2301["cal/utc"]["budget_remaining"] == pytest.approx(1 - 3 / 3)


def test_rules_say_the_calendar_zone_is_approximated() -> None:
    """Prometheus has no calendar ranges: the rules keep the rolling approximation and say which
    periods `slo status` cuts exactly."""
    from pipelines.rules import export_rules

    notes = export_rules(load_specs([FORMS])[0]).notes
    assert (
        "payments/payment-weekly: the calendar week (periods cut in Europe/Berlin from 2026-01-05T09:00) "
        "is approximated by a rolling 7d (Prometheus has no calendar ranges); `slo status` computes the "
        "calendar window exactly"
    ) in notes


def test_the_dashboard_period_of_a_zoned_calendar_window() -> None:
    """The SLO page's burn-down runs from the period's start to its end: in Los Angeles time for a
    Los Angeles month, a Monday-09:00 Berlin week for that week."""
    from dashboard.queries import period_bounds

    la = parse_window("month in America/Los_Angeles").period_key
    assert period_bounds(minute_of("2026-03-10T12:00"), la) == (
        minute_of("2026-03-01T08:00"),
        minute_of("2026-04-01T07:00"),  # PDT from March 8
    )
    week = parse_window("week from 2026-01-05T09:00 in Europe/Berlin").period_key
    assert period_bounds(minute_of("2026-03-02T08:00"), week) == (
        minute_of("2026-03-02T08:00"),
        minute_of("2026-03-09T08:00"),
    )


def test_a_one_day_openslo_window_gets_the_short_window_defaults_with_a_warning(tmp_path: Path) -> None:
    """A rolling 1d OpenSLO SLO without alert policies: the same adjusted defaults as a native or
    Sloth spec (no 3d lookback in a 1d window, no factor below 1), and the same warning, at the
    timeWindow list (line 14 below)."""
    spec = tmp_path / "daily.yaml"
    spec.write_text(
        """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: daily, labels: {owner: web-team}}
spec:
  service: web
  indicator:
    metadata: {name: ok}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: ok_total}}}
        total: {metricSource: {type: Prometheus, spec: {query: all_total}}}
  timeWindow:
    - duration: 1d
      isRolling: true
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
""",
        encoding="utf-8",
    )
    (slo,), warnings = load_specs([spec])
    assert [(a.severity, a.long_window, a.short_window, a.factor) for a in slo.alerts] == [
        ("page", 60, 5, 1.0),
        ("page", 360, 30, 1.0),
        ("ticket", 1440, 120, 1.0),
    ]
    assert [(w.line, w.path) for w in warnings] == [(14, "spec.timeWindow")]
    assert "made for periods of 5 days and more" in warnings[0].message
