"""An optional executive summary written by a model, given only the review's computed figures.

The answer is data, never trusted: every number it quotes must be one of the figures it was given
(as written, rounded, or as a percentage of a fraction); otherwise the summary is rejected and the
report says so. Without ANTHROPIC_API_KEY nothing is called.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "claude-sonnet-4-6"  # SLO_TRIAGE_MODEL overrides
TIMEOUT_SECONDS = 30

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")

_SYSTEM = (
    "You write the executive summary of a quarterly reliability review for engineering leadership: "
    "3 to 5 plain sentences on what went well, what did not, and what to do next. Use only the figures "
    "in the JSON you are given and quote no other number. Answer with the summary text only."
)


@dataclass(frozen=True)
class SummaryResult:
    accepted: bool
    text: str
    model: str
    unknown_numbers: list[str]


def figures(review: dict[str, Any]) -> dict[str, Any]:
    """The part of the review the model sees: the headline, success metrics, risks, recommendations."""
    return {
        "quarter": review["quarter"],
        "previous_quarter": review["previous_quarter"],
        "headline": review["headline"],
        "success_metrics": [
            {k: m[k] for k in ("title", "target", "value", "unit", "met")} for m in review["success_metrics"]
        ],
        "top_risks": review["risks"],
        "recommendations": review["recommendations"],
    }


def _numbers(text: str) -> list[str]:
    return [m.group(0) for m in _NUMBER.finditer(text)]


def unknown_numbers(summary: str, given: dict[str, Any]) -> list[str]:
    """Numbers in `summary` that are not among the given figures (as written, rounded to the summary's
    precision, or ×100 for a fraction quoted as a percentage)."""
    allowed = [float(n.replace(",", "")) for n in _numbers(json.dumps(given))]
    bad = []
    for raw in _numbers(summary):
        value = float(raw.replace(",", ""))
        digits = len(raw.split(".")[1]) if "." in raw else 0
        if not any(
            round(a, digits) == value or round(a * 100, digits) == value or abs(a - value) < 1e-9
            for a in allowed
        ):
            bad.append(raw)
    return bad


def executive_summary(
    review: dict[str, Any], *, api_key: str, base_url: str | None = None, model: str | None = None
) -> SummaryResult:
    """Ask the model (Messages API) for a summary of the figures and check every number it quotes."""
    import anthropic  # lazy: the SDK takes ~2 s to import, paid only when a summary is asked for

    given = figures(review)
    model = model or DEFAULT_MODEL
    client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=TIMEOUT_SECONDS, max_retries=1)
    message = client.messages.create(
        model=model,
        max_tokens=600,
        system=_SYSTEM,
        messages=[{"role": "user", "content": "Figures (JSON):\n" + json.dumps(given, default=str)}],
    )
    text = "".join(getattr(block, "text", "") for block in message.content).strip()
    bad = unknown_numbers(text, given)
    return SummaryResult(accepted=bool(text) and not bad, text=text, model=model, unknown_numbers=bad)


def attach_summary(review: dict[str, Any], env: dict[str, str]) -> None:
    """Add `executive_summary` (or `executive_summary_rejected`) to the review when a key is set."""
    key = env.get("ANTHROPIC_API_KEY")
    if not key:
        return
    try:
        result = executive_summary(
            review,
            api_key=key,
            base_url=env.get("ANTHROPIC_BASE_URL") or None,
            model=env.get("SLO_TRIAGE_MODEL"),
        )
    except Exception as exc:  # the model is optional: any failure leaves the rule-based report
        review["executive_summary_rejected"] = f"model call failed: {type(exc).__name__}"
        return
    if result.accepted:
        review["executive_summary"] = {"text": result.text, "model": result.model, "model_written": True}
    else:
        review["executive_summary_rejected"] = (
            "quoted numbers not among the figures: " + ", ".join(result.unknown_numbers)
            if result.unknown_numbers
            else "empty answer"
        )
