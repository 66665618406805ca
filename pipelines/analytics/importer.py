"""Historical incidents from a Statuspage `incidents.json` or a CSV file, through the durable inbox.

Parsing is pure (`parse_statuspage`, `parse_csv` → normalised incident bodies); `append_file` is the
I/O edge (read the file, append it to the inbox; `cycle.import_history` then applies it);
`fold_import_rows` turns inbox `import` rows into `incidents` rows and is what the inbox fold calls.

Statuspage mapping (DESIGN §2): `started_at` (else `created_at`) → impact_start, `created_at` →
detected_at, `monitoring_at` → mitigated_at, `resolved_at` → resolved_at; acknowledged_at stays unknown
(Statuspage has no such time). Impact critical/major/minor/none → SEV1/SEV2/SEV3/SEV4 via
`contract.STATUSPAGE_IMPACT`; maintenance (impact `maintenance`, or a `scheduled_for` time) is not an
incident and is left out. Service: the first listed component's name (all of them are kept in the
timeline), or the page's name when the incident names no component. Fingerprint: the incident's name,
lower-cased with spaces collapsed, so a recurring "Incident with Codespaces" is recognised as a repeat.

CSV format (header required, one incident per line, times ISO 8601, UTC when no offset is given):
    id,title,service,severity,impact_start[,detected_at,acknowledged_at,mitigated_at,resolved_at,
    postmortem_done_at,fingerprint,root_cause_category]
severity is SEV1…SEV4 or P0…P4. An empty time is unknown; an empty resolved_at means still open.

Every time must lie in the range the ingest API accepts (`ingest.fields.plausible_range`: 2000-01-01 to
one day after the import); a file with a time outside it is refused whole, like any other bad row, each
problem located by `file:line` (for Statuspage JSON, the line of the field's value).

The inbox de-duplication key is `import:<format>:<source id>:<hash of the normalised incident>`, so
importing the same file again adds nothing, and a corrected file updates exactly the changed incidents.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipelines.analytics import located_json
from pipelines.errors import ImportFileError, MalformedInput
from pipelines.inbox import Entry, Inbox, Row
from pipelines.incidents.contract import STATUSPAGE_IMPACT
from pipelines.ingest.fields import plausible

FORMATS = ("statuspage", "csv")
CSV_REQUIRED = ("id", "title", "service", "severity", "impact_start")
CSV_OPTIONAL = (
    "detected_at",
    "acknowledged_at",
    "mitigated_at",
    "resolved_at",
    "postmortem_done_at",
    "fingerprint",
    "root_cause_category",
)
CSV_SEVERITIES = {
    "sev1": "SEV1",
    "sev2": "SEV2",
    "sev3": "SEV3",
    "sev4": "SEV4",
    "p0": "SEV1",
    "p1": "SEV1",
    "p2": "SEV2",
    "p3": "SEV3",
    "p4": "SEV4",
}
_TIMES = ("impact_start", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at")


@dataclass
class ImportBatch:
    """A parsed file: normalised incident bodies, and what was left out on purpose."""

    format: str
    incidents: list[dict[str, Any]] = field(default_factory=list)
    skipped_maintenance: int = 0

    def entries(self) -> list[Entry]:
        return [Entry(dedup_key(body), "import", self.format, body) for body in self.incidents]


def dedup_key(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"import:{body['format']}:{body['source_id']}:{digest}"


def _time(value: object, where: str, now: dt.datetime | None) -> dt.datetime | None:
    """ISO 8601 → naive UTC inside the accepted range (`plausible_range(now)`); None for null/empty.
    Anything else is a ValueError whose message is the problem, located at `where`."""
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset: out of range too
            parsed, where = parsed.replace(tzinfo=None), f"{where} {value!r}"
    try:
        return plausible(parsed, where, now)
    except MalformedInput as exc:
        raise ValueError(str(exc)) from None


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="milliseconds")


def fingerprint_of(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().lower())


def _status(times: dict[str, dt.datetime | None]) -> str:
    if times.get("resolved_at"):
        return "resolved"
    if times.get("mitigated_at"):
        return "mitigated"
    if times.get("acknowledged_at"):
        return "acknowledged"
    return "triggered"


# ---------------------------------------------------------------------------------------------
# Statuspage


def parse_statuspage(text: str, where: str, now: dt.datetime | None = None) -> ImportBatch:
    """A Statuspage `incidents.json` (`{"page": …, "incidents": [...]}`, or one `{"incident": …}`).
    `now` (naive UTC, default the clock) bounds the accepted times."""
    try:
        doc = located_json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError([f"{where}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"]) from exc
    if isinstance(doc, located_json.LocatedDict) and isinstance(doc.get("incident"), dict):
        incidents: Any = [doc["incident"]]
    else:
        incidents = doc.get("incidents") if isinstance(doc, dict) else None
    if not isinstance(doc, located_json.LocatedDict) or not isinstance(incidents, list):
        raise ImportFileError(
            [f"{where}: expected a Statuspage incidents.json: an object with an `incidents` list"]
        )
    page: dict[str, Any] = doc["page"] if isinstance(doc.get("page"), dict) else {}
    page_name = str(page.get("name") or "statuspage")
    batch = ImportBatch("statuspage")
    problems: list[str] = []
    seen: set[str] = set()
    for i, inc in enumerate(incidents):
        path = f"incidents[{i}]"
        if not isinstance(inc, located_json.LocatedDict):
            problems.append(f"{where}:{doc.line_of('incidents')}: {path}: expected an object")
            continue
        if inc.get("id"):
            path += f" (id {inc['id']})"
        at = _Where(where, path, inc)
        before = len(problems)
        body = _statuspage_incident(inc, at, page_name, problems, now)
        if body is None:
            if len(problems) == before:
                batch.skipped_maintenance += 1
            continue
        if body["source_id"] in seen:
            problems.append(f"{at('id')}: duplicate id {body['source_id']!r} in the file")
            continue
        seen.add(body["source_id"])
        batch.incidents.append(body)
    if problems:
        raise ImportFileError(problems)
    return batch


@dataclass(frozen=True)
class _Where:
    """Where a Statuspage incident's field is: `file:line: incidents[i] (id x).field`."""

    file: str
    path: str
    obj: located_json.LocatedDict

    def __call__(self, key: str, obj: located_json.LocatedDict | None = None, path: str = "") -> str:
        obj = self.obj if obj is None else obj
        return f"{self.file}:{obj.line_of(key)}: {self.path}{path}.{key}"


def _statuspage_incident(
    inc: located_json.LocatedDict, at: _Where, page_name: str, problems: list[str], now: dt.datetime | None
) -> dict[str, Any] | None:
    source_id = inc.get("id")
    if not isinstance(source_id, str | int) or str(source_id).strip() == "":
        problems.append(f"{at('id')}: missing; every incident needs its Statuspage id")
        return None
    impact = inc.get("impact")
    if impact not in STATUSPAGE_IMPACT:
        problems.append(
            f"{at('impact')}: {impact!r} is not a Statuspage impact; expected one of "
            + ", ".join(STATUSPAGE_IMPACT)
        )
        return None
    if STATUSPAGE_IMPACT[impact] is None or inc.get("scheduled_for"):
        return None  # scheduled maintenance is not an incident (DESIGN §2)
    times: dict[str, dt.datetime | None] = {}
    for name in ("created_at", "started_at", "monitoring_at", "resolved_at"):
        try:
            times[name] = _time(inc.get(name), at(name), now)
        except ValueError as exc:
            problems.append(str(exc))
            return None
    if times["created_at"] is None:
        problems.append(f"{at('created_at')}: missing; expected an ISO 8601 time")
        return None
    name = str(inc.get("name") or "").strip() or f"Statuspage incident {source_id}"
    components = [
        str(c.get("name")) for c in inc.get("components") or [] if isinstance(c, dict) and c.get("name")
    ]
    updates = []
    postmortem_at = None
    for j, u in enumerate(inc.get("incident_updates") or []):
        if not isinstance(u, located_json.LocatedDict):
            continue
        try:
            u_at = _time(u.get("created_at"), at("created_at", u, f".incident_updates[{j}]"), now)
        except ValueError as exc:
            problems.append(str(exc))
            return None
        if u.get("status") == "postmortem" and u_at and (postmortem_at is None or u_at < postmortem_at):
            postmortem_at = u_at
        updates.append({"at": _iso(u_at), "status": u.get("status"), "body": str(u.get("body") or "")})
    updates.sort(key=lambda u: (u["at"] or "", u["status"] or ""))
    started = times["started_at"]
    record = {
        "impact_start": started or times["created_at"],
        "detected_at": times["created_at"],
        "acknowledged_at": None,
        "mitigated_at": times["monitoring_at"],
        "resolved_at": times["resolved_at"],
    }
    return {
        "format": "statuspage",
        "source_id": str(source_id),
        "id": f"IMP-{source_id}",
        "title": name,
        "service": components[0] if components else page_name,
        "components": components,
        "severity": STATUSPAGE_IMPACT[impact],
        "source_severity": impact,
        "status": _status(record),
        "fingerprint": fingerprint_of(name),
        "root_cause_category": None,
        "impact_start": _iso(record["impact_start"]),
        "impact_start_source": "statuspage.started_at" if started else "statuspage.created_at",
        "detected_at": _iso(record["detected_at"]),
        "detected_at_source": "statuspage.created_at",
        "acknowledged_at": None,
        "acknowledged_at_source": None,
        "mitigated_at": _iso(record["mitigated_at"]),
        "mitigated_at_source": "statuspage.monitoring_at" if record["mitigated_at"] else None,
        "resolved_at": _iso(record["resolved_at"]),
        "resolved_at_source": "statuspage.resolved_at" if record["resolved_at"] else None,
        "postmortem_done_at": _iso(postmortem_at),
        "url": inc.get("shortlink"),
        "updates": updates,
    }


# ---------------------------------------------------------------------------------------------
# CSV


def parse_csv(text: str, where: str, now: dt.datetime | None = None) -> ImportBatch:
    """The documented CSV (see the module docstring); `now` (naive UTC, default the clock) bounds the
    accepted times."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in CSV_REQUIRED if c not in header]
    unknown = [c for c in header if c not in CSV_REQUIRED + CSV_OPTIONAL]
    problems = []
    if missing:
        problems.append(f"{where}:1: header: missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(
            f"{where}:1: header: unknown column(s) {', '.join(unknown)}; allowed: "
            + ", ".join(CSV_REQUIRED + CSV_OPTIONAL)
        )
    if problems:
        raise ImportFileError(problems)
    batch = ImportBatch("csv")
    seen: set[str] = set()
    for raw in reader:
        line = reader.line_num
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        before = len(problems)
        for col in ("id", "title", "service"):
            if not row.get(col):
                problems.append(f"{where}:{line}: {col}: empty; every incident needs one")
        severity = CSV_SEVERITIES.get(row.get("severity", "").lower())
        if severity is None:
            problems.append(
                f"{where}:{line}: severity: {row.get('severity')!r} is not a severity; expected SEV1…SEV4 "
                "or P0…P4"
            )
        times: dict[str, dt.datetime | None] = {}
        for col in (*_TIMES, "postmortem_done_at"):
            try:
                times[col] = _time(row.get(col), f"{where}:{line}: {col}", now)
            except ValueError as exc:
                problems.append(str(exc))
        if not row.get("impact_start"):
            problems.append(f"{where}:{line}: impact_start: empty; expected an ISO 8601 time")
        if row.get("id") in seen:
            problems.append(f"{where}:{line}: id: duplicate id {row['id']!r} in the file")
        if len(problems) > before:
            continue
        seen.add(row["id"])
        body: dict[str, Any] = {
            "format": "csv",
            "source_id": row["id"],
            "id": f"IMP-{row['id']}",
            "title": row["title"],
            "service": row["service"],
            "components": [],
            "severity": severity,
            "source_severity": row["severity"],
            "status": _status(times),
            "fingerprint": row.get("fingerprint") or fingerprint_of(row["title"]),
            "root_cause_category": row.get("root_cause_category") or None,
            "postmortem_done_at": _iso(times["postmortem_done_at"]),
            "url": None,
            "updates": [],
        }
        for col in _TIMES:
            body[col] = _iso(times[col])
            body[f"{col}_source"] = f"csv.{col}" if times[col] else None
        batch.incidents.append(body)
    if problems:
        raise ImportFileError(problems)
    return batch


def parse_file(fmt: str, path: Path) -> ImportBatch:
    if fmt not in FORMATS:
        raise ImportFileError([f"--format {fmt!r}: expected one of {', '.join(FORMATS)}"])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError([f"{path}: cannot read: {exc}"]) from exc
    return parse_statuspage(text, str(path)) if fmt == "statuspage" else parse_csv(text, str(path))


# ---------------------------------------------------------------------------------------------
# The fold: inbox `import` rows → incidents (+ their status updates on the timeline)

_UPSERT_SQL = """
-- One imported incident: inserted, or brought up to date when a corrected file changed it.
INSERT INTO incidents (id, service, title, severity, status, source, fingerprint, slo_id,
    impact_start, impact_start_source, detected_at, detected_at_source,
    acknowledged_at, acknowledged_at_source, mitigated_at, mitigated_at_source,
    resolved_at, resolved_at_source, closed_at, postmortem_done_at, route, root_cause_category,
    external_id, imported, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, ?, ?, TRUE, ?, ?)
ON CONFLICT (id) DO UPDATE SET service = excluded.service, title = excluded.title,
    severity = excluded.severity, status = excluded.status, source = excluded.source,
    fingerprint = excluded.fingerprint, impact_start = excluded.impact_start,
    impact_start_source = excluded.impact_start_source, detected_at = excluded.detected_at,
    detected_at_source = excluded.detected_at_source, acknowledged_at = excluded.acknowledged_at,
    acknowledged_at_source = excluded.acknowledged_at_source, mitigated_at = excluded.mitigated_at,
    mitigated_at_source = excluded.mitigated_at_source, resolved_at = excluded.resolved_at,
    resolved_at_source = excluded.resolved_at_source, postmortem_done_at = excluded.postmortem_done_at,
    root_cause_category = excluded.root_cause_category, external_id = excluded.external_id,
    imported = TRUE, updated_at = excluded.updated_at
"""


def fold_import_rows(con: duckdb.DuckDBPyConnection, rows: list[Row]) -> int:
    """Apply inbox `import` rows (other kinds are ignored) in order; returns how many were applied.

    Idempotent: folding the same rows again leaves the same incidents and timelines.
    """
    applied = 0
    for row in rows:
        if row.kind != "import":
            continue
        b = row.body
        received = row.received_at.replace(tzinfo=None)
        con.execute(
            _UPSERT_SQL,
            [
                b["id"],
                b["service"],
                b["title"],
                b["severity"],
                b["status"],
                b["format"],
                b.get("fingerprint"),
                b.get("impact_start"),
                b.get("impact_start_source"),
                b.get("detected_at"),
                b.get("detected_at_source"),
                b.get("acknowledged_at"),
                b.get("acknowledged_at_source"),
                b.get("mitigated_at"),
                b.get("mitigated_at_source"),
                b.get("resolved_at"),
                b.get("resolved_at_source"),
                b.get("postmortem_done_at"),
                b.get("root_cause_category"),
                b["source_id"],
                received,
                received,
            ],
        )
        con.execute("DELETE FROM timeline WHERE incident_id = ?", [b["id"]])
        steps = [u for u in b.get("updates", []) if u.get("at")]
        if not steps:
            steps = [
                {
                    "at": b.get("detected_at") or b.get("impact_start"),
                    "status": "imported",
                    "body": b["title"],
                }
            ]
        for seq, u in enumerate(steps, start=1):
            con.execute(
                "INSERT INTO timeline VALUES (?, ?, ?, 'status_update', ?, NULL, ?, ?)",
                [
                    b["id"],
                    seq,
                    u["at"],
                    b["format"],
                    u["body"] or u["status"] or "",
                    json.dumps({"status": u.get("status"), "components": b.get("components", [])}),
                ],
            )
        applied += 1
    return applied


# ---------------------------------------------------------------------------------------------
# The I/O edge: file → inbox → (when no service holds the writer lock) DuckDB


@dataclass
class ImportOutcome:
    incidents: int
    accepted: int
    duplicates: int
    skipped_maintenance: int
    applied: int
    queued: bool  # the running service holds the writer; it applies the rows on its next cycle

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def append_file(data_dir: Path, fmt: str, path: Path) -> tuple[ImportOutcome, list[Row]]:
    """Parse the whole file first (nothing is stored when any part is bad), then append it to the
    inbox; the outcome so far and the inbox rows this file added (`cycle.import_history` folds them)."""
    batch = parse_file(fmt, path)
    inbox = Inbox(data_dir)
    try:
        before = inbox.last_seq()
        result = inbox.append(batch.entries())
        ours = set(result.accepted)
        rows = [r for r in inbox.iter_since(before) if r.dedup_key in ours]
    finally:
        inbox.close()
    outcome = ImportOutcome(
        incidents=len(batch.incidents),
        accepted=len(result.accepted),
        duplicates=len(result.duplicates),
        skipped_maintenance=batch.skipped_maintenance,
        applied=0,
        queued=False,
    )
    return outcome, rows
