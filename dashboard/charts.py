"""Plotly figures and display formats for the dashboard: pure functions of query results.

Colours carry meaning everywhere: the policy state (green normal → red exhausted), alert severity
(page red, ticket amber). Budgets are shown as percentages, durations in minutes or hours.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.queries import SloDetail
from pipelines.outside_text import plotly as plotly_text

STATE_COLORS = {
    "normal": "#2e7d32",
    "freeze_review": "#f9a825",
    "reliability_focus": "#ef6c00",
    "exhausted": "#c62828",
    None: "#9e9e9e",
}
# Streamlit markdown colours for badges (`:green-badge[normal]`).
STATE_BADGES = {
    "normal": "green",
    "freeze_review": "yellow",
    "reliability_focus": "orange",
    "exhausted": "red",
    None: "gray",
}
STATE_ORDER = ("normal", "freeze_review", "reliability_focus", "exhausted")
SEVERITY_COLORS = {"page": "#d32f2f", "ticket": "#f9a825"}
SEV_COLORS = {
    "SEV1": "#b71c1c",
    "SEV2": "#e53935",
    "SEV3": "#fb8c00",
    "SEV4": "#fdd835",
    "unknown": "#9e9e9e",
}
# The long burn-rate window of each standard condition, drawn with the condition's threshold.
BURN_LINES = {"burn_1h": "#b71c1c", "burn_6h": "#e64a19", "burn_1d": "#f9a825", "burn_3d": "#7cb342"}


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:.{digits}f}%"


def state_label(state: str | None) -> str:
    return state or "no data"


def state_badge(state: str | None) -> str:
    """Markdown for a coloured badge naming the policy state."""
    return f":{STATE_BADGES.get(state, 'gray')}-badge[{state_label(state)}]"


def state_cell_style(label: str) -> str:
    """CSS for a table cell holding a policy state: its colour, readable text on top."""
    color = STATE_COLORS.get(None if label == "no data" else label, STATE_COLORS[None])
    text = "#212121" if label == "freeze_review" else "#ffffff"
    return f"background-color: {color}; color: {text}; font-weight: 600"


def duration_label(minutes: int) -> str:
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def slo_figure(d: SloDetail) -> go.Figure:
    """One time axis for the SLO window: SLI vs target, budget burn-down with the ideal line, burn
    rates with their alert thresholds, policy state and incidents; alert intervals shaded."""
    target = float(d.meta["target"])
    fig = make_subplots(
        rows=5,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        row_heights=[0.24, 0.24, 0.28, 0.08, 0.16],
        subplot_titles=(
            "SLI against target",
            "Error budget remaining (burn-down)",
            "Burn rate (× budget rate) and alert thresholds",
            "Policy state",
            "Incidents",
        ),
    )
    s = d.series
    fig.add_trace(
        go.Scatter(
            x=s["at"],
            y=s["sli"],
            name=f"SLI over the {d.meta['window_text']} window",
            line={"color": "#1565c0"},
            hovertemplate="%{y:.4%}<extra>SLI (window)</extra>",
        ),
        row=1,
        col=1,
    )
    sli_1h = 1 - s["burn_1h"] * (1 - target)
    fig.add_trace(
        go.Scatter(
            x=s["at"],
            y=sli_1h,
            name="SLI over 1h",
            line={"color": "#90caf9", "width": 1},
            hovertemplate="%{y:.4%}<extra>SLI (1h)</extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[d.range_start, d.range_end],
            y=[target, target],
            name=f"target {target:.4%}",
            mode="lines",
            line={"color": "#424242", "dash": "dash"},
        ),
        row=1,
        col=1,
    )
    low = min([target - 2 * (1 - target), *[v for v in s["sli"].dropna()]], default=target)
    fig.update_yaxes(range=[max(low, 0), 1.0002], tickformat=".2%", row=1, col=1)

    fig.add_trace(
        go.Scatter(
            x=d.burn_down["at"],
            y=d.burn_down["budget_remaining"],
            name="budget remaining",
            line={"color": STATE_COLORS.get(d.slo["policy_state"], "#1565c0"), "width": 2},
            hovertemplate="%{y:.1%}<extra>budget remaining</extra>",
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=d.ideal["at"],
            y=d.ideal["budget_remaining"],
            name="ideal burn-down",
            mode="lines",
            line={"color": "#757575", "dash": "dot"},
        ),
        row=2,
        col=1,
    )
    for level, state in ((0.5, "freeze_review"), (0.25, "reliability_focus"), (0.0, "exhausted")):
        fig.add_hline(y=level, line={"color": STATE_COLORS[state], "width": 1, "dash": "dash"}, row=2, col=1)
    exhaustion = d.slo.get("projected_exhaustion_at")
    if exhaustion:
        at = pd.Timestamp(exhaustion).tz_localize(None)
        fig.add_trace(
            go.Scatter(
                x=[d.evaluated_at, at],
                y=[d.slo["budget_remaining"], 0.0],
                mode="lines+markers",
                name="projected exhaustion (1h burn)",
                line={"color": "#c62828", "dash": "dash"},
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(tickformat=".0%", row=2, col=1)

    for col, color in BURN_LINES.items():
        fig.add_trace(
            go.Scatter(
                x=s["at"],
                y=s[col].clip(lower=0.01),
                name=col.replace("burn_", "burn "),
                line={"color": color, "width": 1},
                hovertemplate="%{y:.2f}×<extra>" + col + "</extra>",
            ),
            row=3,
            col=1,
        )
    for rule in d.alert_rules.itertuples():
        name = (
            f"{rule.severity} threshold {duration_label(int(rule.long_window))}/"
            f"{duration_label(int(rule.short_window))} > {rule.factor:g}"
        )
        fig.add_trace(
            go.Scatter(
                x=[d.range_start, d.evaluated_at],
                y=[rule.factor, rule.factor],
                mode="lines",
                name=name,
                line={"color": SEVERITY_COLORS.get(rule.severity, "#616161"), "dash": "dash", "width": 1},
            ),
            row=3,
            col=1,
        )
    fig.update_yaxes(type="log", title_text="× budget rate", row=3, col=1)

    _state_band(fig, d)
    _incident_band(fig, d)
    for iv in d.alert_intervals.itertuples():
        # One rectangle over every row (paper y): the rows share one time axis.
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            y0=0,
            y1=1,
            x0=iv.start_at,
            x1=iv.end_at,
            fillcolor=SEVERITY_COLORS.get(iv.severity, "#9e9e9e"),
            opacity=0.18,
            line_width=0,
            name=f"{iv.severity} alert "
            f"{duration_label(int(iv.long_window))}/{duration_label(int(iv.short_window))}",
        )
    fig.update_xaxes(range=[d.range_start, d.range_end])
    fig.update_layout(
        height=1000,
        margin={"t": 40, "b": 20, "l": 10, "r": 10},
        legend={"orientation": "h", "y": -0.04},
        hovermode="x unified",
    )
    return fig


def _state_band(fig: go.Figure, d: SloDetail) -> None:
    """The policy state over the window as coloured bars, one per state period."""
    tr = d.transitions
    end = d.evaluated_at
    periods: list[tuple[pd.Timestamp, pd.Timestamp, str]] = []
    for i, row in enumerate(tr.itertuples()):
        stop = tr["at"].iloc[i + 1] if i + 1 < len(tr) else end
        start = max(row.at, d.range_start)
        if stop > d.range_start and start < end:
            periods.append((start, stop, row.to_state))
    for state in STATE_ORDER:
        mine = [p for p in periods if p[2] == state]
        if not mine:
            continue
        fig.add_trace(
            go.Bar(
                base=[p[0] for p in mine],
                x=[(p[1] - p[0]).total_seconds() * 1000 for p in mine],
                y=["state"] * len(mine),
                orientation="h",
                name=state,
                marker={"color": STATE_COLORS[state]},
                hovertemplate=state + "<extra></extra>",
            ),
            row=4,
            col=1,
        )
    fig.update_yaxes(showticklabels=False, row=4, col=1)


def _incident_band(fig: go.Figure, d: SloDetail) -> None:
    inc = d.incidents
    if inc.empty:
        fig.add_annotation(
            text="no incidents linked to this SLO",
            showarrow=False,
            xref="x5 domain",
            yref="y5 domain",
            x=0.5,
            y=0.5,
        )
        return
    for row in inc.itertuples():
        start = row.impact_start
        stop = row.resolved_at if pd.notna(row.resolved_at) else d.evaluated_at
        fig.add_trace(
            go.Bar(
                base=[start],
                x=[(stop - start).total_seconds() * 1000],
                y=[row.id],
                orientation="h",
                name=f"{row.id} {row.severity or ''}",
                showlegend=False,
                marker={"color": SEV_COLORS.get(row.severity or "unknown", "#9e9e9e")},
                # The title is outside text: passed as data (a template would read %{…} in it) and
                # entity-escaped (Plotly renders <a href>, <b>… in hover text).
                customdata=[[plotly_text(row.title)]],
                hovertemplate=f"{row.id} · {row.severity} · {row.status}<br>"
                + "%{customdata[0]}<extra></extra>",
            ),
            row=5,
            col=1,
        )


def duration_box(df: pd.DataFrame, column: str, label: str) -> go.Figure:
    """Distribution of one duration (minutes) by quarter and severity: box plots with every point."""
    data = df.dropna(subset=[column])
    fig = go.Figure()
    for sev in sorted(data["severity"].unique()):
        part = data[data["severity"] == sev]
        fig.add_trace(
            go.Box(
                x=part["quarter"],
                y=part[column],
                name=sev,
                boxpoints="all",
                jitter=0.4,
                marker={"color": SEV_COLORS.get(sev, "#9e9e9e")},
                text=part["id"],
                hovertemplate="%{text}: %{y:.0f} min<extra>" + sev + "</extra>",
            )
        )
    fig.update_layout(
        boxmode="group",
        title=f"{label} (minutes) by quarter and severity",
        yaxis={"title": "minutes", "type": "log"},
        height=360,
        margin={"t": 40, "b": 20, "l": 10, "r": 10},
    )
    return fig


def severity_mix(df: pd.DataFrame) -> go.Figure:
    mix = df.groupby(["quarter", "severity"]).size().reset_index(name="incidents")
    fig = go.Figure()
    for sev in sorted(mix["severity"].unique()):
        part = mix[mix["severity"] == sev]
        fig.add_trace(
            go.Bar(
                x=part["quarter"],
                y=part["incidents"],
                name=sev,
                marker={"color": SEV_COLORS.get(sev, "#9e9e9e")},
            )
        )
    fig.update_layout(
        barmode="stack",
        title="Incidents by severity and quarter",
        height=320,
        margin={"t": 40, "b": 20, "l": 10, "r": 10},
    )
    return fig


def stacked_bars(
    df: pd.DataFrame, x: str, y: str, color: str, title: str, colors: dict[Any, str] | None = None
) -> go.Figure:
    fig = go.Figure()
    for key in sorted(df[color].unique()):
        part = df[df[color] == key]
        fig.add_trace(
            go.Bar(
                x=part[x],
                y=part[y],
                name=str(key),
                marker={"color": (colors or {}).get(key)} if colors else None,
            )
        )
    fig.update_layout(barmode="stack", title=title, height=320, margin={"t": 40, "b": 20, "l": 10, "r": 10})
    return fig
