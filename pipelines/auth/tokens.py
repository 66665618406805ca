"""API tokens → named actors with a role: who sends a command through `POST /api/incidents/{id}/commands`.

Pure parsing and lookup; no I/O but `load_tokens` reading its file. The mapping is YAML (a file named by
`SLO_API_TOKENS_FILE`, or the same text in `SLO_API_TOKENS`):

    tokens:
      "k6Qm…at least 16 characters…":            # the token itself, or
        name: alice
        email: alice@example.com                  # optional
        role: approver                            # viewer | responder | approver | admin
      "sha256:9f86d08…64 hex digits…":           # its SHA-256, so the file need not hold the token
        name: bob
        role: responder

A command is recorded as sent by the token's `name`, and allowed when `roles.may(role, command)`.
Tokens are compared by their SHA-256 digests with `hmac.compare_digest`, against every entry (no early
exit), so the time a lookup takes does not say which token, or how much of one, matched.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from pipelines.auth.roles import ROLES, may
from pipelines.errors import ConfigError

if TYPE_CHECKING:  # config's `Settings.secrets()` reads the raw tokens through this module
    from pipelines.config import Settings

MIN_TOKEN_CHARS = 16
DIGEST_PREFIX = "sha256:"
_HEX = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")  # printable: it lands on timelines and in Slack
_EMAIL = re.compile(r"[^\s@]{1,100}@[^\s@]{1,150}")


class TokenError(ConfigError):
    """A tokens mapping that cannot be used; the message says where and what."""


@dataclass(frozen=True)
class Actor:
    """Who a token acts as."""

    name: str
    role: str
    email: str | None = None

    def may(self, action: str) -> bool:
        return may(self.role, action)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class TokenTable:
    """Token digests → actors. Empty when no mapping is configured (falsy)."""

    entries: tuple[tuple[bytes, Actor], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, token: str | None) -> Actor | None:
        """The actor of `token`, or None; compares against every entry in constant time."""
        if not token:
            return None
        given = digest(token)
        found: Actor | None = None
        for known, actor in self.entries:
            if hmac.compare_digest(given, known) and found is None:
                found = actor
        return found

    def names_allowed(self, action: str) -> list[str]:
        """The names of the actors whose role allows `action`, sorted (e.g. who may approve)."""
        return sorted({actor.name for _, actor in self.entries if actor.may(action)})


def parse_tokens(text: str, origin: str = "tokens") -> TokenTable:
    """A TokenTable from the YAML text of a tokens mapping; TokenError names the entry that is wrong
    (by its name or position, never by the token)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # the parser quotes the offending line, which may hold a token: say where only
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise TokenError(f"{origin}: not YAML{where}") from None
    if data is None:
        return TokenTable()
    if not isinstance(data, dict) or set(data) - {"tokens"}:
        raise TokenError(f"{origin}: expected a mapping with one field, `tokens:` (token → name, role)")
    tokens = data.get("tokens") or {}
    if not isinstance(tokens, dict):
        raise TokenError(f"{origin}: tokens: expected a mapping of tokens to {{name, email?, role}}")
    entries: list[tuple[bytes, Actor]] = []
    seen: set[bytes] = set()
    for n, (token, value) in enumerate(tokens.items(), start=1):
        where = f"{origin}: tokens entry {n}"
        if not isinstance(value, dict):
            raise TokenError(f"{where}: expected {{name, email?, role}}")
        name = value.get("name")
        if isinstance(name, str) and _NAME.fullmatch(name.strip()):
            where = f"{origin}: tokens entry {n} ({name.strip()})"
        unknown = sorted(set(value) - {"name", "email", "role"})
        if unknown:
            raise TokenError(f"{where}: {unknown[0]}: unknown field; expected name, email, role")
        if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
            raise TokenError(f"{where}: name: required, 1 to 100 printable characters")
        role = value.get("role")
        if role not in ROLES:
            raise TokenError(f"{where}: role: {role!r} is not a role; expected one of {', '.join(ROLES)}")
        email = value.get("email")
        if email is not None and (not isinstance(email, str) or not _EMAIL.fullmatch(email.strip())):
            raise TokenError(f"{where}: email: expected an address such as alice@example.com")
        key = _token_digest(token, where)
        if key in seen:
            raise TokenError(f"{where}: the same token as an earlier entry; each token names one actor")
        seen.add(key)
        entries.append((key, Actor(name.strip(), str(role), email.strip() if email else None)))
    return TokenTable(tuple(entries))


def _token_digest(token: object, where: str) -> bytes:
    if not isinstance(token, str):
        raise TokenError(f"{where}: the token must be text (quote it)")
    if token.startswith(DIGEST_PREFIX):
        hex_digest = token[len(DIGEST_PREFIX) :].strip().lower()
        if not _HEX.fullmatch(hex_digest):
            raise TokenError(f"{where}: {DIGEST_PREFIX} must be followed by 64 hex digits")
        return bytes.fromhex(hex_digest)
    if len(token) < MIN_TOKEN_CHARS or token != token.strip():
        raise TokenError(
            f"{where}: the token is too short or has spaces around it; use at least {MIN_TOKEN_CHARS} "
            "characters, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return digest(token)


def load_tokens(path: Path) -> TokenTable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenError(f"{path}: cannot read the tokens file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise TokenError(f"{path}: not UTF-8 text") from None
    return parse_tokens(text, str(path))


def combine(*tables: TokenTable) -> TokenTable:
    """One table from several (the file and the environment); a token in two of them is refused."""
    entries = [entry for table in tables for entry in table.entries]
    if len({key for key, _ in entries}) != len(entries):
        raise TokenError(
            "SLO_API_TOKENS_FILE and SLO_API_TOKENS: the same token in both; each token names one actor"
        )
    return TokenTable(tuple(entries))


_KEY_LINE = re.compile(r"""^[ \t]+(?:"([^"\n]+)"|'([^'\n]+)'|([^\s:#'"][^\s:]*))[ \t]*:(?:[ \t]|$)""", re.M)


def raw_tokens(text: str) -> list[str]:
    """The tokens themselves written in the YAML text of a tokens mapping, to scrub from stored text.

    Never raises: from a mapping that `parse_tokens` would refuse it takes every text key under
    `tokens:` all the same (a token is a secret even in an entry that is wrong); from text that is not
    YAML or has no `tokens:` mapping, every indented `key:` of at least MIN_TOKEN_CHARS characters (the
    field names, name/email/role, are shorter).
    A `sha256:` key holds no token, so it gives nothing; nor does a key shorter than MIN_TOKEN_CHARS
    (never a usable token, and scrubbing a short string would mangle ordinary text).
    """
    try:
        data = yaml.safe_load(text)
    except Exception:  # not only YAMLError: e.g. ValueError from a date-like key such as 2026-13-45
        data = None
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if isinstance(tokens, dict):
        keys = [k for k in tokens if isinstance(k, str)]
    else:
        keys = [next(g for g in m.groups() if g) for m in _KEY_LINE.finditer(text)]
    found = {k.strip() for k in keys}
    return sorted(t for t in found if len(t) >= MIN_TOKEN_CHARS and not t.startswith(DIGEST_PREFIX))


def raw_tokens_for(settings: Settings) -> list[str]:
    """The raw tokens of `SLO_API_TOKENS_FILE` and `SLO_API_TOKENS` (for `Settings.secrets()`).

    Never raises: an unreadable or broken file gives what can be read of it, or nothing.
    """
    texts = [settings.api_tokens or ""]
    if settings.api_tokens_file:
        # unreadable: the service refuses to start on it (tokens_for); here there is nothing to scrub
        with contextlib.suppress(OSError, ValueError):
            texts.append(settings.api_tokens_file.read_text(encoding="utf-8", errors="surrogateescape"))
    return sorted({token for text in texts if text for token in raw_tokens(text)})


def tokens_for(settings: Settings) -> TokenTable:
    """The configured tokens: `SLO_API_TOKENS_FILE` and `SLO_API_TOKENS` together (empty when neither)."""
    from_file = load_tokens(settings.api_tokens_file) if settings.api_tokens_file else TokenTable()
    from_env = parse_tokens(settings.api_tokens, "SLO_API_TOKENS") if settings.api_tokens else TokenTable()
    return combine(from_file, from_env)
