"""A small, fully evaluated store for the quarterly-review tests, every figure checkable by hand.

Two SLOs (checkout-api and search availability, 99.9 % over 30 days, default burn-rate alerts) with 100
events a minute from 2026-06-24 to 2026-07-08 (so Q2 and Q3 2026), through the real pipeline cycle; then
incidents, alerts, action items and a deploy written the way the incident fold would.

    checkout-api 2026-07-03 10:00–10:20  50 % bad → INC-1 SEV1: detected +3, acked +2 more, mitigated +15,
                                          resolved +25 min, post-mortem 20 h later; deploy v2 at 09:30
    search       2026-06-27 14:00–14:30  30 % bad → INC-2 SEV2 (Q2): resolved +40 min, fingerprint search/x
    search       2026-07-05 09:00–09:10  20 % bad → INC-3 SEV2: detected +6, resolved +30; repeats INC-2
                                          (7 d 18 h 20 min after its resolution) while INC-2's item AI-2
                                          (due 07-06) was still open; no post-mortem
    checkout-api 2026-07-06 12:00        INC-4 SEV3, still open
Q3 has 7 days of data (10,080 minutes, 1,008,000 events per SLO): checkout-api has 1,000 bad events
(budget spent 1000/1008 = 99.2 %, attainment 0.999008, met), search 200 (19.8 %, 0.999802).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import yaml

from pipelines.config import Settings
from pipelines.cycle import open_writer as Writer
from pipelines.cycle import run_cycle
from pipelines.demo.replay import record_ground_truth
from pipelines.engine import minute_of
from pipelines.sources import Pull
from pipelines.specs import load_specs
from tests.support.incident_rows import add_action_item, add_alert, add_incident

START = dt.datetime(2026, 6, 24)
END = dt.datetime(2026, 7, 8)
OUTAGES = [  # (slo, start, minutes, bad per 100)
    ("checkout-api/availability", dt.datetime(2026, 7, 3, 10, 0), 20, 50),
    ("search/availability", dt.datetime(2026, 6, 27, 14, 0), 30, 30),
    ("search/availability", dt.datetime(2026, 7, 5, 9, 0), 10, 20),
]


def _spec(service: str) -> str:
    return yaml.safe_dump(
        {
            "service": service,
            "owner": "team",
            "slis": {"availability": {"good": "sum(rate(ok[5m]))", "valid": "sum(rate(all[5m]))"}},
            "slos": [{"sli": "availability", "target": "99.9%", "window": "30d"}],
        }
    )


def build_review_store(data_dir: Path, specs_dir: Path) -> None:
    specs_dir.mkdir(parents=True, exist_ok=True)
    for service in ("checkout-api", "search"):
        (specs_dir / f"{service}.yaml").write_text(_spec(service))
    slos, _ = load_specs([specs_dir])
    lo, hi = minute_of(START), minute_of(END)
    frames = []
    for slo in ("checkout-api/availability", "search/availability"):
        bad = {}
        for name, start, minutes, per100 in OUTAGES:
            if name == slo:
                for m in range(minute_of(start), minute_of(start) + minutes):
                    bad[m] = per100
        minutes_range = range(lo, hi)
        frames.append(
            pd.DataFrame(
                {
                    "slo_id": slo,
                    "minute": list(minutes_range),
                    "good": [100 - bad.get(m, 0) for m in minutes_range],
                    "valid": 100,
                }
            )
        )
    pull = Pull(
        buckets=pd.concat(frames, ignore_index=True),
        end=hi,
        origin="test",
        deploys=[("checkout-api", dt.datetime(2026, 7, 3, 9, 30), "v2", "cart cache change")],
    )
    # The ground truth of the outages, as `slo demo` records its injected events.
    events = [
        (
            "e1",
            "checkout-api",
            ["checkout-api/availability"],
            dt.datetime(2026, 7, 3, 10),
            dt.datetime(2026, 7, 3, 10, 20),
            "fast_burn",
            "checkout-api/cache",
            "cache",
        ),
        (
            "e2",
            "search",
            ["search/availability"],
            dt.datetime(2026, 6, 27, 14),
            dt.datetime(2026, 6, 27, 14, 30),
            "fast_burn",
            "search/x",
            "planner",
        ),
        (
            "e3",
            "search",
            ["search/availability"],
            dt.datetime(2026, 7, 5, 9),
            dt.datetime(2026, 7, 5, 9, 10),
            "recurrence",
            "search/x",
            "planner again",
        ),
    ]
    run_cycle(Settings(data_dir=data_dir, specs_dir=specs_dir), slos, pull, reset=True)
    with Writer(data_dir) as writer:
        con = writer.db
        record_ground_truth(con, events)
        add_incident(
            con,
            "INC-1",
            start="2026-07-03T10:00",
            severity="SEV1",
            detect=3,
            ack=2,
            mitigate=15,
            resolve=25,
            postmortem_hours=20,
            slo_id="checkout-api/availability",
            fingerprint="checkout/cache",
        )
        add_incident(
            con,
            "INC-2",
            start="2026-06-27T14:00",
            service="search",
            severity="SEV2",
            detect=4,
            resolve=40,
            fingerprint="search/x",
            postmortem_hours=10,
        )
        add_incident(
            con,
            "INC-3",
            start="2026-07-05T09:00",
            service="search",
            severity="SEV2",
            detect=6,
            resolve=30,
            fingerprint="search/x",
        )
        add_incident(con, "INC-4", start="2026-07-06T12:00", severity="SEV3", detect=2)
        add_action_item(
            con, "AI-1", "INC-2", created="2026-06-28T09:00", due="2026-07-04", done="2026-07-03T12:00"
        )
        add_action_item(con, "AI-2", "INC-2", created="2026-06-28T09:00", due="2026-07-06")
        add_alert(con, "a1", service="checkout-api", starts="2026-07-03T10:03", incident_id="INC-1")
        add_alert(con, "a3", service="search", starts="2026-07-05T09:06", incident_id="INC-3")
        add_alert(con, "noise", service="search", starts="2026-07-07T02:00", incident_id=None)
        writer.publish()
