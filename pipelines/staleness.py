"""How fresh each SLO's source data is: high-water marks in the store, stale marks beside it.

A successful pull is published with its metric data: `source_state` holds, per SLO, the minute up to
which the source's buckets are complete (the next pull starts there, minus a short overlap) and when
that pull finished. A failed pull publishes nothing — the snapshot stays exactly as it was (DESIGN §1)
— so its record cannot live in the snapshot: it goes to the small side file `<data>/stale.json`,
written atomically by the writer. A mark is current while it is newer than the SLO's last published
success; `slo status` reads both and says `stale: true` with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from pipelines.errors import StoreError

STALE_FILE = "stale.json"


@dataclass(frozen=True)
class StaleMark:
    """The last failure of an SLO's source: why, when, and since when it has been failing."""

    slo: str
    source: str
    reason: str
    failed_at: str  # ISO 8601 UTC
    since: str  # first failure after the last success


@dataclass(frozen=True)
class SourceState:
    high_water_minute: int
    last_success_at: dt.datetime  # naive UTC, as stored


def _iso(at: dt.datetime) -> str:
    # Microseconds kept: a mark is compared with the last success, which can be in the same second.
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_marks(data_dir: Path) -> dict[str, StaleMark]:
    """Every SLO's last recorded failure (current or not), from `<data>/stale.json`."""
    path = Path(data_dir) / STALE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {slo: StaleMark(**mark) for slo, mark in raw["slos"].items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(
            f"{path}: not a stale-marks file ({exc}); remove it — the next failed pull writes it again"
        ) from exc


def current_marks(marks: Mapping[str, StaleMark], states: Mapping[str, SourceState]) -> dict[str, StaleMark]:
    """The marks that still hold: failures after the SLO's last published success."""
    out = {}
    for slo, mark in marks.items():
        state = states.get(slo)
        if state is None or _parse(mark.failed_at) > state.last_success_at.replace(tzinfo=dt.UTC):
            out[slo] = mark
    return out


def mark_stale(
    data_dir: Path,
    source: str,
    failures: Mapping[str, str],
    states: Mapping[str, SourceState],
    now: dt.datetime | None = None,
) -> dict[str, StaleMark]:
    """Record `failures` (SLO id → reason) in the side file; the caller holds the writer lock.

    `since` carries over from a mark that is still current, so it says when the SLO went stale.
    Marks of other SLOs are kept.
    """
    now = now or dt.datetime.now(dt.UTC)
    marks = read_marks(data_dir)
    ongoing = current_marks(marks, states)
    for slo, reason in failures.items():
        since = ongoing[slo].since if slo in ongoing else _iso(now)
        marks[slo] = StaleMark(slo=slo, source=source, reason=reason, failed_at=_iso(now), since=since)
    path = Path(data_dir) / STALE_FILE
    tmp = path.with_name(f".{STALE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(
        json.dumps({"slos": {slo: asdict(m) for slo, m in sorted(marks.items())}}, indent=2) + "\n",
        encoding="utf-8",
    )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return {slo: marks[slo] for slo in failures}


def source_states(con: duckdb.DuckDBPyConnection, source: str | None = None) -> dict[str, SourceState]:
    """SLO id → high-water mark and last success (of `source`, or the latest of any source)."""
    try:
        rows = con.execute(
            """SELECT s.slo_id, max(st.high_water_minute), max(st.last_success_at)
               FROM source_state st JOIN slos s USING (slo_key)
               WHERE ? IS NULL OR st.source = ? GROUP BY s.slo_id""",
            [source, source],
        ).fetchall()
    except duckdb.CatalogException:
        return {}  # a snapshot published before source_state existed
    return {slo: SourceState(int(hw), at) for slo, hw, at in rows}


def record_source_state(
    con: duckdb.DuckDBPyConnection, keys: Mapping[str, int], source: str, high_water: Mapping[str, int]
) -> None:
    """Store each SLO's new high-water mark with this moment as its last success."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for slo, minute in high_water.items():
        con.execute(
            """INSERT INTO source_state VALUES (?, ?, ?, ?)
               ON CONFLICT (slo_key, source) DO UPDATE SET
                 high_water_minute = excluded.high_water_minute,
                 last_success_at = excluded.last_success_at""",
            [keys[slo], source, minute, now],
        )
