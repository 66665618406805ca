"""Incident-store rows as dicts, for the incident stage's steps and the demo's replay."""

from __future__ import annotations

from typing import Any

import duckdb


def records(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """The rows of one query as dicts keyed by column name."""
    rel = con.execute(sql, params)
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def incidents_where(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """Incident rows as dicts, in one query (`where` is a constant SQL condition, never user input)."""
    return records(con, f"SELECT * FROM incidents WHERE {where} ORDER BY created_at, id", params)
