"""API tokens → named actors (issue 15): parsing, lookup by token or by its SHA-256, and the errors a
person editing the file sees (which never quote a token)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipelines.auth.tokens import (
    Actor,
    TokenError,
    combine,
    load_tokens,
    parse_tokens,
    raw_tokens,
    raw_tokens_for,
    tokens_for,
)
from pipelines.config import Settings, scrub

ALICE = "alice-token-0123456789"
BOB = "bob-token-abcdefghijkl"
CAROL = "carol-token-ZYXWVUTSRQ"
CAROL_SHA = hashlib.sha256(CAROL.encode()).hexdigest()
ALICE_SHA = hashlib.sha256(ALICE.encode()).hexdigest()

TEXT = f"""
tokens:
  "{ALICE}": {{name: alice, email: alice@example.com, role: approver}}
  "{BOB}": {{name: bob, role: responder}}
  "sha256:{CAROL_SHA}": {{name: carol, role: viewer}}
"""


def test_each_token_names_its_actor() -> None:
    table = parse_tokens(TEXT)
    assert len(table) == 3
    assert table.lookup(ALICE) == Actor("alice", "approver", "alice@example.com")
    assert table.lookup(BOB) == Actor("bob", "responder", None)
    assert table.lookup(CAROL) == Actor("carol", "viewer", None)  # matched through its digest


@pytest.mark.parametrize(
    "given", [None, "", "alice-token-012345678", ALICE + "x", ALICE.upper(), f"sha256:{CAROL_SHA}"]
)
def test_anything_else_names_nobody(given: str | None) -> None:
    # a near miss, a prefix, and the digest itself (it is not the token) all name nobody
    assert parse_tokens(TEXT).lookup(given) is None


def test_who_may_approve() -> None:
    table = parse_tokens(TEXT)
    assert table.names_allowed("approve_remediation") == ["alice"]
    assert table.names_allowed("acknowledge") == ["alice", "bob"]
    assert table.lookup(BOB) is not None and not table.lookup(BOB).may("approve_remediation")


def test_empty_text_is_no_tokens() -> None:
    assert not parse_tokens("")
    assert not parse_tokens("tokens: {}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "tokens: expected a mapping with one field, `tokens:`"),
        ("users: {}\n", "tokens: expected a mapping with one field, `tokens:`"),
        ("tokens: [a]\n", "tokens: tokens: expected a mapping of tokens to {name, email?, role}"),
        (f'tokens: {{"{ALICE}": alice}}\n', "tokens: tokens entry 1: expected {name, email?, role}"),
        (f'tokens: {{"{ALICE}": {{role: approver}}}}\n', "tokens entry 1: name: required"),
        (
            f'tokens: {{"{ALICE}": {{name: alice, role: boss}}}}\n',
            "tokens entry 1 (alice): role: 'boss' is not a role; expected one of viewer, responder, "
            "approver, admin",
        ),
        (
            f'tokens: {{"{ALICE}": {{name: alice, role: viewer, team: x}}}}\n',
            "tokens entry 1 (alice): team: unknown field",
        ),
        (
            f'tokens: {{"{ALICE}": {{name: alice, role: viewer, email: nobody}}}}\n',
            "tokens entry 1 (alice): email: expected an address",
        ),
        (
            'tokens: {"short": {name: alice, role: viewer}}\n',
            "tokens entry 1 (alice): the token is too short",
        ),
        ('tokens: {"sha256:abc": {name: alice, role: viewer}}\n', "sha256: must be followed by 64 hex"),
        (
            f'tokens: {{"{ALICE}": {{name: a, role: viewer}},\n'
            f'         "sha256:{ALICE_SHA}": {{name: b, role: admin}}}}\n',
            "tokens entry 2 (b): the same token as an earlier entry",
        ),
    ],
)
def test_a_bad_mapping_says_which_entry_and_what(text: str, message: str) -> None:
    with pytest.raises(TokenError) as caught:
        parse_tokens(text)
    assert message in str(caught.value)
    assert ALICE not in str(caught.value)  # an error never repeats a token


def test_unparsable_yaml_does_not_quote_the_line() -> None:
    with pytest.raises(TokenError) as caught:
        parse_tokens(f'tokens:\n  "{ALICE}": {{name: [alice\n')
    assert str(caught.value).startswith("tokens: not YAML (line ")
    assert ALICE not in str(caught.value)


def test_file_and_environment_together(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f'tokens:\n  "{ALICE}": {{name: alice, role: approver}}\n')
    env = f'{{"tokens": {{"{BOB}": {{"name": "bob", "role": "responder"}}}}}}'  # JSON is YAML too
    settings = Settings.load({"SLO_API_TOKENS_FILE": str(path), "SLO_API_TOKENS": env})
    table = tokens_for(settings)
    assert [table.lookup(t).name for t in (ALICE, BOB)] == ["alice", "bob"]  # type: ignore[union-attr]
    assert settings.describe()["api_tokens"] == "set"  # the env mapping is a secret
    assert not tokens_for(Settings.load({}))
    with pytest.raises(TokenError, match="the same token in both"):
        combine(load_tokens(path), load_tokens(path))
    with pytest.raises(TokenError, match="cannot read the tokens file"):
        load_tokens(tmp_path / "missing.yaml")


def test_approval_timeout_setting() -> None:
    assert Settings.load({}).approval_timeout_s == 900.0
    assert Settings.load({"SLO_APPROVAL_TIMEOUT": "60"}).approval_timeout_s == 60.0


DAVE = "dave-token-mnopqrstuv"


def test_scrub_hides_every_personal_token_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./.env of the checkout
    path = tmp_path / "tokens.yaml"
    carol = f'  "sha256:{CAROL_SHA}": {{name: carol, role: viewer}}\n'
    path.write_text(f'tokens:\n  "{ALICE}": {{name: alice, role: approver}}\n{carol}')
    env = f'tokens:\n  "{BOB}": {{name: bob, role: responder}}\n  "{DAVE}": {{name: dave, role: admin}}\n'
    settings = Settings.load({"SLO_API_TOKENS_FILE": str(path), "SLO_API_TOKENS": env})
    text = f"curl -H 'Authorization: Bearer {ALICE}' failed; then {BOB}, {DAVE} and sha256:{CAROL_SHA}"
    assert scrub(text, settings) == (
        f"curl -H 'Authorization: Bearer ***' failed; then ***, *** and sha256:{CAROL_SHA}"
    )  # the sha256 entry holds no token: nothing of it is a secret
    # each raw token, no more: not the YAML text of SLO_API_TOKENS, nor a digest
    assert sorted(settings.secrets()) == sorted([ALICE, BOB, DAVE])
    assert raw_tokens_for(settings) == sorted([ALICE, BOB, DAVE])


def test_a_broken_tokens_file_gives_what_it_can_and_secrets_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def secrets_with(path: Path) -> list[str]:
        return Settings.load({"SLO_API_TOKENS_FILE": str(path)}).secrets()

    not_yaml = tmp_path / "not-yaml.yaml"  # a tab in the indentation: the YAML parser gives up
    not_yaml.write_text(f'tokens:\n  "{ALICE}":\n    name: alice\n\trole: approver\n  {BOB}: {{name: bob}}\n')
    with pytest.raises(TokenError, match="not YAML"):
        load_tokens(not_yaml)  # the service would refuse it …
    assert sorted(secrets_with(not_yaml)) == sorted([ALICE, BOB])  # … its tokens are scrubbed all the same
    refused = tmp_path / "refused.yaml"  # YAML, but an entry without a role and a token that is too short
    refused.write_text(f'tokens:\n  "{ALICE}": {{name: alice}}\n  "short": {{name: s, role: viewer}}\n')
    with pytest.raises(TokenError, match="role"):
        load_tokens(refused)
    assert secrets_with(refused) == [ALICE]  # a 5-character key would scrub ordinary words: left out
    not_utf8 = tmp_path / "latin1.yaml"
    not_utf8.write_bytes(f'tokens:\n  "{ALICE}": {{name: "caf\xe9", role: viewer}}\n'.encode("latin-1"))
    assert secrets_with(not_utf8) == [ALICE]
    assert secrets_with(tmp_path / "missing.yaml") == []
    assert secrets_with(tmp_path) == []  # a directory: unreadable as a file
    assert (
        raw_tokens("tokens: [") == []
        and raw_tokens("") == []
        and raw_tokens("tokens:\n  2026-13-45: x") == []
    )
