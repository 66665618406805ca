"""The embedded demo as a source: generated buckets and deploys, plus the ground-truth events the
demo's incident stage records (`replay.ReplayStage`)."""

from __future__ import annotations

import datetime as dt

from pipelines import engine
from pipelines.demo.generate import DEFAULT_SEED, generate_demo
from pipelines.demo.replay import GroundTruth, ReplayStage
from pipelines.model import Slo
from pipelines.progress import Progress
from pipelines.sources import Pull


def demo_pull(
    now: dt.datetime | None, seed: int | None, progress: Progress | None = None
) -> tuple[list[Slo], Pull, ReplayStage]:
    """The demo's SLOs, its pull, and the stage that replays its whole incident history (with the
    events it injected as ground truth) for `slo demo`."""
    data = generate_demo(now=now, seed=DEFAULT_SEED if seed is None else seed, progress=progress)
    pull = Pull(
        buckets=data.buckets,
        end=engine.minute_of(data.end),
        origin="demo",
        deploys=[(d.service, d.at, d.version, d.description) for d in data.deploys],
    )
    events: list[GroundTruth] = [
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
    ]
    return data.slos, pull, ReplayStage(events)
