"""catalog.sync_slos: stable keys, inactive SLOs, and which definition changes force a re-evaluation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import duckdb
import pytest

from pipelines.catalog import stored_slos, sync_slos
from pipelines.model import BurnRateAlert, Sli, Slo, SloWindow
from pipelines.store import migrate

PAGE = BurnRateAlert("page", 60, 5, 14.4)
TICKET = BurnRateAlert("ticket", 360, 30, 6.0)


def slo(service: str, name: str, target: float = 0.999, window: str = "30d", alerts=(PAGE, TICKET)) -> Slo:
    return Slo(
        service=service,
        name=name,
        owner="team",
        sli=Sli(name=name, kind="ratio", category="availability"),
        target=target,
        window=SloWindow(kind="rolling", minutes=43_200 if window == "30d" else 10_080, text=window),
        alerts=tuple(alerts),
        alerts_custom=False,
        policy={"budget_exhausted": "freeze"},
        source_file=f"{service}.yaml",
        source_line=3,
    )


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    migrate(con)
    yield con
    con.close()


def evaluated(con: duckdb.DuckDBPyConnection) -> dict[int, int | None]:
    return dict(con.execute("SELECT slo_key, evaluated_to FROM engine_state ORDER BY slo_key").fetchall())


def test_keys_are_given_in_spec_order_and_kept_forever(con: duckdb.DuckDBPyConnection) -> None:
    first = sync_slos(con, [slo("a", "x"), slo("a", "y"), slo("b", "x")])
    assert first == {"a/x": 1, "a/y": 2, "b/x": 3}
    # a/y leaves the specs, c/z arrives between the others: old keys stay, the new one follows the largest
    second = sync_slos(con, [slo("c", "z"), slo("b", "x"), slo("a", "x")])
    assert second == {"c/z": 4, "b/x": 3, "a/x": 1}
    active = dict(con.execute("SELECT slo_id, active FROM slos ORDER BY slo_key").fetchall())
    assert active == {"a/x": True, "a/y": False, "b/x": True, "c/z": True}
    # back again: the same key as before, active again
    assert sync_slos(con, [slo("a", "y")]) == {"a/y": 2}
    assert [s.id for _, s in stored_slos(con)] == ["a/y"]


def test_stored_rows_round_trip_every_field(con: duckdb.DuckDBPyConnection) -> None:
    specs = [slo("a", "x", alerts=(TICKET, PAGE)), slo("b", "y", target=0.99, window="7d", alerts=())]
    sync_slos(con, specs)
    assert [s for _, s in stored_slos(con)] == specs


def test_only_a_changed_definition_is_evaluated_again(con: duckdb.DuckDBPyConnection) -> None:
    base = [slo("a", "target"), slo("a", "window"), slo("a", "alerts"), slo("a", "order"), slo("a", "owner")]
    keys = sync_slos(con, base)
    con.execute("INSERT INTO engine_state SELECT slo_key, 0, 1000, NULL FROM slos")
    changed = [
        slo("a", "target", target=0.995),
        slo("a", "window", window="7d"),
        slo("a", "alerts", alerts=(PAGE, dataclasses.replace(TICKET, factor=3.0))),
        slo("a", "order", alerts=(TICKET, PAGE)),  # the same conditions, other bits: a new definition
        dataclasses.replace(slo("a", "owner"), owner="someone else"),  # not part of the evaluation
    ]
    assert sync_slos(con, changed) == keys
    assert evaluated(con) == {
        keys["a/target"]: None,
        keys["a/window"]: None,
        keys["a/alerts"]: None,
        keys["a/order"]: None,
        keys["a/owner"]: 1000,
    }
    assert con.execute("SELECT owner FROM slos WHERE slo_id = 'a/owner'").fetchall() == [("someone else",)]
    factors = con.execute(
        "SELECT bit, factor FROM slo_alerts WHERE slo_key = ? ORDER BY bit", [keys["a/alerts"]]
    ).fetchall()
    assert factors == [(0, 14.4), (1, 3.0)]
    # the same specs again: nothing to recompute
    con.execute("UPDATE engine_state SET evaluated_to = 1000")
    sync_slos(con, changed)
    assert set(evaluated(con).values()) == {1000}


def test_a_thousand_slos_keep_their_keys_in_any_order(con: duckdb.DuckDBPyConnection) -> None:
    specs = [slo(f"svc{i // 10:03d}", f"slo{i % 10}") for i in range(1000)]
    keys = sync_slos(con, specs)
    assert list(keys.values()) == list(range(1, 1001))
    assert con.execute("SELECT count(*) FROM slo_alerts").fetchall() == [(2000,)]
    assert sync_slos(con, list(reversed(specs))) == {s.id: keys[s.id] for s in reversed(specs)}
