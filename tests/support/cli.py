"""`slo` as a user runs it: a subprocess of this checkout's CLI on a data directory, without the
model, Slack or PagerDuty keys of the environment the tests run in."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def os_user() -> str:
    """The login name of the effective uid this test runs as: whom the CLI records as a step's actor."""
    return pwd.getpwuid(os.geteuid()).pw_name


def slo(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`slo …` as a subprocess; `env`: variables set on top of this process's environment."""
    full = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "SLACK_WEBHOOK_URL")}
    full["SLO_DATA_DIR"] = str(data_dir)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT, env=full, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
