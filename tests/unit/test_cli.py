"""The `slo` command line (DESIGN §3): exit 0 ok, 1 bad input, 2 usage; `status --json` fields."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from pipelines.sources.events_file import read_events
from pipelines.store import SNAPSHOT_FILE

REPO = Path(__file__).resolve().parents[2]

SPEC = """\
service: shop
owner: team
slis:
  availability:
    good: 'sum(rate(ok_total[5m]))'
    valid: 'sum(rate(all_total[5m]))'
slos:
  - sli: availability
    target: 99%
    window: 30d
error_budget_policy:
  budget_remaining_above_50pct: "ship features"
  budget_remaining_25_to_50pct: "freeze review"
  budget_remaining_below_25pct: "reliability work"
  budget_exhausted: "freeze deploys"
"""

# 2026-06-01 00:00 … 00:59, 100 valid events a minute; in minute 00:30 two rows of 50 events with
# 15 failures each (rows within a minute are summed): 30 bad of 6000 in the hour.
HEADER = "slo,timestamp,good,valid\n"
ROWS = "".join(
    f"shop/availability,2026-06-01T00:{m:02d}:00Z,100,100\n" for m in range(60) if m != 30
) + (
    "shop/availability,2026-06-01T00:30:10Z,35,50\n"
    "shop/availability,2026-06-01T00:30:20Z,35,50\n"
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SLO_DATA_DIR and SLO_SPECS_DIR under tmp_path, with the one-SLO spec above; cwd is tmp_path."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "shop.yaml").write_text(SPEC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    monkeypatch.setenv("SLO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLO_SPECS_DIR", str(tmp_path / "specs"))
    return tmp_path


def write_events(directory: Path, text: str, name: str = "events.csv") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def status_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["status", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def fingerprint(path: Path) -> tuple[int, str]:
    return os.stat(path).st_ino, hashlib.sha256(path.read_bytes()).hexdigest()


# --- validate ----------------------------------------------------------------------------------


def test_validate_the_shipped_specs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "slo_specs")]) == 0
    out = capsys.readouterr().out
    for slo in ("checkout-api/availability", "checkout-api/latency", "checkout-api/correctness"):
        assert f"ok  {slo}" in out
    assert "3 SLO(s) valid" in out


def test_validate_defaults_to_the_specs_dir(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    assert "ok  shop/availability" in capsys.readouterr().out


BROKEN = """\
service: shop
owner: team
slis:
  availability:
    good: 'sum(rate(ok_total[5m]))'
    valid: 'sum(rate(all_total[5m]))'
slos:
  - sli: availability
    target: 101%
    window: 30x
  - sli: latency
    target: 99%
"""


def test_validate_a_broken_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    # file:line: field.path: message — one line per problem, at the line of the offending value
    located = [re.match(r"^(.+):(\d+): (\S+): (.+)$", line) for line in err]
    problems = [(m.group(1), int(m.group(2)), m.group(3)) for m in located if m]
    assert problems == [
        (str(path), 9, "slos[0].target"),
        (str(path), 10, "slos[0].window"),
        (str(path), 11, "slos[1].sli"),
    ]
    assert "'101%' is not a target" in err[0]
    assert err[-1] == "3 problem(s); nothing was applied"


# --- run and status ----------------------------------------------------------------------------


def test_run_csv_then_status_json(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_events(env, HEADER + ROWS)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    assert (env / "data" / SNAPSHOT_FILE).exists()

    (row,) = status_json(capsys)
    assert set(row) >= {
        "slo", "service", "target", "window", "sli", "budget_remaining", "policy_state", "burn_rates",
        "alerts", "evaluated_at",
    }
    assert list(row["burn_rates"]) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    # evaluated at the end of the data, 01:00: 5970 good of 6000; 30 bad of 60 allowed → ½ left
    assert row["slo"] == "shop/availability"
    assert row["service"] == "shop"
    assert row["target"] == pytest.approx(0.99)
    assert row["window"] == "30d"
    assert row["evaluated_at"] == "2026-06-01T01:00:00Z"
    assert row["sli"] == pytest.approx(0.995)
    assert row["budget_remaining"] == pytest.approx(0.5)
    assert row["policy_state"] == "freeze_review"
    # 5m [00:55, 01:00): clean · 30m [00:30, 01:00): 30 of 3000 → 1 % / 1 % = 1 · longer: 30 of 6000
    assert row["burn_rates"] == pytest.approx(
        {"5m": 0.0, "30m": 1.0, "1h": 0.5, "2h": 0.5, "6h": 0.5, "1d": 0.5, "3d": 0.5}
    )
    assert row["alerts"] == []


def test_status_at_an_instant_lists_firing_alerts(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_events(env, HEADER + ROWS)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    (row,) = status_json(capsys, "--at", "2026-06-01T00:31:00Z")
    # 5m [00:26, 00:31): 30 of 500 → 6;  1h holds the 31 minutes that exist: 30 of 3100 → 0.97
    # 6h/30m page: 30m 30/3000 → 1, not > 6;  3d/6h ticket: 0.97 not > 1. Nothing fires.
    assert row["evaluated_at"] == "2026-06-01T00:31:00Z"
    assert row["burn_rates"]["5m"] == pytest.approx(6.0)
    assert row["burn_rates"]["1h"] == pytest.approx(30 / 3100 / 0.01)
    assert row["alerts"] == []


def test_status_alerts_carry_their_windows_and_factor(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # every event fails in 00:50 … 00:59: 1h burn = 1000/6000/1 % = 16.7 > 14.4, 5m = 100
    rows = "".join(
        f"shop/availability,2026-06-01T00:{m:02d}:00Z,{0 if m >= 50 else 100},100\n" for m in range(60)
    )
    events = write_events(env, HEADER + rows)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    (row,) = status_json(capsys)
    page = [a for a in row["alerts"] if (a["long_window"], a["short_window"]) == ("1h", "5m")]
    assert page == [
        {"severity": "page", "long_window": "1h", "short_window": "5m", "factor": pytest.approx(14.4),
         "since": "2026-06-01T00:59:00Z"}  # 9 bad minutes of 60 → 15 > 14.4 first at 00:59
    ]


def test_run_from_to_limits_the_data(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_events(env, HEADER + ROWS)
    argv = ["run", "--source", "csv", "--events", str(events), "--from", "2026-06-01T00:10:00Z",
            "--to", "2026-06-01T00:40:00Z", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["buckets_written"], summary["evaluated_to"]) == (30, "2026-06-01T00:40:00Z")
    (row,) = status_json(capsys)
    # minutes [00:10, 00:40): 3000 valid, 30 bad, 30 allowed → nothing left
    assert (row["evaluated_at"], row["valid"], row["good"]) == ("2026-06-01T00:40:00Z", 3000, 2970)
    assert row["budget_remaining"] == pytest.approx(0.0)
    assert row["policy_state"] == "exhausted"


def test_status_for_one_service(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_events(env, HEADER + ROWS)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    assert [r["slo"] for r in status_json(capsys, "--service", "shop")] == ["shop/availability"]
    assert main(["status", "--service", "nope"]) == 1
    assert "--service 'nope': no such service; known: shop" in capsys.readouterr().err


def test_status_text_table(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_events(env, HEADER + ROWS)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("evaluated at 2026-06-01T01:00:00Z · 1 SLOs · 0 alerting (0 paging)")
    assert "shop/availability" in out and "freeze_review" in out and "50.0%" in out


def test_status_before_any_run(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 1
    assert "no published snapshot yet" in capsys.readouterr().err


def test_status_at_after_the_data(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_events(env, HEADER + ROWS)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    capsys.readouterr()
    assert main(["status", "--at", "2026-06-01T01:01:00Z"]) == 1
    err = capsys.readouterr().err
    assert "--at 2026-06-01T01:01:00Z" in err
    assert "after the latest evaluated instant 2026-06-01T01:00:00Z" in err


@pytest.mark.parametrize("at", ["2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"])
def test_status_at_before_the_data(env: Path, capsys: pytest.CaptureFixture[str], at: str) -> None:
    # the first bucket is 00:00, so the first evaluated instant is 00:01
    events = write_events(env, HEADER + ROWS)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 0
    capsys.readouterr()
    assert main(["status", "--at", at]) == 1
    err = capsys.readouterr().err
    assert f"--at {at}" in err
    assert "before the first evaluated instant 2026-06-01T00:01:00Z" in err


def test_status_at_not_a_time_is_a_usage_error(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--at", "yesterday"])
    assert exit_.value.code == 2
    assert "'yesterday' is not an ISO 8601 time" in capsys.readouterr().err


# --- CSV timestamps ------------------------------------------------------------------------------

MINUTE_0030 = 29_671_230  # 2026-06-01T00:30Z as an epoch minute (epoch seconds 1 780 273 800)


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-06-01T00:30:00Z",
        "2026-06-01T00:30:29Z",
        "2026-06-01T00:30:31Z",
        "2026-06-01T00:30:59.999Z",
        "2026-06-01 00:30:10",  # no zone: UTC
        "2026-06-01T02:30:15+02:00",  # a zone offset is honoured
        "2026-06-01T02:30:45+02:00",
        "1780273800",  # epoch seconds
        "1780273859",
    ],
)
def test_csv_timestamps_are_floored_to_their_minute(tmp_path: Path, timestamp: str) -> None:
    events = write_events(tmp_path, f"{HEADER}shop/availability,{timestamp},3,4\n")
    frame = read_events(events)
    assert frame.to_dict("records") == [
        {"slo_id": "shop/availability", "minute": MINUTE_0030, "good": 3, "valid": 4}
    ]


def test_csv_window_limits(tmp_path: Path) -> None:
    # --from 00:10 --to 00:20 keeps minutes [00:10, 00:20)
    events = write_events(tmp_path, HEADER + ROWS)
    frame = read_events(events, start=MINUTE_0030 - 20, end=MINUTE_0030 - 10)
    assert sorted(frame["minute"] - MINUTE_0030) == list(range(-20, -10))


# --- bad input changes nothing ---------------------------------------------------------------------

BAD_ROWS = [
    pytest.param("shop/availability,2026-06-01T00:02:00Z,101,100", id="good-above-valid"),
    pytest.param("shop/availability,2026-06-01T00:02:00Z,-1,100", id="negative"),
    pytest.param("shop/availability,2026-06-01T00:02:00Z,1.5,100", id="fraction"),
    pytest.param("shop/availability,2026-06-01T00:02:00Z,,100", id="empty-count"),
    pytest.param("shop/availability,yesterday,1,1", id="bad-time"),
]


@pytest.mark.parametrize("bad_row", BAD_ROWS)
def test_bad_csv_row_names_file_and_line_and_creates_nothing(
    env: Path, capsys: pytest.CaptureFixture[str], bad_row: str
) -> None:
    # header is line 1, so the third data row is line 4
    text = (
        HEADER
        + "shop/availability,2026-06-01T00:00:00Z,100,100\n"
        + "shop/availability,2026-06-01T00:01:00Z,100,100\n"
        + bad_row + "\n"
        + "shop/availability,2026-06-01T00:03:00Z,100,100\n"
    )
    events = write_events(env, text)
    assert main(["run", "--source", "csv", "--events", str(events)]) == 1
    assert f"{events}:4: bad row" in capsys.readouterr().err
    assert not (env / "data" / SNAPSHOT_FILE).exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(HEADER + "shop/availability,2026-06-01T00:02:00Z,101,100\n", ":2: bad row",
                     id="bad-row"),
        pytest.param(HEADER + "shop/nope,2026-06-01T02:00:00Z,1,1\n", "not defined by any spec: shop/nope",
                     id="unknown-slo"),
        pytest.param("slo,when,good,valid\nshop/availability,2026-06-01T02:00:00Z,1,1\n",
                     "missing column(s) timestamp", id="missing-column"),
    ],
)
def test_bad_csv_leaves_the_published_snapshot_unchanged(
    env: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    good = write_events(env, HEADER + ROWS, "good.csv")
    assert main(["run", "--source", "csv", "--events", str(good)]) == 0
    before = status_json(capsys)
    snapshot = env / "data" / SNAPSHOT_FILE
    published = fingerprint(snapshot)

    bad = write_events(env, text, "bad.csv")
    assert main(["run", "--source", "csv", "--events", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and message in err
    assert fingerprint(snapshot) == published
    assert status_json(capsys) == before


def test_run_csv_without_events(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--source", "csv"]) == 1
    assert "--source csv needs --events" in capsys.readouterr().err


def test_run_with_a_missing_events_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--source", "csv", "--events", str(env / "absent.csv")]) == 1
    assert "absent.csv: no such file" in capsys.readouterr().err
    assert not (env / "data" / SNAPSHOT_FILE).exists()


# --- usage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--bogus"],
        ["validate", "--bogus"],
        ["run", "--source", "carrier-pigeon"],
        ["frobnicate"],
        [],
    ],
    ids=["status-unknown-option", "validate-unknown-option", "run-unknown-source", "unknown-command", "none"],
)
def test_usage_errors_exit_2(env: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("usage: slo")


@pytest.mark.parametrize("command", ["validate", "demo", "run", "status"])
def test_help_for_each_subcommand(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: slo {command}")


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("validate", "demo", "run", "status"):
        assert command in out
