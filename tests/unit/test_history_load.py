"""The history load (`slo run --source csv`) on its SQL path, checked against the old definitions.

The reference is the definition the pandas path implemented (DESIGN §2, README "Sources"): every row's
time parsed (ISO 8601 with or without a zone offset, or epoch seconds), floored to its UTC minute, rows
of one SLO and minute summed, rows from several files summed, [--from, --to) applied to minutes.
It is computed here with the standard library, row by row, and compared with the `buckets` table
bucket for bucket, on small fleets whose files are shuffled, duplicated and mixed.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import engine
from pipelines.cli import main
from pipelines.store import SNAPSHOT_FILE, WORK_FILE, snapshot_problem

SLI = """\
  e{i}:
    good: 'sum(rate(ok_total{{e="{i}"}}[5m]))'
    valid: 'sum(rate(all_total{{e="{i}"}}[5m]))'
"""
SPEC = """\
service: {service}
owner: team
slis:
{slis}slos:
{slos}"""
SLO = "  - sli: e{i}\n    target: 99.9%\n    window: 30d\n"
START = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """4 services × 3 SLOs in tmp_path/specs; SLO_DATA_DIR is tmp_path/data. Returns the SLO ids."""
    specs = tmp_path / "specs"
    specs.mkdir()
    ids = []
    for s in range(4):
        service = f"svc{s}"
        slis = "".join(SLI.format(i=i) for i in range(3))
        slos = "".join(SLO.format(i=i) for i in range(3))
        (specs / f"{service}.yaml").write_text(SPEC.format(service=service, slis=slis, slos=slos))
        ids += [f"{service}/e{i}" for i in range(3)]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLO_SPECS_DIR", str(specs))
    return ids


def stamp(at: dt.datetime, form: int) -> str:
    """One instant written in one of the forms exports use."""
    if form == 0:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == 1:
        return at.strftime("%Y-%m-%d %H:%M:%S")  # no zone: UTC
    if form == 2:
        return at.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    return str(int(at.timestamp()))  # epoch seconds


def rows_for(
    ids: list[str], minutes: int, seed: int, forms: tuple[int, ...]
) -> list[tuple[str, str, int, int]]:
    """Every SLO every minute (some minutes skipped), with extra rows inside some minutes."""
    rng = random.Random(seed)
    rows = []
    for m in range(minutes):
        for slo in ids:
            if rng.random() < 0.05:
                continue  # a minute without data
            for _ in range(2 if rng.random() < 0.1 else 1):  # several rows in one minute are summed
                valid = rng.randint(0, 500)
                good = valid - (rng.randint(0, valid) if rng.random() < 0.03 else 0)
                at = START + dt.timedelta(minutes=m, seconds=rng.randint(0, 59))
                rows.append((slo, stamp(at, rng.choice(forms)), good, valid))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str, int, int]]) -> Path:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["slo", "timestamp", "good", "valid"])
        out.writerows(rows)
    return path


def reference(
    rows: list[tuple[str, str, int, int]], start: int | None = None, end: int | None = None
) -> dict[tuple[str, int], tuple[int, int]]:
    """(slo, minute) → (good, valid), the old definition, computed row by row."""
    sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for slo, text, good, valid in rows:
        if text.isdigit():
            seconds = int(text)
        else:
            at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            seconds = int((at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp())
        minute = seconds // 60
        if (start is None or minute >= start) and (end is None or minute < end):
            sums[(slo, minute)][0] += good
            sums[(slo, minute)][1] += valid
    return {key: (g, v) for key, (g, v) in sums.items()}


def stored(data: Path) -> dict[tuple[str, int], tuple[int, int]]:
    con = duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True)
    try:
        return {
            (slo, minute): (good, valid)
            for slo, minute, good, valid in con.execute(
                "SELECT s.slo_id, b.minute, b.good, b.valid FROM buckets b JOIN slos s USING (slo_key)"
            ).fetchall()
        }
    finally:
        con.close()


def minute(at: dt.datetime) -> int:
    return int(at.timestamp()) // 60


@pytest.mark.parametrize(
    "forms", [pytest.param((0,), id="iso-z"), pytest.param((0, 1, 2, 3), id="mixed-forms")]
)
def test_history_load_matches_the_old_definition_bucket_for_bucket(
    fleet: list[str], tmp_path: Path, forms: tuple[int, ...]
) -> None:
    rows = rows_for(fleet, 180, seed=7, forms=forms)
    random.Random(1).shuffle(rows)  # an export in no particular order
    events = write_csv(tmp_path / "events.csv", rows)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    expected = reference(rows)
    assert len(expected) > 2000
    assert stored(tmp_path / "data") == expected


def test_several_files_overlap_and_a_range_is_applied(fleet: list[str], tmp_path: Path) -> None:
    rows = rows_for(fleet, 120, seed=3, forms=(0, 3))
    first, second = rows[: len(rows) // 2], rows[len(rows) // 3 :]  # the middle third is in both
    a = write_csv(tmp_path / "a.csv", first)
    b = write_csv(tmp_path / "b.csv", second)
    lo, hi = START + dt.timedelta(minutes=10), START + dt.timedelta(minutes=100)
    args = [
        "run",
        "--source",
        "csv",
        "--events",
        str(a),
        str(b),
        "--from",
        lo.isoformat(),
        "--to",
        hi.isoformat(),
    ]
    assert main(args) == 0
    assert stored(tmp_path / "data") == reference(first + second, minute(lo), minute(hi))


def test_a_minute_ordered_file_is_stored_in_minute_order(fleet: list[str], tmp_path: Path) -> None:
    """The common export (minute by minute, one row per SLO) is written as it comes: the stored
    order is the minute order the engine's range reads prune on."""
    rows = [
        (slo, stamp(START + dt.timedelta(minutes=m), 0), 10, 10) for m in range(60) for slo in reversed(fleet)
    ]
    events = write_csv(tmp_path / "events.csv", rows)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    con = duckdb.connect(str(tmp_path / "data" / SNAPSHOT_FILE), read_only=True)
    minutes = [m for (m,) in con.execute("SELECT minute FROM buckets").fetchall()]
    con.close()
    assert minutes == sorted(minutes) and len(minutes) == 60 * len(fleet)


def test_the_engine_stores_closed_hours_of_its_series_as_files(fleet: list[str], tmp_path: Path) -> None:
    """The series, like buckets, is written once: the closed hours straight into files, the work
    database keeping the open hour's rows only (checkpoints stay in it whole); a reader of the snapshot
    sees them all."""
    rows = [
        (slo, stamp(START + dt.timedelta(minutes=m), 0), 10, 10) for m in range(200) for slo in fleet
    ]  # 3 h 20 min: the open hour starts at minute 180
    events = write_csv(tmp_path / "events.csv", rows)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    open_hour = minute(START) + 180
    con = duckdb.connect(str(tmp_path / "data" / WORK_FILE), read_only=True)
    assert con.execute("SELECT min(minute) FROM slo_series").fetchall() == [(open_hour,)]
    files = con.execute(
        "SELECT count(*), sum(rows) FROM store_parts WHERE table_name = 'slo_series'"
    ).fetchall()
    # a file per closed hour: per SLO, a row at every 15th instant after the first bucket (15, 30, 45;
    # 60…105; 120…165)
    assert files == [(3, len(fleet) * 11)]
    assert con.execute("SELECT count(*) FROM checkpoints").fetchall() == [(len(fleet) * 3,)]
    con.close()
    snap = duckdb.connect(str(tmp_path / "data" / SNAPSHOT_FILE), read_only=True)
    counts = {
        table: snap.execute(f"SELECT count(*), min(minute), max(minute) FROM {table}").fetchall()
        for table in ("checkpoints", "slo_series")
    }
    snap.close()
    assert counts == {
        "checkpoints": [(len(fleet) * 3, minute(START) + 60, open_hour)],
        "slo_series": [(len(fleet) * 13, minute(START) + 15, open_hour + 15)],
    }


def test_a_history_load_stores_its_checkpoints_in_minute_order(fleet: list[str], tmp_path: Path) -> None:
    """The dense fold computes SLO after SLO, each over its whole history; its checkpoints are written
    in minute order all the same, so a lookup of one minute (every cycle's incremental fold) reads the
    row groups of that stretch of time, not the whole history."""
    rows = [(slo, stamp(START + dt.timedelta(minutes=m), 0), 10, 10) for m in range(200) for slo in fleet]
    events = write_csv(tmp_path / "events.csv", rows)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    con = duckdb.connect(str(tmp_path / "data" / WORK_FILE), read_only=True)
    stored = con.execute("SELECT minute, slo_key FROM checkpoints ORDER BY rowid").fetchall()
    con.close()
    hours = [minute(START) + 60 * h for h in (1, 2, 3)]
    assert [m for m, _ in stored] == [h for h in hours for _ in fleet]  # three hours, every SLO in each
    assert stored == sorted(stored)


@pytest.mark.parametrize(
    ("table", "damage"),
    [
        ("checkpoints", "delete"),
        ("slo_series", "truncate"),
        ("slo_series", "delete"),
        ("slo_series", "garble"),
    ],
)
def test_a_lost_file_of_the_engines_results_is_derived_again(
    fleet: list[str], tmp_path: Path, table: str, damage: str
) -> None:
    """Checkpoints and series are derived from buckets: when one of their files is lost, the store is not
    (as it is for a lost bucket file): the next run evaluates every SLO again and the rows come back."""
    data = tmp_path / "data"
    rows = [
        (slo, stamp(START + dt.timedelta(minutes=m), 0), 10 - m % 3, 10) for m in range(200) for slo in fleet
    ]
    assert main(["run", "--source", "csv", "--events", str(write_csv(tmp_path / "events.csv", rows))]) == 0
    everything = "SELECT * FROM {} ORDER BY slo_key, minute"

    def derived() -> dict[str, list[tuple[object, ...]]]:
        snap = duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True)
        try:
            return {t: snap.execute(everything.format(t)).fetchall() for t in ("checkpoints", "slo_series")}
        finally:
            snap.close()

    before = derived()
    victim = sorted((data / "parts" / table).glob("*.parquet"))[0]
    if damage == "delete":
        victim.unlink()
    elif damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:100])
    else:  # the same size, no longer Parquet
        victim.write_bytes(b"x" * victim.stat().st_size)
    assert snapshot_problem(data) is not None
    more = [(slo, stamp(START + dt.timedelta(minutes=200), 0), 10, 10) for slo in fleet]
    assert main(["run", "--source", "csv", "--events", str(write_csv(tmp_path / "more.csv", more))]) == 0
    assert snapshot_problem(data) is None
    after = derived()
    last = minute(START) + 200  # the new minute's instant is the only one added
    assert {t: [r for r in after[t] if r[1] < last] for t in after} == before
    # the damaged file is no longer listed
    snap = duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True)
    listed = {r[0] for r in snap.execute("SELECT file FROM snapshot_parts").fetchall()}
    snap.close()
    assert f"parts/{table}/{victim.name}" not in listed


def test_parquet_with_real_timestamps_loads_like_the_csv(fleet: list[str], tmp_path: Path) -> None:
    rows = rows_for(fleet, 90, seed=11, forms=(0,))
    table = pa.table(
        {
            "slo": [r[0] for r in rows],
            "timestamp": pa.array(
                [dt.datetime.fromisoformat(r[1].replace("Z", "+00:00")) for r in rows],
                pa.timestamp("s", "UTC"),
            ),
            "good": [r[2] for r in rows],
            "valid": [r[3] for r in rows],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    assert main(["run", "--source", "csv", "--events", str(tmp_path / "events.parquet")]) == 0
    assert stored(tmp_path / "data") == reference(rows)


def test_an_unknown_id_outside_the_range_is_not_an_error(fleet: list[str], tmp_path: Path) -> None:
    """A file may still hold an SLO since removed from the specs: only the minutes asked for count."""
    rows = [
        ("svc0/removed", stamp(START, 0), 1, 1),
        *((slo, stamp(START + dt.timedelta(minutes=10), 0), 5, 5) for slo in fleet),
    ]
    events = write_csv(tmp_path / "events.csv", rows)
    lo = (START + dt.timedelta(minutes=5)).isoformat()
    assert main(["run", "--source", "csv", "--events", str(events), "--from", lo]) == 0
    assert stored(tmp_path / "data") == reference(rows[1:])


# --- bad input on the new path: file:line, and nothing changes -------------------------------------

GOOD = "svc0/e0,2026-06-01T00:00:00Z,10,10\nsvc0/e1,2026-06-01T00:00:00Z,10,10\n"


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        pytest.param(
            "svc9/nope,2026-06-01T00:01:00Z,1,1", "not defined by any spec: svc9/nope", id="unknown-id"
        ),
        pytest.param("svc0/e0,2026-06-01T00:01:00Z,-1,1", "bad row", id="negative"),
        pytest.param("svc0/e0,2026-06-01T00:01:00Z,5,4", "bad row", id="good-above-valid"),
        pytest.param("svc0/e0,2026-06-01T00:01:00Z,2.5,4", "bad row", id="fraction"),
        pytest.param("svc0/e0,06/01/2026 00:01,1,1", "bad row", id="unparsable-time"),
        pytest.param("svc0/e0,0001-01-01T00:00:00Z,1,1", "bad row", id="year-1"),
        pytest.param("svc0/e0,9999-12-31T23:59:59Z,1,1", "bad row", id="year-9999"),
        pytest.param("svc0/e0,99999999999999999999,1,1", "bad row", id="absurd-epoch"),
        pytest.param("svc0/e0,2026-06-01T00:01:00Z,many,4", "bad row", id="not-a-number"),
    ],
)
def test_a_bad_row_names_file_and_line_and_changes_nothing(
    fleet: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_row: str, message: str
) -> None:
    data = tmp_path / "data"
    ok = tmp_path / "ok.csv"
    ok.write_text("slo,timestamp,good,valid\n" + GOOD)
    assert main(["run", "--source", "csv", "--events", str(ok)]) == 0
    before = {name: (data / name).read_bytes() for name in (SNAPSHOT_FILE, WORK_FILE)}
    snapshot_inode = os.stat(data / SNAPSHOT_FILE).st_ino
    # 2,000 good rows first, so the bad one is past the reader's type sniffing sample
    filler = "".join(
        f"svc1/e{i % 3},2026-06-01T{(i // 60) % 24:02d}:{i % 60:02d}:00Z,1,1\n" for i in range(2000)
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("slo,timestamp,good,valid\n" + filler + bad_row + "\n" + GOOD)
    capsys.readouterr()
    assert main(["run", "--source", "csv", "--events", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2002: " in err and message in err, err
    assert os.stat(data / SNAPSHOT_FILE).st_ino == snapshot_inode
    assert {name: (data / name).read_bytes() for name in before} == before


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param({"good": -1}, "bad row", id="negative"),
        pytest.param({"good": 5, "valid": 4}, "bad row", id="good-above-valid"),
        pytest.param({"timestamp": dt.datetime(1, 1, 1, tzinfo=dt.UTC)}, "bad row", id="year-1"),
        pytest.param({"timestamp": dt.datetime(9999, 12, 31, tzinfo=dt.UTC)}, "bad row", id="year-9999"),
        pytest.param({"timestamp": None}, "bad row", id="no-time"),
        pytest.param({"slo": "svc9/nope"}, "not defined by any spec: svc9/nope", id="unknown-id"),
    ],
)
def test_a_bad_row_of_a_typed_parquet_file_names_its_row_and_changes_nothing(
    fleet: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: dict[str, object], message: str
) -> None:
    """A Parquet file with native times and integer counts is read without the text route (times in
    integer microseconds, counts as BIGINT): its checks still refuse what the CSV's refuse."""
    data = tmp_path / "data"
    ok = tmp_path / "ok.csv"
    ok.write_text("slo,timestamp,good,valid\n" + GOOD)
    assert main(["run", "--source", "csv", "--events", str(ok)]) == 0
    before = {name: (data / name).read_bytes() for name in (SNAPSHOT_FILE, WORK_FILE)}
    rows = [
        {"slo": "svc1/e0", "timestamp": START + dt.timedelta(minutes=i), "good": 1, "valid": 1}
        for i in range(50)
    ]
    rows[30] = {**rows[30], **bad}
    table = pa.table(
        {
            "slo": [r["slo"] for r in rows],
            "timestamp": pa.array([r["timestamp"] for r in rows], pa.timestamp("us", "UTC")),
            "good": pa.array([r["good"] for r in rows], pa.int64()),
            "valid": pa.array([r["valid"] for r in rows], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "bad.parquet")
    capsys.readouterr()
    assert main(["run", "--source", "csv", "--events", str(tmp_path / "bad.parquet")]) == 1
    err = capsys.readouterr().err
    # lines count a header, as for a CSV: the 31st row is line 32
    assert f"{tmp_path / 'bad.parquet'}:32: " in err and message in err, err
    assert {name: (data / name).read_bytes() for name in before} == before


def test_a_typed_parquet_file_floors_times_to_their_minute(fleet: list[str], tmp_path: Path) -> None:
    """Seconds and microseconds inside a minute belong to that minute (integer division of the epoch
    microseconds), and two rows of one minute are summed."""
    at = START + dt.timedelta(minutes=7)
    times = [at, at + dt.timedelta(seconds=59, microseconds=999_999), at + dt.timedelta(minutes=1)]
    table = pa.table(
        {
            "slo": ["svc0/e0"] * 3,
            "timestamp": pa.array(times, pa.timestamp("us", "UTC")),
            "good": pa.array([3, 4, 5], pa.int32()),
            "valid": pa.array([3, 6, 5], pa.int32()),
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    assert main(["run", "--source", "csv", "--events", str(tmp_path / "events.parquet")]) == 0
    minute = int(at.timestamp()) // 60
    assert stored(tmp_path / "data") == {("svc0/e0", minute): (7, 9), ("svc0/e0", minute + 1): (5, 5)}


def test_an_evaluation_that_fails_stores_nothing_of_itself(
    fleet: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The series is stored last; an evaluation that fails there (a full disk, say) leaves the store as
    it was — no SLO marked evaluated without its series — and the next run evaluates it."""
    data = tmp_path / "data"
    rows = [
        (slo, stamp(START + dt.timedelta(minutes=m), 0), 10 - m % 2, 10) for m in range(120) for slo in fleet
    ]
    assert main(["run", "--source", "csv", "--events", str(write_csv(tmp_path / "a.csv", rows))]) == 0
    tables = ("engine_state", "checkpoints", "policy_transitions", "alert_intervals", "slo_series")

    def state() -> dict[str, list[tuple[object, ...]]]:
        con = duckdb.connect(str(data / WORK_FILE), read_only=True)
        try:
            return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
        finally:
            con.close()

    before = state()

    def disk_full(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    more = [(slo, stamp(START + dt.timedelta(minutes=120 + m), 0), 3, 10) for m in range(30) for slo in fleet]
    events = str(write_csv(tmp_path / "b.csv", more))
    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space left"):
        patch.setattr(engine, "store_rows", disk_full)
        main(["run", "--source", "csv", "--events", events])
    after = state()
    derived = [t for t in tables if t != "engine_state"]
    assert {t: after[t] for t in derived} == {t: before[t] for t in derived}
    # the buckets were stored (and mark the SLOs dirty from minute 120); the evaluation was not
    assert [row[2] for row in after["engine_state"]] == [row[2] for row in before["engine_state"]]
    assert main(["run", "--source", "csv", "--events", events]) == 0
    con = duckdb.connect(str(data / WORK_FILE), read_only=True)
    evaluated = {row[0] for row in con.execute("SELECT DISTINCT evaluated_to FROM engine_state").fetchall()}
    con.close()
    assert evaluated == {minute(START) + 150}


def listed_series_files(data: Path) -> list[str]:
    snap = duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True)
    try:
        rows = snap.execute("SELECT file FROM snapshot_parts WHERE table_name = 'slo_series' ORDER BY 1")
        return [row[0] for row in rows.fetchall()]
    finally:
        snap.close()


def test_a_new_slo_rewrites_no_series_file_before_its_first_minute(fleet: list[str], tmp_path: Path) -> None:
    """An SLO added to a store with history is evaluated whole, from its first minute: the series files
    of the hours before that minute stay as they were (the same files), the new SLO's rows are there
    from its first minute on."""
    data = tmp_path / "data"
    day = 1440
    rows = [
        (slo, stamp(START + dt.timedelta(minutes=m), 0), 10, 10)
        for m in range(0, 2 * day, 5)
        for slo in fleet
    ]
    assert main(["run", "--source", "csv", "--events", str(write_csv(tmp_path / "a.csv", rows))]) == 0
    before = listed_series_files(data)
    (tmp_path / "specs" / "svc9.yaml").write_text(
        SPEC.format(service="svc9", slis=SLI.format(i=0), slos=SLO.format(i=0))
    )
    late = START + dt.timedelta(minutes=2 * day - 90)  # the new SLO: the last 90 minutes and 10 more
    new = [("svc9/e0", stamp(late + dt.timedelta(minutes=m), 0), 7, 8) for m in range(100)]
    new += [
        (slo, stamp(START + dt.timedelta(minutes=2 * day + m), 0), 10, 10) for m in range(10) for slo in fleet
    ]
    assert main(["run", "--source", "csv", "--events", str(write_csv(tmp_path / "b.csv", new))]) == 0
    first_day = [name for name in before if "/2026-06-01." in name]
    assert first_day and set(first_day) <= set(listed_series_files(data))
    snap = duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True)
    ((count, lo),) = snap.execute(
        "SELECT count(*), min(minute) FROM slo_series JOIN slos USING (slo_key) WHERE slo_id = 'svc9/e0'"
    ).fetchall()
    snap.close()
    # its instants run from its first minute + 1 to the end (+100): a series row at +15, +30, …, +90
    assert (count, lo) == (6, minute(late) + 15)


def test_nanosecond_times_floor_to_their_minute(fleet: list[str], tmp_path: Path) -> None:
    """59.9999996 s into a minute is still that minute (a cast to microseconds would round it up)."""
    at = int((START + dt.timedelta(minutes=7)).timestamp()) * 1_000_000_000
    table = pa.table(
        {
            "slo": ["svc0/e0", "svc0/e0"],
            "timestamp": pa.array([at + 59_999_999_600, at + 60_000_000_000], pa.timestamp("ns", "UTC")),
            "good": pa.array([1, 2], pa.int64()),
            "valid": pa.array([1, 2], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    assert main(["run", "--source", "csv", "--events", str(tmp_path / "events.parquet")]) == 0
    minute_of_at = at // 60_000_000_000
    expected = {("svc0/e0", minute_of_at): (1, 1), ("svc0/e0", minute_of_at + 1): (2, 2)}
    assert stored(tmp_path / "data") == expected
