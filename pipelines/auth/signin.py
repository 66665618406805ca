"""Dashboard sign-in settings (issue 15): OpenID Connect through Streamlit's `st.login`, and the host rule.

Read from the environment (over `./.env`, like every other setting):

- `SLO_OIDC_ISSUER`: the provider's issuer URL, or its full `/.well-known/openid-configuration` URL;
  setting it turns sign-in on;
- `SLO_OIDC_CLIENT_ID`, `SLO_OIDC_CLIENT_SECRET`: the dashboard's client registration at the provider;
- `SLO_OIDC_COOKIE_SECRET`: signs Streamlit's identity cookie; unset, a random one per start (everyone
  signs in again after a restart);
- `SLO_OIDC_REDIRECT_URL`: the dashboard's `…/oauth2callback` URL as browsers reach it (default
  `http://HOST:PORT/oauth2callback`);
- `SLO_OIDC_SCOPES`: scopes asked for (default `openid email profile`; add e.g. `groups` where the
  provider needs it for the role claim);
- `SLO_ROLE_MAP`: the claim → role mapping file (`pipelines/auth/roles.py`); required with a provider;
- `SLO_ROLE_CLAIM`: the claim holding groups or roles (overrides the file's `claim:`).

`slo dashboard` and `slo up` write these into a Streamlit secrets file (mode 0600, in a private temporary
directory outside the checkout, removed when the dashboard stops) and pass its path with
`--secrets.files`; the role map's path and claim reach the dashboard through its environment. Secrets are
never printed.

Without `SLO_OIDC_ISSUER` the dashboard is the single local user `local` and binds loopback only
(DESIGN §6): `host_refusal` says why any other address is refused.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.auth.roles import RoleMap, RoleMapError, load_role_map
from pipelines.config import read_dotenv
from pipelines.errors import ConfigError
from pipelines.service.settings import is_loopback

WELL_KNOWN = "/.well-known/openid-configuration"
DEFAULT_SCOPES = "openid email profile"
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
SECRETS_NAME = "secrets.toml"


@dataclass(frozen=True)
class Signin:
    """A configured identity provider (secrets kept out of repr)."""

    metadata_url: str
    client_id: str
    client_secret: str = field(repr=False)
    cookie_secret: str = field(repr=False)
    redirect_url: str | None
    role_map_path: Path
    role_map: RoleMap
    scopes: str = DEFAULT_SCOPES


def load_signin(env: Mapping[str, str] | None = None, dotenv: Path = Path(".env")) -> Signin | None:
    """The sign-in settings, or None when no provider is configured. A provider configured only in part
    (no client id, no role map, a role map that cannot be used) is a ConfigError naming what is missing."""
    merged = {**read_dotenv(dotenv), **(env if env is not None else os.environ)}

    def text(name: str) -> str | None:
        value = merged.get(name, "").strip()
        return value or None

    issuer = text("SLO_OIDC_ISSUER")
    if issuer is None:
        return None
    if not issuer.startswith(("http://", "https://")):
        raise ConfigError(f"SLO_OIDC_ISSUER={issuer!r}: expected an http(s) URL of the provider")
    metadata = issuer if issuer.rstrip("/").endswith(WELL_KNOWN) else issuer.rstrip("/") + WELL_KNOWN
    missing = [n for n in ("SLO_OIDC_CLIENT_ID", "SLO_OIDC_CLIENT_SECRET", "SLO_ROLE_MAP") if not text(n)]
    if missing:
        raise ConfigError(
            f"SLO_OIDC_ISSUER is set but {', '.join(missing)} is not: sign-in needs all of them"
        )
    path = Path(str(text("SLO_ROLE_MAP")))
    try:
        role_map = load_role_map(path)
    except RoleMapError as exc:
        raise ConfigError(f"SLO_ROLE_MAP: {exc}") from exc
    claim = text("SLO_ROLE_CLAIM")
    if claim:
        role_map = RoleMap(roles=role_map.roles, claim=claim, default=role_map.default)
    redirect = text("SLO_OIDC_REDIRECT_URL")
    if redirect is not None and not redirect.rstrip("/").endswith("/oauth2callback"):
        raise ConfigError(
            f"SLO_OIDC_REDIRECT_URL={redirect!r}: expected the dashboard's URL ending in /oauth2callback"
        )
    return Signin(
        metadata_url=metadata,
        client_id=str(text("SLO_OIDC_CLIENT_ID")),
        client_secret=str(text("SLO_OIDC_CLIENT_SECRET")),
        cookie_secret=text("SLO_OIDC_COOKIE_SECRET") or secrets.token_urlsafe(32),
        redirect_url=redirect,
        role_map_path=path.resolve(),
        role_map=role_map,
        scopes=text("SLO_OIDC_SCOPES") or DEFAULT_SCOPES,
    )


def host_refusal(host: str, signin: Signin | None) -> str | None:
    """Why the dashboard may not bind `host` (None when it may): without a provider only loopback."""
    if signin is None and not is_loopback(host):
        return (
            f"--host {host}: refusing to serve the dashboard beyond this machine without sign-in: with no "
            "identity provider configured anyone who reaches it would act as the local user. Set "
            "SLO_OIDC_ISSUER, SLO_OIDC_CLIENT_ID, SLO_OIDC_CLIENT_SECRET and SLO_ROLE_MAP "
            "(docs/dashboard.md), or use --host 127.0.0.1"
        )
    if signin is not None and signin.redirect_url is None and host in WILDCARD_HOSTS:
        return (
            f"--host {host}: set SLO_OIDC_REDIRECT_URL to the dashboard's address as browsers reach it "
            "(…/oauth2callback); a wildcard address is not one"
        )
    return None


def redirect_url(signin: Signin, host: str, port: int) -> str:
    if signin.redirect_url:
        return signin.redirect_url
    name = f"[{host}]" if ":" in host else host
    return f"http://{name}:{port}/oauth2callback"


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these characters)."""
    out = ['"']
    for ch in value:
        if ch in {'"', "\\"}:
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def secrets_toml(signin: Signin, host: str, port: int) -> str:
    """The `[auth]` section Streamlit's `st.login()` reads (one default provider)."""
    rows = {
        "redirect_uri": redirect_url(signin, host, port),
        "cookie_secret": signin.cookie_secret,
        "client_id": signin.client_id,
        "client_secret": signin.client_secret,
        "server_metadata_url": signin.metadata_url,
    }
    lines = ["# Written by `slo dashboard` for this run; removed when it stops. Do not commit.", "[auth]"]
    lines += [f"{k} = {_toml_string(v)}" for k, v in rows.items()]
    lines += ["", "[auth.client_kwargs]", f"scope = {_toml_string(signin.scopes)}", ""]
    return "\n".join(lines)


def write_secrets(signin: Signin, host: str, port: int, parent: Path | None = None) -> Path:
    """Write the secrets file into a new private directory (0700) with mode 0600; returns its path.
    The caller removes the directory when the dashboard stops."""
    directory = Path(tempfile.mkdtemp(prefix="slo-dashboard-", dir=parent))  # 0700 by mkdtemp
    path = directory / SECRETS_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets_toml(signin, host, port))
    return path


def dashboard_env(signin: Signin | None) -> dict[str, str]:
    """What the dashboard process needs besides the secrets file: whether sign-in is on, and the roles."""
    if signin is None:
        return {"SLO_DASHBOARD_SIGNIN": "local"}
    return {
        "SLO_DASHBOARD_SIGNIN": "oidc",
        "SLO_ROLE_MAP": str(signin.role_map_path),
        "SLO_ROLE_CLAIM": signin.role_map.claim,
    }
