"""`slo up` / `slo dashboard` process handling with real child processes: when one child exits the
others are stopped, and SIGTERM to the launcher stops every child (none outlives it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines import launch

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_first_child_to_exit_stops_the_others_and_gives_its_code() -> None:
    started = time.monotonic()
    code = launch.run_together([SLEEPER, [sys.executable, "-c", "import sys; sys.exit(3)"]], dict(os.environ))
    assert code == 3
    assert time.monotonic() - started < 20, "the sleeper was stopped, not waited for"


def test_sigterm_to_the_launcher_stops_every_child(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        "import os, sys, subprocess\n"
        "from pipelines import launch\n"
        "real = subprocess.Popen\n"
        "def spy(*a, **k):\n"
        "    p = real(*a, **k)\n"
        f"    open({str(pids)!r}, 'a').write(f'{{p.pid}}\\n')\n"
        "    return p\n"
        "launch.subprocess.Popen = spy\n"
        f"sys.exit(launch.run_together([{SLEEPER!r}, {SLEEPER!r}], dict(os.environ)))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(pids.read_text().split() if pids.exists() else []) < 2:
            time.sleep(0.1)
        children = [int(p) for p in pids.read_text().split()]
        assert len(children) == 2 and all(alive(p) for p in children)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        time.sleep(0.2)
        assert not any(alive(p) for p in children), "a child outlived the launcher"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_slo_up_stops_both_on_sigterm_or_when_the_service_fails(tmp_path: Path) -> None:
    """With `slo serve` (another branch): both come up and SIGTERM stops both. Without it: `slo up`
    fails with the service's usage error and leaves no dashboard listening."""
    from tests.support.realparts import free_port

    port, service_port = free_port(), free_port()
    env = {**os.environ, "SLO_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "up", "--port", str(port),
         "--service-port", str(service_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not (listening(port) and listening(service_port))
        ):
            time.sleep(0.2)
        if proc.poll() is None:
            assert listening(port) and listening(service_port), "both should be up within 30 s"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        _, err = proc.communicate(timeout=10)
        if proc.returncode != 0:
            assert "invalid choice: 'serve'" in err and proc.returncode == 2, err
            assert "stopping the rest" in err
        assert not listening(port) and not listening(service_port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
