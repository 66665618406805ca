"""Dashboard sign-in settings (issue 15): environment → Streamlit's `[auth]` secrets, and the host rule.

The pure parts are checked directly; the launcher's behaviour (`slo dashboard` / `slo up` refusing a
non-loopback host without a provider, exit 2; the private secrets file existing only while the dashboard
runs) is checked on the real CLI in a subprocess, on loopback only.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from pipelines import launch
from pipelines.auth import signin
from pipelines.errors import ConfigError
from tests.support.realparts import free_port

ROOT = Path(__file__).resolve().parents[2]
ROLES = "claim: groups\nroles:\n  sre-oncall: responder\n  sre-leads: approver\n"


@pytest.fixture
def role_map(tmp_path: Path) -> Path:
    path = tmp_path / "roles.yaml"
    path.write_text(ROLES)
    return path


def provider_env(role_map: Path, **extra: str) -> dict[str, str]:
    return {
        "SLO_OIDC_ISSUER": "https://login.example.test/realms/sre",
        "SLO_OIDC_CLIENT_ID": "slo-dashboard",
        "SLO_OIDC_CLIENT_SECRET": "client-s3cret",
        "SLO_ROLE_MAP": str(role_map),
        **extra,
    }


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any sign-in setting (and no `.env` in the cwd used)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLO_OIDC_", "SLO_ROLE_"))}
    return {**env, "SLO_DATA_DIR": str(tmp_path / "data"), **extra}


def no_dotenv(tmp_path: Path) -> Path:
    return tmp_path / "absent.env"


# ------------------------------------------------------------------------------------- settings
def test_no_issuer_means_no_provider(tmp_path: Path) -> None:
    assert signin.load_signin({}, no_dotenv(tmp_path)) is None
    assert signin.dashboard_env(None) == {"SLO_DASHBOARD_SIGNIN": "local"}


def test_a_provider_needs_client_id_secret_and_role_map(tmp_path: Path, role_map: Path) -> None:
    env = provider_env(role_map)
    del env["SLO_OIDC_CLIENT_SECRET"], env["SLO_ROLE_MAP"]
    with pytest.raises(ConfigError) as exc:
        signin.load_signin(env, no_dotenv(tmp_path))
    assert str(exc.value) == (
        "SLO_OIDC_ISSUER is set but SLO_OIDC_CLIENT_SECRET, SLO_ROLE_MAP is not: sign-in needs all of them"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"SLO_OIDC_ISSUER": "login.example.test"},
            "SLO_OIDC_ISSUER='login.example.test': expected an http(s)",
        ),
        ({"SLO_OIDC_REDIRECT_URL": "http://dash.example.test/"}, "expected the dashboard's URL ending in"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, role_map: Path, change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        signin.load_signin(provider_env(role_map, **change), no_dotenv(tmp_path))


def test_an_unusable_role_map_is_a_config_error(tmp_path: Path, role_map: Path) -> None:
    role_map.write_text("roles:\n  sre-oncall: superuser\n")
    with pytest.raises(ConfigError) as exc:
        signin.load_signin(provider_env(role_map), no_dotenv(tmp_path))
    assert str(exc.value).startswith(f"SLO_ROLE_MAP: {role_map}: roles.sre-oncall: 'superuser' is not a role")


def test_settings_become_the_auth_secrets_streamlit_reads(tmp_path: Path, role_map: Path) -> None:
    s = signin.load_signin(
        provider_env(role_map, SLO_OIDC_COOKIE_SECRET='c"ook\\ie', SLO_ROLE_CLAIM="roles"),
        no_dotenv(tmp_path),
    )
    assert s is not None
    assert s.metadata_url == "https://login.example.test/realms/sre/.well-known/openid-configuration"
    assert s.role_map.claim == "roles" and s.role_map.roles == {
        "sre-oncall": "responder",
        "sre-leads": "approver",
    }
    assert "client-s3cret" not in repr(s) and "ook" not in repr(s)  # secrets never in a repr or a log line
    parsed = tomllib.loads(signin.secrets_toml(s, "127.0.0.1", 8600))
    assert parsed == {
        "auth": {
            "redirect_uri": "http://127.0.0.1:8600/oauth2callback",
            "cookie_secret": 'c"ook\\ie',
            "client_id": "slo-dashboard",
            "client_secret": "client-s3cret",
            "server_metadata_url": "https://login.example.test/realms/sre/.well-known/openid-configuration",
            "client_kwargs": {"scope": "openid email profile"},
        }
    }
    assert signin.dashboard_env(s) == {
        "SLO_DASHBOARD_SIGNIN": "oidc",
        "SLO_ROLE_MAP": str(role_map.resolve()),
        "SLO_ROLE_CLAIM": "roles",
    }


def test_a_full_metadata_url_and_an_explicit_redirect_are_kept(tmp_path: Path, role_map: Path) -> None:
    url = "https://idp.example.test/.well-known/openid-configuration"
    s = signin.load_signin(
        provider_env(
            role_map,
            SLO_OIDC_ISSUER=url,
            SLO_OIDC_REDIRECT_URL="https://slo.example.test/oauth2callback",
            SLO_OIDC_SCOPES="openid email profile groups",
        ),
        no_dotenv(tmp_path),
    )
    assert s is not None
    auth = tomllib.loads(signin.secrets_toml(s, "0.0.0.0", 8501))["auth"]
    assert auth["server_metadata_url"] == url
    assert auth["redirect_uri"] == "https://slo.example.test/oauth2callback"
    assert auth["client_kwargs"] == {"scope": "openid email profile groups"}


def test_without_a_cookie_secret_each_start_gets_its_own(tmp_path: Path, role_map: Path) -> None:
    a = signin.load_signin(provider_env(role_map), no_dotenv(tmp_path))
    b = signin.load_signin(provider_env(role_map), no_dotenv(tmp_path))
    assert a is not None and b is not None
    assert a.cookie_secret != b.cookie_secret and len(a.cookie_secret) >= 32


def test_the_secrets_file_is_private(tmp_path: Path, role_map: Path) -> None:
    s = signin.load_signin(provider_env(role_map), no_dotenv(tmp_path))
    assert s is not None
    path = signin.write_secrets(s, "127.0.0.1", 8501, parent=tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert tomllib.loads(path.read_text())["auth"]["client_secret"] == "client-s3cret"
    cmd = launch.dashboard_command(8501, "127.0.0.1", path)
    assert cmd[cmd.index("--secrets.files") + 1] == str(path)
    assert "--secrets.files" not in launch.dashboard_command(8501)


# ------------------------------------------------------------------------------------- host rule
@pytest.mark.parametrize(
    ("host", "provider", "refused"),
    [
        ("127.0.0.1", False, False),
        ("localhost", False, False),
        ("::1", False, False),
        ("0.0.0.0", False, True),
        ("192.0.2.1", False, True),
        ("::", False, True),
        ("dash.example.test", False, True),
        ("192.0.2.1", True, False),
        ("0.0.0.0", True, True),  # with a provider: a wildcard needs SLO_OIDC_REDIRECT_URL
    ],
)
def test_the_host_rule(tmp_path: Path, role_map: Path, host: str, provider: bool, refused: bool) -> None:
    s = signin.load_signin(provider_env(role_map), no_dotenv(tmp_path)) if provider else None
    assert (signin.host_refusal(host, s) is not None) is refused


def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=tmp_path, env=env or clean_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("command", ["dashboard", "up"])
def test_a_non_loopback_host_without_a_provider_exits_2_saying_why(tmp_path: Path, command: str) -> None:
    service_port = free_port()
    result = run_cli(
        tmp_path, command, "--host", "0.0.0.0", *(["--service-port", str(service_port)] * (command == "up"))
    )
    assert result.returncode == 2, result.stderr
    assert (
        "--host 0.0.0.0: refusing to serve the dashboard beyond this machine without sign-in" in result.stderr
    )
    assert "SLO_OIDC_ISSUER" in result.stderr
    assert not listening(service_port)  # `slo up` started nothing, the service included


def test_a_wildcard_host_with_a_provider_but_no_redirect_exits_2(tmp_path: Path, role_map: Path) -> None:
    result = run_cli(
        tmp_path, "dashboard", "--host", "0.0.0.0", env=clean_env(tmp_path, **provider_env(role_map))
    )
    assert result.returncode == 2
    assert "set SLO_OIDC_REDIRECT_URL" in result.stderr


def test_the_secrets_file_lives_only_while_the_dashboard_runs(tmp_path: Path, role_map: Path) -> None:
    """`slo dashboard` with a provider configured: the `[auth]` file is private and outside the checkout
    while it runs, the client secret is never printed, and the file is gone once it stops."""
    port = free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = clean_env(tmp_path, **provider_env(role_map), TMPDIR=str(scratch))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "dashboard", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError("the dashboard did not start")
        files = list(scratch.glob("slo-dashboard-*/secrets.toml"))
        assert len(files) == 1
        assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
        assert (
            tomllib.loads(files[0].read_text())["auth"]["redirect_uri"]
            == f"http://127.0.0.1:{port}/oauth2callback"
        )
        assert not list(ROOT.glob(".streamlit/secrets.toml"))  # never into the checkout
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert (
        "sign-in: OpenID Connect via https://login.example.test/realms/sre/.well-known/openid-configuration"
        in out
    )
    assert "client-s3cret" not in out
    assert list(scratch.iterdir()) == []  # removed when it stopped
