"""Documents step: draft the documents each incident needs now (`documents.documents_due`): stakeholder
updates (on a status or severity change, and at the severity's cadence), the post-mortem draft and
final, the runbook suggestion. The renderers are pure
(`pipelines.incidents.documents`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from pipelines.config import Settings
from pipelines.incidents import analysis, documents, impact, narrative
from pipelines.incidents.context import similar_incidents
from pipelines.incidents.fold import add_timeline
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.rows import records
from pipelines.timeutil import minute_of

# Incidents that may need a document now (their rows, in creation order): changed since their last
# documents, with a stakeholder update due, triaged without their technical analysis, or closed without
# their runbook suggestion.
# Each incident's documents are summed up once (a correlated subquery per condition cost ~10 ms a
# cycle, most of an idle cycle's documents step).
_CANDIDATES_SQL = """
WITH d AS (
    SELECT incident_id,
           max(due_at) FILTER (WHERE kind = 'stakeholder_update') AS update_due,
           bool_or(kind IN ('technical_analysis', 'postmortem')) AS analysed,
           bool_or(kind = 'runbook_suggestion') AS suggested
    FROM documents GROUP BY incident_id
)
SELECT i.* FROM incidents i LEFT JOIN d ON d.incident_id = i.id
WHERE NOT i.imported AND (
    i.documents_at IS NULL OR i.updated_at > i.documents_at
    OR (i.status NOT IN ('resolved', 'closed') AND coalesce(d.update_due, ?) <= ?)
    OR (i.status <> 'closed' AND NOT coalesce(d.analysed, false)
        AND i.id IN (SELECT incident_id FROM triage))
    OR (i.status = 'closed' AND NOT coalesce(d.suggested, false)))
ORDER BY i.created_at, i.id
"""


def write_documents(
    con: duckdb.DuckDBPyConnection,
    now: dt.datetime,
    iso: Isolation,
    settings: Settings | None = None,
    sums: impact.CumulativeSums | None = None,
) -> int:
    """Draft the documents each incident needs now (`documents.documents_due`). With `settings` holding a
    model key, the post-mortem's narrative and 5 Whys are asked of the model (`narrative.draft`).
    `sums`: the stage's remembered cumulative sums, for the spans a post-mortem quotes."""
    candidates = records(con, _CANDIDATES_SQL, [now, now])  # the incident rows, in creation order
    if not candidates:
        return 0
    spans = _spans(con, candidates, now, sums)
    return sum(
        iso.run("documents", inc["id"], inc["id"], _documents_of, con, now, inc, spans, settings, sums) or 0
        for inc in candidates
    )


def _spans(
    con: duckdb.DuckDBPyConnection,
    candidates: list[dict[str, Any]],
    now: dt.datetime,
    sums: impact.CumulativeSums | None = None,
) -> dict[tuple[str, str], tuple[int, int] | None]:
    """(incident, SLO) → what users met during the incident (`impact.span_counts`), for every
    candidate that may need a post-mortem (resolved or closed) at once: a post-mortem quotes them (the
    buckets do not change in this step). The others (a stakeholder update due) need none."""
    spans = {
        inc["id"]: (inc["impact_start"], inc["resolved_at"] or now)
        for inc in candidates
        if inc["status"] in ("resolved", "closed") and inc["impact_start"] is not None
    }
    if not spans:
        return {}
    pairs = [
        (str(iid), str(slo))
        for iid, slo in con.execute(
            "SELECT incident_id, slo_id FROM incident_slos WHERE incident_id IN "
            "(SELECT unnest(?::VARCHAR[])) ORDER BY 1, 2",
            [list(spans)],
        ).fetchall()
    ]
    counts = impact.spans_counts(con, [(slo, *spans[iid]) for iid, slo in pairs], sums)
    return dict(zip(pairs, counts, strict=True))


def _documents_of(
    con: duckdb.DuckDBPyConnection,
    now: dt.datetime,
    inc: dict[str, Any],
    spans: dict[tuple[str, str], tuple[int, int] | None] | None = None,
    settings: Settings | None = None,
    sums: impact.CumulativeSums | None = None,
) -> int:
    """Draft one incident's due documents; how many."""
    written = 0
    iid = inc["id"]
    docs = records(
        con,
        "SELECT kind, created_at, due_at, body FROM documents WHERE incident_id = ? ORDER BY created_at",
        [iid],
    )
    first = con.execute("SELECT min(created_at) FROM triage WHERE incident_id = ?", [iid]).fetchone()
    triaged_at = first[0] if first else None
    # when the severity was set to what (each triage's answer, each upgrade): a change dates an update
    severities = [
        (at, str(sev))
        for at, sev in con.execute(
            "SELECT created_at, severity FROM triage WHERE incident_id = $id UNION ALL "
            "SELECT occurred_at, json_extract_string(data, '$.to') FROM timeline "
            "WHERE incident_id = $id AND kind = 'severity_upgraded'",
            {"id": iid},
        ).fetchall()
        if sev is not None
    ]
    ranked: list[analysis.Hypothesis] | None = None
    facts: dict[str, Any] = {}
    for due in documents.documents_due(inc, docs, now, triaged_at, severities):
        slos = records(
            con,
            "SELECT slo_id, budget_consumed FROM incident_slos WHERE incident_id = ? ORDER BY 1",
            [iid],
        )
        due_at: dt.datetime | None = None
        model_written = False
        if due.kind in ("technical_analysis", "remediation_plan"):
            if ranked is None:
                facts = analysis_facts(con, inc, due.at, sums)
                ranked = analysis.rank(inc, facts)
            render = (
                analysis.render_technical_analysis
                if due.kind == "technical_analysis"
                else analysis.render_remediation_plan
            )
            body = render(inc, ranked, facts)
        elif due.kind == "stakeholder_update":
            body, due_at = documents.render_stakeholder_update(inc, slos, due.at)
        elif due.kind == "postmortem":
            timeline = records(
                con,
                "SELECT occurred_at, kind, message FROM timeline WHERE incident_id = ? "
                "ORDER BY occurred_at, seq",
                [iid],
            )
            items = records(
                con, "SELECT * FROM action_items WHERE incident_id = ? ORDER BY created_at, id", [iid]
            )
            start, end = inc["impact_start"], inc["resolved_at"] or now
            for slo in slos:
                key = (iid, slo["slo_id"])
                if not start:
                    counts = None
                elif spans is not None and key in spans:
                    counts = spans[key]
                else:
                    counts = impact.span_counts(con, slo["slo_id"], start, end)
                slo["bad"], slo["valid"] = counts if counts else (None, None)
            actions = [
                str(a)
                for (a,) in con.execute(
                    "SELECT action FROM remediations WHERE incident_id = ?", [iid]
                ).fetchall()
            ]
            told = narrative.draft(settings, inc, timeline, actions)
            model_written = told.narrative is not None
            analysed = [d["body"] for d in docs if d["kind"] == "technical_analysis"]
            body = documents.render_postmortem(
                inc,
                timeline,
                slos,
                items,
                final=due.final,
                narrative=told.narrative,
                analysis=analysed[-1] if analysed else None,
            )
            add_timeline(
                con,
                iid,
                due.at,
                "document",
                "documents",
                f"postmortem narrative: drafted by the model {told.narrative.model}, checked against "
                "the timeline"
                if told.narrative
                else f"postmortem narrative: rule-based draft ({told.reason})",
            )
        else:
            items = records(con, "SELECT * FROM action_items WHERE incident_id = ?", [iid])
            rems = records(con, "SELECT * FROM remediations WHERE incident_id = ?", [iid])
            body = documents.render_runbook_suggestion(inc, items, rems)
        con.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
            [iid, due.kind, due.at, model_written, due_at, body],
        )
        add_timeline(
            con,
            iid,
            due.at,
            "document",
            "documents",
            f"{due.kind.replace('_', ' ')} drafted ({due.reason})",
        )
        docs.append({"kind": due.kind, "created_at": due.at, "body": body, "due_at": due_at})
        written += 1
    con.execute("UPDATE incidents SET documents_at = updated_at WHERE id = ?", [iid])
    return written


def analysis_facts(
    con: duckdb.DuckDBPyConnection,
    inc: dict[str, Any],
    at: dt.datetime,
    sums: impact.CumulativeSums | None = None,
) -> dict[str, Any]:
    """What the technical analysis reads (`analysis` module): the linked SLOs' events over the span up to
    `at`, the service's deploys before the impact start, similar incidents and the latest triage (the
    buckets from the stage's remembered `sums` when given)."""
    iid = inc["id"]
    sums = sums or impact.CumulativeSums()
    start = inc.get("impact_start") or inc["detected_at"]
    end = max(inc.get("resolved_at") or at, start)
    slos = records(
        con,
        """SELECT l.slo_id, l.budget_consumed, s.target, s.slo_key FROM incident_slos l
           LEFT JOIN slos s ON s.slo_id = l.slo_id WHERE l.incident_id = ? ORDER BY 1""",
        [iid],
    )
    for slo in slos:
        counts = (
            impact.spans_counts(con, [(slo["slo_id"], start, end)], sums)[0]
            if slo["slo_key"] is not None
            else None
        )
        slo["bad"], slo["valid"] = counts if counts else (None, None)
        slo["bad_minutes"] = 0
        if slo["slo_key"] is not None:  # minutes with any bad event
            slo["bad_minutes"] = sum(
                valid > good
                for _, good, valid in sums.rows(con, int(slo["slo_key"]), minute_of(start), minute_of(end))
            )
    deploys = records(
        con,
        """SELECT d.deployed_at, d.version, d.description,
                  (SELECT f.who FROM deploy_feed f WHERE f.service = d.service
                   AND f.deployed_at = d.deployed_at AND f.version = d.version LIMIT 1) AS who
           FROM deploys d WHERE d.service = ? AND d.deployed_at <= ? ORDER BY d.deployed_at DESC LIMIT 6""",
        [inc["service"], start],
    )
    triage = records(
        con,
        """SELECT attempt, method, severity, root_cause_hypothesis, recommended_action, confidence
           FROM triage WHERE incident_id = ? ORDER BY attempt DESC LIMIT 1""",
        [iid],
    )
    return {
        "slos": slos,
        "deploys": deploys,
        "similar": similar_incidents(con, inc),
        "triage": triage[0] if triage else None,
    }
