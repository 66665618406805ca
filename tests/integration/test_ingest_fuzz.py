"""Thousands of mutated and random deliveries against `slo serve`: never a 5xx, only documented
answers, and the inbox grows by exactly the keys the service said it accepted.

A seeded mutator (reproducible: FUZZ_SEED, FUZZ_CASES, FUZZ_SECONDS) starts from the real-shaped
fixtures and deletes fields, swaps in values of the wrong type (null, numbers, huge strings, deep
nesting, odd times, lone surrogates), flips and truncates bytes, and varies the content type, the
format parameter, the token and the PagerDuty signature.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipelines.ingest.pagerduty import sign
from tests.support.service import ROOT, running_service

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
TOKEN = "fuzz-token"
SECRET = "fuzz-secret"
SEED = int(os.environ.get("FUZZ_SEED", "20261123"))
CASES = int(os.environ.get("FUZZ_CASES", "3000"))
SECONDS = float(os.environ.get("FUZZ_SECONDS", "20"))
DOCUMENTED = {202, 400, 401, 403, 413, 415}

JUNK: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    10**30,
    1e308,
    -0.0,
    "",
    " ",
    "firing",
    "resolved",
    "4",
    "0001-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "2026-11-23T12:00:00Z",
    "\u0000",
    "\ud800",
    "é" * 50,
    "x" * 40_000,
    [],
    {},
    [[[[[]]]]],
    {"a": {"b": {"c": None}}},
    ["firing"],
    {"summary": 1},
    "incident.triggered",
    "SEV1",
    "P0",
    "critical",
]


def junk(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        depth = rng.randint(1, 200)
        return json.loads("[" * depth + "]" * depth)
    return copy.deepcopy(rng.choice(JUNK))


def mutate(rng: random.Random, value: Any, budget: int = 3) -> Any:
    """A structurally mutated copy of `value` (`budget` changes at most along one path)."""
    if budget <= 0:
        return value
    if isinstance(value, dict) and value:
        value = dict(value)
        key = rng.choice(list(value))
        op = rng.random()
        if op < 0.25:
            del value[key]
        elif op < 0.5:
            value[key] = junk(rng)
        elif op < 0.6:
            value[rng.choice(["extra", "", "\ud800", key.upper()])] = junk(rng)
        else:
            value[key] = mutate(rng, value[key], budget - 1)
        return mutate(rng, value, budget - 1) if rng.random() < 0.3 else value
    if isinstance(value, list) and value:
        value = list(value)
        op = rng.random()
        if op < 0.15:
            return []
        if op < 0.3:
            return value * rng.randint(2, 5)
        if op < 0.45:
            value.insert(rng.randrange(len(value) + 1), junk(rng))
            return value
        i = rng.randrange(len(value))
        value[i] = mutate(rng, value[i], budget - 1)
        return value
    return junk(rng) if rng.random() < 0.7 else value


def byte_noise(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 5)):
        op = rng.random()
        if not data:
            break
        i = rng.randrange(len(data))
        if op < 0.3:
            data[i] = rng.randrange(256)
        elif op < 0.5:
            del data[i : i + rng.randint(1, 20)]
        elif op < 0.7:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            data = data[: rng.randrange(len(data))]
    return bytes(data)


COMMAND_SEEDS = [
    {
        "command": "root_cause",
        "actor": "alice",
        "args": {"category": "deploy", "text": "bad push", "fix": "rb"},
    },
    {
        "command": "action_item",
        "args": {"title": "alert on queue depth", "owner": "bob", "due_date": "2026-12-01"},
    },
    {"command": "acknowledge", "at": "2026-11-23T12:00:00Z"},
    {"command": "approve_remediation", "args": {"remediation_id": "REM-1", "reason": "ok"}},
]


def command_case(rng: random.Random, n: int) -> tuple[str, bytes, dict[str, str]]:
    body: Any = {**copy.deepcopy(rng.choice(COMMAND_SEEDS)), "dedup_key": f"fuzz-{n}"}
    if rng.random() < 0.8:
        body = mutate(rng, body, rng.randint(1, 4))
    raw = json.dumps(body).encode()
    if rng.random() < 0.1:
        raw = byte_noise(rng, raw)
    incident = rng.choice(["INC-0001", "INC-0002", "x" * 80, "%00", "..", "%C3%A9", "INC%201"])
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    if rng.random() < 0.3:
        headers["idempotency-key"] = rng.choice(["", "k", "x" * 300])
    return f"/api/incidents/{incident}/commands", raw, headers


def case(rng: random.Random, seeds: list[tuple[str, Any]], n: int) -> tuple[str, bytes, dict[str, str]]:
    if rng.random() < 0.1:
        return command_case(rng, n)
    name, seed = rng.choice(seeds)
    body: Any = copy.deepcopy(seed)
    # Vary the content so some mutated-but-valid alerts are new, not just duplicates of the seed.
    if name.startswith("alertmanager"):
        for alert in body["alerts"]:
            alert["fingerprint"] = f"{n:08x}{rng.randrange(16**8):08x}"
    elif name.startswith("pagerduty"):
        body["event"]["id"] = f"FUZZ{n:06d}"
    else:
        body["alerts"][0]["fingerprint"] = f"fuzz-{n}"
    if rng.random() < 0.8:
        body = mutate(rng, body, rng.randint(1, 6))
    raw = json.dumps(body).encode()
    if rng.random() < 0.2:
        raw = byte_noise(rng, raw)
    if rng.random() < 0.03:
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    headers = {"content-type": "application/json"}
    path = "/api/incidents/ingest"
    r = rng.random()
    if r < 0.04:
        headers["content-type"] = rng.choice(
            ["text/plain", "application/xml", "", "application/problem+json"]
        )
    if rng.random() < 0.05:
        path += "?format=" + rng.choice(["alertmanager", "pagerduty", "generic", "nagios", "", "%00"])
    if name.startswith("pagerduty") and rng.random() < 0.7:
        headers["x-pagerduty-signature"] = sign(raw, SECRET) if rng.random() < 0.8 else "v1=" + "0" * 64
    elif rng.random() < 0.95:
        headers["authorization"] = f"Bearer {TOKEN}" if rng.random() < 0.95 else "Bearer wrong"
    return path, raw, headers


def test_fuzzed_deliveries_never_get_a_5xx(tmp_path: Path) -> None:
    # the alert webhooks (the deploy payloads beside them go to /api/deploys, not the alert door)
    seeds = [
        (p.stem, json.loads(p.read_text()))
        for p in sorted(FIXTURES.glob("*.json"))
        if p.stem.startswith(("alertmanager", "pagerduty", "generic"))
    ]
    rng = random.Random(SEED)
    env = {"PAGERDUTY_WEBHOOK_SECRET": SECRET, "SLO_INGEST_MAX_BYTES": "32768"}
    statuses: Counter[int] = Counter()
    accepted: set[str] = set()
    with running_service(tmp_path, token=TOKEN, env=env) as svc:
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
        deadline = time.monotonic() + SECONDS
        sent = 0
        while sent < CASES and time.monotonic() < deadline:
            path, raw, headers = case(rng, seeds, sent)
            try:
                conn.request("POST", path, body=raw, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, ConnectionError):
                # the server may close a connection after refusing a body it did not read: reconnect
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
                continue
            sent += 1
            statuses[resp.status] += 1
            assert resp.status in DOCUMENTED, (resp.status, data[:500], raw[:500], headers)
            answer = json.loads(data)
            if resp.status == 202:
                accepted.update(answer["accepted"])
            else:
                assert set(answer) == {"error", "detail"} and answer["detail"]
        conn.close()
        health = svc.health()
        log = svc.log()
    print(
        f"fuzz: {sent} deliveries (seed {SEED}): {dict(sorted(statuses.items()))}; {len(accepted)} accepted"
    )
    assert sent >= min(CASES, 1000), "too few cases ran to mean anything"
    assert statuses[202] > sent * 0.05 and statuses[400] > sent * 0.2
    with sqlite3.connect(tmp_path / "data" / "inbox.sqlite3") as con:
        stored = {row[0] for row in con.execute("SELECT dedup_key FROM inbox")}
    assert stored == accepted  # grew by exactly what was answered as accepted
    assert health["inbox"]["count"] == len(accepted)
    # every refusal was a parser decision, not the catch-all for an unexpected exception
    assert "unexpected error parsing" not in log, log[-3000:]
