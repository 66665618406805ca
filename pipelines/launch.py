"""`slo dashboard` and `slo up`: start the Streamlit app (and the service) as child processes.

The dashboard binds 127.0.0.1 and never calls out (DESIGN §6): headless, no usage statistics.
`slo up` runs `slo serve` and the dashboard together; when either exits, or on Ctrl-C / SIGTERM,
both are stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config import Settings, read_dotenv
from pipelines.errors import SloError

if TYPE_CHECKING:  # loaded by the commands that start servers: every other CLI command starts faster
    from pipelines.auth import signin as signin_settings

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
STOP_TIMEOUT_S = 10.0


def dashboard_command(port: int, host: str = "127.0.0.1", secrets_file: Path | None = None) -> list[str]:
    """The `streamlit run` command line for the dashboard on `host:port`.

    With sign-in configured, `secrets_file` is the private `[auth]` file for `st.login` (issue 15).

    Streamlit's `server.allowedHosts` gets the Host names the service answers (loopback, the bound
    address, SLO_ALLOWED_HOSTS): a page reached through any other name (DNS rebinding) gets no
    WebSocket, so no data. Streamlit checks it on the WebSocket only; the static page still loads.
    """
    from pipelines.limits import Limits

    allowed = Limits.load(os.environ).bound_to(host).allowed_hosts
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
        *(arg for name in allowed for arg in ("--server.allowedHosts", name)),
        *(("--secrets.files", str(secrets_file)) if secrets_file else ()),
    ]  # fmt: skip


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "serve", "--host", host, "--port", str(port)]


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dashboard` and `up` to the `slo` parser."""
    p = sub.add_parser("dashboard", help="the Streamlit dashboard on 127.0.0.1")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p = sub.add_parser("up", help="the service and the dashboard together (both stop on exit)")
    p.add_argument("--port", type=int, default=8501, help="dashboard port (default 8501)")
    p.add_argument("--service-port", type=int, default=8080, help="service port (default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="address both bind (default 127.0.0.1)")


def _check_app() -> None:
    if not APP.is_file():
        raise SloError(f"{APP}: the dashboard app is missing; reinstall from a full checkout")


def _signin(host: str) -> signin_settings.Signin | None:
    """The sign-in settings, after the host rule (issue 15): raises HostRefused when `host` may not
    be bound (no identity provider and not loopback)."""
    from pipelines.auth import signin as signin_settings

    signin = signin_settings.load_signin()
    refusal = signin_settings.host_refusal(host, signin)
    if refusal:
        raise HostRefused(refusal)
    return signin


class HostRefused(SloError):
    """The dashboard may not bind this address as configured (exit 2, like a usage error)."""


def _who(signin: signin_settings.Signin | None) -> str:
    if signin is None:
        return "sign-in: none configured; the single local user `local` (127.0.0.1 only)"
    return f"sign-in: OpenID Connect via {signin.metadata_url}; roles from {signin.role_map_path}"


def _run_dashboard(commands: list[list[str]], args: argparse.Namespace, env: dict[str, str]) -> int:
    """Run `commands` plus the dashboard, with its private secrets file when sign-in is configured."""
    try:
        signin = _signin(args.host)
    except HostRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pipelines.auth import signin as signin_settings

    secrets_file = signin_settings.write_secrets(signin, args.host, args.port) if signin else None
    try:
        print(_who(signin), flush=True)
        env = {**env, **signin_settings.dashboard_env(signin)}
        return run_together([*commands, dashboard_command(args.port, args.host, secrets_file)], env)
    finally:
        if secrets_file is not None:
            shutil.rmtree(secrets_file.parent, ignore_errors=True)


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    _check_app()
    env = {**os.environ, "SLO_DATA_DIR": str(settings.data_dir.resolve())}
    print(f"dashboard: http://{args.host}:{args.port}  (data: {settings.data_dir})", flush=True)
    return _run_dashboard([], args, env)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The service and the dashboard. On a store built by `slo demo` the service keeps the demo going
    in real time (SLO_DEMO_LIVE, on unless set to false: `pipelines/demo/live.py`)."""
    _check_app()
    url = f"http://{args.host}:{args.service_port}"
    live = os.environ.get("SLO_DEMO_LIVE") or read_dotenv(Path(".env")).get("SLO_DEMO_LIVE") or "true"
    env = {
        **os.environ,
        "SLO_DATA_DIR": str(settings.data_dir.resolve()),
        "SLO_SERVICE_URL": url,
        "SLO_DEMO_LIVE": live,
    }
    print(
        f"service:   {url}\ndashboard: http://{args.host}:{args.port}  (data: {settings.data_dir})",
        flush=True,
    )
    return _run_dashboard([serve_command(args.service_port, args.host)], args, env)


def run_together(commands: Sequence[list[str]], env: dict[str, str]) -> int:
    """Run every command as a child; return when the first exits (its exit code), stopping the rest.

    SIGTERM/SIGINT to this process stop all children too; no child outlives `slo up`.
    """
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for command in commands:
            procs.append(subprocess.Popen(command, cwd=ROOT, env=env))
        while not stopping:
            codes = [p.poll() for p in procs]
            if any(c is not None for c in codes):
                failed = [(cmd, c) for cmd, c in zip(commands, codes, strict=True) if c not in (None, 0)]
                for cmd, c in failed:
                    print(f"{' '.join(cmd[2:4])} exited with code {c}; stopping the rest", file=sys.stderr)
                return next((c for c in codes if c is not None), 0) or 0
            time.sleep(0.2)
        return 0
    finally:
        _stop(procs)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


HANDLERS = {"dashboard": cmd_dashboard, "up": cmd_up}
