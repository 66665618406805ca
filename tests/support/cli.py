"""`slo` as a user runs it: a subprocess of this checkout's CLI on a data directory, without the
model, Slack or PagerDuty keys of the environment the tests run in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def slo(data_dir: Path, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """`slo …` as a subprocess; `user`: the OS login it runs as (getpass reads LOGNAME first), whom the
    CLI records as the actor of a step."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "SLACK_WEBHOOK_URL")}
    env["SLO_DATA_DIR"] = str(data_dir)
    if user is not None:
        env["LOGNAME"] = env["USER"] = user
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
