"""Without an identity provider (issue 15): every page says it is the single local user, actions are
recorded as `local`, and a dashboard started on any non-loopback address renders no data at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from pipelines.inbox import Inbox
from tests.support.dashboard_store import ROOT, DemoStore, build_demo_store

APP = ROOT / "dashboard" / "app.py"
PAGES = ["views/fleet.py", "views/slo.py", "views/alerts.py", "views/incidents.py", "views/quarterly.py"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    return build_demo_store(tmp_path_factory)


@pytest.fixture
def env(store: DemoStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoStore]:
    monkeypatch.setenv("SLO_DATA_DIR", str(store.data_dir))
    monkeypatch.setenv("SLO_SERVICE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("SLO_DASHBOARD_SIGNIN", raising=False)
    yield store


def run(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_says_it_is_the_single_local_user(env: DemoStore, page: str) -> None:
    at = run(page)
    notes = [i.value for i in at.sidebar.info]
    assert notes == [
        "No sign-in configured: you are the single **local** user (admin), on this machine only."
    ]


def test_an_action_is_recorded_as_the_local_user(env: DemoStore) -> None:
    at = run("views/incidents.py")
    at.button(key="retriage").click().run()
    inbox = Inbox(env.data_dir)
    try:
        last = inbox.read_since(0)[-1].body
    finally:
        inbox.close()
    assert (last["command"], last["actor"], last["source"]) == ("retriage", "local", "dashboard")


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.1", None])
def test_a_non_loopback_address_without_sign_in_renders_nothing(env: DemoStore, address: str | None) -> None:
    config.set_option("server.address", address)  # tests/app/conftest.py puts back loopback afterwards
    at = run()
    assert len(at.error) == 1 and "without sign-in" in at.error[0].value
    assert not at.dataframe and not at.button and not at.metric


@pytest.mark.parametrize("complete", [True, False])
def test_a_configured_provider_is_never_bypassed_by_starting_streamlit_by_hand(
    env: DemoStore, monkeypatch: pytest.MonkeyPatch, tmp_path, complete: bool
) -> None:
    """SLO_OIDC_ISSUER set (all of sign-in's settings, or only part of them), but the dashboard not
    started by `slo dashboard` (no SLO_DASHBOARD_SIGNIN, so no st.login secrets): on loopback it must
    not fall back to the single local admin; every page shows one error and nothing else."""
    monkeypatch.setenv("SLO_OIDC_ISSUER", "http://127.0.0.1:9/")
    if complete:
        roles = tmp_path / "roles.yaml"
        roles.write_text("roles: {sre-leads: approver}\n")
        monkeypatch.setenv("SLO_OIDC_CLIENT_ID", "dashboard")
        monkeypatch.setenv("SLO_OIDC_CLIENT_SECRET", "client-secret-for-the-test")
        monkeypatch.setenv("SLO_ROLE_MAP", str(roles))
    for page in [None, *PAGES]:
        at = run(page)
        assert len(at.error) == 1 and "was not started with it" in at.error[0].value, page
        assert not at.dataframe and not at.button and not at.metric and not at.sidebar.info, page
