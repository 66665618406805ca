"""An optional executive summary written by a model, given only the review's computed figures.

The answer is data, never trusted: each sentence is checked as claims about the named figures
(`claims.check`: a number must be a figure of the quantity it sits next to, a direction word must agree
with the sign of the change). A rejected summary is replaced by the rule-written one (`rule_summary`),
with the reason, in every format. Without ANTHROPIC_API_KEY nothing is called.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipelines.analytics import claims
from pipelines.analytics.formats import minutes, pct

DEFAULT_MODEL = "claude-sonnet-4-6"  # SLO_TRIAGE_MODEL overrides
TIMEOUT_SECONDS = 30

_SYSTEM = (
    "You write the executive summary of a quarterly reliability review for engineering leadership: "
    "3 to 5 plain sentences on what went well, what did not, and what to do next. Use only the figures "
    "in the JSON you are given, each next to the name of what it measures (e.g. 'MTTR p50 was 25 min'), "
    "and quote no other number; say 'improved' or 'worse' only where the previous quarter's figure "
    "shows it. Answer with the summary text only."
)


@dataclass(frozen=True)
class SummaryResult:
    accepted: bool
    text: str
    model: str
    problems: list[str]


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
    problems = claims.check(text, claims.quantities(review)) if text else ["empty answer"]
    return SummaryResult(accepted=not problems, text=text, model=model, problems=problems)


def _direction(now: float | None, before: float | None, lower_is_better: bool = True) -> str:
    if now is None or before is None:
        return ""
    if now == before:
        return ", the same as the previous quarter"
    better = (now < before) == lower_is_better
    return f", {'better' if better else 'worse'} than {minutes(before)} the previous quarter"


def rule_summary(review: dict[str, Any]) -> str:
    """The summary the rules write from the figures alone (every claim passes `claims.check`)."""
    h = review["headline"]
    metrics = {m["metric"]: m for m in review["success_metrics"]}
    sentences = [
        f"In {review['quarter']}, {h['slos_met']} of {h['slos_measured']} SLOs met their targets "
        f"({h.get('slos_missed', 0)} missed, {h['slos_exhausted']} exhausted their error budget).",
        f"There were {h['incidents']} incidents against {h['incidents_previous_quarter']} the previous "
        "quarter.",
    ]
    for key, name in (("mttd_sev1_sev2", "MTTD (SEV1/SEV2)"), ("mttr_sev1", "MTTR (SEV1)")):
        v = h[key]
        if v["p50"] is not None:
            sentences.append(
                f"{name} p50 was {minutes(v['p50'])} against a target of {metrics[key]['target']}"
                f"{_direction(v['p50'], v['previous_p50'])}."
            )
    pm = metrics["postmortems_within_48h"]
    if pm["value"] is not None:
        sentences.append(
            f"{pct(pm['value'], against=pm['target_value'])} of SEV1/SEV2 post-mortems were held within 48 h "
            f"(target {pm['target']})."
        )
    if review["risks"]:
        sentences.append(f"Top risk: {review['risks'][0]['risk']}.")
    if review["recommendations"]:
        sentences.append(f"First step: {review['recommendations'][0]['recommendation']}")
    return " ".join(sentences)


def attach_summary(review: dict[str, Any], env: dict[str, str]) -> None:
    """When a model key is set, add `executive_summary`: the model's if every claim holds, else the
    rule-written one carrying the rejected text and the reason (also in `executive_summary_rejected`)."""
    key = env.get("ANTHROPIC_API_KEY")
    if not key:
        return
    model = env.get("SLO_TRIAGE_MODEL") or DEFAULT_MODEL
    try:
        result = executive_summary(
            review, api_key=key, base_url=env.get("ANTHROPIC_BASE_URL") or None, model=model
        )
    except Exception as exc:  # the model is optional: any failure leaves the rule-written summary
        _reject(review, None, model, f"model call failed: {type(exc).__name__}")
        return
    if result.accepted:
        review["executive_summary"] = {"text": result.text, "model": result.model, "model_written": True}
    else:
        _reject(review, result.text, result.model, "; ".join(result.problems))


def _reject(review: dict[str, Any], text: str | None, model: str, reason: str) -> None:
    review["executive_summary"] = {
        "text": rule_summary(review),
        "model": None,
        "model_written": False,
        "rejected_model_summary": {"text": text, "model": model, "reason": reason},
    }
    review["executive_summary_rejected"] = reason
