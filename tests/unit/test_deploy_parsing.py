"""The deploy feed's parsing and fold (issue 17, item 3), with known answers a reader can check by hand:
every door's format into one Deploy, every bad field named, and the fold idempotent (a re-sent deploy,
a refolded inbox) and never in the way of a page."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.errors import MalformedInput
from pipelines.inbox import Entry, Inbox
from pipelines.incidents.context import recent_deploys
from pipelines.incidents.contract import Command
from pipelines.incidents.fold import fold_inbox
from pipelines.ingest.deploys import Ignored, parse_csv, parse_github, parse_native, sign_github, to_entry
from pipelines.store import connect, migrate

NOW = dt.datetime(2026, 11, 23, 12, 0)
GOOD = {"service": "checkout-api", "version": "v1.4.2", "time": "2026-11-23T11:30:00Z", "who": "alice"}
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks" / "github_deployment.json"


def github(**deployment: Any) -> dict[str, Any]:
    body = json.loads(FIXTURE.read_text().replace("__CREATED_AT__", "2026-11-23T11:00:00Z"))
    body["deployment"].update(deployment)
    return body


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"service": None}, "service: required field is missing"),
        ({"version": ""}, "version: required field is missing"),
        ({"who": None}, "who: required field is missing"),
        ({"time": "23/11/2026"}, "time: '23/11/2026' is not an RFC 3339 time (e.g. 2026-11-23T12:00:00Z)"),
        ({"time": "2026-11-25T12:00:00Z"}, "time: 2026-11-25T12:00:00Z is outside the accepted range"),
        ({"link": "javascript:alert(1)"}, "link: 'javascript:alert(1)' is not an http(s) URL"),
        ({"version": "v" * 201}, "version: at most 200 characters, got 201"),
        ({"who": "al\nice"}, "who: control character U+000A at position 2"),
        ({"service": 7}, "service: expected a string, got a number"),
        ({"env": "prod"}, "env: unknown field; expected service, time, version, who, link, description, id"),
    ],
)
def test_a_bad_deploy_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(MalformedInput) as caught:
        parse_native(body, NOW)
    assert str(caught.value).startswith(message)


def test_the_native_body_and_its_key() -> None:
    deploy = parse_native({**GOOD, "link": "https://ci.example.com/run/8"}, NOW)
    assert (deploy.service, deploy.version, deploy.deployed_at, deploy.who, deploy.link, deploy.source) == (
        "checkout-api",
        "v1.4.2",
        dt.datetime(2026, 11, 23, 11, 30),
        "alice",
        "https://ci.example.com/run/8",
        "api",
    )
    # the same deploy sent again (another link or description) is the same key; another time is not
    assert parse_native({**GOOD, "description": "x"}, NOW).key == deploy.key
    assert parse_native({**GOOD, "time": "2026-11-23T11:31:00Z"}, NOW).key != deploy.key
    # the sender's own id decides when given
    assert (
        parse_native({**GOOD, "id": "run-8"}, NOW).key
        == parse_native({**GOOD, "id": "run-8", "version": "v2"}, NOW).key
    )


SHA = "9f2c4e1b7a3d5c6e8f0a1b2c3d4e5f6a7b8c9d0e"
CHECKOUT = ("checkout-api", "v1.4.2@9f2c4e1", "alice")
STAGING = "deployment.environment 'staging' is not production (SLO_DEPLOY_ENVIRONMENTS: production, prod)"
IN_PROGRESS = "deployment_status.state 'in_progress': only a successful deployment is a deploy"


@pytest.mark.parametrize(
    ("event", "body", "expected"),
    [
        ("deployment", github(), CHECKOUT),
        ("deployment", github(ref=SHA), ("checkout-api", "9f2c4e1b7a3d", "alice")),
        ("deployment", github(payload={"service": "payments"}), ("payments", "v1.4.2@9f2c4e1", "alice")),
        ("deployment", github(environment="prod", production_environment=None), CHECKOUT),
        ("deployment", github(environment="staging", production_environment=False), STAGING),
        ("deployment", github(environment="eu-live", production_environment=True), CHECKOUT),
        ("deployment_status", {**github(), "deployment_status": {"state": "success"}}, CHECKOUT),
        ("deployment_status", {**github(), "deployment_status": {"state": "in_progress"}}, IN_PROGRESS),
    ],
)
def test_github_deployment_payloads(event: str, body: dict[str, Any], expected: Any) -> None:
    found = parse_github(event, body, NOW)
    if isinstance(expected, str):
        assert found == Ignored(expected)
        return
    assert not isinstance(found, Ignored)
    assert (found.service, found.version, found.who) == expected
    assert found.deployed_at == dt.datetime(2026, 11, 23, 11, 0)  # the deployment's created_at
    # a deployment and its success status are one deploy: the key is the repository's deployment id
    assert found.key == parse_github("deployment", github(**body["deployment"]), NOW).key  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("event", "body", "message"),
    [
        ("push", github(), "X-GitHub-Event: 'push' is not a deploy event; expected deployment or deployment"),
        ("deployment", {**github(), "deployment": "x"}, "deployment: expected a JSON object, got a string"),
        ("deployment", github(created_at="soon"), "deployment.created_at: 'soon' is not an RFC 3339 time"),
        ("deployment", github(sha=None), "deployment.sha: required field is missing"),
        ("deployment", github(id="1048576001"), "deployment.id: expected the deployment's number"),
    ],
)
def test_a_bad_github_payload_names_the_field(event: str, body: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedInput) as caught:
        parse_github(event, body, NOW)
    assert str(caught.value).startswith(message)


def test_csv_rows_name_their_line() -> None:
    text = "service,time,version,who\ncheckout-api,2026-11-23T10:00:00Z,v1,alice\n\ncheckout-api,,v2,bob\n"
    with pytest.raises(MalformedInput) as caught:
        parse_csv(text, NOW)
    assert str(caught.value) == "line 4.time: required field is missing"
    with pytest.raises(MalformedInput) as caught:
        parse_csv("service,when,version,who\n", NOW)
    assert str(caught.value).startswith("line 1: header: missing column(s) time")
    [one] = parse_csv(text.split("\n\n")[0], NOW)
    assert (one.version, one.source) == ("v1", "csv")


def test_github_signature_is_the_hmac_of_the_body() -> None:
    # HMAC-SHA256("It's a Secret to Everybody", "Hello, World!"): GitHub's own documented example
    assert sign_github(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def _store_with(tmp_path: Path, entries: list[Entry]) -> tuple[Any, Inbox]:
    con = connect()
    migrate(con)
    inbox = Inbox(tmp_path)
    inbox.append(entries)
    return con, inbox


def test_the_fold_stores_a_deploy_once_and_triage_sees_it(tmp_path: Path) -> None:
    deploy = parse_native({**GOOD, "link": "https://ci.example.com/run/8"}, NOW)
    resent = parse_native({**GOOD, "description": "re-sent by the CI with another body"}, NOW)
    con, inbox = _store_with(tmp_path, [to_entry(deploy, "ci-bot")])
    fold_inbox(con, inbox)
    # the same deploy as a new inbox row (another key the inbox cannot recognise), then a refold
    inbox.append(
        [Entry("other-row", "command", "api", {**to_entry(resent, "ci-bot").body, "dedup_key": "x"})]
    )
    fold_inbox(con, inbox)
    con.execute("UPDATE inbox_cursor SET last_seq = 0, last_key = NULL")
    fold_inbox(con, inbox)
    assert con.execute("SELECT service, deployed_at, version, description FROM deploys").fetchall() == [
        ("checkout-api", dt.datetime(2026, 11, 23, 11, 30), "v1.4.2", "deployed by alice")
    ]
    assert con.execute("SELECT who, link, source, actor, inbox_seq FROM deploy_feed").fetchall() == [
        ("alice", "https://ci.example.com/run/8", "api", "ci-bot", 1)
    ]
    assert recent_deploys(con, "checkout-api", NOW) == [
        {
            "deployed_at": "2026-11-23T11:30:00",
            "version": "v1.4.2",
            "description": "deployed by alice",
            "minutes_before_detection": 30,
        }
    ]


def test_a_stored_row_that_is_not_a_deploy_is_rejected_naming_the_field(tmp_path: Path) -> None:
    body = Command("deploy", None, "someone", "api", "deploy:bad", NOW, {"service": "checkout-api"}).to_json()
    con, inbox = _store_with(tmp_path, [Entry("deploy:bad", "command", "api", body)])
    report = fold_inbox(con, inbox)
    assert report.rejected == 1
    assert con.execute("SELECT reason FROM inbox_rejects").fetchall() == [
        ("deploy: args.deployed_at: required time is missing",)
    ]
    assert con.execute("SELECT count(*) FROM deploys").fetchone() == (0,)


def test_a_deploy_in_the_backlog_does_not_hold_back_a_page(tmp_path: Path) -> None:
    """The service folds pages first with what they depend on; a deploy changes no incident, so a page
    after it is folded ahead of it alone (and the deploy then with the backlog)."""
    deploy = parse_native(GOOD, NOW)
    page = {
        "source": "generic", "status": "firing", "service": "checkout-api", "fingerprint": "f1",
        "title": "Checkout down", "dedup_key": "a1", "starts_at": "2026-11-23T11:59:00", "severity": "SEV1",
    }  # fmt: skip
    con, inbox = _store_with(tmp_path, [to_entry(deploy, "ci-bot"), Entry("a1", "alert", "generic", page)])
    report = fold_inbox(con, inbox, budget_s=5.0)
    # the page alone went ahead (a row naming no service would otherwise take every earlier row along)
    assert (report.ahead, report.opened) == (1, ["INC-0001"])
    assert con.execute("SELECT version FROM deploy_feed").fetchall() == [("v1.4.2",)]
