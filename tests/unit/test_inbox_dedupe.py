"""The inbox's de-duplication and group commit: what is stored once, what is reported as a duplicate."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipelines.inbox import Entry, GroupCommit, Inbox


def entry(key: str, n: int = 0) -> Entry:
    return Entry(key, "alert", "generic", {"n": n})


def test_redelivery_is_a_duplicate_and_not_stored_twice(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    first = inbox.append([entry("a"), entry("b")])
    assert (first.accepted, first.duplicates) == (["a", "b"], [])
    again = inbox.append([entry("b", 1), entry("c"), entry("c", 2)])
    assert (again.accepted, again.duplicates) == (["c"], ["b", "c"])
    assert inbox.count() == 3
    stored = {r.dedup_key: r.body for r in inbox.read_since(0)}
    assert stored == {"a": {"n": 0}, "b": {"n": 0}, "c": {"n": 0}}  # the first delivery wins
    seqs = [r.seq for r in inbox.read_since(0)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3  # increasing (an ignored insert may skip one)


def test_append_groups_reports_per_group_as_if_sequential(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    results = inbox.append_groups([[entry("a")], [entry("a"), entry("b")], [entry("b"), entry("c")]])
    assert [(r.accepted, r.duplicates) for r in results] == [(["a"], []), (["b"], ["a"]), (["c"], ["b"])]
    assert inbox.count() == 3


def test_group_commit_shares_commits_and_loses_nothing(tmp_path: Path) -> None:
    committer = GroupCommit(Inbox(tmp_path)).start()
    results: dict[int, tuple[list[str], list[str]]] = {}

    def client(i: int) -> None:
        # every client sends 50 own keys and 50 keys shared with all other clients
        r = committer.append(
            [entry(f"own-{i}-{j}") for j in range(50)] + [entry(f"shared-{j}") for j in range(50)]
        )
        results[i] = (r.accepted, r.duplicates)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    committer.close()
    inbox = Inbox(tmp_path)
    assert inbox.count() == 16 * 50 + 50
    accepted = [k for acc, _ in results.values() for k in acc]
    assert len(accepted) == len(set(accepted)) == 16 * 50 + 50  # each key accepted by exactly one caller
    assert sum(len(dup) for _, dup in results.values()) == 15 * 50
    assert 1 <= committer.commits <= 16


def test_group_commit_failure_accepts_nobody(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    committer = GroupCommit(inbox).start()
    bad = Entry("x", "not-a-kind", "generic", {})  # refused: the whole batch it is in fails
    future_ok = committer.submit([entry("fine")])
    future_bad = committer.submit([bad])
    results = []
    for f in (future_ok, future_bad):
        try:
            results.append(f.result(10).accepted)
        except Exception as exc:
            results.append(type(exc).__name__)
    committer.close()
    count = Inbox(tmp_path).count()
    # Whether the two shared a batch or not, nobody is told "accepted" for a row that is not stored.
    if results[0] == ["fine"]:
        assert count == 1
    else:
        assert count == 0
    assert results[1] == "ValueError"


def test_closed_group_commit_refuses(tmp_path: Path) -> None:
    committer = GroupCommit(Inbox(tmp_path)).start()
    committer.close()
    with pytest.raises(RuntimeError, match="closing"):
        committer.append([entry("late")])
    assert Inbox(tmp_path).count() == 0
