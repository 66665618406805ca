"""The deploy feed in DuckDB (issue 17): the fold's step for a `deploy` inbox command, the services a
deploy may name, and the listing.

    fold_deploy(con, cmd, seq, received_at) → True stored | False already stored     (the fold, no I/O)
    known_services(con, spec_services) → the services with an SLO (specs and store)
    list_deploys(con, service, limit) → the feed, newest first

A folded deploy is a row of `deploy_feed` (who, link, source, key) and of `deploys`, the table deploy
correlation (`pipelines.analytics.deploys`), the triage context and the quarterly review read, so a
deploy posted here is what the next incident's triage and the review see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import duckdb

from pipelines.incidents.contract import Command
from pipelines.ingest.deploys import Deploy

# One deploy, unless its key is stored already (a refolded inbox, a re-sent deploy with a new row).
INSERT_FEED_SQL = """
INSERT INTO deploy_feed (dedup_key, service, deployed_at, version, who, link, description, source, actor,
                         inbox_seq, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING dedup_key
"""
# The row correlation and triage read: its description says who deployed.
INSERT_DEPLOY_SQL = "INSERT INTO deploys (service, deployed_at, version, description) VALUES (?, ?, ?, ?)"
# The feed, newest first, optionally one service's.
LIST_SQL = """
SELECT service, deployed_at, version, who, link, description, source, actor, dedup_key
FROM deploy_feed WHERE (? IS NULL OR service = ?) ORDER BY deployed_at DESC, dedup_key LIMIT ?
"""
# Every service with an SLO in the store (specs synced by a cycle).
STORED_SERVICES_SQL = "SELECT DISTINCT service FROM slos"


def fold_deploy(
    con: duckdb.DuckDBPyConnection, cmd: Command, seq: int | None, received_at: dt.datetime
) -> bool:
    """Store the deploy `cmd` carries; raises MalformedInput (naming the field) when its args are not a
    deploy. False when its key was stored already."""
    deploy = Deploy.from_args(cmd.args)
    stored = con.execute(
        INSERT_FEED_SQL,
        [
            deploy.key,
            deploy.service,
            deploy.deployed_at,
            deploy.version,
            deploy.who,
            deploy.link,
            deploy.description,
            deploy.source,
            cmd.actor,
            seq,
            received_at,
        ],
    ).fetchall()
    if not stored:
        return False
    by = f"deployed by {deploy.who}"
    con.execute(
        INSERT_DEPLOY_SQL,
        [
            deploy.service,
            deploy.deployed_at,
            deploy.version,
            f"{deploy.description} ({by})" if deploy.description else by,
        ],
    )
    return True


def known_services(con: duckdb.DuckDBPyConnection | None, spec_services: Iterable[str] = ()) -> set[str]:
    """The services a deploy may name: those of the SLO specs, and those of the store's SLOs."""
    services = set(spec_services)
    if con is not None:
        services |= {str(r[0]) for r in con.execute(STORED_SERVICES_SQL).fetchall()}
    return services


def list_deploys(
    con: duckdb.DuckDBPyConnection, service: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    names = ("service", "deployed_at", "version", "who", "link", "description", "source", "actor", "key")
    rows = con.execute(LIST_SQL, [service, service, limit]).fetchall()
    out = [dict(zip(names, r, strict=True)) for r in rows]
    for d in out:
        d["deployed_at"] = d["deployed_at"].isoformat(timespec="seconds") + "Z"
    return out
