"""Sign-in and roles in the browser (issue 15): a real OpenID Connect provider on 127.0.0.1
(`oidc-provider-mock`), the real dashboard (`slo dashboard`, sign-in configured through the environment
as a person would) and the real service (`slo serve`) folding the inbox, in headless Chromium.

One incident, opened by the service from an alert, whose remediation (`restart` on the test's own
runbook, marked critical) waits for approval. Then, in order:

- the viewer signs in: sees the incident's review and timeline, their name and role, and no action
  button at all;
- the responder signs in and acknowledges: the timeline shows their email; they get no approve button,
  and their approval sent straight into the dashboard's action path is refused, logged, and nothing
  reaches the inbox;
- the approver signs in and approves: the service runs the remediation script (its output file says so)
  and records the approver;
- someone the provider knows but the role map does not gets a page saying they have no access.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dashboard import actions
from dashboard.auth import identity_from_claims
from pipelines.auth.roles import load_role_map
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.contract import Alert
from pipelines.store import Snapshot
from tests.e2e.conftest import SCREENSHOTS, Server, dashboard_server
from tests.e2e.test_dashboard_browser import wait_idle
from tests.e2e.test_dashboard_service import fresh_store, timeline_steps, wait_for_incident
from tests.support.dashboard_store import DemoStore
from tests.support.realparts import free_port, missing

pytestmark = pytest.mark.e2e

USERS = {
    "vera": {"email": "vera@example.com", "name": "Vera Viewer", "groups": ["leadership"]},
    "rita": {"email": "rita@example.com", "name": "Rita Responder", "groups": ["sre-oncall", "staff"]},
    "abe": {"email": "abe@example.com", "name": "Abe Approver", "groups": ["sre-leads"]},
    "nora": {"email": "nora@example.com", "name": "Nora Nobody", "groups": ["marketing"]},
}
ROLE_MAP = """claim: groups
roles:
  leadership: viewer
  sre-oncall: responder
  sre-leads: approver
"""
SCRIPT = """#!/usr/bin/env bash
# the test's remediation: records that it ran, and with what
echo "$@" >> "$(dirname "$0")/ran.txt"
echo "shop: $2 for $4"
"""
ACTION_BUTTONS = ("Acknowledge", "Mitigated", "Resolve", "Re-run triage", "Approve restart", "Reject restart")


@dataclass
class Stack:
    data: Path
    incident_id: str
    remediation_id: str
    ran: Path
    role_map: Path
    dashboard: Server
    servers: list[Server]


def provider_command(port: int) -> list[str]:
    try:
        import oidc_provider_mock  # noqa: F401
    except ImportError:
        missing("oidc-provider-mock (Python package) is not installed: pip install -e '.[dev]'")
    users = [json.dumps({"sub": sub, **claims}) for sub, claims in USERS.items()]
    return [
        sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port),
        *(arg for u in users for arg in ("--user-claims", u)),
    ]  # fmt: skip


def runbooks(root: Path) -> Path:
    book = root / "shop"
    book.mkdir(parents=True)
    (book / "runbook.md").write_text("# shop\nRestart the workers when they crash.\n")
    (book / "actions.yaml").write_text(
        "actions:\n  - name: restart\n    description: restart workers\n    critical: true\n"
    )
    script = book / "remediate.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    return book / "ran.txt"


def remediation(data: Path, incident_id: str) -> tuple[str, str, str | None] | None:
    snapshot = Snapshot(data)
    try:
        with snapshot.connection() as con:
            row = con.execute(
                "SELECT id, status, approved_by FROM remediations WHERE incident_id = ? ORDER BY id",
                [incident_id],
            ).fetchone()
    finally:
        snapshot.close()
    return (str(row[0]), str(row[1]), row[2]) if row else None


def wait_for(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not after {timeout}s")


@pytest.fixture(scope="module")
def stack(store: DemoStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("signin")
    data = tmp / "data"
    fresh_store(store, data)
    ran = runbooks(tmp / "runbooks")
    role_map = tmp / "roles.yaml"
    role_map.write_text(ROLE_MAP)
    servers: list[Server] = []
    try:
        oidc_port = free_port()
        provider = Server(
            "oidc provider", provider_command(oidc_port), dict(os.environ), tmp / "oidc.log", oidc_port
        )
        servers.append(provider)
        port = free_port()
        env = {
            **os.environ,
            "SLO_DATA_DIR": str(data),
            "SLO_RUNBOOKS_DIR": str(tmp / "runbooks"),
            "SLO_RULES_ROUTE_BY_SEVERITY": "true",
        }
        service = Server(
            "service",
            [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)],
            env,
            tmp / "service.log",
            port,
        )
        servers.append(service)
        provider.wait_ready("/.well-known/openid-configuration", timeout=30)
        service.wait_ready("/api/health", timeout=60)

        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        alert = Alert(
            source="alertmanager", status="firing", service="shop", fingerprint="e2e-signin",
            title="Workers crash looping", dedup_key="e2e-signin-1", starts_at=now - dt.timedelta(minutes=2),
            severity="SEV3", description="Workers crash looping",
        )  # fmt: skip
        inbox = Inbox(data)
        inbox.append([Entry(alert.dedup_key, "alert", "alertmanager", alert.to_json())])
        inbox.close()
        incident_id = wait_for_incident(data, "e2e-signin", timeout=30)
        rem = wait_for(
            "a remediation awaiting approval",
            lambda: (r := remediation(data, incident_id)) and r[1] == "awaiting_approval" and r,
            timeout=30,
        )
        assert not ran.exists()  # nothing ran without a human

        signin_env = {
            "SLO_SERVICE_URL": service.url,
            "SLO_OIDC_ISSUER": provider.url,
            "SLO_OIDC_CLIENT_ID": "slo-dashboard",
            "SLO_OIDC_CLIENT_SECRET": "e2e-client-secret",
            "SLO_OIDC_COOKIE_SECRET": "e2e-cookie-secret-0123456789abcdef",
            "SLO_ROLE_MAP": str(role_map),
        }
        with dashboard_server(data, tmp, signin_env) as dash:
            yield Stack(data, incident_id, rem[0], ran, role_map, dash, [*servers, dash])
    except AssertionError:
        for s in servers:
            print(f"--- {s.name} log ---\n{s.output()}")
        raise
    finally:
        for s in reversed(servers):
            s.stop()


def sign_in(chromium: Any, stack: Stack, sub: str) -> tuple[Any, Any]:
    """A fresh browser signs in as `sub` on the provider's form, then opens the incident."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.goto(stack.dashboard.url + "/incidents", wait_until="domcontentloaded")
    page.get_by_role("button", name="Sign in").click(timeout=30_000)
    # The provider's authorization form lists its predefined users, one button each.
    page.wait_for_url(lambda url: "/oauth2/authorize" in url, timeout=30_000)
    page.get_by_role("button", name=sub, exact=True).click()
    page.wait_for_url(lambda url: url.startswith(stack.dashboard.url), timeout=30_000)
    page.get_by_text("Signed in as").first.wait_for(timeout=30_000)
    page.goto(f"{stack.dashboard.url}/incidents?incident={stack.incident_id}", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Incidents").first.wait_for(timeout=30_000)
    page.get_by_text("Action items", exact=True).first.wait_for(timeout=30_000)  # the page's last part
    wait_idle(page)
    return context, page


def shown(text: str) -> str:
    """Text as a person reads it: outside text (emails) carries an invisible U+2060 word joiner so no
    renderer makes it a link (pipelines/outside_text.py)."""
    return text.replace("\u2060", "")


def sidebar(page: Any) -> str:
    return shown(page.locator("[data-testid='stSidebar']").inner_text())


def timeline(page: Any) -> str:
    return shown(page.locator("[data-testid='stTable']").first.inner_text())


def visible_buttons(page: Any) -> list[str]:
    return [n for n in ACTION_BUTTONS if page.get_by_role("button", name=n, exact=True).count()]


def test_signed_out_visitors_see_only_the_sign_in_page(chromium: Any, stack: Stack) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(f"{stack.dashboard.url}/incidents?incident={stack.incident_id}")
        page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
        wait_idle(page)
        body = page.locator("body").inner_text()
        assert stack.incident_id not in body and "Workers crash looping" not in body
        assert page.locator("[data-testid='stTable']").count() == 0
    finally:
        context.close()


def test_the_viewer_sees_the_review_but_no_action(chromium: Any, stack: Stack) -> None:
    context, page = sign_in(chromium, stack, "vera")
    try:
        assert "Vera Viewer <vera@example.com>" in sidebar(page)
        assert "role viewer" in sidebar(page)
        assert "Workers crash looping" in page.locator("body").inner_text()
        assert "critical action: waiting for a recorded approval" in timeline(page)
        page.get_by_text("is waiting for approval").first.wait_for(timeout=10_000)
        assert page.get_by_text("Only an approver may approve or reject it.").count() == 1
        assert visible_buttons(page) == []
        assert page.get_by_role("button", name="Record root cause").count() == 0
        page.screenshot(path=str(SCREENSHOTS / "signin-viewer.png"), full_page=True)
    finally:
        context.close()


def test_the_responder_acknowledges_and_the_timeline_names_them(chromium: Any, stack: Stack) -> None:
    context, page = sign_in(chromium, stack, "rita")
    try:
        assert "Rita Responder <rita@example.com>" in sidebar(page)
        assert "role responder" in sidebar(page)
        assert set(visible_buttons(page)) == {"Acknowledge", "Mitigated", "Resolve", "Re-run triage"}
        page.get_by_role("button", name="Acknowledge", exact=True).click()
        page.get_by_text("pending", exact=True).first.wait_for(timeout=15_000)
        page.get_by_text("done", exact=True).first.wait_for(timeout=45_000)
        wait_idle(page)
        steps = timeline(page)
        print(f"timeline of {stack.incident_id}:\n{steps}")
        assert ("acknowledged", "rita@example.com (sub rita)") in timeline_steps(page)
    finally:
        context.close()


def test_the_responders_approval_is_refused_even_when_forged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # The page offers the responder no approve button (above); a forged request goes straight into
    # the dashboard's action path with the responder's own identity, as their session holds it.
    rita = identity_from_claims({"sub": "rita", **USERS["rita"]}, load_role_map(stack.role_map))
    assert rita.role == "responder"
    inbox = Inbox(stack.data)
    try:
        before = inbox.count()
        with caplog.at_level(logging.WARNING, logger="dashboard.actions"), pytest.raises(actions.Refused):
            actions.send_command(
                stack.data,
                "approve_remediation",
                stack.incident_id,
                rita,
                {"remediation_id": stack.remediation_id},
            )
        assert inbox.count() == before  # nothing reached the inbox
    finally:
        inbox.close()
    refusals = [r.getMessage() for r in caplog.records if r.name == "dashboard.actions"]
    assert refusals == [
        f"refused: approve_remediation on {stack.incident_id} by rita@example.com (sub rita) "
        "(role responder): the role does not allow it; nothing was sent"
    ]
    assert remediation(stack.data, stack.incident_id)[1] == "awaiting_approval"  # type: ignore[index]
    assert not stack.ran.exists()


def test_the_approver_approves_and_the_remediation_runs(chromium: Any, stack: Stack) -> None:
    context, page = sign_in(chromium, stack, "abe")
    try:
        assert "role approver" in sidebar(page)
        page.get_by_role("button", name="Approve restart", exact=True).click()
        page.get_by_text("done", exact=True).first.wait_for(timeout=45_000)
        ran = wait_for("the remediation script ran", lambda: stack.ran.exists() and stack.ran.read_text(), 60)
        assert ran == f"--action restart --alert-id {stack.incident_id}\n"
        rem = wait_for(
            "the remediation recorded as succeeded",
            lambda: (r := remediation(stack.data, stack.incident_id)) and r[1] == "succeeded" and r,
            timeout=30,
        )
        assert rem[2] == "abe@example.com (sub abe)"
        page.reload()
        page.get_by_role("heading", name="Incidents").first.wait_for(timeout=30_000)
        wait_idle(page)
        approvals = [s for s in timeline_steps(page) if s[1] == "abe@example.com (sub abe)"]
        assert approvals, timeline(page)
    finally:
        context.close()


def test_a_person_without_a_role_gets_no_access(chromium: Any, stack: Stack) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(stack.dashboard.url, wait_until="domcontentloaded")
        page.get_by_role("button", name="Sign in").click(timeout=30_000)
        page.wait_for_url(lambda url: "/oauth2/authorize" in url, timeout=30_000)
        page.get_by_role("button", name="nora", exact=True).click()
        page.get_by_role("heading", name="No access").wait_for(timeout=30_000)
        wait_idle(page)
        body = page.locator("body").inner_text()
        assert "has no role in this dashboard" in body
        assert "Fleet" not in body and page.locator("[data-testid='stDataFrame']").count() == 0
    finally:
        context.close()
