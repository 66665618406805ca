"""How fresh the published snapshot is, said plainly at the top of a page.

"Stale" means what `slo status` means by it, from the same function (`pipelines.status.summarise`
over the same status rows, stale marks included): an SLO whose last pull failed. How long ago the
pipeline last evaluated, and SLOs without recent data, are said beside it as notes, as the CLI's
`note:` lines say them, never as "stale" on their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import queries
from pipelines.outside_text import markdown as md
from pipelines.status import summarise

# The pipeline's cycle is a minute: an evaluation older than this is worth a note.
OLD_AFTER = dt.timedelta(minutes=15)


def require_snapshot() -> bool:
    """False (with a message saying what to run) when nothing is published yet."""
    if queries.snapshot_version(queries.data_dir()) is None:
        st.info(
            f"No data yet: {queries.data_dir() / 'slo.duckdb'} has not been published. "
            "Run `slo demo` (or `slo run`, or `slo up`) and reload."
        )
        return False
    return True


def stale_reasons(rows: list[dict[str, Any]]) -> list[str]:
    """Why data is stale, exactly where `slo status` says `stale: true`: one line per reason."""
    return [
        f"{reason}"
        + (f" (since {since[:16].replace('T', ' ')} UTC)" if since else "")
        + f": {', '.join(slos)}"
        for (reason, since), slos in summarise(rows).stale.items()
    ]


def notes(rows: list[dict[str, Any]], fresh: dict[str, Any], now: dt.datetime) -> list[str]:
    """What else a reader should know about the data's age: an old last evaluation (no pipeline
    running: the page shows the snapshot as it was), SLOs with no recent or no data."""
    out: list[str] = []
    evaluated = fresh.get("evaluated_to")
    if evaluated is not None and pd.notna(evaluated):
        age = now - pd.Timestamp(evaluated).to_pydatetime()
        if age > OLD_AFTER:
            run_at = fresh.get("last_run_at")
            last_run = (
                f"last pipeline run: {fresh.get('last_run_source') or '?'} at {run_at:%Y-%m-%d %H:%M} UTC"
                if run_at is not None
                else "no pipeline run recorded"
            )
            out.append(f"evaluated up to {evaluated:%Y-%m-%d %H:%M} UTC, {_age(age)} ago ({last_run})")
    for status in ("no_recent_data", "no_data"):
        names = [r["slo"] for r in rows if r.get("data_status") == status]
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            out.append(f"{status.replace('_', ' ')}: {shown}")
    return out


def _age(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 2 * 1440:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def banner(rows: list[dict[str, Any]], fresh: dict[str, Any]) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    reasons = stale_reasons(rows)
    if reasons:
        # A reason can be a source's own error text (Prometheus's): shown as text, not Markdown.
        st.warning(
            "**Data may be stale: the last pull failed.** " + " · ".join(md(r) for r in reasons),
            icon=":material/warning:",
        )
    extra = notes(rows, fresh, now)
    if extra:
        st.info(" · ".join(md(n) for n in extra), icon=":material/schedule:")
