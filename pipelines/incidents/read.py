"""The incident list and detail, read from a (published) store: ONE definition for `slo incidents
list/show`, `GET /api/incidents` and the dashboard's incident list and incident page.

`list_incidents(con, status=, service=, limit=)` gives one JSON object per incident, newest detected
first (`detected_at DESC NULLS LAST, id DESC`), with these fields (the union of what the CLI, the
service and the dashboard used to show; DESIGN §3's list is a subset):

    id, service, title, severity, status, source, fingerprint, slo_id,
    impact_start, impact_start_source, detected_at, detected_at_source,
    acknowledged_at, acknowledged_at_source, mitigated_at, mitigated_at_source,
    resolved_at, resolved_at_source, closed_at,
    route, budget_consumed, repeat_of, root_cause_category, root_cause, external_id,
    escalation_tier, imported,
    triage: null | {method, severity, recommended_action, confidence, model}   (the latest attempt)

Times are UTC ISO 8601 with a `Z` (`2026-06-01T10:00:00Z`). `status` filters on one status, or `open`
for any but resolved and closed; `service` on one service. `triage_fields` narrows the triage object:
`GET /api/incidents` answers its four DESIGN §3 fields (`API_TRIAGE_FIELDS`: method, severity,
recommended_action, confidence), without `model`.

`incident_frame(con)` is the same query as a DataFrame for the dashboard (times stay timestamps, the
triage fields are flat `triage_*` columns), newest impact first (`coalesce(impact_start, created_at)`),
the order the dashboard has always shown.

`incident_detail(con, id)` is one incident's row (every column) with its triage (as in the list), SLOs,
alerts, triage attempts, remediations, notifications, action items, documents, timeline and failing
steps, and `roles` (incident role → person, from the timeline's `role_assigned` entries):
`slo incidents show ID --json`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any, Literal

from pipelines import timeutil
from pipelines.incidents import incident_roles

if TYPE_CHECKING:  # only the dashboard asks for a DataFrame; the service and the CLI start without pandas
    import pandas as pd

TRIAGE_FIELDS = ("method", "severity", "recommended_action", "confidence", "model")
# The triage object `GET /api/incidents` answers: DESIGN §3's four fields (its tests pin them).
API_TRIAGE_FIELDS = TRIAGE_FIELDS[:4]

# Newest detected first (the CLI and the API), or newest impact first (the dashboard).
ORDERS = {
    "detected": "i.detected_at DESC NULLS LAST, i.id DESC",
    "impact": "coalesce(i.impact_start, i.created_at) DESC, i.id DESC",
}

# One row per incident with its latest triage attempt. Parameters: service (twice), status (three
# times), limit. The latest attempt is one `arg_max` of a struct: a window `row_number()` took 2.5× as
# long on 10,000 incidents, and `arg_max` of each field alone would skip the attempt's NULL fields
# (a rules triage has no model) and report an older attempt's.
LIST_SQL = """
SELECT i.id, i.service, i.title, i.severity, i.status, i.source, i.fingerprint, i.slo_id,
       i.impact_start, i.impact_start_source, i.detected_at, i.detected_at_source,
       i.acknowledged_at, i.acknowledged_at_source, i.mitigated_at, i.mitigated_at_source,
       i.resolved_at, i.resolved_at_source, i.closed_at, i.route, i.budget_consumed, i.repeat_of,
       i.root_cause_category, i.root_cause, i.external_id, i.escalation_tier, i.imported,
       t.last.method AS triage_method, t.last.severity AS triage_severity,
       t.last.recommended_action AS triage_recommended_action, t.last.confidence AS triage_confidence,
       t.last.model AS triage_model
FROM incidents i
LEFT JOIN (SELECT incident_id,
                  arg_max(struct_pack(method := method, severity := severity,
                                      recommended_action := recommended_action, confidence := confidence,
                                      model := model), attempt) AS last
           FROM triage GROUP BY incident_id) t ON t.incident_id = i.id
WHERE (? IS NULL OR i.service = ?)
  AND (? IS NULL OR i.status = ? OR (? = 'open' AND i.status NOT IN ('resolved', 'closed')))
ORDER BY {order}
LIMIT ?
"""


def iso(value: object) -> object:
    """A (naive UTC) time as `2026-06-01T10:00:00Z`, a date as `2026-06-01`; anything else as it is."""
    if isinstance(value, dt.datetime):
        return timeutil.iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def rows(con: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """The query's rows as JSON-ready dicts (the time and date columns through `iso`). Only the columns
    typed as times are converted, and with isoformat, not strftime: converting every value took 4× the
    old service's time for a 10,000-incident list."""
    rel = con.execute(sql, params)
    cols = [d[0] for d in rel.description]
    times = [
        c for c, d in zip(cols, rel.description, strict=True) if str(d[1]).startswith(("TIMESTAMP", "DATE"))
    ]
    out = [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
    for row in out:
        for c in times:
            row[c] = iso(row[c])
    return out


def _list_params(status: str | None, service: str | None, limit: int | None) -> list[Any]:
    return [service, service, status, status, status, limit if limit is not None else 2**62]


def _triage(latest: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The triage object of an incident's latest attempt (null when it has no triage yet)."""
    return None if latest.get("method") is None else {k: latest[k] for k in fields}


def _listing(row: dict[str, Any], triage_fields: tuple[str, ...]) -> dict[str, Any]:
    """The row with its flat `triage_*` columns folded into one `triage` object."""
    row["triage"] = _triage({k: row.pop(f"triage_{k}") for k in TRIAGE_FIELDS}, triage_fields)
    return row


def list_incidents(
    con: Any,
    status: str | None = None,
    service: str | None = None,
    limit: int | None = None,
    *,
    triage_fields: tuple[str, ...] = TRIAGE_FIELDS,
) -> list[dict[str, Any]]:
    """The incident list (fields in the module docstring), newest detected first."""
    sql = LIST_SQL.format(order=ORDERS["detected"])
    return [_listing(r, triage_fields) for r in rows(con, sql, _list_params(status, service, limit))]


def incident_frame(con: Any, order: Literal["detected", "impact"] = "impact") -> pd.DataFrame:
    """Every incident as a DataFrame: the list's columns, triage flat as `triage_*`."""
    return con.execute(LIST_SQL.format(order=ORDERS[order]), _list_params(None, None, None)).df()


# One incident's parts: what each holds and in which order, for every reader of one incident (the
# CLI's and API's JSON through `incident_detail`, the dashboard's frames through `detail_part`).
DETAIL_SQL = {
    "slos": "SELECT slo_id, budget_consumed FROM incident_slos WHERE incident_id = ? ORDER BY 1",
    "alerts": "SELECT dedup_key, source, status, fingerprint, severity, title, starts_at, ends_at,"
    " received_at FROM alerts WHERE incident_id = ? ORDER BY inbox_seq",
    "triage_attempts": "SELECT * FROM triage WHERE incident_id = ? ORDER BY attempt",
    "remediations": "SELECT * FROM remediations WHERE incident_id = ? ORDER BY created_at, id",
    "notifications": "SELECT * FROM notifications WHERE incident_id = ? ORDER BY sent_at",
    "action_items": "SELECT * FROM action_items WHERE incident_id = ? ORDER BY created_at, id",
    "documents": "SELECT kind, created_at, due_at, model_written, body FROM documents WHERE incident_id = ?"
    " ORDER BY created_at, kind",
    "timeline": "SELECT * FROM timeline WHERE incident_id = ? ORDER BY occurred_at, seq",
    # Steps failing on this incident (issue 11): the cycle goes on without it and retries each time.
    "step_failures": "SELECT step, record, error, attempts, first_at, last_at, cleared_at FROM step_failures"
    " WHERE incident_id = ? ORDER BY first_at, step",
}


def detail_part(con: Any, incident_id: str, part: str) -> pd.DataFrame:
    """One part of an incident (`DETAIL_SQL`) as a DataFrame, times as timestamps, without the
    incident id every row repeats: what the dashboard shows."""
    frame = con.execute(DETAIL_SQL[part], [incident_id]).df()
    return frame.drop(columns=["incident_id"], errors="ignore")


def incident_detail(con: Any, incident_id: str) -> dict[str, Any] | None:
    """One incident with everything that happened to it (module docstring); None when unknown."""
    found = rows(con, "SELECT * FROM incidents WHERE id = ?", [incident_id])
    if not found:
        return None
    out = found[0]
    parts = {part: rows(con, sql, [incident_id]) for part, sql in DETAIL_SQL.items()}
    attempts = parts["triage_attempts"]  # in attempt order: the last is the one the list shows
    out["triage"] = _triage(attempts[-1], TRIAGE_FIELDS) if attempts else None
    out.update(parts)
    for entry in out["timeline"]:
        entry["data"] = json.loads(entry["data"]) if entry["data"] else None
    # who holds which incident role (incident_roles.py), from the timeline in the order it was recorded
    out["roles"] = incident_roles.roles_from_timeline(sorted(out["timeline"], key=lambda e: e["seq"]))
    return out
