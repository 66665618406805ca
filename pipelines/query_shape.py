"""One query-shape check for every spec reader (native, Sloth, OpenSLO): a query that validates is one
the Prometheus pull can ask for per minute (`promql.plan_queries`) and the rules exporter can put over
every window (`promql.error_ratio`), so `slo validate`, `slo run --source prometheus`, `slo rules` and
`slo validate --native` accept or refuse the same specs. Pure."""

from __future__ import annotations

from pipelines.model import Sli, Slo, SloWindow
from pipelines.promql import QueryShapeError, as_template, error_ratio, per_minute_increase, plan_queries

_PROBE_WINDOW = SloWindow(kind="rolling", minutes=43200, text="30d")


def event_query_problem(query: str) -> str | None:
    """Why an event query (good, bad, valid/total) cannot be pulled per minute or put over a window,
    or None when it can. The message says what to write instead."""
    try:
        per_minute_increase(query)
        as_template(query, _PROBE, "event")
    except QueryShapeError as exc:
        return str(exc).removeprefix(f"{_PROBE.id}: ")
    return None


def slo_problems(slo: Slo) -> list[str]:
    """Why this SLO's queries cannot be pulled or exported (empty when they can)."""
    problems: list[str] = []
    for step in (plan_queries, error_ratio):
        try:
            step(slo)
        except QueryShapeError as exc:
            message = str(exc).removeprefix(f"{slo.id}: ")
            if message not in problems:
                problems.append(message)
    return problems


_PROBE = Slo(
    service="query",
    name="shape",
    owner="",
    sli=Sli(name="shape", kind="ratio", category="availability"),
    target=0.99,
    window=_PROBE_WINDOW,
    alerts=(),
    alerts_custom=False,
)
