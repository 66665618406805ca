"""A fleet to benchmark on: N SLOs as spec files written the way teams write them, and D days of
per-minute events for them as a CSV (ISO 8601 times) or Parquet file (real timestamps): the
`slo run --source csv --events F` input.

Deterministic (hash-seeded in SQL, no Python per row). 10 SLOs per service file; every SLO targets
99.9 % over a rolling 30d window with the default burn-rate alerts. Valid events per minute are
100–999 per SLO; about one minute in FAILED_EVERY is fully failed (good = 0), so page alerts fire a
few times per SLO and day, as on a noisy fleet.

    python tests/benchmarks/fleet.py DIR --slos 1000 --days 30 [--format csv|parquet]

writes DIR/specs/*.yaml and DIR/events.csv (or .parquet) and prints their sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

PER_SERVICE = 10
FAILED_EVERY = 4000
# The data ends at this instant (exclusive), a fixed day so every run sees the same minutes.
END = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)

SPEC = """\
service: {service}
owner: team-{team}
review_cadence: monthly

slis:
{slis}
slos:
{slos}
error_budget_policy:
  budget_remaining_above_50pct: "Normal feature development."
  budget_remaining_25_to_50pct: "Feature freeze review with the Eng Manager."
  budget_remaining_below_25pct: "All hands on reliability work."
  budget_exhausted: "Freeze all non-critical deploys."
"""

SLI = """\
  endpoint{i}:
    description: "Requests to endpoint {i} answered without a server error"
    category: availability
    good: |
      sum(increase(http_requests_total{{service="{service}", endpoint="e{i}", code!~"5.."}}[{{{{.window}}}}]))
    valid: |
      sum(increase(http_requests_total{{service="{service}", endpoint="e{i}"}}[{{{{.window}}}}]))
"""

SLO = """\
  - sli: endpoint{i}
    target: 99.9%
    window: 30d
"""


def service_name(index: int) -> str:
    return f"svc{index:05d}"


def slo_ids(slos: int) -> list[str]:
    return [f"{service_name(i // PER_SERVICE)}/endpoint{i % PER_SERVICE}" for i in range(slos)]


def write_specs(directory: Path, slos: int) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    files = 0
    for s in range(0, slos, PER_SERVICE):
        service = service_name(s // PER_SERVICE)
        idx = range(min(PER_SERVICE, slos - s))
        text = SPEC.format(
            service=service,
            team=(s // PER_SERVICE) % 37,
            slis="".join(SLI.format(i=i, service=service) for i in idx),
            slos="".join(SLO.format(i=i) for i in idx),
        )
        (directory / f"{service}.yaml").write_text(text)
        files += 1
    return files


def write_events(path: Path, slos: int, days: int, end: dt.datetime = END, iso: bool = True) -> int:
    """One row per SLO per minute for `days` days before `end`, in minute order; returns the row count.

    Written a day at a time (a Parquet row group, or a CSV block, per day), so generating 180 days of
    a thousand SLOs needs the memory of one day."""
    end_minute = int(end.timestamp()) // 60
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    names = ", ".join(f"'{name}'" for name in slo_ids(slos))
    stamp = "strftime(to_timestamp(m * 60), '%Y-%m-%dT%H:%M:%SZ')" if iso else "(m * 60)::BIGINT"
    if path.suffix == ".parquet":
        stamp = "to_timestamp(m * 60)"
    writer = None
    path.unlink(missing_ok=True)
    try:
        for day in range(days, 0, -1):
            lo = end_minute - day * 1440
            rel = con.sql(
                f"""WITH ids AS (SELECT unnest([{names}]) AS slo, generate_subscripts([{names}], 1) AS k),
                      rows AS (
                        SELECT slo, k, m, 100 + (hash(k, m, 1) % 900)::BIGINT AS valid,
                               hash(k, m, 2) % {FAILED_EVERY} = 0 AS failed
                        FROM ids, range({lo}, {lo + 1440}) t(m))
                    SELECT slo, {stamp} AS timestamp, CASE WHEN failed THEN 0 ELSE valid END AS good, valid
                    FROM rows ORDER BY m, k"""
            )
            if path.suffix == ".parquet":
                table = rel.to_arrow_table()
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
            else:
                block = path.with_suffix(".day.csv")
                rel.write_csv(str(block), header=writer is None)
                with path.open("ab") as out, block.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
                block.unlink()
                writer = True
    finally:
        if isinstance(writer, pq.ParquetWriter):
            writer.close()
        con.close()
    return slos * days * 1440


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--slos", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--epoch", action="store_true", help="epoch seconds instead of ISO 8601 times")
    args = parser.parse_args()
    files = write_specs(args.directory / "specs", args.slos)
    events = args.directory / f"events.{args.format}"
    rows = write_events(events, args.slos, args.days, iso=not args.epoch)
    print(f"{files} spec files, {rows:,} rows in {events} ({events.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
