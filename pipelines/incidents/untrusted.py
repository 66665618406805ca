"""Alert text is untrusted data: quote it safely for the model, and spot text that tries to instruct it.

Anyone who can make an alert fire (or post to the ingest endpoint) controls its title, description and
labels. Two defences, both needed: the text is quoted to the model as a JSON string inside a block
marked with a random nonce (so it cannot close the block or fake a section), and text that reads like
instructions to an AI or a shell sends the incident to a human whatever the model answers. Neither is
what keeps an action from running: only the service's allow-list does that (routing.decide_route).
"""

from __future__ import annotations

import json
import re
import secrets

# Phrases that address a model or smuggle a command; one match is enough to escalate.
INSTRUCTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "override",
        re.compile(
            r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instruction|prompt|rule|guideline|context|above|previous)",
            re.I | re.S,
        ),
    ),
    (
        "role play",
        re.compile(r"\b(you are now|act as|pretend to be|new instructions?|system prompt)\b", re.I),
    ),
    (
        "chat markup",
        re.compile(r"(^|\n)\s*(system|assistant|human|user)\s*:|<\s*/?\s*(system|assistant|untrusted)", re.I),
    ),
    (
        "steering",
        re.compile(
            r"\b(recommend(ed)?[_ ]action|tool_use|record_triage|set (the )?severity|classify (this|it) as|"
            r"severity\s*[:=]\s*sev\s*[34]|(recommend|choose|pick|select|run|execute|perform)\s+(the\s+)?"
            r"(action|remediation|command|script)\b)",
            re.I,
        ),
    ),
    (
        "shell",
        re.compile(
            r"(\brm\s+-[a-z]*[rf]|\bcurl\b[^\n|]*\|\s*(ba)?sh\b|\bwget\b|\bchmod\s+[0-7+]|\bsudo\b|\$\(|`[^`]+`|"
            r";\s*(sh|bash)\b|\bmkfs\b|\bdd\s+if=)",
            re.I,
        ),
    ),
)


def find_instructions(text: str) -> list[str]:
    """The kinds of instruction-like content found in `text` (empty when it reads like an alert).

    Alert fields often arrive JSON-encoded (the fold passes each alert as a JSON object), so the text
    is also read with JSON's escapes undone: a `\\nSystem:` inside a string is a new line to a model.
    """
    unescaped = text.replace("\\n", "\n").replace('\\"', '"').replace("\\u003c", "<").replace("\\u003e", ">")
    return [
        name for name, pattern in INSTRUCTION_PATTERNS if pattern.search(text) or pattern.search(unescaped)
    ]


def quote(value: object, *, label: str = "alert", max_chars: int = 8_000) -> tuple[str, str]:
    """(block, nonce): `value` as one line of JSON between markers no alert can predict or contain.

    A string becomes a JSON string (its newlines and quotes escaped, so it cannot end the block or fake
    a section); a list of records becomes a JSON array on one line, its oldest items dropped to fit.
    """
    nonce = secrets.token_hex(8)
    if isinstance(value, str):
        body = json.dumps(
            value[:max_chars] + ("…[truncated]" if len(value) > max_chars else ""), ensure_ascii=False
        )
    else:
        items = list(value) if isinstance(value, list | tuple) else [value]
        body = json.dumps(items, ensure_ascii=False, default=str)
        while len(body) > max_chars and items:
            items = items[:-1]
            body = json.dumps(items, ensure_ascii=False, default=str)
    block = f"<untrusted_{label} id={nonce}>\n{body}\n</untrusted_{label} id={nonce}>"
    return block, nonce
