"""Each source workflow (seeds 001–004) walked step by step through the real `slo serve`.

One test per seed drives a real service (`SLO_CYCLE_SECONDS=0.5`) with the local stand-ins of what it
talks to (tests/support/receivers.py: PagerDuty Events v2 and REST, Slack, Statuspage; the Messages API
server of test_triage_messages_api for the model's triage), through every step the seed lists that the
product has, in the seed's order: the alert in through `POST /api/incidents/ingest`, every human step as
a named person's command through `POST /api/incidents/{id}/commands` (personal tokens), each one sent
once the step before it is on the published incident (`incident_detail`, what `slo incidents show`
prints). Each test then compares the incident's timeline, reduced to the entries that stand for the
seed's steps, with the seed's steps in order: a list a person can read against the seed.

The communications lead is assigned before any approval of the status page or the stakeholder updates,
and that same person approves them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.incidents.read import incident_detail
from pipelines.ingest.pagerduty import sign
from pipelines.store import Snapshot
from tests.integration.test_triage_messages_api import API_KEY, MessagesServer, Reply, tool_message
from tests.support.receivers import Endpoint, PagerDutyRest, Statuspage
from tests.support.service import ROOT, Service, running_service
from tests.unit.test_incident_flow import SCRIPT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning"),
]

INGEST = "ingest-token-for-machines-0001"
# alice commands, bob responds, carol is the communications lead (she approves what is published)
ALICE, BOB, CAROL = "alice-token-0123456789", "bob-token-abcdefghijkl", "carol-token-zyxwvuts9876"
TOKENS = f"""tokens:
  "{ALICE}": {{name: alice, role: approver}}
  "{BOB}": {{name: bob, role: responder}}
  "{CAROL}": {{name: carol, role: approver}}
"""
PD_TOKEN, PD_FROM, PD_ROUTING = "y_NbAkKc66ryYTWUXYEu", "slo-bot@example.com", "R0UT1NG-KEY-0123456789abcdef"
PD_SECRET = "webhook-signing-secret-0123"
SP_KEY, SP_PAGE = "statuspage-api-key-0123456789", "kctbh9vrtdwd"
IID = "INC-0001"
WEBHOOKS = ROOT / "tests" / "fixtures" / "webhooks"


@dataclass
class Walk:
    """A running `slo serve` with every outside part stood in for, and the steps sent to it."""

    svc: Service
    model: MessagesServer
    pagerduty: Endpoint
    slack: Endpoint
    page: Statuspage
    rest: PagerDutyRest
    snapshot: Snapshot

    def detail(self) -> dict[str, Any]:
        """The incident as published now ({} before its first publish)."""
        with contextlib.suppress(Exception), self.snapshot.connection() as con:
            return incident_detail(con, IID) or {}
        return {}

    def until(
        self, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        detail: dict[str, Any] = {}
        while time.monotonic() < deadline:
            detail = self.detail()
            if detail and done(detail):
                return detail
            time.sleep(0.2)
        shown = [(e["kind"], e["message"][:80]) for e in detail.get("timeline", [])]
        raise AssertionError(f"{what}: not within {timeout}s; timeline: {shown}")

    def landed(self, kind: str, count: int = 1, what: str | None = None) -> dict[str, Any]:
        """Wait until `count` timeline entries of `kind` are on the published incident."""
        return self.until(lambda d: kinds(d).count(kind) >= count, what or f"{count} × {kind}")

    def step(self, token: str, command: str, lands_as: str, nth: int = 0, **args: Any) -> dict[str, Any]:
        """A person's step through the command route; waits until it is on the timeline (the `nth`
        entry of `lands_as`; 0: one more than before)."""
        before = (nth - 1) if nth else kinds(self.detail()).count(lands_as)
        body = json.dumps({"command": command, "args": args}).encode()
        status, answer = self.svc.request(
            "POST",
            f"/api/incidents/{IID}/commands",
            body,
            {"content-type": "application/json", "authorization": f"Bearer {token}"},
        )
        assert status == 202, (command, status, answer)
        return self.landed(lands_as, before + 1, f"{command} → {lands_as}")


def stamp(at: dt.datetime) -> str:
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def kinds(detail: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in detail.get("timeline", [])]


def runbooks(tmp_path: Path, *, critical: bool) -> Path:
    """The `shop` service's runbook: one allow-listed action, `restart`, run by a real script."""
    book = tmp_path / "runbooks" / "shop"
    book.mkdir(parents=True, exist_ok=True)
    (book / "runbook.md").write_text("# shop\nRestart the workers when they crash.\n")
    flag = str(critical).lower()
    (book / "actions.yaml").write_text(
        f"actions:\n  - name: restart\n    description: restart workers\n    critical: {flag}\n"
    )
    (book / "remediate.sh").write_text(SCRIPT)
    (book / "remediate.sh").chmod(0o755)
    return tmp_path / "runbooks"


def triage_answer(severity: str, action: str, hypothesis: str) -> Reply:
    return Reply(
        body=tool_message(
            {
                "severity": severity,
                "root_cause_hypothesis": hypothesis,
                "recommended_action": action,
                "confidence": 0.8,
                "rationale": "scripted for the walk",
            }
        )
    )


@contextlib.contextmanager
def walk(tmp_path: Path, answer: Reply, *, critical: bool = False) -> Iterator[Walk]:
    model, pagerduty, slack = MessagesServer(), Endpoint([202]), Endpoint([200], b"ok")
    page, rest = Statuspage(SP_KEY, SP_PAGE), PagerDutyRest(PD_TOKEN, {"PGR0VU2": "triggered"})
    model.replies = [answer]
    model.thread.start()
    (tmp_path / "tokens.yaml").write_text(TOKENS)
    env = {
        "SLO_CYCLE_SECONDS": "0.5",
        "SLO_API_TOKENS_FILE": str(tmp_path / "tokens.yaml"),
        "SLO_RUNBOOKS_DIR": str(runbooks(tmp_path, critical=critical)),
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": model.url,
        "PAGERDUTY_ROUTING_KEY": PD_ROUTING,
        "PAGERDUTY_EVENTS_URL": f"{pagerduty.url}/v2/enqueue",
        "PAGERDUTY_API_URL": rest.url,
        "PAGERDUTY_API_TOKEN": PD_TOKEN,
        "PAGERDUTY_FROM": PD_FROM,
        "PAGERDUTY_WEBHOOK_SECRET": PD_SECRET,
        "SLACK_WEBHOOK_URL": f"{slack.url}/services/T0/B0/x",
        "STATUSPAGE_API_KEY": SP_KEY,
        "STATUSPAGE_API_URL": f"{page.url}/v1",
        "STATUSPAGE_PAGE_ID": SP_PAGE,
        "SLO_STATUSPAGE_SERVICES": "shop=cmp_shop",
        "SLO_NOTIFY_BACKOFF": "0",
        # the recovery watch after a person's mitigation, 6 s instead of 30 min, so a walk sees it end
        "SLO_RECOVERY_WATCH_MINUTES": "0.1",
    }
    try:
        with running_service(tmp_path, token=INGEST, env=env) as svc:
            snapshot = Snapshot(svc.data_dir)
            try:
                yield Walk(svc, model, pagerduty, slack, page, rest, snapshot)
            finally:
                snapshot.close()
    finally:
        for server in (pagerduty, slack, page, rest):
            server.close()
        model.stop.set()
        model.httpd.shutdown()
        model.httpd.server_close()


def alert(w: Walk, title: str, severity: str, **extra: Any) -> dict[str, Any]:
    body = {"service": "shop", "title": title, "severity": severity, **extra}
    status, answer = w.svc.post("/api/incidents/ingest", json.dumps(body).encode())
    assert status == 202, answer
    return w.landed("triage", what="the alert triaged")


def entries(detail: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["kind"], e["message"]) for e in detail["timeline"]]


def sent_texts(endpoint: Endpoint) -> list[str]:
    return [body.get("text", "") for _, body, _ in endpoint.received]


def walked(detail: dict[str, Any], steps: list[str]) -> list[str]:
    """The incident's timeline as "kind: message" lines, kept where a line starts with one of the seed's
    `steps` and shown as that step: the steps in the order they landed."""
    out = []
    for kind, message in entries(detail):
        line = f"{kind}: {message}"
        out += [step for step in dict.fromkeys(steps) if line.startswith(step)][:1]
    return out


def scheduled(detail: dict[str, Any], slack: list[str]) -> tuple[str, str]:
    """The post-mortem's scheduling, checked against the resolution by hand: its one
    `postmortem_scheduled` entry at the resolution, due 48 h after it, and its one Slack notice; returns
    the incident's severity and the post-mortem's owner."""
    resolved = dt.datetime.fromisoformat(detail["resolved_at"].replace("Z", "+00:00"))
    [entry] = [e for e in detail["timeline"] if e["kind"] == "postmortem_scheduled"]
    assert entry["occurred_at"] == detail["resolved_at"]
    due = f"{resolved + dt.timedelta(hours=48):%Y-%m-%d %H:%M} UTC"
    sev, owner = detail["severity"], entry["data"]["owner"]
    within = f"({sev}: within 48 h of the resolution)"
    assert entry["message"] == f"post-mortem due by {due} {within}; owner {owner}"
    [notice] = [t for t in slack if "*Post-mortem scheduled*" in t]
    assert f"*Due by:* {due} {within}\n*Owner:* {owner}\n" in notice
    return sev, owner


def test_seed_001_incident_response_runbook(tmp_path: Path) -> None:
    """Seed 001's five steps for a P0, with its status page, executive brief and escalation matrix.

    The alert is 29.5 minutes old when it arrives, so the matrix's "P0 not resolved in 30 min" falls
    due during the walk, after the root cause is found and before the mitigation (the seed's sequence:
    investigation within 5-30 minutes, mitigation within 15-60)."""
    detected = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=29, seconds=30)
    answer = triage_answer("SEV1", "escalate", "The 14:00 deploy broke the checkout payment call.")
    with walk(tmp_path, answer) as w:
        # Step 1: detection and triage: the alert, classified P0, the response team activated
        alert(w, "Checkout down: payments fail", "P0", starts_at=stamp(detected))
        w.landed("escalated")
        # 29.5 minutes old: its 15-minute stakeholder update is due at once (still the first one's form)
        w.until(lambda d: "update due since" in str(entries(d)), "the overdue update drafted")
        w.step(BOB, "acknowledge", "acknowledged")
        w.step(ALICE, "assign", "role_assigned", 1, role="ic", person="alice")
        w.step(ALICE, "assign", "role_assigned", 2, role="comms", person="carol")
        w.step(ALICE, "assign", "role_assigned", 3, role="tech", person="bob")
        # the support responder's user communication and the executive brief (P0 only), carol's
        w.step(CAROL, "approve_updates", "stakeholder_update_sent")
        w.step(CAROL, "approve_status", "status_page_posted", note="Payments fail for every customer")
        # Step 2: investigation: the root cause found
        w.step(BOB, "root_cause", "root_cause", category="deploy", text="the 14:00 deploy", fix="rollback")
        # the escalation matrix: P0 not resolved in 30 min → the next level
        w.until(lambda d: any("escalation matrix" in m for _, m in entries(d)), "the 30-min timer", 40)
        # Step 3: mitigation (the rollback), the status page and the stakeholders told
        w.step(BOB, "mitigate", "status_page_updated")
        # Step 4: resolution verification: the watch after the fix (30 min; 6 s here) ends clean
        w.landed("recovery_held")
        w.step(ALICE, "resolve", "status_page_resolved")
        # Step 5: the post-mortem and its action items
        w.step(ALICE, "action_item", "action_item", title="Canary the payment client", owner="bob",
               due_date="2026-12-31")  # fmt: skip
        w.step(ALICE, "close", "closed")
        detail = w.until(lambda d: "postmortem drafted (post-mortem done)" in str(entries(d)), "the final")
        slack, page = sent_texts(w.slack), w.page.incidents["sp0001"]
    assert walked(detail, SEED_001) == SEED_001, "\n".join(walked(detail, SEED_001))
    # Step 5's "within 48 hours": due 48 h after the resolution, owned by the incident commander
    assert scheduled(detail, slack) == ("SEV1", "alice")
    # the executive brief went to the stakeholders with the first update (P0 only)
    [first] = [t for t in slack if "Subject: [SEV1] shop" in t]
    assert "INCIDENT BRIEF — " in first and "CAUSE: Under investigation" in first
    # the status page in the seed's template: investigating was skipped (acknowledged before the post)
    assert [u.splitlines()[1] for u in page["updates"]] == [
        "Status: Identified", "Status: Monitoring", "Status: Resolved"
    ]  # fmt: skip
    assert all(u.splitlines()[2] == "Impact: Payments fail for every customer" for u in page["updates"])


SEED_001 = [
    # Step 1: detection and triage
    "alert: alert fired: Checkout down: payments fail (SEV1)",
    "triage: triage (model, claude-sonnet-4-20250514): SEV1, action escalate",
    "escalated: escalated to on-call-primary",
    "notification: pagerduty: sent — tier 1 (on-call-primary)",
    "acknowledged: acknowledged",
    "role_assigned: incident commander: alice",
    "declared: INC-0001 declared SEV1: Checkout down: payments fail; incident commander: alice",
    "role_assigned: communications lead: carol",
    "role_assigned: technical lead: bob",
    "stakeholder_update_sent: stakeholder update ([SEV1] shop — Checkout down: payments fail)",
    "status_page_posted: status page incident sp0001 created: identified",
    # Step 2: investigation
    "root_cause: root cause (deploy): the 14:00 deploy",
    "stakeholder_update_sent: stakeholder update ([SEV1 UPDATE] shop — Identified)",
    # the escalation matrix
    "timer: not resolved 30 min after detection (SEV1, the escalation matrix): escalating to the next level",
    "notification: pagerduty: sent — tier 2 (on-call-secondary)",
    # Step 3: mitigation, the status page and the stakeholders
    "mitigated: mitigated",
    "stakeholder_update_sent: stakeholder update ([SEV1 UPDATE] shop — Monitoring)",
    "status_page_updated: status page incident sp0001 updated: monitoring",
    # Step 4: resolution verification (the metrics watched after the fix), then the resolution
    "recovery_held: recovery held: no new alert for 6 s after the mitigation",
    "resolved: resolved",
    "postmortem_scheduled: post-mortem due by ",  # Step 5: the post-mortem within 48 hours
    "document: postmortem drafted (incident resolved: draft for review)",
    "stakeholder_update_sent: stakeholder update ([RESOLVED] shop",
    "status_page_resolved: status page incident sp0001 resolved",
    # Step 5: post-mortem
    "action_item: action item INC-0001-A1: Canary the payment client → bob",
    "closed: closed (post-mortem done)",
    "document: postmortem drafted (post-mortem done)",
]


def test_seed_002_incident_commander_workflow(tmp_path: Path) -> None:
    """Seed 002's four steps for an incident first classified SEV3, raised to SEV2 by its escalation
    trigger "customer-reported → at least SEV2", with every role assigned, the stakeholder updates at
    their cadence, and "no root cause after 2 h (SEV2) → next tier": the alert is 1 h 59.5 min old when
    it arrives, so that timer falls due during the walk, before the technical lead finds the cause.

    The raise to SEV2 is news for the stakeholders: an update is drafted at the raise, the one the
    communications lead approves (the SEV3 one drafted at detection is never sent), and the next is due
    at SEV2's 30-minute cadence from it (SEV3's 2 hours from detection would have fallen due during the
    walk). The post-mortem is scheduled at the resolution, due 48 h later, owned by the commander."""
    detected = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1, minutes=59, seconds=30)
    answer = triage_answer("SEV3", "escalate", "Card tokens expire early after the vault upgrade.")
    with walk(tmp_path, answer) as w:
        # Step 1: detection and declaration: the alert, its severity, the incident declared
        alert(w, "Checkout errors for some cards", "warning", starts_at=stamp(detected))
        w.landed("escalated")
        w.step(ALICE, "severity_trigger", "severity_upgraded", trigger="customer_reported",
               note="paying accounts opened tickets")  # fmt: skip
        w.landed("ic_requested")  # a SEV2 with no incident commander: one is asked for
        w.step(ALICE, "assign", "role_assigned", 1, role="ic", person="alice")
        w.step(ALICE, "assign", "role_assigned", 2, role="comms", person="carol")
        w.step(ALICE, "assign", "role_assigned", 3, role="tech", person="bob")
        w.step(ALICE, "assign", "role_assigned", 4, role="scribe", person="erin")
        # Step 2: structured response: the communications lead's updates at the severity's cadence
        w.step(CAROL, "approve_updates", "stakeholder_update_sent")
        w.step(BOB, "acknowledge", "acknowledged")
        # the escalation trigger: no root cause 2 h after detection (SEV2) → the next tier
        w.until(lambda d: any(m.startswith("no root cause 2 h") for _, m in entries(d)), "the timer", 40)
        w.step(BOB, "root_cause", "root_cause", category="dependency", text="the card vault upgrade",
               fix="pinned the vault's token lifetime")  # fmt: skip
        # Step 3: mitigation, then resolved and the all-clear
        w.step(BOB, "mitigate", "mitigated")
        w.landed("recovery_held")  # the watch after the mitigation (15-30 min; 6 s here) ends clean
        w.step(ALICE, "resolve", "resolved")
        # Step 4: the post-mortem, its action items tracked to completion, the runbook fed
        w.step(ALICE, "action_item", "action_item", title="Alert on token lifetime", owner="bob",
               due_date="2026-12-31")  # fmt: skip
        w.step(BOB, "action_item_done", "action_item_done", action_item_id="INC-0001-A1")
        w.step(ALICE, "close", "closed")
        detail = w.until(lambda d: "runbook suggestion drafted" in str(entries(d)), "the runbook suggestion")
        slack = sent_texts(w.slack)
    assert walked(detail, SEED_002) == SEED_002, "\n".join(walked(detail, SEED_002))
    assert scheduled(detail, slack) == ("SEV2", "alice")
    updates = [t.split("\n")[1] for t in slack if t.startswith(":memo:")]
    assert updates == [
        "Subject: [SEV2] shop — Checkout errors for some cards",
        "Subject: [SEV2 UPDATE] shop — Identified",
        "Subject: [SEV2 UPDATE] shop — Monitoring",
        "Subject: [RESOLVED] shop — Checkout errors for some cards",
    ]


SEED_002 = [
    # Step 1: detection and declaration
    "alert: alert fired: Checkout errors for some cards (SEV3)",
    "triage: triage (model, claude-sonnet-4-20250514): SEV3, action escalate",
    "escalated: escalated to on-call-primary",
    "severity_upgraded: severity SEV3 → SEV2: customer-reported",
    "document: stakeholder update drafted (severity is now SEV2)",  # at the raise: SEV2's cadence
    "ic_requested: SEV2 escalated with no incident commander",
    "role_assigned: incident commander: alice",
    "declared: INC-0001 declared SEV2: Checkout errors for some cards; incident commander: alice",
    "role_assigned: communications lead: carol",
    "role_assigned: technical lead: bob",
    "role_assigned: scribe: erin",
    # Step 2: structured response
    # the latest update, the one drafted at the raise (see the docstring)
    "stakeholder_update_sent: stakeholder update ([SEV2] shop — Checkout errors for some cards)",
    "acknowledged: acknowledged",
    "timer: no root cause 2 h after detection (SEV2): escalating to on-call-secondary",
    "root_cause: root cause (dependency): the card vault upgrade",
    "stakeholder_update_sent: stakeholder update ([SEV2 UPDATE] shop — Identified)",
    # Step 3: resolution and stabilisation
    "mitigated: mitigated",
    "stakeholder_update_sent: stakeholder update ([SEV2 UPDATE] shop — Monitoring)",
    "recovery_held: recovery held: no new alert for 6 s after the mitigation",
    "resolved: resolved",
    "notice: notice (incident resolved): slack sent",
    "postmortem_scheduled: post-mortem due by ",  # Step 4: within 48 hours
    "document: postmortem drafted (incident resolved: draft for review)",
    "stakeholder_update_sent: stakeholder update ([RESOLVED] shop",
    # Step 4: post-mortem and continuous improvement
    "action_item: action item INC-0001-A1: Alert on token lifetime → bob",
    "action_item_done: ",
    "closed: closed (post-mortem done)",
    "document: postmortem drafted (post-mortem done)",
    "document: runbook suggestion drafted (after the post-mortem)",
]


def pagerduty_event(event_type: str, status: str, event_id: str) -> bytes:
    """A PagerDuty V3 webhook about the `shop` service's incident PGR0VU2, as PagerDuty sends it now."""
    now = stamp(dt.datetime.now(dt.UTC))
    body = json.loads((WEBHOOKS / "pagerduty_triggered.json").read_text())
    body["event"].update(id=event_id, event_type=event_type, occurred_at=now)
    body["event"]["data"].update(status=status, created_at=now, title="Checkout workers crash-looping")
    body["event"]["data"]["service"]["summary"] = "shop"
    return json.dumps(body).encode()


def test_seed_003_auto_remediation_with_human_approval(tmp_path: Path) -> None:
    """Seed 003's flow, its critical branch (the tutorial's test 2): a PagerDuty webhook, the model's
    diagnosis, Slack asked for a human approval, the runbook's action run once approved, the fix
    verified, Slack told, the PagerDuty incident closed through its REST API, the incident logged."""
    answer = triage_answer("SEV3", "restart", "The checkout workers run out of memory and crash-loop.")
    with walk(tmp_path, answer, critical=True) as w:
        raw = pagerduty_event("incident.triggered", "triggered", "01SEED003TRIGGERED0000000A")
        signed = {"X-PagerDuty-Signature": sign(raw, PD_SECRET)}
        assert w.svc.post("/api/incidents/ingest", raw, signed)[0] == 202
        w.landed("approval_requested")
        w.step(ALICE, "approve_remediation", "remediation_approved", remediation_id="INC-0001-R1")
        w.landed("remediation_result")
        # the check behind the alert reports it recovered: what the verification reads for an incident
        # tied to no SLO (every alert of the incident resolved after the remediation)
        recovered = {"service": "shop", "title": "Checkout workers crash-looping", "status": "resolved",
                     "fingerprint": "pd-PGR0VU2", "ends_at": stamp(dt.datetime.now(dt.UTC))}  # fmt: skip
        assert w.svc.post("/api/incidents/ingest", json.dumps(recovered).encode())[0] == 202
        w.landed("verified")
        w.step(ALICE, "resolve", "pagerduty_incident_resolved")
        detail = w.until(lambda d: "postmortem drafted" in str(entries(d)), "the incident's record")
        slack, rest = sent_texts(w.slack), list(w.rest.requests)
    assert walked(detail, SEED_003) == SEED_003, "\n".join(walked(detail, SEED_003))
    # Slack heard the diagnosis's proposed fix waiting for approval, then the outcome
    assert slack[0].startswith(":raised_hand: *INC-0001* shop: Checkout workers crash-looping\n")
    assert "remediation INC-0001-R1 (restart) is critical and waits for a human approval" in slack[0]
    [success] = [t for t in slack if t.startswith(":white_check_mark: *Auto-remediation succeeded*")]
    assert "*Verification:* all of the incident's alerts resolved" in success
    [(method, path, _, body)] = rest
    assert (method, path, body["incident"]["status"]) == ("PUT", "/incidents/PGR0VU2", "resolved")
    assert w.rest.incidents["PGR0VU2"] == "resolved"


SEED_003 = [
    "alert: alert fired: Checkout workers crash-looping",  # the PagerDuty webhook
    "triage: triage (model, claude-sonnet-4-20250514): SEV3, action restart",  # the diagnostic agent
    "route: route: auto_remediate — SEV3: restart is allow-listed but critical",  # the severity check
    "approval_requested: remediation INC-0001-R1 (restart) waits for an approval",
    "notification: slack: sent",  # Slack: the diagnosis and the approval asked for
    "remediation_approved: remediation INC-0001-R1 (restart) approved",
    "remediation_started: running runbooks/shop/remediate.sh --action restart --alert-id INC-0001",
    "remediation_result: remediation INC-0001-R1 (restart) succeeded",
    "verified: remediation INC-0001-R1 (restart) verified",
    "mitigated: mitigated by restart (verified)",
    "notice: notice (remediation INC-0001-R1 (restart) succeeded and was verified): slack sent",
    "resolved: resolved",
    "document: postmortem drafted",  # the incident logged for later analysis
    "pagerduty_incident_resolved: PagerDuty incident PGR0VU2 resolved through the REST API: sent",
]


def test_seed_004_triage_analysis_plan_document(tmp_path: Path) -> None:
    """Seed 004's dependent steps: triage → technical analysis → remediation plan → incident document,
    none skipped and none before the one it needs, with the triage's stakeholder notification for a
    SEV2 (the team lead paged, the status page updated); the incident document (the post-mortem)
    carries the technical analysis's ranked causes and the timeline."""
    answer = triage_answer("SEV2", "escalate", "Connection pool exhausted after the 02:00 deploy.")
    with walk(tmp_path, answer) as w:
        alert(w, "API returning 500s: connection pool exhausted", "SEV2")
        w.step(ALICE, "assign", "role_assigned", 1, role="comms", person="carol")
        w.step(CAROL, "approve_status", "status_page_posted", note="API errors for all customers")
        w.step(BOB, "acknowledge", "acknowledged")
        w.step(BOB, "root_cause", "root_cause", category="code", text="a connection leak in data_sync",
               fix="closed connections in a finally block")  # fmt: skip
        w.step(BOB, "mitigate", "mitigated")
        w.step(ALICE, "resolve", "resolved")
        w.step(ALICE, "close", "closed")
        detail = w.until(lambda d: "postmortem drafted (post-mortem done)" in str(entries(d)), "final")
        slack = sent_texts(w.slack)
    assert walked(detail, SEED_004) == SEED_004, "\n".join(walked(detail, SEED_004))
    assert scheduled(detail, slack) == ("SEV2", "alice")  # no commander: alice resolved it
    documents = {d["kind"]: d["body"] for d in detail["documents"]}  # the latest of each kind
    analysis = [line for line in documents["technical_analysis"].splitlines() if line[:3] == "1. "]
    assert analysis and analysis[0] in documents["postmortem"]  # the most likely cause, quoted
    assert "**Status**: Final" in documents["postmortem"]
    assert "| acknowledged |" in documents["postmortem"]  # the timeline, in the document


SEED_004 = [
    "triage: triage (model, claude-sonnet-4-20250514): SEV2, action escalate",  # step 1: triage
    "escalated: escalated to on-call-primary",  # its stakeholder notification (SEV2): the team lead
    "notification: pagerduty: sent — tier 1 (on-call-primary)",
    "document: technical analysis drafted (after the triage)",  # step 2, needs the triage
    "document: remediation plan drafted (from the technical analysis)",  # step 3, needs the analysis
    "status_page_posted: status page incident sp0001 created: investigating",  # and the status page
    "postmortem_scheduled: post-mortem due by ",  # "Post-Mortem — Scheduled:"
    "document: postmortem drafted (incident resolved: draft for review)",  # step 4: the document
    "document: postmortem drafted (post-mortem done)",
]
