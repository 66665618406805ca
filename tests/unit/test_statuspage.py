"""The status page's pure parts (issue 17, item 5): the state and severity mappings, the opt-in setting,
and the API bodies, as known answers."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.config import Settings, statuspage_services
from pipelines.errors import ConfigError
from pipelines.incidents.statuspage import create_body, page_status, update_body, update_text

INC = {"id": "INC-0007", "service": "checkout-api", "severity": "SEV1", "title": "db primary down: 10.0.3.7"}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("triggered", "investigating"),
        ("acknowledged", "identified"),
        ("mitigated", "monitoring"),
        ("resolved", "resolved"),
        ("closed", "resolved"),
    ],
)
def test_incident_states_map_to_statuspage_statuses(state: str, expected: str) -> None:
    assert page_status(state) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ()),
        ("", ()),
        ("checkout-api", (("checkout-api", None),)),
        (" checkout-api=cmp_1 , search ,", (("checkout-api", "cmp_1"), ("search", None))),
    ],
)
def test_the_opt_in_setting(raw: str | None, expected: tuple[tuple[str, str | None], ...]) -> None:
    assert statuspage_services(raw) == expected


@pytest.mark.parametrize("raw", ["checkout-api=", "=cmp_1"])
def test_a_bad_opt_in_entry_names_itself(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load({"SLO_STATUSPAGE_SERVICES": raw})
    assert str(caught.value) == (
        f"SLO_STATUSPAGE_SERVICES: {raw!r}: expected a service, or service=component_id"
    )


def test_the_bodies_say_only_what_the_template_says() -> None:
    at = dt.datetime(2026, 11, 23, 12, 0)
    text = update_text(INC, "investigating", None, at, at + dt.timedelta(minutes=15))
    assert text == (
        "2026-11-23 12:00 UTC — checkout-api Incident\n"
        "Status: Investigating\n"
        "Impact: checkout-api is unavailable or failing for many users.\n"
        "Current action: We are investigating the cause.\n"
        "Next update: by 2026-11-23 12:15 UTC"
    )
    created = create_body(INC, "investigating", text, "cmp_1")["incident"]
    assert created == {
        "name": "checkout-api: outage",
        "status": "investigating",
        "impact_override": "critical",
        "body": text,
        "deliver_notifications": True,
        "metadata": {"slo": {"incident_id": "INC-0007"}},
        "component_ids": ["cmp_1"],
        "components": {"cmp_1": "major_outage"},
    }
    assert "10.0.3.7" not in str(created)  # the alert's title (internal details) never goes out
    resolved = update_body(INC, "resolved", "done", None)["incident"]
    assert resolved == {"status": "resolved", "body": "done", "deliver_notifications": True}
    assert update_body(INC, "resolved", "done", "cmp_1")["incident"]["components"] == {"cmp_1": "operational"}
