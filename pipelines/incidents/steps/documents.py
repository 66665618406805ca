"""Documents step: draft the documents each incident needs now (`documents.documents_due`): stakeholder
updates, the post-mortem draft and final, the runbook suggestion. The renderers are pure
(`pipelines.incidents.documents`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from pipelines.incidents import documents, impact
from pipelines.incidents.fold import add_timeline
from pipelines.incidents.isolation import Isolation
from pipelines.incidents.rows import incidents_where, records


def write_documents(con: duckdb.DuckDBPyConnection, now: dt.datetime, iso: Isolation) -> int:
    """Draft the documents each incident needs now (`documents.documents_due`)."""
    # Incidents changed since their last document, with a stakeholder update due, or closed without
    # their runbook suggestion yet.
    candidates = incidents_where(
        con,
        """NOT imported AND (
             documents_at IS NULL OR updated_at > documents_at
             OR (status NOT IN ('resolved', 'closed') AND coalesce((SELECT max(due_at) FROM documents d
                 WHERE d.incident_id = incidents.id AND d.kind = 'stakeholder_update'), ?) <= ?)
             OR (status = 'closed' AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.incident_id =
                 incidents.id
                 AND d.kind = 'runbook_suggestion')))""",
        [now, now],
    )
    spans = _spans(con, candidates, now)
    return sum(
        iso.run("documents", inc["id"], inc["id"], _documents_of, con, now, inc, spans) or 0
        for inc in candidates
    )


def _spans(
    con: duckdb.DuckDBPyConnection, candidates: list[dict[str, Any]], now: dt.datetime
) -> dict[tuple[str, str], tuple[int, int] | None]:
    """(incident, SLO) → what users met during the incident (`impact.span_counts`), for every
    candidate at once: a post-mortem quotes them (the buckets do not change in this step)."""
    spans = {inc["id"]: (inc["impact_start"], inc["resolved_at"] or now) for inc in candidates}
    pairs = [
        (str(iid), str(slo))
        for iid, slo in con.execute(
            "SELECT incident_id, slo_id FROM incident_slos WHERE incident_id IN "
            "(SELECT unnest(?::VARCHAR[])) ORDER BY 1, 2",
            [[iid for iid, (start, _) in spans.items() if start is not None]],
        ).fetchall()
    ]
    counts = impact.spans_counts(con, [(slo, *spans[iid]) for iid, slo in pairs])
    return dict(zip(pairs, counts, strict=True))


def _documents_of(
    con: duckdb.DuckDBPyConnection,
    now: dt.datetime,
    inc: dict[str, Any],
    spans: dict[tuple[str, str], tuple[int, int] | None] | None = None,
) -> int:
    """Draft one incident's due documents; how many."""
    written = 0
    iid = inc["id"]
    docs = records(
        con,
        "SELECT kind, created_at, due_at, body FROM documents WHERE incident_id = ? ORDER BY created_at",
        [iid],
    )
    for due in documents.documents_due(inc, docs, now):
        slos = records(
            con,
            "SELECT slo_id, budget_consumed FROM incident_slos WHERE incident_id = ? ORDER BY 1",
            [iid],
        )
        due_at: dt.datetime | None = None
        if due.kind == "stakeholder_update":
            body, due_at = documents.render_stakeholder_update(inc, slos, due.at)
        elif due.kind == "postmortem":
            timeline = records(
                con,
                "SELECT occurred_at, message FROM timeline WHERE incident_id = ? ORDER BY occurred_at, seq",
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
            body = documents.render_postmortem(inc, timeline, slos, items, final=due.final)
        else:
            items = records(con, "SELECT * FROM action_items WHERE incident_id = ?", [iid])
            rems = records(con, "SELECT * FROM remediations WHERE incident_id = ?", [iid])
            body = documents.render_runbook_suggestion(inc, items, rems)
        con.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
            [iid, due.kind, due.at, False, due_at, body],  # False: not model-written
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
