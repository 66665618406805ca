"""Seed 004's technical analysis and remediation plan, as their own documents (issue 17, item 6).

Rule-based and deterministic: the same stored facts give the same ranking, and every score can be
checked by hand from the rules below. The facts (gathered by `steps/documents.py` from the store):

- `slos`: per linked SLO, bad and valid events over the incident's span, its target, the minutes with a
  bad event (`bad_minutes`) and the budget the incident consumed;
- `deploys`: the service's deploys before the impact start, newest first (the first `DEPLOY_LOOKBACK`
  of them are suspects; the one after the suspects is the version to roll back to);
- `similar`: past incidents of the service (`context.similar_incidents`: same fingerprint first);
- `triage`: the latest triage attempt (its hypothesis and confidence).

Scores (higher first; ties by title):

    recent deploy (the newest within 24 h of the start)  0.80 if ≤ 60 min before, 0.50 if ≤ 6 h, else 0.25
    a past root cause of this service (per category)     0.60 when one had the same fingerprint, else 0.30;
                                                         +0.10 per further incident with it, at most 0.90
    the triage's hypothesis (unless "unknown…")          0.50 × its confidence
    a dependency or infrastructure fault                 0.35 without a suspect deploy, 0.15 with one

The plan takes the hypotheses in that order: each becomes a step with an owner and a rollback, then the
verification (every linked SLO burning below 1) and seed 001's escalation matrix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pipelines.outside_text import markdown as md

DEPLOY_LOOKBACK = dt.timedelta(hours=24)
ESCALATE_AFTER = {"SEV1": "30 min", "SEV2": "2 h"}  # seed 001's escalation matrix


@dataclass(frozen=True)
class Hypothesis:
    key: str  # deploy | recurrence:<category> | triage | infrastructure
    title: str
    score: float
    evidence: list[str] = field(default_factory=list)
    step: str = ""
    owner: str = "on-call"
    rollback: str = "—"


def _t(value: dt.datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def sli_lines(slos: list[dict[str, Any]]) -> list[str]:
    """One line per linked SLO: bad/valid events, error rate, burn rate over the span, bad minutes."""
    lines = []
    for s in slos:
        if not s.get("valid"):
            lines.append(f"{md(s['slo_id'])}: no SLI data over the incident's span")
            continue
        rate = s["bad"] / s["valid"]
        burn = rate / (1 - s["target"]) if s.get("target") is not None and s["target"] < 1 else None
        lines.append(
            f"{md(s['slo_id'])}: {s['bad']:,} of {s['valid']:,} events bad ({rate * 100:.2f}%), burn rate "
            + ("—" if burn is None else f"{burn:.1f}")
            + f" over the span, {s.get('bad_minutes') or 0} bad minute(s)"
            + (
                f", {s['budget_consumed'] * 100:.1f}% of the window's error budget"
                if s.get("budget_consumed") is not None
                else ""
            )
        )
    return lines


def suspects(inc: dict[str, Any], deploys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deploys within `DEPLOY_LOOKBACK` before the impact start (newest first)."""
    start = inc.get("impact_start") or inc["detected_at"]
    return [d for d in deploys if start - DEPLOY_LOOKBACK <= d["deployed_at"] <= start]


def rank(inc: dict[str, Any], facts: dict[str, Any]) -> list[Hypothesis]:
    """The ranked hypotheses for `inc` from its facts (see the module's scores)."""
    start = inc.get("impact_start") or inc["detected_at"]
    service = md(inc["service"])
    sli = sli_lines(facts.get("slos", []))
    out: list[Hypothesis] = []
    deploys = facts.get("deploys", [])
    near = suspects(inc, deploys)
    if near:
        d = near[0]
        minutes = round((start - d["deployed_at"]).total_seconds() / 60)
        score = 0.8 if minutes <= 60 else 0.5 if minutes <= 360 else 0.25
        older = [x for x in deploys if x["deployed_at"] < d["deployed_at"]]
        previous = older[0]["version"] if older else None
        who = d.get("who")
        out.append(
            Hypothesis(
                "deploy",
                f"the deploy of {md(d['version'])} at {_t(d['deployed_at'])}",
                score,
                [
                    f"deployed {minutes} min before the impact start ({_t(start)})"
                    + (f" by {md(who)}" if who else "")
                    + (f": {md(d['description'])}" if d.get("description") else ""),
                    *[f"also deployed: {md(x['version'])} at {_t(x['deployed_at'])}" for x in near[1:]],
                    *sli,
                ],
                step=f"Roll back {service} from {md(d['version'])} to "
                + (md(previous) if previous else "the version before it"),
                owner=f"{md(who)} (deployed it), with the on-call" if who else "on-call",
                rollback=f"redeploy {md(d['version'])} once the cause is fixed",
            )
        )
    by_category: dict[str, list[dict[str, Any]]] = {}
    for s in facts.get("similar", []):
        if s.get("root_cause_category") or s.get("root_cause"):
            by_category.setdefault(str(s.get("root_cause_category") or "unknown"), []).append(s)
    for category, past in by_category.items():
        same = any(p.get("same_fingerprint") for p in past)
        score = min(0.9, (0.6 if same else 0.3) + 0.1 * (len(past) - 1))
        fixed = next((p for p in past if p.get("fix")), None)
        out.append(
            Hypothesis(
                f"recurrence:{category}",
                f"a recurrence of a past {md(category)} cause: {md(past[0].get('root_cause')) or '—'}",
                round(score, 2),
                [
                    f"{p['id']} ({'same alert' if p.get('same_fingerprint') else 'same service'}, "
                    f"{md(p.get('severity')) or 'SEV?'}): {md(p.get('root_cause')) or '—'}; fix: "
                    f"{md(p.get('fix')) or '—'}"
                    + (f"; resolved in {p['ttr_minutes']} min" if p.get("ttr_minutes") is not None else "")
                    for p in past
                ],
                step=(
                    f"Apply the fix that worked in {fixed['id']}: {md(fixed['fix'])}"
                    if fixed
                    else f"Check for the {md(category)} cause seen in {past[0]['id']}"
                ),
                rollback="undo that change if the SLI does not recover within 15 min",
            )
        )
    tri = facts.get("triage")
    guess = str((tri or {}).get("root_cause_hypothesis") or "")
    if tri and guess and not guess.lower().startswith("unknown") and tri.get("severity"):
        conf = float(tri.get("confidence") or 0.0)
        out.append(
            Hypothesis(
                "triage",
                f"the triage's hypothesis: {md(tri['root_cause_hypothesis'])}",
                round(0.5 * conf, 2),
                [
                    f"triage attempt {tri.get('attempt', 1)} ({md(tri.get('method'))}), severity "
                    f"{md(tri['severity'])}, confidence {conf:.2f}"
                ],
                step=f"{md(tri.get('recommended_action') or 'escalate')} (the triage's recommended action)",
                rollback="as the runbook's action says",
            )
        )
    out.append(
        Hypothesis(
            "infrastructure",
            "a dependency or infrastructure fault",
            0.15 if near else 0.35,
            (["no deploy of the service in the 24 h before the start"] if not near else []) + sli,
            step=f"Check {service}'s dependencies and hosts; fail over or scale out",
            rollback="fail back / scale in once the SLI holds",
        )
    )
    return sorted(out, key=lambda h: (-h.score, h.title))


def render_technical_analysis(inc: dict[str, Any], ranked: list[Hypothesis], facts: dict[str, Any]) -> str:
    start = inc.get("impact_start") or inc["detected_at"]
    sli = [f"- {line}" for line in sli_lines(facts.get("slos", []))] or ["- no linked SLO"]
    near = [
        f"- {md(d['version'])} at {_t(d['deployed_at'])}" + (f" by {md(d['who'])}" if d.get("who") else "")
        for d in suspects(inc, facts.get("deploys", []))
    ] or ["- none"]
    similar = [
        f"- {s['id']}: {md(s.get('title'))} ({md(s.get('root_cause_category')) or 'no root cause recorded'})"
        for s in facts.get("similar", [])
    ] or ["- none"]
    lines = [
        f"# Technical analysis: {inc['id']} — {md(inc['title'])}",
        "",
        f"- Service: {md(inc['service'])}; severity {inc.get('severity') or 'untriaged'}",
        f"- Impact start: {_t(start)}; detected {_t(inc['detected_at'])}",
        "",
        "## Evidence",
        "### SLI data",
        *sli,
        "### Deploys before the start (24 h)",
        *near,
        "### Similar incidents",
        *similar,
        "",
        "## Likely causes (ranked; rule scores, see docs/incidents.md)",
    ]
    for n, h in enumerate(ranked, 1):
        lines.append(f"{n}. **{h.title}** (score {h.score:.2f})")
        lines.extend(f"   - Evidence: {e}" for e in h.evidence)
    return "\n".join(lines) + "\n"


def render_remediation_plan(inc: dict[str, Any], ranked: list[Hypothesis], facts: dict[str, Any]) -> str:
    lines = [
        f"# Remediation plan: {inc['id']} — {md(inc['title'])}",
        "",
        "| # | Step | Owner | Rollback |",
        "|---|------|-------|----------|",
    ]
    for n, h in enumerate(ranked, 1):
        lines.append(f"| {n} | {h.step} (if: {h.title}) | {h.owner} | {h.rollback} |")
    verify = [
        f"- {md(s['slo_id'])}: error rate back under {(1 - s['target']) * 100:.3g}% (burn rate below 1)"
        for s in facts.get("slos", [])
        if s.get("target") is not None
    ]
    after = ESCALATE_AFTER.get(str(inc.get("severity")))
    escalation = f"not resolved in {after} → next level (the escalation matrix)" if after else "the next tier"
    lines += [
        "",
        "## Verification after each step",
        *(verify or ["- the alert resolves"]),
        "",
        "## If the steps do not work",
        f"- Escalation: {escalation}",
    ]
    return "\n".join(lines) + "\n"
