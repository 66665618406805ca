"""Fixtures the incident-stage integration tests share: a migrated in-memory store and the durable
inbox of a data directory `tmp_path / "data"` (the directory their Settings name), as the stage reads
it. A module that needs another shape defines its own fixture of the same name, which wins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipelines.inbox import Inbox
from pipelines.store import connect, migrate


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    db = connect()
    migrate(db)
    yield db
    db.close()


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "data", synchronous="OFF")
    yield box
    box.close()
