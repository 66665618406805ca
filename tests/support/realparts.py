"""Real parts for the tests (DESIGN §4): find them, or fail under CI and skip on a developer's laptop.

`.ci/run` sets CI=true and installs Prometheus, Alertmanager and Chromium; a missing binary there is a
broken build, never a quiet skip. Locally, without them, the tests that need them are skipped with the
reason, so `pytest` still runs everything else.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

STRICT = os.environ.get("CI", "").lower() in {"1", "true", "yes"} or bool(os.environ.get("SLO_REQUIRE_REAL"))


def missing(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if STRICT:
        pytest.fail(f"{reason} (CI=true: real parts are required, see .ci/run)", pytrace=False)
    pytest.skip(reason)


def require_binary(*names: str) -> str:
    """The path of the first of `names` on PATH (or in /usr/bin), else fail/skip."""
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if path:
            return path
    missing(f"none of {', '.join(names)} is installed")
    raise AssertionError("unreachable")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
