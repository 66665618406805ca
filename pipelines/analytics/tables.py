"""The cycle's analytics stage: the incident analytics the report, the dashboard and the CLI all read,
materialised in DuckDB by `Writer.publish` before every snapshot (so no writer can publish incidents
without them).

- `incident_durations`: per incident, its quarter and TTD/TTA/TTM/TTR (`mttx.DURATIONS_SQL`);
- `mttx_rollup`: count, open count and each duration's count/p50/p90/mean per quarter, quarter ×
  severity, quarter × service and quarter × severity × service (`mttx.ROLLUP_SQL`).

Both are derived (rebuilt whole from `incidents` at each publish, a few milliseconds for thousands of
incidents), so they need no migration and every published snapshot's tables describe its own
incidents. A snapshot published by an older version has neither until the next publish. The
per-quarter sections that depend on a chosen setting (repeat window, deploy hours, backtest alerts)
are computed from them on demand.
"""

from __future__ import annotations

import duckdb

from pipelines.analytics.mttx import DURATIONS_SQL, DURATIONS_TABLE, ROLLUP_SQL, ROLLUP_TABLE

# In dependency order: the roll-up reads the durations.
DERIVED: tuple[tuple[str, str], ...] = (
    (DURATIONS_TABLE, DURATIONS_SQL),
    (ROLLUP_TABLE, ROLLUP_SQL),
)


def refresh(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild every derived analytics table from the incident tables; returns their row counts."""
    counts = {}
    for name, sql in DERIVED:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")
        counts[name] = int(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # type: ignore[index]
    return counts
