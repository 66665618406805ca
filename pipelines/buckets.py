"""Writing per-minute buckets into the store: validation, de-duplication and dirty tracking, in SQL.

Two steps, so bad input changes nothing: `stage_buckets` parses and checks a source into the temp
table `staged_buckets` before anything is written (a file is read by DuckDB itself, never row by row in
Python; an error names the file and line of the first bad row), and `write_staged` stores it under the
SLOs' keys once the catalog is synced.

Within one batch, rows for the same SLO and minute are summed (several event rows in a minute).
Across batches, a newer batch replaces the stored counts of the minutes it covers (a re-read of
an overlap from Prometheus corrects, never double-counts). Whatever is written marks the SLO
dirty from its earliest minute, so the engine re-evaluates from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from pipelines.errors import SourceError
from pipelines.partitions import mark_rows_changed
from pipelines.sources import BucketSource
from pipelines.sources.events_file import BAD_ROW, EventsFile

STAGED = "staged_buckets"
_IDS = "staged_slo_ids"


@dataclass(frozen=True)
class Staged:
    rows: int  # (SLO, minute) rows after summing
    first: int | None  # earliest and latest minute staged
    last: int | None


def stage_buckets(
    con: duckdb.DuckDBPyConnection, source: BucketSource, slo_ids: Sequence[str], origin: str
) -> Staged:
    """Parse, check and sum `source` into the temp table `staged_buckets` (idx into `slo_ids`,
    minute, good, valid), in minute order. Raises SourceError on the first bad row; writes nothing
    to the store's tables."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_IDS} AS
            SELECT (i - 1)::INTEGER AS idx, ids[i] AS slo_id
            FROM (SELECT ?::VARCHAR[] AS ids), generate_series(1, len(ids)) t(i)""",
        [list(slo_ids)],
    )
    try:
        if isinstance(source, pd.DataFrame):
            _stage_frame(con, source, origin)
        else:
            _stage_files(con, source)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_IDS}")
    ((first, last, rows),) = con.execute(
        f"SELECT min(minute), max(minute), count(*) FROM {STAGED}"
    ).fetchall()
    return Staged(int(rows), first, last)


def _stage_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, origin: str) -> None:
    missing = {"slo_id", "minute", "good", "valid"} - set(frame.columns)
    if missing:
        raise SourceError(f"{origin}: missing columns {sorted(missing)}")
    con.register("incoming", frame)
    try:
        unknown = [
            row[0]
            for row in con.execute(
                f"""SELECT DISTINCT i.slo_id::VARCHAR FROM incoming i ANTI JOIN {_IDS} s
                    ON s.slo_id = i.slo_id::VARCHAR ORDER BY 1"""
            ).fetchall()
        ]
        if unknown:
            shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
            raise SourceError(
                f"{origin}: {len(unknown)} SLO id(s) not defined by any spec: {shown}; "
                "ids are <service>/<slo name> as `slo validate` lists them"
            )
        ((count, first),) = con.execute(
            """SELECT count(*), min(minute) FROM incoming
               WHERE good IS NULL OR valid IS NULL OR good < 0 OR valid < 0 OR good > valid
                  OR good <> trunc(good) OR valid <> trunc(valid)"""
        ).fetchall()
        if count:
            raise SourceError(
                f"{origin}: {count} row(s) break 0 ≤ good ≤ valid with whole counts (first at minute {first})"
            )
        # -- Sum rows for the same SLO and minute within the batch; keep minute order for zone maps.
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {STAGED} AS
                SELECT s.idx, i.minute::INTEGER AS minute, sum(i.good)::BIGINT AS good,
                       sum(i.valid)::BIGINT AS valid
                FROM incoming i JOIN {_IDS} s ON s.slo_id = i.slo_id::VARCHAR
                GROUP BY s.idx, i.minute ORDER BY minute, s.idx"""
        )
    finally:
        con.unregister("incoming")


def _stage_files(con: duckdb.DuckDBPyConnection, files: Sequence[EventsFile]) -> None:
    """One pass over each file: parse, join the SLO ids, sum per SLO and minute, flagging groups
    that hold a bad row or an unknown id; a flagged file is read again to find its first bad line."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {STAGED}
            (idx INTEGER, minute INTEGER, good BIGINT, valid BIGINT)"""
    )
    grouped = []
    for file in files:
        rows = file.sql(con)
        # Bad rows (NULL minute or counts, unknown id) are kept whatever their time, so a broken
        # row outside --from/--to still stops the load, as it does inside.
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE staged_file AS
                SELECT s.idx, r.minute, sum(r.good)::BIGINT AS good, sum(r.valid)::BIGINT AS valid,
                       bool_or({BAD_ROW} OR s.idx IS NULL) AS bad
                FROM ({rows}) r LEFT JOIN {_IDS} s ON s.slo_id = r.slo
                WHERE ({BAD_ROW} OR s.idx IS NULL) OR ({file.in_range()})
                GROUP BY s.idx, r.minute"""
        )
        if con.execute("SELECT count(*) FROM staged_file WHERE bad").fetchall() != [(0,)]:
            raise file.first_bad_line(con, _IDS)
        if len(files) == 1:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE {STAGED} AS
                    SELECT idx, minute, good, valid FROM staged_file ORDER BY minute, idx"""
            )
        else:
            grouped.append(file)
            con.execute(f"INSERT INTO {STAGED} SELECT idx, minute, good, valid FROM staged_file")
    con.execute("DROP TABLE IF EXISTS staged_file")
    if grouped:  # several files: one SLO's minute may come from more than one of them
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {STAGED} AS
                SELECT idx, minute, sum(good)::BIGINT AS good, sum(valid)::BIGINT AS valid
                FROM {STAGED} GROUP BY idx, minute ORDER BY minute, idx"""
        )


def write_staged(con: duckdb.DuckDBPyConnection, slo_ids: Sequence[str], keys: Mapping[str, int]) -> int:
    """Store `staged_buckets` under the SLOs' keys (`keys`: what `catalog.sync_slos` returned, for the
    same `slo_ids` the rows were staged with); returns the rows written."""
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE batch AS
                SELECT k.slo_key, b.minute, b.good, b.valid FROM {STAGED} b
                JOIN (SELECT (i - 1)::INTEGER AS idx, ks[i]::INTEGER AS slo_key
                      FROM (SELECT ?::INTEGER[] AS ks), generate_series(1, len(ks)) t(i)) k USING (idx)
                ORDER BY b.minute, k.slo_key""",
            [[keys[slo_id] for slo_id in slo_ids]],
        )
    finally:
        con.execute(f"DROP TABLE IF EXISTS {STAGED}")
    ((lo, hi, n),) = con.execute("SELECT min(minute), max(minute), count(*) FROM batch").fetchall()
    if not n:
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        # -- A newer batch replaces stored minutes it covers (range-limited so zone maps prune).
        con.execute(
            """DELETE FROM buckets b WHERE b.minute BETWEEN ? AND ?
               AND EXISTS (SELECT 1 FROM batch n WHERE n.slo_key = b.slo_key AND n.minute = b.minute)""",
            [lo, hi],
        )
        con.execute("INSERT INTO buckets SELECT * FROM batch")
        mark_rows_changed(con, "buckets", "batch", hi)  # the next publish rewrites their closed days
        # -- Track the first minute and the earliest changed minute per SLO.
        con.execute(
            """INSERT INTO engine_state (slo_key, first_minute, evaluated_to, dirty_from)
               SELECT slo_key, min(minute), NULL, min(minute) FROM batch GROUP BY slo_key
               ON CONFLICT (slo_key) DO UPDATE SET
                 first_minute = least(engine_state.first_minute, excluded.first_minute),
                 dirty_from = least(coalesce(engine_state.dirty_from, excluded.dirty_from),
                                    excluded.dirty_from),
                 evaluated_to = CASE WHEN excluded.first_minute < engine_state.first_minute
                                     THEN NULL ELSE engine_state.evaluated_to END"""
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS batch")
    return int(n)


def write_buckets(
    con: duckdb.DuckDBPyConnection, source: BucketSource, keys: Mapping[str, int], origin: str
) -> int:
    """Stage and store `source` for SLOs already synced (`keys`: id → key); returns the rows written.

    `origin` names the input in error messages (a file name, "demo", "prometheus").
    Nothing is written when any row is invalid.
    """
    ids = list(keys)
    stage_buckets(con, source, ids, origin)
    return write_staged(con, ids, keys)
