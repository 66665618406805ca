"""Publishing by partitions as a user meets it (DESIGN §1, issue 13): a data directory copied with
`cp -a` reads its own partition files through `slo status` from any working directory, and a writer
killed with SIGKILL at any point of a publish leaves the last published snapshot whole and readable."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb

from pipelines import partitions
from pipelines.partitions import PARTS_DIR
from pipelines.store import Snapshot, Writer, snapshot_problem
from tests.benchmarks import fleet

ROOT = Path(__file__).resolve().parents[2]


def slo(data_dir: Path, specs: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "SLACK_WEBHOOK_URL")}
    env.update(SLO_DATA_DIR=str(data_dir), SLO_SPECS_DIR=str(specs), PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_data_dir_copied_with_cp_a_reads_its_own_files_from_any_directory(tmp_path: Path) -> None:
    specs, events = tmp_path / "specs", tmp_path / "events.csv"
    fleet.write_specs(specs, 20)
    fleet.write_events(events, 20, 3)  # 3 days: two closed days as files, the third open
    data = tmp_path / "data"
    run = slo(data, specs, ROOT, "run", "--source", "csv", "--events", str(events))
    assert run.returncode == 0, run.stderr
    files = sorted(p.relative_to(data).as_posix() for p in (data / PARTS_DIR).rglob("*.parquet"))
    # buckets end on 11-29 23:59: 11-27 and 11-28 closed, then 11-29's hours until 23:00 (the open
    # hour); checkpoints and series end at the instant 11-30 00:00: 11-27 … 11-29 closed
    assert [f.split("/")[1] for f in files] == ["buckets"] * 25 + ["checkpoints"] * 3 + ["slo_series"] * 3
    before = slo(data, specs, ROOT, "status", "--json")
    assert before.returncode == 0, before.stderr
    rows = json.loads(before.stdout)
    assert len(rows) == 20

    restored = tmp_path / "restored"
    subprocess.run(["cp", "-a", str(data), str(restored)], check=True)
    # A working directory holding partition files under the same relative names, with other
    # counts (every bucket failed): a reader that resolved relative paths there would read them.
    decoy = tmp_path / "decoy"
    for name in files:
        (decoy / name).parent.mkdir(parents=True, exist_ok=True)
        if name.startswith(f"{PARTS_DIR}/buckets/"):
            duckdb.execute(
                f"COPY (SELECT * REPLACE (0::BIGINT AS good) FROM read_parquet('{data / name}')) "
                f"TO '{decoy / name}' (FORMAT parquet)"
            )
        else:
            shutil.copy(data / name, decoy / name)
    shutil.rmtree(data)

    after = slo(restored, specs, decoy, "status", "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == rows
    assert snapshot_problem(restored) is None


DAY0 = 29_671_200  # 2026-06-01T00:00Z as an epoch minute

# The writer the kill test kills: from `start` on, publish after each re-read of 06-01 00:00 (good =
# i), a closed day, so every publish writes a new partition file; prints i once it is published.
PUBLISHER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from pathlib import Path
    from pipelines.buckets import write_buckets
    from pipelines.store import Writer

    data, start, DAY0 = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with Writer(data) as writer:
        print("ready", flush=True)
        for i in range(start, start + 100_000):
            frame = pd.DataFrame({"slo_id": ["a"], "minute": [DAY0], "good": [i], "valid": [10**9]})
            write_buckets(writer.db, frame, {"a": 1}, "test")
            writer.publish()
            print(i, flush=True)
    """
)


def published_good(data: Path) -> int:
    snapshot = Snapshot(data)
    try:
        with snapshot.connection() as con:
            row = con.execute(
                f"SELECT good, (SELECT count(*) FROM buckets) FROM buckets WHERE minute = {DAY0}"
            )
            good, count = row.fetchone() or (None, None)
    finally:
        snapshot.close()
    assert count == 3  # 06-01, 06-02 (files) and 06-03 (open)
    return int(good)


def test_a_writer_killed_during_publishes_leaves_the_last_snapshot_readable(tmp_path: Path) -> None:
    import pandas as pd

    from pipelines.buckets import write_buckets

    data = tmp_path / "data"
    with Writer(data) as writer:
        frame = pd.DataFrame(
            {
                "slo_id": ["a"] * 3,
                "minute": [DAY0 + d * 1440 for d in range(3)],
                "good": [0] * 3,
                "valid": [10**9] * 3,
            }
        )
        write_buckets(writer.db, frame, {"a": 1}, "test")
        writer.publish()
    rng = random.Random(13)
    start = 1
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(data), str(start), str(DAY0)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
        line = child.stdout.readline().strip()  # one publish done: the next ones are under way
        time.sleep(rng.uniform(0.0, 0.4))
        child.kill()  # SIGKILL: anywhere in write_buckets, the partition files, the snapshot, the replace
        out, _ = child.communicate(timeout=30)
        done = [int(x) for x in [line, *out.split()] if x]
        assert done, "the writer published nothing before it was killed"
        # the snapshot is a whole publish: the last one reported, or the one after it (killed after
        # its replace and before its print)
        good = published_good(data)
        assert good in (done[-1], done[-1] + 1)
        # killed between the replace and the record of what was published: republished next cycle
        problem = snapshot_problem(data)
        assert problem is None or (good == done[-1] + 1 and problem.startswith("changed since")), problem
        start = done[-1] + 2
    with Writer(data) as writer:  # the lock died with its holder; the next publish cleans up
        writer.publish()
        partitions.collect_garbage(writer.db, data, now=time.time() + partitions.PART_GRACE_SECONDS + 1)
    snapshot = Snapshot(data)
    try:
        with snapshot.connection() as con:
            listed = {row[0] for row in con.execute("SELECT file FROM snapshot_parts").fetchall()}
    finally:
        snapshot.close()
    on_disk = {p.relative_to(data).as_posix() for p in (data / PARTS_DIR).rglob("*.parquet")}
    assert on_disk == listed and len(listed) == 2  # nothing left over from the killed publishes
    assert not [p.name for p in data.iterdir() if p.name.endswith(".tmp")]
