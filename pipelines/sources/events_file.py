"""CSV/Parquet events with columns `slo,timestamp,good,valid` (one row per SLO per minute or finer).

The file is never read into Python: `EventsFile.relation` is a DuckDB relation over it, on whatever
connection will use it (the writer's, for a history load), so the write path parses, checks, joins
SLO keys and sums rows in SQL (pipelines/buckets.py). When a check fails, `first_bad_line` reads the
file once more, numbering its rows, to say which line broke it: a cost only bad input pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.errors import SourceError

REQUIRED = ("slo", "timestamp", "good", "valid")
# Bucket times outside these years are refused: a year-1 or year-9999 row is a broken export, and
# it would stretch every SLO's evaluation over millennia (epoch minutes, UTC).
EARLIEST_MINUTE = 15_778_080  # 2000-01-01
LATEST_MINUTE = 68_374_080  # 2100-01-01 (exclusive)

# SQL over `_ts` (text or a timestamp): the row's minute, from an ISO 8601 text (a zone offset is
# honoured; none means UTC) or epoch seconds, floored; NULL when it is neither or out of range.
_MINUTE = f"""(SELECT CASE WHEN m >= {EARLIEST_MINUTE} AND m < {LATEST_MINUTE} THEN m::INTEGER END
   FROM (SELECT floor(epoch(coalesce(try_cast(_ts AS TIMESTAMPTZ),
                                     try(to_timestamp(try_cast(_ts AS DOUBLE))))) / 60) AS m))"""

# SQL: what makes a parsed row bad (besides an unknown SLO id, which the join finds).
BAD_ROW = """slo IS NULL OR minute IS NULL OR good IS NULL OR valid IS NULL OR good < 0 OR valid < 0
             OR good > valid OR good <> trunc(good) OR valid <> trunc(valid)"""


@dataclass(frozen=True)
class EventsFile:
    """One events file, optionally limited to minutes [start, end)."""

    path: Path
    start: int | None = None
    end: int | None = None

    def sql(self, con: duckdb.DuckDBPyConnection, *, texts: bool = False) -> str:
        """A SELECT of (slo, minute, good, valid) over every row of the file, unfiltered and
        unchecked: a value that does not parse is NULL. Counts are DOUBLE so fractions can be refused.
        With `texts`, also the row's raw timestamp and counts (for the error message)."""
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file")
        path = str(self.path).replace("'", "''")
        if self.path.suffix.lower() in (".parquet", ".pq"):
            source = f"read_parquet('{path}')"
        else:
            # Every column as text: a count that is not a number must become a bad row with its
            # line, not a reader error that stops the whole file.
            source = f"read_csv('{path}', header = true, all_varchar = true)"
        try:
            columns = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        except duckdb.Error as exc:
            raise SourceError(f"{self.path}: cannot read events: {exc}") from exc
        kinds = {name.lower(): str(kind) for name, kind, *_ in columns}
        missing = [c for c in REQUIRED if c not in kinds]
        if missing:
            raise SourceError(
                f"{self.path}: missing column(s) {', '.join(missing)}; expected columns "
                f"{','.join(REQUIRED)} (found {','.join(name for name, *_ in columns)})"
            )
        # A Parquet file may hold real timestamps; text (ISO or epoch seconds) is parsed.
        native = kinds["timestamp"].startswith("TIMESTAMP") or kinds["timestamp"] == "DATE"
        ts = '"timestamp"::TIMESTAMPTZ' if native else '"timestamp"::VARCHAR'
        extra = (
            ', "timestamp"::VARCHAR AS ts_text, good::VARCHAR AS good_text, valid::VARCHAR AS valid_text'
            if texts
            else ""
        )
        return f"""SELECT slo::VARCHAR AS slo, (SELECT {_MINUTE} FROM (SELECT {ts} AS _ts)) AS minute,
                          try_cast(good AS DOUBLE) AS good, try_cast(valid AS DOUBLE) AS valid{extra}
                   FROM {source}"""

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
        (a table with a `slo_id` column: the ids the specs define) an unknown SLO id is one too."""
        unknown = (
            f"NOT EXISTS (SELECT 1 FROM {known} k WHERE k.slo_id = e.slo)" if known is not None else "FALSE"
        )
        rows = con.execute(
            f"""SELECT line, slo, ts_text, good_text, valid_text, bad FROM (
                  SELECT *, {BAD_ROW} AS bad, {unknown} AS unknown
                  FROM (SELECT row_number() OVER () + 1 AS line, * FROM ({self.sql(con, texts=True)})) e)
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
        rows = source.sql(con)
        if con.execute(f"SELECT count(*) FROM ({rows}) WHERE {BAD_ROW}").fetchall() != [(0,)]:
            raise source.first_bad_line(con)
        return con.execute(
            f"""SELECT slo AS slo_id, minute::BIGINT AS minute, good::BIGINT AS good,
                       valid::BIGINT AS valid FROM ({rows}) WHERE {source.in_range()}"""
        ).df()
    finally:
        con.close()
