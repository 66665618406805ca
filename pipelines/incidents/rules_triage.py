"""The rule-based triage classifier: pure, deterministic, the answer whenever the model is not.

Severity, from the service's SLO status objects (`slo status --json`) and the alert's source severity:

    | SLO signal (firing burn-rate alerts of the service's SLOs)          | severity |
    | ------------------------------------------------------------------- | -------- |
    | page burn, and a budget exhausted or ≥ 2 SLOs burning               | SEV1     |
    | page burn                                                           | SEV2     |
    | ticket burn, and a budget exhausted                                 | SEV2     |
    | ticket burn, only slow (long window ≥ 3d), budget_remaining > 0.5   | SEV4     |
    | ticket burn                                                         | SEV3     |
    | nothing burning (or no SLO data)                                    | the source severity, else SEV3 |

    A source severity of SEV1 (a human or PagerDuty said P0/P1/SEV1) is never lowered by the rules.
    "Firing" is the status object's `alerts` list; an object without that key is judged by DESIGN §2's
    default thresholds on its `burn_rates` (page: 1h & 5m > 14.4 or 6h & 30m > 6; ticket: 1d & 2h > 3
    or 3d & 6h > 1). "Exhausted" is `budget_remaining ≤ 0` or policy_state `exhausted`.

Root-cause hypothesis, first match wins:

    1. deploy      a deploy of the service in the `deploy_window` (2 h) before `at` → "recent deploy X"
    2. repeat      a similar past incident that an allow-listed action fixed → that action again
    3. keywords    the alert's title/text: saturation (memory, cpu, pool, queue, gc…), crash (crash, oom,
                   panic…), cache (cache, evict, stampede), dependency (timeout, upstream, database…),
                   data_gap (no data, scrape…)
    4. unknown

Recommended action: the first allow-listed action for the hypothesis (deploy → rollback; saturation →
scale_up, restart; crash → restart; cache → flush_cache, restart; repeat → the action that worked),
else `escalate`. Dependency and data-gap hypotheses never pick an action: a remediation script cannot
fix another team's database or a scrape path. Confidence: deploy 0.7, repeat 0.65, keywords 0.5,
unknown 0.3; 0.1 less when no SLO of the service has data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.incidents.contract import SEVERITIES, TriageContext, TriageResult

DEPLOY_WINDOW = dt.timedelta(hours=2)

# hypothesis category → allow-listed actions that fit it, in order of preference
CATEGORY_ACTIONS: dict[str, tuple[str, ...]] = {
    "deploy": ("rollback",),
    "saturation": ("scale_up", "restart"),
    "crash": ("restart",),
    "cache": ("flush_cache", "restart"),
    "dependency": (),
    "data_gap": (),
    "unknown": (),
}
# Checked in this order; the first category with a keyword in the alert's title or text wins.
CATEGORY_KEYWORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("data_gap", re.compile(r"\b(no data|scrape|metrics gap|absent|missing metrics)\b")),
    ("crash", re.compile(r"\b(crash\w*|oom\w*|out of memory|panic\w*|segfault|restart loop)\b")),
    ("cache", re.compile(r"\b(cache|evict\w*|stampede)\b")),
    (
        "saturation",
        re.compile(
            r"\b(memory|cpu|saturat\w*|connection[- ]pool|pool|queue\w*|backlog|gc|throttl\w*|capacity"
            r"|leak\w*)\b"
        ),
    ),
    (
        "dependency",
        re.compile(r"\b(time[ds]? ?out\w*|upstream|dependency|database|db|failover|network|dns)\b"),
    ),
)
CONFIDENCE = {"deploy": 0.7, "repeat": 0.65, "keywords": 0.5, "unknown": 0.3}

# DESIGN §2 default multiwindow thresholds (used only when a status object carries no `alerts` list)
DEFAULT_PAGE = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
DEFAULT_TICKET = (("1d", "2h", 3.0), ("3d", "6h", 1.0))


@dataclass
class SloSignals:
    """What the service's SLO status says, reduced to the facts the severity table uses."""

    page: list[str] = field(default_factory=list)  # SLO ids with a page-level burn
    ticket: list[str] = field(default_factory=list)  # SLO ids with a ticket-level burn (and no page)
    ticket_slow_only: bool = True  # every ticket burn is a slow one (long window ≥ 3d)
    exhausted: list[str] = field(default_factory=list)
    min_budget_remaining: float | None = None
    with_data: int = 0

    @property
    def burning(self) -> int:
        return len(set(self.page) | set(self.ticket))


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _over(burn: dict[str, Any], long: str, short: str, factor: float) -> bool:
    a, b = _num(burn.get(long)), _num(burn.get(short))
    return a is not None and b is not None and a > factor and b > factor


def _window_minutes(text: object) -> int:
    m = re.fullmatch(r"(\d+)([mhdw])", str(text or ""))
    if not m:
        return 0
    return int(m.group(1)) * {"m": 1, "h": 60, "d": 1440, "w": 10080}[m.group(2)]


def slo_signals(slo_status: Sequence[dict[str, Any]]) -> SloSignals:
    """Reduce `slo status --json` objects to page/ticket/exhausted facts (see the module docstring)."""
    s = SloSignals()
    for obj in slo_status:
        slo_id = str(obj.get("slo", "?"))
        burn = obj.get("burn_rates") or {}
        budget = _num(obj.get("budget_remaining"))
        if obj.get("sli") is not None or budget is not None:
            s.with_data += 1
        if budget is not None:
            s.min_budget_remaining = (
                budget if s.min_budget_remaining is None else min(s.min_budget_remaining, budget)
            )
        if (budget is not None and budget <= 0) or obj.get("policy_state") == "exhausted":
            s.exhausted.append(slo_id)
        if "alerts" in obj:
            alerts = [a for a in obj.get("alerts") or [] if isinstance(a, dict)]
            page = any(a.get("severity") == "page" for a in alerts)
            tickets = [a for a in alerts if a.get("severity") == "ticket"]
            ticket = bool(tickets)
            slow = all(_window_minutes(a.get("long_window")) >= 3 * 1440 for a in tickets)
        else:
            page = any(_over(burn, *t) for t in DEFAULT_PAGE)
            fast = _over(burn, *DEFAULT_TICKET[0])
            ticket = fast or _over(burn, *DEFAULT_TICKET[1])
            slow = not fast
        if page:
            s.page.append(slo_id)
        elif ticket:
            s.ticket.append(slo_id)
            s.ticket_slow_only = s.ticket_slow_only and slow
    return s


def classify_severity(source_severity: str | None, signals: SloSignals) -> tuple[str, str]:
    """(severity, the rule that decided it) per the table in the module docstring."""
    source = source_severity if source_severity in SEVERITIES else None
    if signals.page and (signals.exhausted or signals.burning >= 2):
        why = "budget exhausted" if signals.exhausted else f"{signals.burning} SLOs burning"
        severity, rule = "SEV1", f"page-level burn on {', '.join(signals.page)} and {why}"
    elif signals.page:
        severity, rule = "SEV2", f"page-level burn on {', '.join(signals.page)}"
    elif signals.ticket and signals.exhausted:
        severity, rule = "SEV2", f"ticket-level burn on {', '.join(signals.ticket)} with a budget exhausted"
    elif signals.ticket and signals.ticket_slow_only and (signals.min_budget_remaining or 0) > 0.5:
        severity, rule = "SEV4", f"slow ticket-level burn on {', '.join(signals.ticket)}, budget above 50%"
    elif signals.ticket:
        severity, rule = "SEV3", f"ticket-level burn on {', '.join(signals.ticket)}"
    elif source:
        severity, rule = source, f"no SLO burning; the source said {source}"
    else:
        severity, rule = "SEV3", "no SLO burning and no source severity: SEV3 by default"
    if source == "SEV1" and severity != "SEV1":
        severity, rule = "SEV1", f"{rule}; kept at SEV1 because the source declared SEV1"
    return severity, rule


def parse_time(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, str) and value:
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def recent_deploy(
    deploys: Sequence[dict[str, Any]], at: dt.datetime | None, window: dt.timedelta = DEPLOY_WINDOW
) -> dict[str, Any] | None:
    """The latest deploy in `[at − window, at]`; with `at` None, the latest of those given."""
    best: tuple[dt.datetime, dict[str, Any]] | None = None
    for d in deploys:
        t = parse_time(d.get("deployed_at"))
        if t is None or (at is not None and not (at - window <= t <= at)):
            continue
        if best is None or t > best[0]:
            best = (t, d)
    return best[1] if best else None


def repeat_fix(similar: Sequence[dict[str, Any]], allowed: Sequence[str]) -> dict[str, Any] | None:
    """A similar past incident whose allow-listed remediation succeeded (keys below), most recent first.

    Each similar incident may carry `id`, `title`, `root_cause`, `resolved_at`, `remediation_action` and
    `remediation_status` (succeeded | failed | …): the fold fills what it knows.
    """
    for inc in similar:
        action = inc.get("remediation_action")
        if action in allowed and inc.get("remediation_status") == "succeeded":
            return inc
    return None


def keyword_category(*texts: str) -> str | None:
    text = " ".join(texts).lower()
    for category, pattern in CATEGORY_KEYWORDS:
        if pattern.search(text):
            return category
    return None


def first_allowed(category: str, allowed: Sequence[str]) -> str | None:
    return next((a for a in CATEGORY_ACTIONS.get(category, ()) if a in allowed), None)


def classify(ctx: TriageContext, *, at: dt.datetime | None = None) -> TriageResult:
    """The rules' triage of `ctx` (method `rules`); `at` is the alert's time, for deploy recency."""
    signals = slo_signals(ctx.slo_status)
    severity, severity_rule = classify_severity(ctx.source_severity, signals)
    allowed = list(ctx.allowed_actions)

    deploy = recent_deploy(ctx.recent_deploys, at)
    repeat = repeat_fix(ctx.similar_incidents, allowed)
    category = keyword_category(ctx.title, ctx.alert_text)
    action: str | None
    if deploy is not None:
        version = deploy.get("version") or "?"
        note = f": {deploy['description']}" if deploy.get("description") else ""
        hypothesis = f"recent deploy {version} at {parse_time(deploy.get('deployed_at'))}{note}"
        action, basis = first_allowed("deploy", allowed), "deploy"
    elif repeat is not None:
        what = repeat.get("root_cause") or repeat.get("title") or "same symptoms"
        hypothesis = f"repeat of {repeat.get('id', 'a past incident')}: {what}"
        action, basis = str(repeat["remediation_action"]), "repeat"
    elif category is not None:
        hypothesis = f"{category.replace('_', ' ')} (keywords in the alert)"
        action, basis = first_allowed(category, allowed), "keywords"
    else:
        hypothesis, action, basis = (
            "unknown: no recent deploy, no similar fixed incident, no known pattern",
            None,
            "unknown",
        )

    confidence = CONFIDENCE[basis] - (0.1 if signals.with_data == 0 else 0.0)
    action_note = (
        f"{action} is allow-listed and fits the hypothesis"
        if action
        else "no allow-listed action fits the hypothesis, so a human decides"
    )
    return TriageResult(
        method="rules",
        severity=severity,
        root_cause_hypothesis=hypothesis,
        recommended_action=action or "escalate",
        confidence=round(confidence, 2),
        rationale=f"{severity}: {severity_rule}. Hypothesis from {basis}. {action_note}.",
    )
