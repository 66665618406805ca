"""Who is using the dashboard, and what their role lets them do (issue 15, DESIGN §6).

Two modes, chosen by `slo dashboard` / `slo up` (`SLO_DASHBOARD_SIGNIN`, see pipelines/auth/signin.py):

- `oidc`: sign-in through Streamlit's `st.login()` (OpenID Connect, Authlib). The identity is `st.user`,
  read from Streamlit's signed cookie; the role comes from one claim through the role map file
  (`SLO_ROLE_MAP`, `SLO_ROLE_CLAIM`). No role → a page that says so and nothing else.
- `local` (no provider configured): the single local user `local`, role `admin`, on a loopback address
  only — the same trust as the CLI, which acts as the OS user on the machine itself. Every page says so.

`require()` runs before every page (dashboard/app.py); the pages ask `can(action)` to show or hide a
button, and dashboard/actions.py checks the role again before anything reaches the inbox.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from pipelines.auth.roles import RoleMap, RoleMapError, load_role_map, may
from pipelines.auth.signin import load_signin
from pipelines.outside_text import markdown as md
from pipelines.service.settings import is_loopback

LOCAL_SUBJECT = "local"
LOCAL_ROLE = "admin"


@dataclass(frozen=True)
class Identity:
    """A signed-in person (or the local user) and their role (None: no role, no access)."""

    subject: str
    email: str | None
    name: str | None
    role: str | None
    local: bool = False

    @property
    def actor(self) -> str:
        """The actor recorded on commands and timelines: the email and the subject, never typed text."""
        if self.local:
            return LOCAL_SUBJECT
        if self.email and self.email != self.subject:
            return f"{self.email} (sub {self.subject})"
        return self.email or self.subject

    @property
    def label(self) -> str:
        who = self.name or self.email or self.subject
        extra = f" <{self.email}>" if self.email and self.email != who else ""
        return f"{who}{extra}"


LOCAL = Identity(LOCAL_SUBJECT, None, "local user", LOCAL_ROLE, local=True)


def mode() -> str:
    """"oidc" when `slo dashboard`/`slo up` started this dashboard with sign-in; "local" when no identity
    provider is configured at all; "unstarted" when one is configured (SLO_OIDC_ISSUER, in the environment
    or `.env`) but this process did not get sign-in from the launcher (e.g. `streamlit run` by hand): it
    then serves nobody rather than everybody as the local admin (fail closed)."""
    if os.environ.get("SLO_DASHBOARD_SIGNIN") == "oidc":
        return "oidc"
    return "unstarted" if _provider_configured() else "local"


def _provider_configured() -> bool:
    try:
        return load_signin() is not None
    except Exception:  # a partial or broken sign-in configuration is still one: fail closed
        return True


@st.cache_resource(show_spinner=False)
def _role_map(path: str, claim: str | None, mtime: float) -> RoleMap:
    role_map = load_role_map(Path(path))
    return RoleMap(roles=role_map.roles, claim=claim, default=role_map.default) if claim else role_map


def role_map() -> RoleMap:
    """The role mapping file named by SLO_ROLE_MAP (re-read when it changes)."""
    path = os.environ.get("SLO_ROLE_MAP", "")
    if not path:
        raise RoleMapError("SLO_ROLE_MAP is not set: sign-in needs a role mapping file")
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as exc:
        raise RoleMapError(f"{path}: cannot read the role mapping: {exc.strerror or exc}") from exc
    return _role_map(path, os.environ.get("SLO_ROLE_CLAIM") or None, mtime)


def identity_from_claims(claims: Mapping[str, Any], roles: RoleMap) -> Identity:
    """An Identity from ID-token claims (as `st.user` holds them)."""
    email = claims.get("email")
    name = claims.get("name")
    return Identity(
        subject=str(claims.get("sub") or email or ""),
        email=str(email) if email else None,
        name=str(name) if name else None,
        role=roles.role_for(claims),
    )


def current() -> Identity | None:
    """Who is using this session: LOCAL without a provider; the signed-in person; None when not signed in."""
    if mode() == "local":
        return LOCAL
    if mode() != "oidc" or not st.user.is_logged_in:
        return None
    return identity_from_claims(st.user.to_dict(), role_map())


def me() -> Identity:
    """This session's identity, on a page (app.py's `require()` has already stopped anyone without one)."""
    who = current()
    if who is None:  # pragma: no cover - require() stops the script first
        st.stop()
        raise AssertionError("unreachable")
    return who


def can(action: str) -> bool:
    """Whether this session's identity may send `action` (an incident command name)."""
    me = current()
    return me is not None and may(me.role, action)


def require() -> Identity:
    """Run before every page: the sign-in page, the no-role page or the local-mode refusal stop the
    script; otherwise the sidebar names the identity and role, and the identity is returned."""
    if mode() == "unstarted":
        st.error(
            "Sign-in is configured (SLO_OIDC_ISSUER), but this dashboard was not started with it: start "
            "it with `slo dashboard` or `slo up`, which give it the provider's settings (see "
            "docs/dashboard.md). Until then it shows nothing to anybody.",
            icon=":material/block:",
        )
        st.stop()
    if mode() == "local":
        address = str(st.get_option("server.address") or "")
        if not is_loopback(address):
            st.error(
                f"This dashboard is bound to {md(address) or 'every address'} without sign-in. With no "
                "identity provider it serves the single local user on 127.0.0.1 only; start it with "
                "`slo dashboard` (see docs/dashboard.md).",
                icon=":material/block:",
            )
            st.stop()
        with st.sidebar:
            st.info(
                "No sign-in configured: you are the single **local** user (admin), on this machine only.",
                icon=":material/person:",
            )
        return LOCAL
    try:
        me = current()
    except RoleMapError as exc:  # changed or removed since `slo dashboard` checked it: nobody gets a role
        st.error(f"Sign-in is configured but the role mapping cannot be used: {md(str(exc))}")
        st.stop()
        raise AssertionError("unreachable") from exc
    if me is None:
        st.title("Reliability dashboard")
        st.markdown("Sign in with your organisation's account to see the dashboard.")
        if st.button("Sign in", type="primary", key="signin"):
            st.login()
        st.stop()
    assert me is not None
    with st.sidebar:
        st.markdown(f"Signed in as **{md(me.label)}** · role **{me.role or 'none'}**")
        if st.button("Sign out", key="signout"):
            st.logout()
    if me.role is None:
        st.title("No access")
        st.warning(
            f"You are signed in as {md(me.label)}, but your account has no role in this dashboard "
            "(none of your groups is in the role mapping). Ask an administrator to add you.",
            icon=":material/lock:",
        )
        st.stop()
    return me
