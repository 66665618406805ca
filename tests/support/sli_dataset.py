"""A random SLI dataset written twice: as Prometheus counters (OpenMetrics) and as CSV buckets.

Counters are sampled exactly on minute boundaries, so bucket `[t, t+1m)` is the increase between the
samples at `t` and `t+1m` (DESIGN §2); a counter reset restarts the counter at the minute's increase,
which is what Prometheus's `increase()` counts after a reset. Each run draws a new seed (printed,
and fixed by SLO_TEST_SEED), so the pipeline is checked against data it has never seen.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Two services, every query form the Prometheus source supports (DESIGN §2).
SPECS = {
    "shop.yaml": """\
service: shop
owner: shop-team
slis:
  availability:          # good + valid, rates over the window placeholder
    good: 'sum(rate(shop_requests_total{code!~"5.."}[{{.window}}]))'
    valid: 'sum(rate(shop_requests_total[{{.window}}]))'
  correctness:           # bad + valid, increases
    bad: 'sum(increase(shop_wrong_total[{{.window}}]))'
    valid: 'sum(increase(shop_requests_total[{{.window}}]))'
  latency:               # a threshold SLI on a gauge, as time slices
    metric: 'max(shop_latency_p99_seconds)'
    threshold: "300ms"
slos:
  - sli: availability
    target: 99%
    window: 1d
  - sli: correctness
    target: 99.5%
    window: 2d
  - sli: latency
    target: 95%
    window: 1d
""",
    "pay.yaml": """\
service: pay
owner: pay-team
slis:
  success:               # the seed's ratio of rates, split at its '/'
    metric: 'sum(rate(pay_ok_total[5m])) / sum(rate(pay_attempts_total[5m]))'
    direction: good
  errors:                # the seed's ratio of bare counters
    metric: 'pay_errors_total / pay_attempts_total'
    direction: bad
slos:
  - sli: success
    target: 99.9%
    window: 30d
  - sli: errors
    target: 99.9%
    window: 30d
""",
}
SLO_IDS = ("pay/errors", "pay/success", "shop/availability", "shop/correctness", "shop/latency")
LATENCY_THRESHOLD = 0.3


def seed() -> int:
    value = int(os.environ.get("SLO_TEST_SEED") or random.SystemRandom().randrange(1, 2**31))
    print(f"dataset seed {value} (rerun with SLO_TEST_SEED={value})")
    return value


@dataclass
class Dataset:
    start: int  # epoch minute of the first sample (a UTC midnight)
    minutes: int  # buckets [start, start + minutes); samples at start … start + minutes
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], np.ndarray] = field(default_factory=dict)
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], np.ndarray] = field(default_factory=dict)
    increases: dict[tuple[str, tuple[tuple[str, str], ...]], np.ndarray] = field(default_factory=dict)
    resets: int = 0

    @property
    def end(self) -> int:
        return self.start + self.minutes

    def buckets(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """SLO id → (good, valid) per minute, from the true increases (what the CSV holds)."""

        def inc(name: str, **labels: str) -> np.ndarray:
            total = np.zeros(self.minutes, dtype=np.int64)
            for (metric, key), values in self.increases.items():
                if metric == name and all((k, v) in key for k, v in labels.items()):
                    total += values
            return total

        requests = inc("shop_requests_total")
        ok = inc("shop_requests_total", code="200")
        wrong = inc("shop_wrong_total")
        attempts = inc("pay_attempts_total")
        pay_ok = inc("pay_ok_total")
        pay_errors = inc("pay_errors_total")
        latency = next(iter(self.gauges.values()))[1:]  # the sample closing each minute
        return {
            "shop/availability": (ok, requests),
            "shop/correctness": (requests - wrong, requests),
            "shop/latency": (
                (latency <= LATENCY_THRESHOLD).astype(np.int64),
                np.ones(self.minutes, np.int64),
            ),
            "pay/success": (pay_ok, attempts),
            "pay/errors": (attempts - pay_errors, attempts),
        }

    def add_counter(
        self, name: str, labels: dict[str, str], increases: np.ndarray, rng: np.random.Generator
    ) -> None:
        """Samples of a counter with these per-minute increases; a few restarts reset it.

        After a reset at minute i the counter holds just that minute's increase, so Prometheus sees a
        drop and counts the new value, which is the true increase. A reset only happens where the
        counter is above the increase (otherwise no drop would show, as in production).
        """
        values = np.empty(len(increases) + 1, dtype=np.int64)
        values[0] = int(rng.integers(0, 100_000))
        resets = set(rng.choice(len(increases), size=3, replace=False).tolist())
        for i, inc in enumerate(increases):
            if i in resets and values[i] > inc:
                values[i + 1] = inc
                self.resets += 1
            else:
                values[i + 1] = values[i] + inc
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = values
        self.increases[key] = increases.astype(np.int64)

    def write_csv(self, path: Path) -> None:
        lines = ["slo,timestamp,good,valid"]
        for slo, (good, valid) in sorted(self.buckets().items()):
            lines += [
                f"{slo},{(self.start + i) * 60},{int(g)},{int(v)}"
                for i, (g, v) in enumerate(zip(good, valid, strict=True))
            ]
        path.write_text("\n".join(lines) + "\n")

    def write_openmetrics(self, directory: Path) -> list[Path]:
        """One OpenMetrics file per UTC day of samples (promtool backfills each quickly)."""
        directory.mkdir(parents=True, exist_ok=True)
        times = (self.start + np.arange(self.minutes + 1)) * 60
        days = times // 86400
        files = []
        for day in np.unique(days):
            pick = days == day
            lines: list[str] = []
            for kind, series in (("counter", self.counters), ("gauge", self.gauges)):
                for family in sorted({name for name, _ in series}):
                    base = family.removesuffix("_total") if kind == "counter" else family
                    lines.append(f"# TYPE {base} {kind}")
                    for (name, labels), values in sorted(series.items()):
                        if name != family:
                            continue
                        text = ",".join(f'{k}="{v}"' for k, v in labels)
                        lines += _samples(f"{name}{{{text}}}", values[pick], times[pick])
            lines.append("# EOF")
            path = directory / f"day-{int(day)}.om"
            path.write_text("\n".join(lines) + "\n")
            files.append(path)
        return files


def _samples(series: str, values: np.ndarray, times: np.ndarray) -> Iterable[str]:
    return (f"{series} {float(v):.10g} {int(t)}" for v, t in zip(values, times, strict=True))


def generate(seed_value: int, start: int, days: int) -> Dataset:
    """`days` days of one-minute samples from `start`, with incidents and counter resets."""
    rng = np.random.default_rng(seed_value)
    n = days * 1440
    data = Dataset(start=start, minutes=n)
    # Error-rate profile: a low base rate, plus a few incidents of random length and strength.
    error_rate = np.full(n, rng.uniform(0.0005, 0.003))
    slow = np.zeros(n, dtype=bool)
    for _ in range(rng.integers(2, 5)):
        at = int(rng.integers(0, n - 300))
        length = int(rng.integers(10, 240))
        error_rate[at : at + length] = rng.uniform(0.02, 0.3)
        slow[at : at + length] = rng.random() < 0.7
    for instance in ("a", "b"):
        total = rng.poisson(rng.uniform(40, 120), n)
        errors = rng.binomial(total, error_rate)
        wrong = rng.binomial(total - errors, 0.002)
        data.add_counter("shop_requests_total", {"code": "200", "instance": instance}, total - errors, rng)
        data.add_counter("shop_requests_total", {"code": "500", "instance": instance}, errors, rng)
        data.add_counter("shop_wrong_total", {"instance": instance}, wrong, rng)
    attempts = rng.poisson(rng.uniform(10, 30), n)
    failed = rng.binomial(attempts, np.minimum(error_rate * 0.5, 1.0))
    data.add_counter("pay_attempts_total", {"instance": "p1"}, attempts, rng)
    data.add_counter("pay_ok_total", {"instance": "p1"}, attempts - failed, rng)
    data.add_counter("pay_errors_total", {"instance": "p1"}, failed, rng)
    # p99 latency: around 180 ms, above the 300 ms threshold in slow incidents and now and then.
    latency = rng.normal(0.18, 0.04, n + 1)
    latency[1:][slow] += rng.uniform(0.15, 0.5)
    latency[rng.random(n + 1) < 0.01] += 0.2
    data.gauges[("shop_latency_p99_seconds", (("instance", "a"),))] = np.round(np.abs(latency), 4)
    return data
