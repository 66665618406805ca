"""The embedded demo as a source: generated buckets plus the deploys and ground-truth events."""

from __future__ import annotations

import datetime as dt

from pipelines import engine
from pipelines.cycle import Pull
from pipelines.demo import DEFAULT_SEED, generate_demo
from pipelines.model import Slo
from pipelines.progress import Progress


def demo_pull(
    now: dt.datetime | None, seed: int | None, progress: Progress | None = None
) -> tuple[list[Slo], Pull]:
    data = generate_demo(now=now, seed=DEFAULT_SEED if seed is None else seed, progress=progress)
    pull = Pull(
        buckets=data.buckets,
        end=engine.minute_of(data.end),
        origin="demo",
        deploys=[(d.service, d.at, d.version, d.description) for d in data.deploys],
        events=[
            (
                e.event_id,
                e.service,
                list(e.slo_ids),
                e.start.replace(tzinfo=None),
                e.end.replace(tzinfo=None),
                e.shape,
                e.fingerprint,
                e.description,
            )
            for e in data.events
        ],
    )
    return data.slos, pull
