"""API tokens → named actors (issue 15): parsing, lookup by token or by its SHA-256, and the errors a
person editing the file sees (which never quote a token)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipelines.auth.tokens import Actor, TokenError, combine, load_tokens, parse_tokens, tokens_for
from pipelines.config import Settings

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
