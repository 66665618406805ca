"""Incident documents, rendered from the incident, its timeline and its SLI data (seeds 001, 002, 000).

- `triage_report`: one per triage attempt: what the triage saw and answered, and the route taken.
- `stakeholder_update`: drafts from seed 002's templates (initial notification, status update, resolved)
  with the next update due by severity: SEV1 15 min, SEV2 30 min, SEV3 2 h, SEV4 daily. A severity
  change is news of its own: an update at the change, and the next one due at the new severity's
  cadence from it.
- `postmortem`: seed 002's post-mortem template filled from the timeline and SLI data; a draft when the
  incident is resolved, the final version when it is closed. The narrative sections are left for
  people (no model writes them).
- `runbook_suggestion`: after the post-mortem (seed 000's update_runbook step), stored for review and
  never applied to `runbooks/` by anything.

Rendering is pure (`render_*` take dicts and lists); `documents_due` decides what is missing. The
documents are Markdown: every value from outside (titles, services, root causes, fixes, action items,
actors' notes on the timeline, triage and model text) goes in through `md`, shown as literal text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from pipelines.incidents.narrative import Narrative
from pipelines.incidents.timers import postmortem_due
from pipelines.outside_text import markdown as md

UPDATE_CADENCE = {
    "SEV1": dt.timedelta(minutes=15),
    "SEV2": dt.timedelta(minutes=30),
    "SEV3": dt.timedelta(hours=2),
    "SEV4": dt.timedelta(days=1),
}
# Seed 004's document steps, in the order they land on the timeline (the post-mortem is its incident
# document), as the timeline's "<kind> drafted" messages start.
SEED_004_ORDER = ("technical analysis", "remediation plan", "postmortem")
_DETAILS_LATER = "recovered; details in the post-mortem"
_NEXT_STEPS = {"Monitoring": "monitor the SLI until it holds"}
STATUS_WORDS = {
    "triggered": "Investigating",
    "acknowledged": "Investigating",
    "mitigated": "Monitoring",
    "resolved": "Resolved",
    "closed": "Resolved",
}


def next_update_due(severity: str | None, at: dt.datetime) -> dt.datetime:
    """When the next stakeholder update is due after one sent at `at` (unknown severity: as SEV2)."""
    return at + UPDATE_CADENCE.get(severity or "SEV2", UPDATE_CADENCE["SEV2"])


def update_due(status: str, updates: list[dict[str, Any]]) -> dt.datetime | None:
    """When the incident's next stakeholder update is due, for showing (list, detail): the last update's
    `due_at`, and never once the incident is resolved or closed (no update is due then, so none is
    "overdue"; an earlier update's due time does not count either)."""
    if status in ("resolved", "closed") or not updates:
        return None
    last = max(updates, key=lambda u: u["created_at"])
    due = last.get("due_at")
    return None if due is None or due != due else due  # NaT/NaN from a DataFrame: none


def status_word(inc: dict[str, Any]) -> str:
    word = STATUS_WORDS.get(inc["status"], "Investigating")
    if word == "Investigating" and inc.get("root_cause"):
        return "Identified"
    return word


def _t(value: dt.datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _minutes(a: dt.datetime | None, b: dt.datetime | None) -> str:
    if a is None or b is None:
        return "—"
    m = (b - a).total_seconds() / 60
    return f"{m:.0f} min" if m < 120 else f"{m / 60:.1f} h"


def _budget(slos: list[dict[str, Any]]) -> str:
    parts = [
        f"{md(s['slo_id'])} {s['budget_consumed'] * 100:.1f}% of its window's error budget"
        for s in slos
        if s.get("budget_consumed") is not None
    ]
    return "; ".join(parts) or "no linked SLO data"


# --- stakeholder updates ---------------------------------------------------------------------------


def render_stakeholder_update(
    inc: dict[str, Any], slos: list[dict[str, Any]], at: dt.datetime
) -> tuple[str, dt.datetime | None]:
    """(body, next update due) for the incident as it stands at `at`."""
    sev, svc, title = inc.get("severity") or "SEV?", md(inc["service"]), md(inc["title"])
    word = status_word(inc)
    impact = f"{title}. Budget spent so far: {_budget(slos)}."
    if word == "Resolved":
        body = "\n".join(
            [
                f"Subject: [RESOLVED] {svc} — {title}",
                "",
                f"Resolution: {md(inc.get('fix') or inc.get('root_cause')) or _DETAILS_LATER}",
                f"Duration: {_t(inc.get('impact_start'))} to {_t(inc.get('resolved_at'))} "
                f"({_minutes(inc.get('impact_start'), inc.get('resolved_at'))})",
                f"Impact Summary: {impact}",
                f"Follow-up: {_postmortem_follow_up(inc)}; action items tracked on the incident "
                f"({inc['id']}).",
            ]
        )
        return body, None
    due = next_update_due(inc.get("severity"), at)
    first = inc["status"] == "triggered" and not inc.get("acknowledged_at")
    if first:
        body = "\n".join(
            [
                f"Subject: [{sev}] {svc} — {title}",
                "",
                f"Current Status: We are investigating an issue affecting {svc}.",
                f"Impact: {impact}",
                f"Next Update: by {_t(due)} or when we have more information.",
            ]
        )
        if sev == "SEV1":  # seed 001: executives get a brief of their own for the most severe incidents
            cause = f"Known — {md(inc['root_cause'])}" if inc.get("root_cause") else "Under investigation"
            body += "\n\n" + "\n".join(
                [
                    f"INCIDENT BRIEF — {_t(at)}",
                    f"SITUATION: {svc} is degraded: {title}",
                    f"CAUSE: {cause}",
                    "ACTION: on-call engaged; see the incident timeline — ETA unknown",
                    f"IMPACT: {_budget(slos)}",
                    f"NEXT UPDATE: {_t(due)}",
                ]
            )
    else:
        actions = md(inc.get("_actions")) or "see the incident timeline"
        body = "\n".join(
            [
                f"Subject: [{sev} UPDATE] {svc} — {word}",
                "",
                f"Status: {word}",
                f"Current Understanding: {md(inc.get('root_cause')) or 'cause under investigation'}",
                f"Actions Taken: {actions}",
                f"Next Steps: {_NEXT_STEPS.get(word, 'continue the investigation')}",
                f"Next Update: by {_t(due)}.",
            ]
        )
    return body, due


def _postmortem_follow_up(inc: dict[str, Any]) -> str:
    due = postmortem_due(inc)
    if due is None:
        return "Post-mortem draft on the incident"
    return f"Post-mortem scheduled, due by {_t(due)}"


# --- triage report -------------------------------------------------------------------------------


def render_triage_report(inc: dict[str, Any], triage: dict[str, Any], route: dict[str, Any] | None) -> str:
    lines = [
        f"# Triage report: {inc['id']} — {md(inc['title'])}",
        "",
        f"- Service: {md(inc['service'])}",
        f"- Detected: {_t(inc.get('detected_at'))} ({inc.get('detected_at_source')})",
        f"- Impact start (estimate): {_t(inc.get('impact_start'))} ({inc.get('impact_start_source')})",
        f"- Triage attempt {triage['attempt']}: method **{triage['method']}**"
        + (
            f" (model {md(triage['model'])}, {triage['latency_ms']:.0f} ms)"
            if triage.get("model") and triage.get("latency_ms") is not None
            else ""
        ),
        f"- Severity: **{triage['severity']}**, confidence {triage.get('confidence') or 0:.2f}",
        f"- Root-cause hypothesis: {md(triage.get('root_cause_hypothesis')) or '—'}",
        f"- Recommended action: {md(triage.get('recommended_action') or 'escalate')}",
        f"- Rationale: {md(triage.get('rationale')) or '—'}",
    ]
    if triage.get("error"):
        lines.append(f"- Fell back to rules because: {md(triage['error'])}")
    if route:
        lines.append(f"- Route: **{route['route']}** — {md(route['reason'])}")
    return "\n".join(lines) + "\n"


# --- post-mortem ---------------------------------------------------------------------------------


def render_postmortem(
    inc: dict[str, Any],
    timeline: list[dict[str, Any]],
    slos: list[dict[str, Any]],
    action_items: list[dict[str, Any]],
    *,
    final: bool,
    narrative: Narrative | None = None,
    analysis: str | None = None,
) -> str:
    """Seed 002's template; with `narrative` (the model's, checked against the timeline: `narrative.py`)
    its "What happened" and 5 Whys, else the rule-based draft's. `analysis`: the technical analysis
    document, whose ranked causes the post-mortem quotes (seed 004's incident document carries them)."""
    start, end = inc.get("impact_start"), inc.get("resolved_at")
    day = (start or inc["detected_at"]).date()
    rows = [
        f"| {e['occurred_at'].strftime('%H:%M' if e['occurred_at'].date() == day else '%m-%d %H:%M')} "
        f"| {md(e['message'])} |"
        for e in timeline
    ]
    items = [
        f"| {i + 1} | {md(a['title'])} | {md(a['owner'])} | {md(a['priority'])} | {a['due_date']} | "
        f"{'Done' if a['status'] == 'done' else 'Not Started'} |"
        for i, a in enumerate(action_items)
    ] or ["| — | (no action items recorded yet) | | | | |"]
    summary = (
        f"{md(inc['service'])} was affected by: {md(inc['title'])}. "
        f"Impact from {_t(start)} to {_t(end)}; {_budget(slos)}. "
        + (
            f"Root cause ({md(inc['root_cause_category'])}): {md(inc['root_cause'].rstrip('.'))}."
            if inc.get("root_cause")
            else "Root cause not yet recorded."
        )
    )
    parts = [
        f"# Post-Mortem: {md(inc['title'])}",
        "",
        f"**Date**: {(start or inc['detected_at']):%Y-%m-%d}",
        f"**Severity**: {inc.get('severity') or 'untriaged'}",
        f"**Duration**: {_t(start)} – {_t(end)} ({_minutes(start, end)})",
        f"**Author**: incident pipeline ({inc['id']})",
        f"**Status**: {'Final' if final else 'Draft'}",
        "",
        "## Executive Summary",
        summary,
        "",
        "## Impact",
        f"- Users affected: {_affected(slos)}",
        "- Revenue impact: N/A",
        f"- SLO budget consumed: {_budget(slos)}",
        f"- Detection: TTD {_minutes(start, inc.get('detected_at'))}, TTA "
        f"{_minutes(inc.get('detected_at'), inc.get('acknowledged_at'))}, "
        f"TTM {_minutes(start, inc.get('mitigated_at'))}, TTR {_minutes(start, end)}",
        f"- Impact start estimated by: {inc.get('impact_method') or inc.get('impact_start_source')}",
        "",
        "## Timeline (UTC)",
        "| Time | Event |",
        "|------|-------|",
        *rows,
        "",
        "## Root Cause Analysis",
        "### What happened",
        *(
            [
                md(narrative.what_happened),
                f"*Drafted by the model {md(narrative.model)} from the timeline "
                "and checked against it (times, severities, actions); for the responders to review.*",
            ]
            if narrative
            else [md(inc.get("root_cause")) or "[to be written by the responders]"]
        ),
        *(
            ["### Likely causes (from the technical analysis)", *ranked_causes(analysis)]
            if analysis and ranked_causes(analysis)
            else []
        ),
        "### Contributing Factors",
        f"1. Immediate cause: {md(inc.get('root_cause')) or '[answer]'}",
        "2. Underlying cause: [answer]",
        "3. Systemic cause: [answer]",
        "### 5 Whys",
        *(
            [f"{n}. {md(w)}" for n, w in enumerate(narrative.five_whys, 1)]
            if narrative
            else ["1. Why did the service degrade? → [answer]"]
        ),
        "",
        "## What Went Well",
        "- [to be filled in the review]",
        "## What Went Poorly",
        "- [to be filled in the review]",
        "",
        "## Action Items",
        "| ID | Action | Owner | Priority | Due Date | Status |",
        "|----|--------|-------|----------|----------|--------|",
        *items,
        "",
        "## Lessons Learned",
        f"Fix applied: {md(inc.get('fix')) or '[to be written]'}",
    ]
    return "\n".join(parts) + "\n"


def ranked_causes(analysis: str) -> list[str]:
    """The ranked-cause lines of a technical analysis document ("1. **…** (score 0.80)"), as written."""
    return [line for line in analysis.splitlines() if line[:1].isdigit() and ". **" in line[:6]]


def _affected(slos: list[dict[str, Any]]) -> str:
    """From the SLI data: bad of valid events per linked SLO over the incident's span."""
    parts = [
        f"{s['bad']:,} of {s['valid']:,} events bad ({s['bad'] / s['valid'] * 100:.2f}%) on {md(s['slo_id'])}"
        for s in slos
        if s.get("valid")
    ]
    return "; ".join(parts) or "unknown (no SLI data linked)"


def render_runbook_suggestion(
    inc: dict[str, Any], action_items: list[dict[str, Any]], remediations: list[dict[str, Any]]
) -> str:
    worked = [r["action"] for r in remediations if r.get("verified")]
    failed = [
        r["action"]
        for r in remediations
        if r["status"] in ("failed", "timed_out") or r.get("verified") is False
    ]
    lines = [
        f"# Suggested runbook update for {md(inc['service'])} (from {inc['id']}; for review, not applied)",
        "",
        # Not a code span: a backtick in the service name would end it; escaped text cannot.
        f"Proposed addition to runbooks/{md(inc['service'])}/runbook.md:",
        "",
        f"## Known failure: {md(inc.get('root_cause_category')) or 'unknown'} — {md(inc['title'])}",
        f"- Symptom / detection: {md(inc['title'])} (fingerprint {md(inc.get('fingerprint'))})",
        f"- Root cause seen: {md(inc.get('root_cause')) or '—'}",
        f"- Fix that worked: {md(inc.get('fix')) or '—'}",
    ]
    if worked:
        lines.append(f"- Automated remediation that recovered the SLI: {', '.join(f'`{a}`' for a in worked)}")
    if failed:
        lines.append(f"- Remediation that did not help here: {', '.join(f'`{a}`' for a in failed)}")
    for a in action_items:
        if "runbook" in a["title"].lower():
            lines.append(f"- Post-mortem action: {md(a['title'])} ({md(a['owner'])})")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DocumentDue:
    kind: str  # technical_analysis | remediation_plan | stakeholder_update | postmortem | runbook_suggestion
    at: dt.datetime
    reason: str
    final: bool = False


def documents_due(
    inc: dict[str, Any],
    docs: list[dict[str, Any]],
    now: dt.datetime,
    triaged_at: dt.datetime | None = None,
    severities: list[tuple[dt.datetime, str]] | None = None,
) -> list[DocumentDue]:
    """What documents the incident needs now, given the ones it has (pure). `triaged_at`: when its first
    triage was recorded (None: not triaged yet). `severities`: when the incident's severity was set to
    what, in any order (each triage's result, each upgrade), to date an update for a severity change."""
    due: list[DocumentDue] = []
    # Seed 004: the technical analysis, then the remediation plan, once triaged and before the incident
    # document (the post-mortem); an incident that has a post-mortem already does not get them after it.
    kinds = {d["kind"] for d in docs}
    if triaged_at is not None and "technical_analysis" not in kinds and "postmortem" not in kinds:
        at = min(triaged_at, inc.get("resolved_at") or triaged_at)
        due.append(DocumentDue("technical_analysis", at, "after the triage"))
        due.append(DocumentDue("remediation_plan", at, "from the technical analysis"))
    updates = [d for d in docs if d["kind"] == "stakeholder_update"]
    word = status_word(inc)
    last = updates[-1] if updates else None
    # When the incident reached its current status (the update is dated then, not when noticed).
    changed_at = {
        "Resolved": inc.get("resolved_at"),
        "Monitoring": inc.get("mitigated_at"),
        "Identified": inc.get("root_cause_at"),
        "Investigating": inc.get("acknowledged_at"),
    }.get(word) or inc["updated_at"]
    if last is None:
        due.append(DocumentDue("stakeholder_update", inc["detected_at"], "initial notification"))
    elif _word_of(last["body"]) != word:
        due.append(DocumentDue("stakeholder_update", changed_at, f"status is now {word}"))
    elif (
        word != "Resolved"
        and inc.get("severity") in UPDATE_CADENCE
        and _severity_of(last["body"]) not in (None, inc["severity"])
    ):
        at = severity_changed_at(inc, last["created_at"], severities or [])
        due.append(DocumentDue("stakeholder_update", at, f"severity is now {inc['severity']}"))
    elif last.get("due_at") is not None and last["due_at"] <= now and word != "Resolved":
        due.append(DocumentDue("stakeholder_update", now, f"update due since {_t(last['due_at'])}"))
    pms = [d for d in docs if d["kind"] == "postmortem"]
    if inc["status"] == "resolved" and not any(d["created_at"] >= inc["resolved_at"] for d in pms):
        due.append(DocumentDue("postmortem", inc["resolved_at"], "incident resolved: draft for review"))
    if inc["status"] == "closed":
        if not any("**Status**: Final" in d["body"] for d in pms):
            due.append(DocumentDue("postmortem", inc["closed_at"], "post-mortem done", final=True))
        if not any(d["kind"] == "runbook_suggestion" for d in docs):
            due.append(
                DocumentDue("runbook_suggestion", inc["closed_at"], "after the post-mortem")
            )
    return due


def severity_changed_at(
    inc: dict[str, Any], since: dt.datetime, severities: list[tuple[dt.datetime, str]]
) -> dt.datetime:
    """When the incident's severity became what it is after `since` (its last update): the first time
    after `since` it was set to it; without one (a change with no time recorded), its last change
    (`updated_at`). Never before `since`: updates stay in order."""
    after = [at for at, sev in severities if sev == inc["severity"] and at >= since]
    return max(min(after) if after else inc["updated_at"], since)


def _severity_of(body: str) -> str | None:
    """The severity an update was written for, from its subject (`[SEV3]`, `[SEV2 UPDATE]`); None for
    the resolved one and an unclassified incident's."""
    first = body.split("\n", 1)[0]
    match = re.match(r"Subject: \[(SEV[1-4])[\] ]", first)
    return match.group(1) if match else None


def _word_of(body: str) -> str:
    for line in body.splitlines():
        if line.startswith("Status: "):
            return line.removeprefix("Status: ").strip()
        if line.startswith("Subject: [RESOLVED]"):
            return "Resolved"
        if line.startswith("Current Status: We are investigating"):
            return "Investigating"
    return ""
