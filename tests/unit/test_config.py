"""Settings: defaults from the seeds, clear errors for unusable values, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import Settings, scrub
from pipelines.errors import ConfigError


def test_defaults_follow_the_seeds() -> None:
    s = Settings.load({})
    assert s.triage_model == "claude-sonnet-4-20250514"  # seed 000, ai_triage.runtime.model
    assert s.triage_timeout_s == 30.0  # seed 000, ai_triage.timeout_sec
    assert (s.remediation_timeout_s, s.remediation_retries, s.remediation_retry_delay_s) == (300.0, 2, 15.0)
    assert s.pagerduty_events_url == "https://events.pagerduty.com/v2/enqueue"
    assert s.runbooks_dir == Path("runbooks")
    assert s.anthropic_api_key is None and s.rules_route_by_severity is False


def test_values_from_the_environment() -> None:
    s = Settings.load(
        {
            "SLO_TRIAGE_MODEL": "claude-x",
            "SLO_TRIAGE_TIMEOUT": "2.5",
            "SLO_TRIAGE_RETRIES": "0",
            "SLO_REMEDIATION_DRY_RUN": "yes",
            "SLO_RUNBOOKS_DIR": "/srv/runbooks",
            "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9/v2/enqueue",
        }
    )
    assert (s.triage_model, s.triage_timeout_s, s.triage_max_retries) == ("claude-x", 2.5, 0)
    assert s.remediation_dry_run is True
    assert s.runbooks_dir == Path("/srv/runbooks")
    assert s.pagerduty_events_url == "http://127.0.0.1:9/v2/enqueue"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SLO_TRIAGE_TIMEOUT", "soon", "SLO_TRIAGE_TIMEOUT='soon': expected a number of seconds"),
        ("SLO_TRIAGE_TIMEOUT", "0", "SLO_TRIAGE_TIMEOUT='0': expected a finite number >= 0.1"),
        ("SLO_REMEDIATION_TIMEOUT", "inf", "SLO_REMEDIATION_TIMEOUT='inf': expected a finite number"),
        ("SLO_NOTIFY_BACKOFF", "nan", "SLO_NOTIFY_BACKOFF='nan': expected a finite number"),
        ("SLO_TRIAGE_RETRIES", "-1", "SLO_TRIAGE_RETRIES='-1': expected a whole number from 0 to 100"),
        ("SLO_REMEDIATION_RETRIES", "1000", "expected a whole number from 0 to 100"),
        ("SLO_REMEDIATION_DRY_RUN", "perhaps", "SLO_REMEDIATION_DRY_RUN='perhaps': expected true or false"),
    ],
)
def test_unusable_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.load({name: value})
    assert message in str(err.value)


SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-very-secret",
    "PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T0/B0/XYZ",
}


def test_secrets_never_appear_in_repr_str_or_describe() -> None:
    s = Settings.load(SECRETS)
    shown = f"{s!r} {s} {s.describe()}"
    for secret in SECRETS.values():
        assert secret not in shown
    assert s.describe()["anthropic_api_key"] == "set"
    assert Settings.load({}).describe()["slack_webhook_url"] == "not set"


def test_scrub_replaces_every_configured_secret() -> None:
    s = Settings.load(SECRETS)
    text = "posting to https://hooks.slack.example/services/T0/B0/XYZ with key R0UT1NGKEY failed"
    assert scrub(text, s) == "posting to *** with key *** failed"


def test_the_cli_reports_a_bad_setting_with_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("SLO_REMEDIATION_RETRIES", "many")
    assert main(["status"]) == 1
    assert capsys.readouterr().err == (
        "error: SLO_REMEDIATION_RETRIES='many': expected a whole number from 0 to 100\n"
    )
