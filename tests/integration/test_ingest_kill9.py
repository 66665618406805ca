"""`kill -9` of `slo serve` during a concurrent burst of deliveries: after a restart every alert that was
answered 202 is in the inbox exactly once, and re-delivering everything (what Alertmanager and
PagerDuty do after a failed attempt) stores each alert once, whether or not its first attempt had
reached the disk."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.support.service import running_service, start_service, stop_service

pytestmark = pytest.mark.integration

TOKEN = "kill9-token"
CLIENTS = 8
INGEST = "/api/incidents/ingest"


def body(client: int, i: int) -> bytes:
    # two alerts per delivery, each with its own idempotency key
    return json.dumps(
        {
            "alerts": [
                {
                    "service": f"svc-{client}",
                    "title": f"burst {i}",
                    "dedup_key": f"c{client}-{i}-{k}",
                    "starts_at": "2026-11-23T12:00:00Z",
                }
                for k in range(2)
            ]
        }
    ).encode()


def test_kill_9_during_a_burst_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    acknowledged: set[str] = set()  # server keys answered 202 (accepted or duplicate)
    sent: dict[tuple[int, int], bytes] = {}  # every delivery attempted, to re-deliver after restart
    lock = threading.Lock()
    stop = threading.Event()
    svc = start_service(tmp_path, token=TOKEN, name="before-kill")
    try:

        def client(c: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
            i = 0
            while not stop.is_set() and i < 20_000:
                payload = body(c, i)
                with lock:
                    sent[(c, i)] = payload
                try:
                    conn.request("POST", INGEST, body=payload, headers=headers)
                    resp = conn.getresponse()
                    answer = json.loads(resp.read())
                except (OSError, http.client.HTTPException, ValueError):
                    return  # the service is gone mid-request: this delivery's fate is unknown
                assert resp.status == 202, answer
                with lock:
                    acknowledged.update(answer["accepted"] + answer["duplicates"])
                i += 1

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        while len(acknowledged) < 600 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(svc.proc.pid, signal.SIGKILL)  # mid-burst: clients are still sending
        svc.proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
    except BaseException:
        print(svc.log())
        raise
    finally:
        stop_service(svc)
    assert svc.proc.returncode == -signal.SIGKILL
    acked = set(acknowledged)
    print(
        f"kill -9 after {time.monotonic() - started:.1f}s: {len(sent)} deliveries attempted, "
        f"{len(acked)} alerts answered 202"
    )
    assert len(acked) >= 200

    with running_service(tmp_path, token=TOKEN, name="after-restart") as again:
        db = tmp_path / "data" / "inbox.sqlite3"
        with sqlite3.connect(db) as con:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            stored = [row[0] for row in con.execute("SELECT dedup_key FROM inbox")]
        assert len(stored) == len(set(stored))
        missing = acked - set(stored)
        assert not missing, f"{len(missing)} alerts answered 202 are not in the inbox: {sorted(missing)[:5]}"
        in_flight = set(stored) - acked  # committed, but the answer never reached the client
        print(
            f"after restart: {len(stored)} in the inbox = {len(acked)} answered 202"
            f" + {len(in_flight)} in flight"
        )
        assert len(in_flight) <= 2 * CLIENTS  # at most the deliveries being answered at the kill

        # Senders retry everything they were not sure about; here: all of it.
        accepted_now: set[str] = set()
        duplicates_now: set[str] = set()
        conn = http.client.HTTPConnection("127.0.0.1", again.port, timeout=10)
        for payload in sent.values():
            conn.request("POST", INGEST, body=payload, headers=headers)
            resp = conn.getresponse()
            answer = json.loads(resp.read())
            assert resp.status == 202, answer
            accepted_now.update(answer["accepted"])
            duplicates_now.update(answer["duplicates"])
        conn.close()
        assert duplicates_now == set(stored)  # everything already there is recognised
        assert not accepted_now & set(stored)
        assert again.health()["inbox"]["count"] == 2 * len(sent) == len(set(stored) | accepted_now)
