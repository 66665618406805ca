"""The quarterly review as the dashboard shows it: a small model built from query results, rendered
as Markdown (shown and downloaded) and as standalone HTML.

Pure functions; the analytics module's `slo report quarterly` will replace `build` when it lands.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.queries import DURATIONS, fmt_minutes, percentile_summary


@dataclass
class Review:
    quarter: str
    generated_at: str
    data_until: str
    slos: list[dict[str, Any]]
    incidents: dict[str, Any]
    previous: dict[str, Any] | None
    recommendations: list[str]


def _previous_quarter(quarter: str) -> str:
    year, q = int(quarter[:4]), int(quarter[-1])
    return f"{year - 1}-Q4" if q == 1 else f"{year}-Q{q - 1}"


def _incident_summary(df: pd.DataFrame) -> dict[str, Any]:
    closed = df[~df["open"]] if not df.empty else df
    return {
        "total": len(df),
        "open": int(df["open"].sum()) if not df.empty else 0,
        "by_severity": df["severity"].value_counts().sort_index().to_dict() if not df.empty else {},
        "repeats": int(df["repeat"].sum()) if not df.empty else 0,
        **{
            f"{key}_minutes": percentile_summary(closed[key] if not df.empty else pd.Series(dtype=float))
            for key in DURATIONS
        },
    }


def build(quarter: str, slos: pd.DataFrame, durations: pd.DataFrame, fresh: dict[str, Any]) -> Review:
    mine = durations[durations["quarter"] == quarter] if not durations.empty else durations
    prev_q = _previous_quarter(quarter)
    prev = durations[durations["quarter"] == prev_q] if not durations.empty else durations
    rows = [
        {
            "slo": r.slo_id,
            "owner": r.owner if isinstance(r.owner, str) else None,
            "target": r.target,
            "attainment": None if pd.isna(r.attainment) else float(r.attainment),
            "met": None if pd.isna(r.attainment) else bool(r.attainment >= r.target),
            "budget_spent": None if pd.isna(r.budget_spent) else float(r.budget_spent),
            "pages": int(r.pages),
            "tickets": int(r.tickets),
            "times_exhausted": int(r.times_exhausted),
        }
        for r in slos.itertuples()
    ]
    recs = []
    for r in rows:
        if r["budget_spent"] is not None and r["budget_spent"] > 1:
            recs.append(
                f"{r['slo']}: budget overspent ({r['budget_spent']:.0%}); the policy calls for a "
                "reliability focus until it recovers."
            )
        elif r["budget_spent"] is not None and r["budget_spent"] > 0.5:
            recs.append(
                f"{r['slo']}: {r['budget_spent']:.0%} of the budget spent; review releases and the "
                "top incident causes."
            )
        elif r["budget_spent"] is not None and r["budget_spent"] < 0.05 and r["pages"] == 0:
            recs.append(
                f"{r['slo']}: only {r['budget_spent']:.1%} of the budget spent; the target may be "
                "stricter than users need, or there is room to ship faster."
            )
    inc = _incident_summary(mine)
    if inc["repeats"]:
        recs.append(f"{inc['repeats']} repeat incident(s): close the action items of the originals first.")
    evaluated = fresh.get("evaluated_to")
    return Review(
        quarter=quarter,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        data_until=f"{evaluated:%Y-%m-%d %H:%M} UTC" if evaluated is not None else "—",
        slos=rows,
        incidents=inc,
        previous=_incident_summary(prev) if not prev.empty else None,
        recommendations=recs or ["No SLO needs attention this quarter."],
    )


def _pct(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v * 100:.{digits}f}%"


def _sections(r: Review) -> list[tuple[str, list[str], list[list[str]] | None]]:
    """(heading, paragraphs, table rows with the header first) — the one layout both renderers use."""
    met = sum(1 for s in r.slos if s["met"])
    judged = sum(1 for s in r.slos if s["met"] is not None)
    slo_rows = [
        ["SLO", "owner", "target", "attainment", "met", "budget spent", "pages", "tickets", "times exhausted"]
    ] + [
        [
            s["slo"],
            s["owner"] or "—",
            _pct(s["target"], 2),
            _pct(s["attainment"]),
            "—" if s["met"] is None else ("yes" if s["met"] else "**no**"),
            _pct(s["budget_spent"], 1),
            str(s["pages"]),
            str(s["tickets"]),
            str(s["times_exhausted"]),
        ]
        for s in r.slos
    ]
    inc = r.incidents
    sev = ", ".join(f"{k}: {v}" for k, v in inc["by_severity"].items()) or "none"
    dur_rows = [["measure", "count", "p50", "p90", "mean", "previous quarter p50"]]
    for key, label in DURATIONS.items():
        cur = inc[f"{key}_minutes"]
        prev = r.previous[f"{key}_minutes"]["p50"] if r.previous else None
        dur_rows.append(
            [
                label,
                str(cur["count"]),
                fmt_minutes(cur["p50"]),
                fmt_minutes(cur["p90"]),
                fmt_minutes(cur["mean"]),
                fmt_minutes(prev),
            ]
        )
    incident_text = [
        f"{inc['total']} incident(s) ({inc['open']} still open); by severity: {sev}; "
        f"{inc['repeats']} repeat(s)."
        + (f" Previous quarter: {r.previous['total']} incident(s)." if r.previous else "")
    ]
    if inc["total"] == 0:
        incident_text.append("No incident data for this quarter yet.")
    return [
        ("SLO attainment", [f"{met} of {judged} SLOs met their target over the quarter."], slo_rows),
        ("Incidents", incident_text, dur_rows if inc["total"] else None),
        ("Recommendations", [f"- {x}" for x in r.recommendations], None),
    ]


def to_markdown(r: Review) -> str:
    lines = [
        f"# Reliability review {r.quarter}",
        "",
        f"Generated {r.generated_at} from data up to {r.data_until}.",
        "",
    ]
    for heading, paragraphs, table in _sections(r):
        lines += [f"## {heading}", "", *paragraphs, ""]
        if table:
            lines.append("| " + " | ".join(table[0]) + " |")
            lines.append("|" + "---|" * len(table[0]))
            lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
            lines.append("")
    return "\n".join(lines)


def to_html(r: Review) -> str:
    def cell(text: str) -> str:
        bold = text.startswith("**") and text.endswith("**")
        inner = html.escape(text.strip("*"))
        return f"<strong>{inner}</strong>" if bold else inner

    body = [
        f"<h1>Reliability review {html.escape(r.quarter)}</h1>",
        f"<p>Generated {html.escape(r.generated_at)} from data up to {html.escape(r.data_until)}.</p>",
    ]
    for heading, paragraphs, table in _sections(r):
        body.append(f"<h2>{html.escape(heading)}</h2>")
        items = [p[2:] for p in paragraphs if p.startswith("- ")]
        body += [f"<p>{html.escape(p)}</p>" for p in paragraphs if not p.startswith("- ")]
        if items:
            body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        if table:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in table[0])
            rows = "".join(
                "<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in table[1:]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Reliability review "
        f"{html.escape(r.quarter)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
