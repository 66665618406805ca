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


def budget_bar(budget: float | None, state: str | None) -> str | None:
    """A budget bar in the colour of the SLO's policy state (a table's progress column has one colour
    for every row: red at 95 % remaining), as a small SVG data URL, the share written beside it."""
    if budget is None or (isinstance(budget, float) and math.isnan(budget)):
        return None
    color = STATE_COLORS.get(state, STATE_COLORS[None])
    # 6:1, as a table cell shows it (scaled to the row's height): a 70-unit bar, the share beside it.
    width = round(max(0.0, min(budget, 1.0)) * 70, 1)
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' width='120' height='20' viewBox='0 0 120 20'>"
        "<rect x='0' y='5' width='70' height='10' rx='2' fill='%23e0e0e0'/>"
        f"<rect x='0' y='5' width='{width}' height='10' rx='2' fill='{color.replace('#', '%23')}'/>"
        "<text x='75' y='14.5' font-family='sans-serif' font-size='10.5' fill='%23212121'>"
        f"{budget * 100:.1f}%25</text>"
        "</svg>"
    )
    return "data:image/svg+xml;utf8," + svg


def duration_label(minutes: int) -> str:
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def slo_figure(d: SloDetail) -> go.Figure:
    """One time axis for the SLO window: SLI vs target, budget burn-down with the ideal line, burn
    rates with their alert thresholds, policy state and incidents; alert intervals shaded."""
    target = float(d.meta["target"])
    lanes = max(1, len(_incident_spans(d)))
    incident_px = 40 + INCIDENT_LANE_PX * lanes
    heights = [260, 260, 300, 70, incident_px]
    fig = make_subplots(
        rows=5,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=ROW_GAP_PX / (sum(heights) + 4 * ROW_GAP_PX),
        row_heights=[h / sum(heights) for h in heights],
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
            x=[d.view_start, d.view_end],
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
                x=[d.view_start, d.evaluated_at],
                y=[rule.factor, rule.factor],
                mode="lines",
                name=name,
                line={"color": SEVERITY_COLORS.get(rule.severity, "#616161"), "dash": "dash", "width": 1},
            ),
            row=3,
            col=1,
        )
    # One label per power of ten: a log axis left to itself labels 2, 5, 20, 50… on top of each other.
    fig.update_yaxes(type="log", dtick=1, title_text="× budget rate", row=3, col=1)

    _state_band(fig, d)
    _incident_band(fig, d)
    for iv in d.alert_intervals.itertuples():
        span = clip(iv.start_at, iv.end_at, d.view_start, d.view_end)
        if span is None:
            continue
        # One rectangle over every row (paper y): the rows share one time axis.
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            y0=0,
            y1=1,
            x0=span[0],
            x1=span[1],
            fillcolor=SEVERITY_COLORS.get(iv.severity, "#9e9e9e"),
            opacity=0.18,
            line_width=0,
            name=f"{iv.severity} alert "
            f"{duration_label(int(iv.long_window))}/{duration_label(int(iv.short_window))}",
        )
    time_axes(fig, d.view_start, d.view_end)
    # Room for the y tick labels (Plotly does not make it on its own: "99.95%" was cut to "%").
    fig.update_yaxes(automargin=True)
    fig.update_layout(
        height=sum(heights) + 4 * ROW_GAP_PX + 60,
        margin={"t": 40, "b": 40, "l": 10, "r": 10},
        legend={"orientation": "h", "y": -0.02, "yanchor": "top"},
        hovermode="x unified",
        barmode="overlay",  # the state periods share one lane, end to end
    )
    return fig


INCIDENT_LANE_PX = 26  # one incident per lane: its id stays readable on the y axis
ROW_GAP_PX = 70  # between rows: the row's date tick labels and the next row's title
# Date tick labels by zoom level, one line each (UTC; the bottom axis says so).
DATE_TICKS = [
    {"dtickrange": [None, 86_400_000], "value": "%b %d %H:%M"},
    {"dtickrange": [86_400_000, "M1"], "value": "%b %d"},
    {"dtickrange": ["M1", None], "value": "%b %Y"},
]


def time_axes(fig: go.Figure, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Every x axis of `fig` a date axis over [start, end], labelled with dates under each row (a
    horizontal bar's numeric length would otherwise make Plotly pick a linear axis: "−1 0 1 … 6"),
    and the bottom one named "time (UTC)"."""
    fig.update_xaxes(
        type="date",
        range=[start, end],
        showticklabels=True,
        tickformatstops=DATE_TICKS,
        hoverformat="%Y-%m-%d %H:%M UTC",
        automargin=True,
    )
    bottom = max((k for k in fig.layout if k.startswith("xaxis")), key=lambda k: int(k[5:] or 1))
    fig.layout[bottom].title = {"text": "time (UTC)", "standoff": 4}


def clip(
    start: pd.Timestamp, stop: pd.Timestamp, lo: pd.Timestamp, hi: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """[start, stop) cut to the chart's [lo, hi]; None when nothing of it is inside."""
    a, b = max(start, lo), min(stop, hi)
    return (a, b) if b > a else None


def _state_band(fig: go.Figure, d: SloDetail) -> None:
    """The policy state over the window as coloured bars, one per state period."""
    tr = d.transitions
    periods: list[tuple[pd.Timestamp, pd.Timestamp, str]] = []
    for i, row in enumerate(tr.itertuples()):
        stop = tr["at"].iloc[i + 1] if i + 1 < len(tr) else d.evaluated_at
        span = clip(row.at, stop, d.view_start, min(d.view_end, d.evaluated_at))
        if span:
            periods.append((*span, row.to_state))
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


def _incident_spans(d: SloDetail) -> list[tuple[Any, pd.Timestamp, pd.Timestamp]]:
    """Each incident's impact (start → resolved, or the evaluation instant while open) cut to the
    chart's range; incidents wholly outside it are left out."""
    spans = []
    for row in d.incidents.itertuples():
        stop = row.resolved_at if pd.notna(row.resolved_at) else d.evaluated_at
        span = clip(row.impact_start, stop, d.view_start, min(d.view_end, d.evaluated_at))
        if span:
            spans.append((row, *span))
    return spans


def _incident_band(fig: go.Figure, d: SloDetail) -> None:
    spans = _incident_spans(d)
    if not spans:
        # Plotly draws no axis under a row without a trace: an invisible one keeps the dates there.
        fig.add_trace(
            go.Scatter(
                x=[d.view_start, d.view_end],
                y=[0, 0],
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            ),
            row=5,
            col=1,
        )
        outside = len(d.incidents)
        fig.add_annotation(
            text="no incident on this SLO in this time range"
            + (f" ({outside} outside it: see the table below)" if outside else ""),
            showarrow=False,
            xref="x5 domain",
            yref="y5 domain",
            x=0.5,
            y=0.5,
        )
        fig.update_yaxes(showticklabels=False, row=5, col=1)
        return
    for row, start, stop in spans:
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
    fig.update_yaxes(type="category", autorange="reversed", tickfont={"size": 11}, row=5, col=1)


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
