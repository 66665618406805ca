"""Alert storms (issue 13): the fold takes urgent rows, with what they depend on, before a backlog,
and still folds every row exactly once; the worker wakes for them.

`fold_order.closure` is a table of small inboxes a reader can follow by hand; the fold tests run the
real fold on a real store and inbox.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.inbox import Entry, Head, Inbox
from pipelines.incidents import fold_order
from pipelines.incidents.fold import fold_inbox
from pipelines.service.worker import Worker
from pipelines.store import connect, migrate
from tests.unit.test_incident_fold import T0, alert, command


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = connect()
    migrate(c)
    return c


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    box = Inbox(tmp_path, synchronous="OFF")
    yield box
    box.close()


# --- the order, by hand ---------------------------------------------------------------------------


def a(seq: int, service: str, fp: str, slo: str | None = None, urgent: bool = False) -> Head:
    return Head(seq, f"k{seq}", "alert", urgent, service, fp, slo, None, None)


def c(seq: int, incident: str) -> Head:
    return Head(seq, f"k{seq}", "command", False, None, None, None, incident, None)


SERVICES = {"INC-1": "shop", "INC-2": "pay"}  # the incidents the store holds, by service


@pytest.mark.parametrize(
    ("heads", "ahead"),
    [
        # another service's backlog waits
        ([a(1, "pay", "x"), a(2, "pay", "y"), a(3, "shop", "p", urgent=True)], [3]),
        # the same fingerprint earlier: it opened the incident the page joins
        ([a(1, "shop", "p"), a(2, "pay", "y"), a(3, "shop", "p", urgent=True)], [1, 3]),
        # same service, both on other SLOs: they cannot meet
        ([a(1, "shop", "q", "shop/a"), a(2, "shop", "p", "shop/b", urgent=True)], [2]),
        # same service, same SLO: it would have opened the incident the page joins
        ([a(1, "shop", "q", "shop/a"), a(2, "shop", "p", "shop/a", urgent=True)], [1, 2]),
        # an alert without an SLO is linked to the service's burning SLOs: it counts
        ([a(1, "shop", "q"), a(2, "shop", "p", "shop/b", urgent=True)], [1, 2]),
        # transitively: 1 shares an SLO with 2, which shares the fingerprint with the page
        (
            [
                a(1, "shop", "r", "shop/a"),
                a(2, "shop", "q", "shop/a"),
                a(3, "shop", "q", "shop/b", urgent=True),
            ],
            [1, 2, 3],
        ),
        # a command on a shop incident (a resolve decides join or open), and the shop rows before it
        (
            [a(1, "shop", "z", "shop/z"), c(2, "INC-1"), c(3, "INC-2"), a(4, "shop", "p", urgent=True)],
            [1, 2, 4],
        ),
        # a command naming an incident not folded yet: everything before it too
        ([a(1, "pay", "x"), c(2, "INC-9"), a(3, "pay", "y"), a(4, "shop", "p", urgent=True)], [1, 2, 4]),
        # nothing urgent: nothing ahead
        ([a(1, "shop", "p"), a(2, "shop", "p")], []),
    ],
)
def test_the_urgent_rows_take_exactly_the_earlier_rows_they_depend_on(
    heads: list[Head], ahead: list[int]
) -> None:
    def service_of(h: Head) -> str | None:
        return h.service if h.kind == "alert" else SERVICES.get(h.incident_id or "")

    assert fold_order.ahead_of_backlog(heads, service_of, limit=100) == ahead


def test_over_the_limit_the_newer_pages_wait_and_the_oldest_goes_first() -> None:
    heads = [
        a(1, "shop", "p"),
        a(2, "shop", "p"),
        a(3, "pay", "x", urgent=True),
        a(4, "shop", "p", urgent=True),
    ]
    assert fold_order.ahead_of_backlog(heads, lambda h: h.service, limit=2) == [3]
    assert fold_order.ahead_of_backlog(heads, lambda h: h.service, limit=1) == [3]
    assert fold_order.ahead_of_backlog(heads[:2] + heads[3:], lambda h: h.service, limit=2) == []


def test_a_page_behind_an_import_waits_for_seq_order() -> None:
    """An import names no service, so a page after it would take it along; an import folded ahead
    would be folded again by the seq pass, so such a page is left to seq order (a page before the
    import still goes ahead)."""
    imported = Head(2, "k2", "import", False, None, None, None, None, None)
    heads = [a(1, "shop", "p", urgent=True), imported, a(3, "pay", "x"), a(4, "pay", "y", urgent=True)]
    assert fold_order.ahead_of_backlog(heads, lambda h: h.service, limit=100) == [1]
    assert fold_order.ahead_of_backlog(heads[1:], lambda h: h.service, limit=100) == []


def test_an_empty_slo_label_names_no_slo() -> None:
    """The fold links an alert with `slo: ""` to its service's burning SLOs, like one without the label:
    so it depends on the service's earlier alerts whatever their SLO."""
    heads = [a(1, "shop", "p1", slo="checkout"), a(2, "shop", "p2", slo="", urgent=True)]
    assert fold_order.ahead_of_backlog(heads, lambda h: h.service, limit=100) == [1, 2]


# --- the fold -------------------------------------------------------------------------------------


def _alerts(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute("SELECT inbox_seq, dedup_key, incident_id FROM alerts ORDER BY inbox_seq").fetchall()


def _cursor(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT last_seq FROM inbox_cursor").fetchone()[0])  # type: ignore[index]


def test_a_page_behind_a_backlog_is_folded_first_and_every_row_once(
    con: duckdb.DuckDBPyConnection, inbox: Inbox
) -> None:
    backlog = [alert(f"noise-{i}", service=f"svc-{i % 7}", severity="SEV3") for i in range(100)]
    page = alert("checkout-down", service="checkout", severity="SEV1")
    lost = alert("from-the-last-century", service="checkout", severity="SEV1", starts=dt.datetime(1999, 1, 1))
    inbox.append([*backlog, page, lost])  # seqs 1–100, then 101 and 102

    first = fold_inbox(con, inbox, budget_s=0.0)  # a spent budget: the pages and one backlog batch
    assert (first.ahead, first.rows, first.rejected) == (2, 27, 1)
    assert _cursor(con) == 25  # the cursor moved over the backlog batch only
    assert [r[0] for r in _alerts(con)] == [*range(1, 26), 101]
    assert con.execute("SELECT seq FROM inbox_rejects").fetchall() == [(102,)]

    rest = fold_inbox(con, inbox)  # the next cycles: the backlog; 101 and 102 are passed, not refolded
    assert (rest.rows, rest.alerts, rest.duplicates, rest.rejected) == (75, 75, 0, 0)
    assert _cursor(con) == 102
    stored = _alerts(con)
    assert [r[0] for r in stored] == [*range(1, 101), 101]  # each accepted alert once
    assert all(r[2] for r in stored)


def test_a_page_folded_ahead_opens_the_same_incident_as_in_seq_order(tmp_path: Path) -> None:
    """The backlog holds the page's own earlier alert (same fingerprint) and a resolve of the incident
    that fingerprint has open: both go ahead with the page, in their order, so the page opens a new
    incident, as it does when everything is folded in `seq` order."""
    rows = [
        alert("HighErrorRate", starts=T0, severity="SEV3"),  # INC-0001, folded before the storm
    ]
    storm = [
        *(alert(f"noise-{i}", service="other", severity="SEV3") for i in range(40)),
        command("resolve", "INC-0001", T0 + dt.timedelta(minutes=5)),
        *(
            alert(f"late-{i}", service="other", severity="SEV3", starts=T0 + dt.timedelta(minutes=1))
            for i in range(40)
        ),
        alert("HighErrorRate", starts=T0 + dt.timedelta(minutes=10), severity="SEV1"),
    ]
    outcomes = []
    for name, budget in (("seq", None), ("urgent first", 0.0)):
        store = connect()
        migrate(store)
        box = Inbox(tmp_path / name, synchronous="OFF")
        box.append(rows)
        fold_inbox(store, box)
        box.append(storm)
        fold_inbox(store, box, budget_s=budget)
        page = store.execute(
            """SELECT a.incident_id, i.status, i.detected_at
               FROM alerts a JOIN incidents i ON i.id = a.incident_id
               WHERE a.fingerprint = 'HighErrorRate' AND a.starts_at = ?""",
            [T0 + dt.timedelta(minutes=10)],
        ).fetchone()
        first = store.execute("SELECT status FROM incidents WHERE id = 'INC-0001'").fetchone()
        outcomes.append((first, page[1:], page[0] != "INC-0001"))
        box.close()
    assert outcomes[0] == outcomes[1] == (("resolved",), ("triggered", T0 + dt.timedelta(minutes=10)), True)


def test_the_worker_runs_a_cycle_at_once_when_woken() -> None:
    started: list[float] = []
    ran = threading.Event()

    def cycle() -> None:
        started.append(time.monotonic())
        ran.set()

    worker = Worker(cycle, every=60.0)
    worker.start()
    try:
        assert ran.wait(5)  # the first cycle runs at start
        ran.clear()
        woken = time.monotonic()
        worker.wake()
        assert ran.wait(5), "a woken worker waited for its 60 s schedule"
        assert started[1] - woken < 1.0
        assert worker.status()["wakes"] == 1
    finally:
        worker.stop()


def test_urgent_means_a_firing_sev1_or_sev2_alert() -> None:
    from pipelines.inbox import is_urgent

    def entry(kind: str, **body: Any) -> Entry:
        return Entry("k", kind, "t", body)

    assert is_urgent(entry("alert", status="firing", severity="SEV1"))
    assert is_urgent(entry("alert", status="firing", severity="SEV2"))
    assert not is_urgent(entry("alert", status="firing", severity="SEV3"))
    assert not is_urgent(entry("alert", status="resolved", severity="SEV1"))
    assert not is_urgent(entry("command", status="firing", severity="SEV1"))


# --- the service's stage publishes what its fold opened before the slower steps -------------------


def test_the_service_stage_publishes_new_incidents_before_it_triages_them(con, inbox, tmp_path) -> None:
    from pipelines.incidents.runners import SyncRunner
    from pipelines.incidents.stage import process
    from tests.unit.test_incident_flow import settings_for

    settings = settings_for(tmp_path)
    inbox.append([alert(f"Burst{i}", service=f"svc{i}", severity="SEV3") for i in range(5)])
    seen: list[list[tuple[str, Any]]] = []

    def publish() -> None:  # what a reader would find in the snapshot published at this moment
        seen.append(con.execute("SELECT id, triage_pending FROM incidents ORDER BY id").fetchall())

    run = process(
        con,
        settings,
        T0,
        inbox=inbox,
        runner=SyncRunner(inbox, settings),
        fold_budget_s=4.0,
        publish_opened=publish,
    )
    assert len(run.fold.opened) == 5
    # One early publish: all five incidents, none of them triaged yet ...
    assert seen == [[(f"INC-000{i}", True) for i in range(1, 6)]]
    # ... and the stage went on to triage them all in the same cycle.
    assert con.execute("SELECT count(*) FROM incidents WHERE triage_pending").fetchall() == [(0,)]

    # A cycle whose fold opens nothing publishes only at its end (no call).
    inbox.append([alert("Burst0", service="svc0", severity="SEV3", key="again")])
    process(
        con,
        settings,
        T0,
        inbox=inbox,
        runner=SyncRunner(inbox, settings),
        fold_budget_s=4.0,
        publish_opened=publish,
    )
    assert len(seen) == 1
