"""The embedded demo as a source: generated buckets and deploys with the present shaped around their
end (`present.shape`), plus the ground-truth events and Alertmanager alerts the demo's incident stage
records and replays (`replay.ReplayStage`)."""

from __future__ import annotations

import datetime as dt

from pipelines.demo import present
from pipelines.demo.generate import DEFAULT_SEED, DemoEvent, generate_demo
from pipelines.demo.replay import GroundTruth, ReplayStage
from pipelines.model import Slo
from pipelines.progress import Progress
from pipelines.sources import Pull
from pipelines.timeutil import minute_of


def demo_pull(
    now: dt.datetime | None,
    seed: int | None,
    progress: Progress | None = None,
    *,
    with_present: bool = True,
) -> tuple[list[Slo], Pull, ReplayStage]:
    """The demo's SLOs, its pull, and the stage that replays its whole incident history (with the
    events it injected as ground truth) for `slo demo`; `with_present=False`: the generator's data
    only (`slo run --source demo` appends minutes after a built demo's present)."""
    data = generate_demo(now=now, seed=DEFAULT_SEED if seed is None else seed, progress=progress)
    if not with_present:
        pull = Pull(data.buckets, minute_of(data.end), "demo", deploy_rows(data.deploys))
        return data.slos, pull, ReplayStage(ground_truth(data.events))
    shaped = present.shape(data)
    pull = Pull(
        buckets=data.buckets,
        end=minute_of(data.end),
        origin="demo",
        deploys=deploy_rows(data.deploys),
    )
    stage = ReplayStage(ground_truth(data.events), alerts=shaped.alerts, hands_off=shaped.hands_off)
    return data.slos, pull, stage


def deploy_rows(deploys: list) -> list[tuple[str, dt.datetime, str, str]]:
    return [(d.service, d.at, d.version, d.description) for d in deploys]


def ground_truth(events: list[DemoEvent]) -> list[GroundTruth]:
    """Events as the `demo_events` table keeps them (naive UTC)."""
    return [
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
        for e in events
    ]
