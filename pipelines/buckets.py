"""Writing per-minute buckets into the store: validation, de-duplication and dirty tracking.

Within one batch, rows for the same SLO and minute are summed (several event rows in a minute).
Across batches, a newer batch replaces the stored counts of the minutes it covers (a re-read of
an overlap from Prometheus corrects, never double-counts). Whatever is written marks the SLO
dirty from its earliest minute, so the engine re-evaluates from there.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from pipelines.errors import SourceError
from pipelines.partitions import mark_rows_changed


def write_buckets(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, keys: dict[str, int], origin: str
) -> int:
    """Validate and store `frame` (slo_id, minute, good, valid); returns the rows written.

    `origin` names the input in error messages (a file name, "demo", "prometheus").
    Nothing is written when any row is invalid.
    """
    missing = {"slo_id", "minute", "good", "valid"} - set(frame.columns)
    if missing:
        raise SourceError(f"{origin}: missing columns {sorted(missing)}")
    if frame.empty:
        return 0
    unknown = sorted(set(frame["slo_id"].astype(str)) - set(keys))
    if unknown:
        shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise SourceError(
            f"{origin}: {len(unknown)} SLO id(s) not defined by any spec: {shown}; "
            "ids are <service>/<slo name> as `slo validate` lists them"
        )
    batch = pd.DataFrame(
        {
            "slo_key": frame["slo_id"].astype(str).map(keys).astype("int32"),
            "minute": frame["minute"].astype("int64"),
            "good": frame["good"],
            "valid": frame["valid"],
        }
    )
    con.register("incoming", batch)
    try:
        bad = con.execute(
            """SELECT count(*), min(minute) FROM incoming
               WHERE good IS NULL OR valid IS NULL OR good < 0 OR valid < 0 OR good > valid
                  OR good <> trunc(good) OR valid <> trunc(valid)"""
        ).fetchone()
        if bad and bad[0]:
            raise SourceError(
                f"{origin}: {bad[0]} row(s) break 0 ≤ good ≤ valid with whole counts "
                f"(first at minute {bad[1]})"
            )
        # -- Sum rows for the same SLO and minute within the batch; keep minute order for zone maps.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE batch AS
               SELECT slo_key, minute::INTEGER AS minute, sum(good)::BIGINT AS good,
                      sum(valid)::BIGINT AS valid
               FROM incoming GROUP BY slo_key, minute ORDER BY minute, slo_key"""
        )
    finally:
        con.unregister("incoming")
    lo, hi, n = con.execute("SELECT min(minute), max(minute), count(*) FROM batch").fetchone() or (
        None,
        None,
        0,
    )
    con.execute("BEGIN TRANSACTION")
    try:
        # -- A newer batch replaces stored minutes it covers (range-limited so zone maps prune).
        con.execute(
            """DELETE FROM buckets b WHERE b.minute BETWEEN ? AND ?
               AND EXISTS (SELECT 1 FROM batch n WHERE n.slo_key = b.slo_key AND n.minute = b.minute)""",
            [lo, hi],
        )
        con.execute("INSERT INTO buckets SELECT * FROM batch")
        mark_rows_changed(con, "buckets", "batch")  # the next publish rewrites their closed days
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
    return int(n)
