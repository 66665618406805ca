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
import numpy as np
import pandas as pd

from pipelines.errors import SourceError
from pipelines.partitions import database_dir, sql_text, store_rows, store_view
from pipelines.sources import BucketSource
from pipelines.sources.events_file import BAD_ROW, EventsFile, Rows

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
    minute, good, valid), in minute order, one row per SLO and minute. Raises SourceError on the first
    bad row; writes nothing to the store's tables."""
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
            _stage_files(con, source, slo_ids)
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
                       sum(i.valid)::BIGINT AS valid, FALSE AS bad
                FROM incoming i JOIN {_IDS} s ON s.slo_id = i.slo_id::VARCHAR
                GROUP BY s.idx, i.minute ORDER BY minute, s.idx"""
        )
    finally:
        con.unregister("incoming")


def _stage_files(con: duckdb.DuckDBPyConnection, files: Sequence[EventsFile], slo_ids: Sequence[str]) -> None:
    """One pass over each file: parse, look the SLO ids up and flag rows that are bad or name an
    unknown id; a flagged file is read again to find its first bad line. Rows are then summed per SLO
    and minute, and sorted, only when they are not one per SLO and minute in minute order already."""
    # The id → index lookup is a cast to an ENUM of the spec ids: a projection keeps the file's row
    # order (a join would not), so a file in minute order needs no sort.
    index = (
        "enum_code(try_cast(slo AS ENUM({})))::INTEGER".format(", ".join(sql_text(i) for i in slo_ids))
        if slo_ids
        else "NULL::INTEGER"
    )
    parts = []
    for n, file in enumerate(files):
        part = f"{STAGED}_{n}"
        if not _stage_file(con, file, file.rows(con), index, part):
            # The reader could not convert a value as its sniffer typed the column (a stray row, or
            # times in more than one format): read the file again as text, which says where.
            _stage_file(con, file, file.rows(con, typed=False), index, part)
        if con.execute(f"SELECT count(*) FROM {part} WHERE bad").fetchall() != [(0,)]:
            raise file.first_bad_line(con, _IDS)
        parts.append(part)
    if len(parts) == 1:
        con.execute(f"DROP TABLE IF EXISTS {STAGED}")  # a stage that never reached write_staged
        con.execute(f"ALTER TABLE {parts[0]} RENAME TO {STAGED}")
    else:
        union = " UNION ALL ".join(f"SELECT * FROM {part}" for part in parts)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED} AS {union}")
        for part in parts:
            con.execute(f"DROP TABLE {part}")
    if not _in_order(con, len(slo_ids)):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {STAGED} AS
                SELECT idx, minute, sum(good)::BIGINT AS good, sum(valid)::BIGINT AS valid, FALSE AS bad
                FROM {STAGED} GROUP BY idx, minute ORDER BY minute, idx"""
        )


def _stage_file(con: duckdb.DuckDBPyConnection, file: EventsFile, rows: Rows, index: str, part: str) -> bool:
    """Materialise one file's rows in range (and every bad row, whatever its time, so a broken row
    outside --from/--to still stops the load; an unknown SLO id counts only in range, as before: a file
    may still hold an SLO since removed from the specs); False when the reader rejected a value."""
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {part} AS
                SELECT idx, minute, CASE WHEN NOT bad THEN good::BIGINT END AS good,
                       CASE WHEN NOT bad THEN valid::BIGINT END AS valid, bad
                FROM (SELECT *, ({BAD_ROW}) OR (idx IS NULL AND ({file.in_range()})) AS bad
                      FROM (SELECT {index} AS idx, minute, good, valid, slo FROM ({rows.sql})))
                WHERE bad OR ({file.in_range()})"""
        )
        if rows.rejects is None:
            return True
        return con.execute(f"SELECT count(*) FROM {rows.rejects}").fetchall() == [(0,)]
    except duckdb.Error as exc:
        raise SourceError(f"{file.path}: cannot read events: {exc}") from exc
    finally:
        if rows.rejects is not None:
            con.execute(f"DROP TABLE IF EXISTS {rows.rejects}")
            con.execute(f"DROP TABLE IF EXISTS {rows.rejects}_scan")


# Rows per batch when checking the staged order (bounded memory, however long the history).
ORDER_BATCH = 1 << 22


def _in_order(con: duckdb.DuckDBPyConnection, ids: int) -> bool:
    """Whether the staged rows are one per SLO and minute, in minute order (a typical export): then
    they are stored as they are. One vectorised pass over a row key, a batch at a time, instead of a
    GROUP BY of every row."""
    ((lo,),) = con.execute(f"SELECT min(minute) FROM {STAGED}").fetchall()
    if lo is None:
        return True
    reader = con.sql(f"SELECT (minute - {lo})::BIGINT * {ids} + idx AS k FROM {STAGED}").to_arrow_reader(
        ORDER_BATCH
    )
    last = -1
    for batch in reader:
        key = batch.column(0).to_numpy()
        if len(key) and (key[0] <= last or not bool(np.all(key[1:] > key[:-1]))):
            return False
        if len(key):
            last = int(key[-1])
    return True


def write_staged(con: duckdb.DuckDBPyConnection, slo_ids: Sequence[str], keys: Mapping[str, int]) -> int:
    """Store `staged_buckets` under the SLOs' keys (`keys`: what `catalog.sync_slos` returned, for the
    same `slo_ids` the rows were staged with); returns the rows written."""
    key_list = ", ".join(str(int(keys[slo_id])) for slo_id in slo_ids)
    # A projection, not a join, so the staged minute order is the stored order (zone maps).
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW batch AS
            SELECT ([{key_list}]::INTEGER[])[idx + 1] AS slo_key, minute, good, valid FROM {STAGED}"""
    )
    try:
        ((n,),) = con.execute(f"SELECT count(*) FROM {STAGED}").fetchall()
        if not n:
            return 0
        data_dir = database_dir(con)
        con.execute("BEGIN TRANSACTION")
        try:
            # -- Closed hours to their files (each row written once), the open hour to buckets_open.
            store_rows(con, data_dir, "buckets", "batch", keys=len(slo_ids))
            # -- Track the first minute and the earliest changed minute per SLO.
            con.execute(
                f"""INSERT INTO engine_state (slo_key, first_minute, evaluated_to, dirty_from)
                   SELECT ([{key_list}]::INTEGER[])[idx + 1], first, NULL, first
                   FROM (SELECT idx, min(minute) AS first FROM {STAGED} GROUP BY idx)
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
            store_view(con, data_dir)
        return int(n)
    finally:
        con.execute("DROP VIEW IF EXISTS batch")
        con.execute(f"DROP TABLE IF EXISTS {STAGED}")


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
