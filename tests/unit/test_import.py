"""Historical import: the Statuspage and CSV mappings (DESIGN §2), bad files, and re-imports."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.analytics.importer import (
    fold_import_rows,
    parse_csv,
    parse_statuspage,
)
from pipelines.cycle import import_history as import_file
from pipelines.cycle import open_writer as Writer
from pipelines.errors import ImportFileError
from pipelines.inbox import Inbox
from pipelines.store import Snapshot
from tests.support.incident_rows import store


def incident(id: str, impact: str = "major", **fields: Any) -> dict[str, Any]:
    base = {
        "id": id,
        "name": f"Elevated errors {id}",
        "status": "resolved",
        "impact": impact,
        "created_at": "2026-07-01T10:05:00.000Z",
        "started_at": "2026-07-01T10:00:00.000Z",
        "monitoring_at": "2026-07-01T10:30:00.000Z",
        "resolved_at": "2026-07-01T11:00:00.000Z",
        "components": [{"id": "c1", "name": "API"}, {"id": "c2", "name": "Web"}],
        "incident_updates": [
            {"id": "u2", "status": "resolved", "body": "Resolved.", "created_at": "2026-07-01T11:00:00.000Z"},
            {
                "id": "u1",
                "status": "investigating",
                "body": "Looking.",
                "created_at": "2026-07-01T10:05:00.000Z",
            },
        ],
    }
    return {**base, **fields}


def page(*incidents: dict[str, Any]) -> str:
    return json.dumps({"page": {"id": "p", "name": "Acme"}, "incidents": list(incidents)})


@pytest.mark.parametrize(
    ("impact", "severity"), [("critical", "SEV1"), ("major", "SEV2"), ("minor", "SEV3"), ("none", "SEV4")]
)
def test_statuspage_impact_maps_to_severity(impact: str, severity: str) -> None:
    [body] = parse_statuspage(page(incident("a", impact)), "f.json").incidents
    assert (body["severity"], body["source_severity"]) == (severity, impact)


def test_statuspage_times_service_and_sources() -> None:
    [body] = parse_statuspage(page(incident("a")), "f.json").incidents
    assert body["id"] == "IMP-a"
    assert (body["impact_start"], body["impact_start_source"]) == (
        "2026-07-01T10:00:00.000",
        "statuspage.started_at",
    )
    assert (body["detected_at"], body["mitigated_at"], body["resolved_at"]) == (
        "2026-07-01T10:05:00.000",
        "2026-07-01T10:30:00.000",
        "2026-07-01T11:00:00.000",
    )
    assert body["acknowledged_at"] is None  # Statuspage has no acknowledgement time
    assert (body["service"], body["components"]) == ("API", ["API", "Web"])
    assert [u["status"] for u in body["updates"]] == ["investigating", "resolved"]  # oldest first


def test_statuspage_without_started_at_or_components() -> None:
    [body] = parse_statuspage(
        page(incident("a", started_at=None, components=[], created_at="2026-07-01T12:00:00+02:00")), "f.json"
    ).incidents
    # created_at (10:00 UTC) becomes impact_start; no component: the page's name is the service
    assert (body["impact_start"], body["impact_start_source"]) == (
        "2026-07-01T10:00:00.000",
        "statuspage.created_at",
    )
    assert body["service"] == "Acme"


def test_maintenance_is_not_an_incident() -> None:
    batch = parse_statuspage(
        page(
            incident("a"),
            incident("m1", "maintenance"),
            incident("m2", "none", scheduled_for="2026-07-02T00:00:00Z"),
        ),
        "f.json",
    )
    assert [b["source_id"] for b in batch.incidents] == ["a"]
    assert batch.skipped_maintenance == 2


def test_bad_statuspage_file_names_every_problem_with_where() -> None:
    with pytest.raises(ImportFileError) as err:
        parse_statuspage(
            page(incident("a", impact="huge"), incident("b", created_at="yesterday"), incident("a")),
            "f.json",
        )
    assert err.value.problems == [
        "f.json:1: incidents[0] (id a).impact: 'huge' is not a Statuspage impact; expected one of critical, "
        "major, minor, none, maintenance",
        "f.json:1: incidents[1] (id b).created_at: 'yesterday' is not an ISO 8601 time",
    ]
    bad_update = incident("c")
    bad_update["incident_updates"] = [{"status": "resolved", "body": "ok", "created_at": "later"}]
    with pytest.raises(ImportFileError) as err:
        parse_statuspage(page(bad_update), "f.json")
    assert err.value.problems == [
        "f.json:1: incidents[0] (id c).incident_updates[0].created_at: 'later' is not an ISO 8601 time"
    ]
    with pytest.raises(ImportFileError, match=r"f.json:2:1: not valid JSON"):
        parse_statuspage('{"incidents": [\n}', "f.json")
    with pytest.raises(ImportFileError, match="an object with an `incidents` list"):
        parse_statuspage("[]", "f.json")


CSV_OK = "\n".join(
    [
        "id,title,service,severity,impact_start,detected_at,acknowledged_at,mitigated_at,resolved_at,fingerprint",
        "7,DB failover stalls,checkout-api,P1,2026-07-01T10:00:00Z,2026-07-01T10:03:00Z,"
        "2026-07-01T10:05:00Z,,2026-07-01T10:40:00Z,db-failover",
        "8,Slow search,search,SEV3,2026-07-02T08:00:00,,,,,",
    ]
)


def test_csv_import() -> None:
    a, b = parse_csv(CSV_OK, "f.csv").incidents
    assert (a["id"], a["severity"], a["status"], a["fingerprint"]) == (
        "IMP-7",
        "SEV1",
        "resolved",
        "db-failover",
    )
    assert (a["acknowledged_at"], a["acknowledged_at_source"]) == (
        "2026-07-01T10:05:00.000",
        "csv.acknowledged_at",
    )
    assert (b["status"], b["resolved_at"], b["fingerprint"]) == ("triggered", None, "slow search")


def test_bad_csv_names_lines_and_columns() -> None:
    with pytest.raises(ImportFileError) as err:
        parse_csv("id,title,service,severity,impact_start\n1,x,svc,P9,2026-07-01\n2,,svc,P1,soon\n", "f.csv")
    assert err.value.problems == [
        "f.csv:2: severity: 'P9' is not a severity; expected SEV1…SEV4 or P0…P4",
        "f.csv:3: title: empty; every incident needs one",
        "f.csv:3: impact_start: 'soon' is not an ISO 8601 time",
    ]
    with pytest.raises(ImportFileError, match=r"f.csv:1: header: unknown column\(s\) sevrity"):
        parse_csv("id,title,service,sevrity,impact_start\n", "f.csv")


def _incidents(data_dir: Path) -> list[tuple[Any, ...]]:
    snap = Snapshot(data_dir)
    try:
        with snap.connection() as con:
            return con.execute(
                "SELECT id, service, severity, impact_start, resolved_at, imported FROM incidents ORDER BY id"
            ).fetchall()
    finally:
        snap.close()


def test_reimporting_the_same_file_changes_nothing_and_a_correction_updates_one(tmp_path: Path) -> None:
    f = tmp_path / "incidents.json"
    f.write_text(page(incident("a"), incident("b", "minor")))
    first = import_file(tmp_path, "statuspage", f)
    assert (first.accepted, first.applied, first.queued) == (2, 2, False)
    before = _incidents(tmp_path)
    assert [r[0] for r in before] == ["IMP-a", "IMP-b"]

    again = import_file(tmp_path, "statuspage", f)
    assert (again.accepted, again.duplicates, again.applied) == (0, 2, 0)
    assert _incidents(tmp_path) == before
    assert Inbox(tmp_path).count() == 2

    f.write_text(page(incident("a"), incident("b", "minor", resolved_at="2026-07-01T12:00:00Z")))
    fixed = import_file(tmp_path, "statuspage", f)
    assert (fixed.accepted, fixed.duplicates) == (1, 1)
    after = _incidents(tmp_path)
    assert len(after) == 2 and str(after[1][4]) == "2026-07-01 12:00:00"


def test_a_bad_file_stores_nothing(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text(page(incident("a"), incident("b", impact="huge")))
    with pytest.raises(ImportFileError):
        import_file(tmp_path, "statuspage", f)
    assert Inbox(tmp_path).count() == 0
    assert not (tmp_path / "slo.duckdb").exists()


def test_while_the_service_holds_the_writer_the_rows_are_queued(tmp_path: Path) -> None:
    f = tmp_path / "incidents.json"
    f.write_text(page(incident("a")))
    with Writer(tmp_path):
        outcome = import_file(tmp_path, "statuspage", f)
    assert (outcome.accepted, outcome.queued, outcome.applied) == (1, True, 0)
    [row] = Inbox(tmp_path).read_since(0)
    assert (row.kind, row.body["id"]) == ("import", "IMP-a")


def test_fold_import_rows_is_idempotent(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.append(parse_statuspage(page(incident("a"), incident("b")), "f.json").entries())
    rows = inbox.read_since(0)
    con = store()
    assert fold_import_rows(con, rows) == 2
    snapshot = con.execute("SELECT * FROM incidents ORDER BY id").fetchall()
    timeline = con.execute("SELECT * FROM timeline ORDER BY incident_id, seq").fetchall()
    assert fold_import_rows(con, rows) == 2
    assert con.execute("SELECT * FROM incidents ORDER BY id").fetchall() == snapshot
    assert con.execute("SELECT * FROM timeline ORDER BY incident_id, seq").fetchall() == timeline
    # each incident's Statuspage updates, oldest first, on its timeline
    assert [(r[0], r[1], r[6]) for r in timeline] == [
        ("IMP-a", 1, "Looking."),
        ("IMP-a", 2, "Resolved."),
        ("IMP-b", 1, "Looking."),
        ("IMP-b", 2, "Resolved."),
    ]


# The accepted range (ingest's `plausible_range`) at a fixed import time: 2000-01-01 … now + 1 day.
NOW = "2026-07-10T12:00:00"


@pytest.mark.parametrize(
    ("impact_start", "accepted"),
    [
        ("2000-01-01T00:00:00Z", True),
        ("1999-12-31T23:59:59Z", False),
        ("2000-01-01T00:30:00+01:00", False),  # 1999-12-31T23:30Z
        ("2026-07-11T12:00:00Z", True),  # now + 1 day exactly
        ("2026-07-11T12:00:01Z", False),
        ("2026-07-11T13:00:01+02:00", True),  # 11:00:01Z
        ("0001-01-01T00:00:00Z", False),
        ("9999-12-31T23:59:59Z", False),
    ],
)
def test_csv_times_outside_the_accepted_range_are_refused_with_file_line(
    impact_start: str, accepted: bool
) -> None:
    text = (
        "id,title,service,severity,impact_start\n"
        f"1,ok,svc,P1,2026-07-01T00:00:00Z\n2,t,svc,P2,{impact_start}\n"
    )
    now = datetime.datetime.fromisoformat(NOW)
    if accepted:
        assert len(parse_csv(text, "f.csv", now).incidents) == 2
        return
    with pytest.raises(ImportFileError) as err:
        parse_csv(text, "f.csv", now)
    [problem] = err.value.problems
    assert problem.startswith("f.csv:3: impact_start: "), problem
    assert problem.endswith(
        " is outside the accepted range 2000-01-01T00:00:00Z … 2026-07-11T12:00:00Z "
        "(2000-01-01 to one day after receipt)"
    ), problem


def test_statuspage_times_outside_the_range_name_the_line_of_the_field() -> None:
    bad_update = incident("u")
    bad_update["incident_updates"][1]["created_at"] = "1970-01-01T00:00:00Z"
    text = json.dumps(
        {"incidents": [incident("a", started_at="1999-06-01T00:00:00Z"), bad_update]}, indent=1
    )
    lines = text.splitlines()
    with pytest.raises(ImportFileError) as err:
        parse_statuspage(text, "f.json", datetime.datetime.fromisoformat(NOW))
    started, update = err.value.problems
    # The line each names is the line holding that value, as a reader finds it in the file.
    line = int(started.split(":")[1])
    assert '"started_at": "1999-06-01T00:00:00Z"' in lines[line - 1]
    assert started.startswith(f"f.json:{line}: incidents[0] (id a).started_at: 1999-06-01T00:00:00Z is ")
    line = int(update.split(":")[1])
    assert '"created_at": "1970-01-01T00:00:00Z"' in lines[line - 1]
    assert update.startswith(f"f.json:{line}: incidents[1] (id u).incident_updates[1].created_at: 1970-")
