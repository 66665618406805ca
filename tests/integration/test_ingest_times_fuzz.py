"""Times at both ends of the accepted range and beyond, in every documented format, against `slo serve`
(issue 11, deliverable 8).

A seeded generator (FUZZ_SEED, FUZZ_TIME_CASES) sends alerts (generic, Alertmanager, signed PagerDuty)
and commands whose one time field is drawn near 2000-01-01, near receipt + 1 day, inside, or centuries
out, written with `Z`, numeric offsets, Go's nine fractional digits or none. The answer must be the rule
a person can apply by hand: 202 when the time, in UTC, lies in 2000-01-01T00:00:00Z … receipt + 1 day,
else 400 naming the field; Go's zero time stands for "absent" where a field is optional. Afterwards the
worker has folded everything it accepted, with no failed cycle, no dead letter and no failed step, and
an ordinary alert still becomes an incident.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipelines.ingest.pagerduty import sign
from tests.support.service import ROOT, Service, running_service

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
INGEST = "/api/incidents/ingest"
SECRET = "times-fuzz-secret"
SEED = int(os.environ.get("FUZZ_SEED", "20261206"))
CASES = int(os.environ.get("FUZZ_TIME_CASES", "400"))
EARLIEST = dt.datetime(2000, 1, 1)
GO_ZERO = "0001-01-01T00:00:00Z"
# (format, field path as the service names it, whether Go's zero time means "absent" there)
FIELDS = [
    ("generic", "alerts[0].starts_at", True),
    ("generic", "alerts[0].ends_at", True),
    ("alertmanager", "alerts[0].startsAt", False),
    ("alertmanager", "alerts[0].endsAt", True),
    ("pagerduty", "event.occurred_at", False),
    ("pagerduty", "event.data.created_at", True),
    ("command", "at", True),
]


def _json(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


def written(t: dt.datetime, rng: random.Random) -> str | None:
    """`t` (naive UTC) as an RFC 3339 string in a random style, or None when the style cannot write
    it (an offset that moves it past year 1 or 9999)."""
    offset = rng.choice([0, 0, 60, -60, 330, -720, 840])
    try:
        local = t + dt.timedelta(minutes=offset)
    except OverflowError:
        return None
    if offset == 0 and rng.random() < 0.5:
        zone = "Z"
    else:
        sign_ = "+" if offset >= 0 else "-"
        zone = f"{sign_}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    digits = rng.choice([0, 3, 6, 9])
    fraction = f".{local.microsecond:06d}{rng.randrange(1000):03d}"[: digits + 1] if digits else ""
    return f"{local.year:04d}-{local:%m-%dT%H:%M:%S}{fraction}{zone}"


def draw(rng: random.Random, now: dt.datetime) -> dt.datetime:
    """A UTC time from one of the regions either side of both ends of the range. Near the top end it
    stays a minute or more from receipt + 1 day, so the service's clock and ours agree on the answer."""
    top = now + dt.timedelta(days=1)
    region = rng.randrange(7)
    seconds = rng.randrange(1, 86_400)
    if region == 0:  # centuries before
        return dt.datetime(rng.randint(1, 1999), rng.randint(1, 12), rng.randint(1, 28), rng.randrange(24))
    if region == 1:  # just before the bottom end
        return EARLIEST - dt.timedelta(seconds=seconds, microseconds=rng.randrange(10**6))
    if region == 2:  # on the bottom end, or just after
        return EARLIEST + dt.timedelta(seconds=rng.choice([0, 0, seconds]))
    if region == 3:  # anywhere inside
        return EARLIEST + (now - EARLIEST) * rng.random()
    if region == 4:  # inside, just under the top end
        return top - dt.timedelta(seconds=60 + seconds % 3_600)
    if region == 5:  # just over the top end
        return top + dt.timedelta(seconds=60 + seconds % 3_600)
    return dt.datetime(rng.randint(now.year + 1, 9999), rng.randint(1, 12), rng.randint(1, 28), 23, 59, 59)


def request(fmt: str, field: str, value: str, n: int) -> tuple[str, bytes, dict[str, str]]:
    """The path, body and headers of one delivery whose `field` is `value` and everything else real."""
    key = field.rsplit(".", 1)[-1]
    if fmt == "generic":
        alert: dict[str, Any] = {"service": "shop", "title": f"times fuzz {n}", "fingerprint": f"tf-{n}"}
        alert[key] = value
        return INGEST, json.dumps({"alerts": [alert]}).encode(), {}
    if fmt == "alertmanager":
        body = copy.deepcopy(_json("alertmanager_firing.json"))
        body["alerts"][0]["fingerprint"] = f"{n:016x}"
        body["alerts"][0][key] = value
        return INGEST, json.dumps(body).encode(), {}
    if fmt == "pagerduty":
        body = copy.deepcopy(_json("pagerduty_triggered.json"))
        body["event"]["id"] = f"TIMEFUZZ{n:06d}"
        body["event"]["data"]["id"] = f"PDTF{n:06d}"
        (body["event"] if key == "occurred_at" else body["event"]["data"])[key] = value
        raw = json.dumps(body).encode()
        return INGEST, raw, {"x-pagerduty-signature": sign(raw, SECRET)}
    body = {"command": "acknowledge", "actor": "fuzz", "at": value, "dedup_key": f"tf-{n}"}
    headers = {"authorization": f"Bearer {FUZZ_TOKEN}"}
    return "/api/incidents/INC-0001/commands", json.dumps(body).encode(), headers


FUZZ_TOKEN = "fuzz-personal-token-0123456789"  # commands need a named actor (issue 15): "fuzz", a responder


def expected(value: str, t: dt.datetime, zero_is_absent: bool, now: dt.datetime) -> int:
    if value == GO_ZERO:
        return 202 if zero_is_absent else 400
    return 202 if EARLIEST <= t <= now + dt.timedelta(days=1) else 400


def _ordinary(title: str) -> bytes:
    return json.dumps({"alerts": [{"service": "shop", "title": title}]}).encode()


def _incident_ids(svc: Service) -> dict[str, str]:
    status, rows = svc.request("GET", "/api/incidents")
    return {r["title"]: r["id"] for r in rows} if status == 200 else {}


def _wait(svc: Service, title: str, within: float = 15.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if title in (ids := _incident_ids(svc)):
            return ids[title]
        time.sleep(0.25)
    raise AssertionError(f"{title!r} is not an incident after {within} s")


def test_times_at_both_ends_of_the_range_and_beyond_in_every_format(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    env = {
        "SLO_CYCLE_SECONDS": "1",
        "PAGERDUTY_WEBHOOK_SECRET": SECRET,
        "SLO_API_TOKENS": f'tokens:\n  "{FUZZ_TOKEN}": {{name: fuzz, role: responder}}\n',
    }
    answers: Counter[tuple[str, int]] = Counter()
    with running_service(tmp_path, env=env) as svc:
        # The commands need an incident to name.
        assert svc.post(INGEST, _ordinary("first"))[0] == 202
        assert _wait(svc, "first") == "INC-0001"
        accepted = 1
        for n in range(CASES):
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            fmt, field, zero_is_absent = rng.choice(FIELDS)
            if rng.random() < 0.05:
                t, value = dt.datetime(1, 1, 1), GO_ZERO
            else:
                t = draw(rng, now)
                value = written(t, rng) or f"{t.year:04d}-{t:%m-%dT%H:%M:%S}Z"
            path, raw, headers = request(fmt, field, value, n)
            status, body = svc.post(path, raw, headers)
            want = expected(value, t, zero_is_absent, now)
            assert status == want, (fmt, field, value, status, body)
            if status == 400:
                assert body["detail"].startswith(f"{field}: "), (fmt, field, value, body)
                assert "outside the accepted range" in body["detail"] or value.startswith("0001"), body
            else:
                accepted += len(body["accepted"])
            answers[(fmt, status)] += 1

        assert svc.post(INGEST, _ordinary("last"))[0] == 202
        accepted += 1
        _wait(svc, "last", within=30.0)
        deadline = time.monotonic() + 30
        while (health := svc.health())["fold"]["lag"] and time.monotonic() < deadline:
            time.sleep(0.5)

    print(f"times fuzz (seed {SEED}): {dict(sorted(answers.items()))}")
    assert {fmt for fmt, status in answers if status == 202} == {f for f, _, _ in FIELDS}
    assert {fmt for fmt, status in answers if status == 400} == {f for f, _, _ in FIELDS}
    assert health["inbox"]["count"] == accepted
    assert health["fold"]["lag"] == 0, health["fold"]
    assert health["worker"]["failures"] == 0, health["worker"]
    assert health["dead_letters"]["inbox_rejects"] == 0, health["dead_letters"]
    assert health["dead_letters"]["step_failures"] == 0, health["dead_letters"]
