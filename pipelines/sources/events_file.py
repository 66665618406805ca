"""CSV/Parquet events with columns `slo,timestamp,good,valid` (one row per SLO per minute or finer)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from pipelines.errors import SourceError

REQUIRED = ("slo", "timestamp", "good", "valid")


def read_events(path: Path, start: int | None = None, end: int | None = None) -> pd.DataFrame:
    """Rows bucketed to the minute (timestamps floored, UTC), optionally limited to [start, end).

    Timestamps are ISO 8601 (a zone offset is honoured; none means UTC) or epoch seconds.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    reader = "read_parquet" if path.suffix.lower() in (".parquet", ".pq") else "read_csv"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        opts = "" if reader == "read_parquet" else ", header = true, all_varchar = true"
        rel = con.sql(f"SELECT * FROM {reader}(?{opts})", params=[str(path)])
        cols = [c.lower() for c in rel.columns]
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise SourceError(
                f"{path}: missing column(s) {', '.join(missing)}; expected columns "
                f"{','.join(REQUIRED)} (found {','.join(rel.columns)})"
            )
        con.register("raw", rel)
        # -- Parse and bucket each row; a row that does not parse is reported with its number.
        con.sql(
            """SELECT row_number() OVER () + 1 AS line, slo::VARCHAR AS slo,
                 CASE WHEN regexp_matches(timestamp::VARCHAR, '^[0-9]+(\\.[0-9]+)?$')
                      THEN to_timestamp(timestamp::DOUBLE)
                      ELSE try_cast(timestamp::VARCHAR AS TIMESTAMPTZ) END AS ts,
                 try_cast(good AS DOUBLE) AS good, try_cast(valid AS DOUBLE) AS valid,
                 timestamp::VARCHAR AS ts_text, good::VARCHAR AS good_text, valid::VARCHAR AS valid_text
               FROM raw"""
        ).create_view("parsed")
        bad = con.execute(
            """SELECT line, slo, ts_text, good_text, valid_text FROM parsed
               WHERE slo IS NULL OR ts IS NULL OR good IS NULL OR valid IS NULL
                  OR good < 0 OR valid < 0 OR good > valid OR good <> trunc(good) OR valid <> trunc(valid)
               ORDER BY line LIMIT 5"""
        ).fetchall()
        if bad:
            line, slo, ts, good, valid = bad[0]
            raise SourceError(
                f"{path}:{line}: bad row slo={slo!r} timestamp={ts!r} good={good!r} valid={valid!r}; "
                "expected an SLO id, an ISO 8601 UTC time or epoch seconds, and whole counts "
                "with 0 ≤ good ≤ valid"
            )
        where = []
        params: list[object] = []
        if start is not None:
            where.append("minute >= ?")
            params.append(start)
        if end is not None:
            where.append("minute < ?")
            params.append(end)
        frame = con.execute(
            f"""SELECT slo AS slo_id, minute, good::BIGINT AS good, valid::BIGINT AS valid FROM (
                  SELECT slo, floor(epoch(ts) / 60)::BIGINT AS minute, good, valid FROM parsed)
                {"WHERE " + " AND ".join(where) if where else ""}""",
            params,
        ).df()
    except duckdb.Error as exc:
        raise SourceError(f"{path}: cannot read events: {exc}") from exc
    finally:
        con.close()
    return frame
