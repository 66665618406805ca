"""Repeat incidents (DESIGN §2) and their chains, and repeats that struck while the previous incident's
post-mortem action items were still open (seed 002: "zero incidents caused by previously identified and
action-itemed root causes").

A repeat: same service and same fingerprint or root-cause category, starting within N days (default 30)
after the previous one's resolution. "The previous one" is the latest such incident; following these
links backwards gives a chain.
"""

from __future__ import annotations

from typing import Any

import duckdb

from pipelines.analytics.mttx import DURATIONS_TABLE, records

DEFAULT_WINDOW_DAYS = 30

# Each repeat incident with the incident it repeats, how many days after that one's resolution it
# started, and how many of that incident's action items were open when it started.
REPEATS_SQL = f"""
WITH d AS (FROM {DURATIONS_TABLE}),
links AS (
  SELECT b.id, b.service, b.quarter, b.severity, b.title, b.impact_start, b.fingerprint,
         b.root_cause_category, a.id AS repeat_of, a.resolved_at AS previous_resolved_at,
         (epoch_ms(b.impact_start) - epoch_ms(a.resolved_at)) / 86400000.0 AS days_after
  FROM d b JOIN d a
    ON a.service = b.service AND a.id <> b.id
   AND (a.fingerprint = b.fingerprint OR a.root_cause_category = b.root_cause_category)
   AND a.resolved_at IS NOT NULL
   AND b.impact_start >= a.resolved_at
   AND b.impact_start <= a.resolved_at + to_days(CAST(? AS INTEGER))
  QUALIFY row_number() OVER (PARTITION BY b.id ORDER BY a.resolved_at DESC, a.id DESC) = 1
)
SELECT l.*,
       (SELECT count(*) FROM action_items ai
         WHERE ai.incident_id = l.repeat_of AND ai.created_at <= l.impact_start
           AND (ai.done_at IS NULL OR ai.done_at > l.impact_start)) AS open_action_items,
       (SELECT count(*) FROM action_items ai WHERE ai.incident_id = l.repeat_of) AS action_items
FROM links l
ORDER BY l.impact_start, l.id
"""


def repeat_links(
    con: duckdb.DuckDBPyConnection, window_days: int = DEFAULT_WINDOW_DAYS
) -> list[dict[str, Any]]:
    """Every repeat incident, oldest first, with the incident it repeats."""
    return records(con.execute(REPEATS_SQL, [window_days]))


def chains(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chains of repeats: the first incident and every repeat that follows from it, oldest first."""
    parent = {link["id"]: link["repeat_of"] for link in links}

    def root(node: str) -> str:
        seen = set()
        while node in parent and node not in seen:
            seen.add(node)
            node = parent[node]
        return node

    grouped: dict[str, list[dict[str, Any]]] = {}
    for link in links:
        grouped.setdefault(root(link["id"]), []).append(link)
    out = []
    for first, members in grouped.items():
        members.sort(key=lambda m: m["impact_start"])
        out.append(
            {
                "first": first,
                "service": members[0]["service"],
                "fingerprint": members[0]["fingerprint"],
                "root_cause_category": members[0]["root_cause_category"],
                "incidents": [first] + [m["id"] for m in members],
                "length": 1 + len(members),
                "last_start": members[-1]["impact_start"],
            }
        )
    out.sort(key=lambda c: (-c["length"], c["first"]))
    return out


def quarter_repeats(
    con: duckdb.DuckDBPyConnection, quarter: str, window_days: int = DEFAULT_WINDOW_DAYS
) -> dict[str, Any]:
    """The repeats section of a quarter: repeats that started in it, their chains, and those that struck
    while the previous incident's action items were still open."""
    links = repeat_links(con, window_days)
    in_quarter = [link for link in links if link["quarter"] == quarter]
    quarter_ids = {link["id"] for link in in_quarter}
    relevant_chains = [c for c in chains(links) if quarter_ids & set(c["incidents"])]
    with_open = [link for link in in_quarter if link["open_action_items"] > 0]
    return {
        "window_days": window_days,
        "count": len(in_quarter),
        "with_open_action_items": len(with_open),
        "repeats": [
            {
                "id": link["id"],
                "service": link["service"],
                "title": link["title"],
                "repeat_of": link["repeat_of"],
                "days_after_previous_resolution": round(link["days_after"], 2),
                "open_action_items": link["open_action_items"],
                "action_items": link["action_items"],
            }
            for link in in_quarter
        ],
        "chains": [{k: v for k, v in c.items() if k != "last_start"} for c in relevant_chains],
    }
