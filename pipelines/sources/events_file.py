"""CSV/Parquet events with columns `slo,timestamp,good,valid` (one row per SLO per minute or finer).

The file is never read into Python: `EventsFile.relation` is a DuckDB relation over it, on whatever
connection will use it (the writer's, for a history load), so the write path parses, checks, joins
SLO keys and sums rows in SQL (pipelines/buckets.py). When a check fails, `first_bad_line` reads the
file once more, numbering its rows, to say which line broke it: a cost only bad input pays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.errors import SourceError
from pipelines.timeutil import EARLIEST, minute_of

REQUIRED = ("slo", "timestamp", "good", "valid")
# Bucket times outside [EARLIEST, 2100-01-01) are refused (epoch minutes): a year-1 or year-9999
# row is a broken export. Files may hold data ahead of now (a replayed history), so the upper bound
# is a year, not the ingest door's "now + 1 day".
EARLIEST_MINUTE = minute_of(EARLIEST)
LATEST_MINUTE = minute_of(dt.datetime(2100, 1, 1))


def _minute_of(t: str, per_minute: int, whole: bool) -> str:
    """SQL: a row's time `t` in units of 1/`per_minute` of a minute since the epoch (seconds as a DOUBLE,
    or integer micro- or nanoseconds when `whole`) → its minute; NULL when out of range (the bounds
    make the integer `//` a floor)."""
    minute = f"{t} // {per_minute}" if whole else f"floor({t} / {per_minute})"
    return f"""CASE WHEN {t} >= {EARLIEST_MINUTE * per_minute} AND {t} < {LATEST_MINUTE * per_minute}
                    THEN ({minute})::INTEGER END"""


# Column types whose values are whole counts already: read as BIGINT, not through DOUBLE.
_WHOLE = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UINTEGER", "USMALLINT", "UTINYINT")
_EPOCH_OF_TEXT = "epoch(coalesce(try_cast(ts AS TIMESTAMPTZ), try(to_timestamp(try_cast(ts AS DOUBLE)))))"


# SQL: what makes a parsed row bad (besides an unknown SLO id, which the join finds).
BAD_ROW = """slo IS NULL OR minute IS NULL OR good IS NULL OR valid IS NULL OR good < 0 OR valid < 0
             OR good > valid OR good <> trunc(good) OR valid <> trunc(valid)"""


@dataclass(frozen=True)
class Rows:
    """A SELECT of (slo, minute, good, valid) over a file's rows, unfiltered and unchecked, and
    the table where the CSV reader keeps the rows it could not convert (None: it converts nothing,
    every value arrives as text and a bad one becomes NULL)."""

    sql: str
    rejects: str | None


@dataclass(frozen=True)
class EventsFile:
    """One events file, optionally limited to minutes [start, end)."""

    path: Path
    start: int | None = None
    end: int | None = None

    def rows(self, con: duckdb.DuckDBPyConnection, *, typed: bool = True, texts: bool = False) -> Rows:
        """The file's rows. `typed`: let the reader convert counts and times in parallel, as its
        sniffer found them (fast; a value it cannot convert lands in `Rows.rejects`, and the caller
        reads the file again untyped). Untyped, every value is parsed from text: a value that does not
        parse is NULL. Counts are DOUBLE so fractions can be refused. `texts` adds the row's raw
        timestamp and counts (for an error message)."""
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file")
        path = str(self.path).replace("'", "''")
        parquet = self.path.suffix.lower() in (".parquet", ".pq")
        if parquet:
            source = f"read_parquet('{path}')"
        else:
            source = f"read_csv('{path}', header = true{'' if typed else ', all_varchar = true'})"
        try:
            columns = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        except duckdb.Error as exc:
            raise SourceError(f"{self.path}: cannot read events: {exc}") from exc
        kinds = {name.lower(): str(kind) for name, kind, *_ in columns}
        names = {name.lower(): name for name, *_ in columns}
        missing = [c for c in REQUIRED if c not in kinds]
        if missing:
            raise SourceError(
                f"{self.path}: missing column(s) {', '.join(missing)}; expected columns "
                f"{','.join(REQUIRED)} (found {','.join(names.values())})"
            )
        stamp = kinds["timestamp"]
        native = stamp.startswith("TIMESTAMP") or stamp == "DATE"
        numeric = stamp in ("BIGINT", "INTEGER", "DOUBLE", "HUGEINT", "UBIGINT", "FLOAT")
        rejects = None
        if not parquet and typed:
            rejects = f"rejects_{abs(hash((path, id(con))))}"
            time_type = "TIMESTAMPTZ" if native else "DOUBLE" if numeric else "VARCHAR"
            types = ", ".join(
                f"'{names[c]}': '{kind}'"
                for c, kind in (
                    ("slo", "VARCHAR"),
                    ("timestamp", time_type),
                    ("good", "DOUBLE"),
                    ("valid", "DOUBLE"),
                )
            )
            source = (
                f"read_csv('{path}', header = true, types = {{{types}}}, store_rejects = true, "
                f"rejects_table = '{rejects}', rejects_scan = '{rejects}_scan')"
            )
        # The row's time `t`, computed once: a native time in integer micro- or nanoseconds (a third of the
        # DOUBLE route's cost on a 43 M-row Parquet file; nanoseconds are not rounded to a microsecond
        # first, which could carry 59.9999996 s into the next minute), anything else in epoch seconds.
        whole_time = native and typed
        if whole_time and stamp.endswith("_NS"):
            t, per_minute = 'epoch_ns("timestamp")', 60_000_000_000
        elif whole_time:
            t, per_minute = 'epoch_us("timestamp"::TIMESTAMPTZ)', 60_000_000
        elif native:
            t, per_minute = 'epoch("timestamp"::TIMESTAMPTZ)', 60
        elif numeric and typed:
            t, per_minute = '"timestamp"::DOUBLE', 60
        else:
            t, per_minute = _EPOCH_OF_TEXT.replace("ts AS", '"timestamp"::VARCHAR AS'), 60
        # Counts stay DOUBLE where a fraction could arrive (text, CSV), so it is refused, not rounded.
        whole = typed and parquet and kinds["good"] in _WHOLE and kinds["valid"] in _WHOLE
        count = "BIGINT" if whole else "DOUBLE"
        raw = (
            ', "timestamp"::VARCHAR AS ts_text, good::VARCHAR AS good_text, valid::VARCHAR AS valid_text'
            if texts
            else ""
        )
        shown = ", ts_text, good_text, valid_text" if texts else ""
        return Rows(
            f"""SELECT slo, {_minute_of("t", per_minute, whole_time)} AS minute, good, valid{shown}
                FROM (SELECT slo::VARCHAR AS slo, {t} AS t, try_cast(good AS {count}) AS good,
                             try_cast(valid AS {count}) AS valid{raw}
                      FROM {source})""",
            rejects,
        )

    def in_range(self) -> str:
        """SQL condition on `minute` for this file's [start, end)."""
        parts = []
        if self.start is not None:
            parts.append(f"minute >= {int(self.start)}")
        if self.end is not None:
            parts.append(f"minute < {int(self.end)}")
        return " AND ".join(parts) or "TRUE"

    def first_bad_line(self, con: duckdb.DuckDBPyConnection, known: str | None = None) -> SourceError:
        """The error for the first bad row (line numbers count the header as line 1); with `known`
        (a table with a `slo_id` column: the ids the specs define) an unknown SLO id in range is one too."""
        unknown = (
            f"NOT EXISTS (SELECT 1 FROM {known} k WHERE k.slo_id = e.slo) AND ({self.in_range()})"
            if known is not None
            else "FALSE"
        )
        rows = con.execute(
            f"""SELECT line, slo, ts_text, good_text, valid_text, bad FROM (
                  SELECT *, {BAD_ROW} AS bad, {unknown} AS unknown
                  FROM (SELECT row_number() OVER () + 1 AS line, *
                        FROM ({self.rows(con, typed=False, texts=True).sql})) e)
                WHERE bad OR unknown ORDER BY line LIMIT 1"""
        ).fetchall()
        if not rows:
            return SourceError(f"{self.path}: cannot read events")
        ((line, slo, ts, good, valid, bad),) = rows
        if not bad:
            return SourceError(
                f"{self.path}:{line}: SLO id not defined by any spec: {slo}; "
                "ids are <service>/<slo name> as `slo validate` lists them"
            )
        return SourceError(
            f"{self.path}:{line}: bad row slo={slo!r} timestamp={ts!r} good={good!r} valid={valid!r}; "
            "expected an SLO id, an ISO 8601 UTC time or epoch seconds (years 2000…2099), and whole "
            "counts with 0 ≤ good ≤ valid"
        )


def read_events(path: Path, start: int | None = None, end: int | None = None) -> pd.DataFrame:
    """The file's rows as a frame (slo_id, minute, good, valid) in [start, end): for inspection and
    tests; the write path reads the file in SQL instead (pipelines/buckets.py)."""
    source = EventsFile(Path(path), start, end)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        rows = source.rows(con, typed=False).sql
        if con.execute(f"SELECT count(*) FROM ({rows}) WHERE {BAD_ROW}").fetchall() != [(0,)]:
            raise source.first_bad_line(con)
        return con.execute(
            f"""SELECT slo AS slo_id, minute::BIGINT AS minute, good::BIGINT AS good,
                       valid::BIGINT AS valid FROM ({rows}) WHERE {source.in_range()}"""
        ).df()
    finally:
        con.close()
