"""Pull per-minute SLI buckets from a real Prometheus through prometheus-api-client (issue 3).

    plan queries (promql.py) → chunked range queries, a bounded number in parallel, each with a
    timeout and bounded retries → a Pull (`cycle.run_prometheus` publishes it), or, when any SLO's pull is
    incomplete, nothing is published and those SLOs are marked stale (staleness.py).

Errors at this edge:
    PrometheusError     one request failed for good; `kind` is unreachable | timeout | http | auth |
                        rejected | answer | tls, `transient` says whether a retry could help
    PullFailed          (a SourceError) the pull is incomplete: SLO id → reason for each failed SLO
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from pipelines import promql
from pipelines.config import PrometheusSettings
from pipelines.errors import PullFailed, SourceError
from pipelines.model import Slo
from pipelines.progress import Progress
from pipelines.sources import Pull
from pipelines.staleness import SourceState
from pipelines.timeutil import datetime_of, minute_of

SOURCE = "prometheus"
# Without a high-water mark an SLO is backfilled over its window, and at least the 3d burn window.
MIN_BACKFILL_MINUTES = 3 * 1440
# Retries wait BACKOFF_SECONDS · 2^attempt, at most BACKOFF_CAP_SECONDS.
BACKOFF_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
# Prometheus answers these statuses when a retry may help (overload, restart, a slow query).
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
# Kinds of failure that mean the server, not one SLO's query: the rest of the pull is abandoned.
SERVER_KINDS = frozenset({"unreachable", "timeout", "http", "auth", "tls"})


class PrometheusError(Exception):
    """One request failed for good (after its retries, when `transient`)."""

    def __init__(self, kind: str, message: str, transient: bool = False):
        super().__init__(message)
        self.kind = kind
        self.transient = transient


def display_url(url: str) -> str:
    """The URL without any user:password@ part, for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class Client:
    """One connection to Prometheus: range queries with a timeout and bounded retries with backoff.

    Not shared between threads (a requests Session is not thread-safe); the pull gives each worker
    its own.
    """

    def __init__(self, cfg: PrometheusSettings, sleep: Callable[[float], bool | None] | None = None):
        if not cfg.url:
            raise SourceError("PROMETHEUS_URL is not set; expected e.g. PROMETHEUS_URL=http://127.0.0.1:9090")
        self.cfg = cfg
        self.url = display_url(cfg.url)
        session = requests.Session()
        session.verify = cfg.ca_file or not cfg.insecure_skip_verify
        if cfg.cert_file and cfg.key_file:
            session.cert = (cfg.cert_file, cfg.key_file)
        self.prom = PrometheusConnect(
            url=cfg.url,
            headers={"Authorization": f"Bearer {cfg.token}"} if cfg.token else None,
            auth=(cfg.user, cfg.password) if cfg.user and cfg.password else None,
            # The library's own retry repeats on 5xx with no bound on time; ours is bounded and
            # tells transient failures from a rejected query.
            # No retries inside urllib3 (ours below are bounded and classified); read=False
            # re-raises a read timeout as it is, so requests reports a Timeout, not a ConnectionError.
            retry=Retry(total=0, read=False),
            session=session,
            timeout=cfg.timeout,  # requests takes float seconds
        )
        self._sleep = sleep or time.sleep

    def close(self) -> None:
        self.prom.close()

    def query_range(
        self, query: str, start: int, end: int, abort: threading.Event | None = None
    ) -> list[dict]:
        """The matrix `result` of `query` over instants start…end (epoch seconds) every 60 s."""
        attempts = self.cfg.retries + 1
        for attempt in range(attempts):
            if abort is not None and abort.is_set():
                raise PrometheusError("aborted", "abandoned after another request failed")
            try:
                return self._once(query, start, end)
            except PrometheusError as exc:
                if not exc.transient or attempt == attempts - 1:
                    if exc.transient and attempts > 1:
                        raise PrometheusError(exc.kind, f"{exc} (after {attempts} attempts)") from None
                    raise
            delay = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2**attempt)
            if abort is not None:
                abort.wait(delay)
            else:
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _once(self, query: str, start: int, end: int) -> list[dict]:
        timeout = self.cfg.timeout
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: the user asked for it
                result = self.prom.custom_query_range(
                    query,
                    dt.datetime.fromtimestamp(start, dt.UTC),
                    dt.datetime.fromtimestamp(end, dt.UTC),
                    step=str(promql.STEP_SECONDS),
                    params={"timeout": f"{timeout:g}"},  # seconds: Prometheus stops the query as well
                )
        except requests.exceptions.Timeout:
            raise PrometheusError(
                "timeout",
                f"Prometheus at {self.url} did not answer within {timeout:g}s (PROMETHEUS_TIMEOUT)",
                True,
            ) from None
        except requests.exceptions.SSLError as exc:
            raise PrometheusError(
                "tls",
                f"TLS with {self.url} failed ({_short(exc)}); check PROMETHEUS_CA_FILE or "
                "PROMETHEUS_INSECURE_SKIP_VERIFY",
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise PrometheusError(
                "unreachable", f"cannot reach Prometheus at {self.url} ({_short(exc)})", True
            ) from None
        except requests.exceptions.RequestException as exc:
            raise PrometheusError(
                "unreachable", f"request to {self.url} failed ({_short(exc)})", True
            ) from None
        except PrometheusApiClientException as exc:
            raise http_error(str(exc), self.url) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise PrometheusError(
                "answer", f"{self.url} did not answer like the Prometheus API ({exc})"
            ) from None
        if not isinstance(result, list):
            raise PrometheusError(
                "answer", f"{self.url} answered a {type(result).__name__}, expected a matrix"
            )
        return result


def _short(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error: 'Connection refused', 'Connection reset …'."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return found[-1].strip()
    tls = re.search(r"\[SSL: [A-Z_]+\] ([^'\"(]+)", text)
    if tls:
        return tls.group(1).strip()
    cause = re.search(r"\(Caused by (.*)\)\s*$", text)
    if cause:
        text = cause.group(1)
    for marker in ("RemoteDisconnected(", "ProtocolError(", "Connection aborted."):
        if marker in text:
            return "the connection was closed without an answer"
    return text[:200]


def http_error(text: str, url: str) -> PrometheusError:
    """Map the library's 'HTTP Status Code 400 (b'…')' to a PrometheusError with Prometheus's own words."""
    match = re.match(r"HTTP Status Code (\d+) \((.*)\)$", text, re.DOTALL)
    if match is None:
        return PrometheusError("http", f"{url}: {text[:300]}", True)
    status = int(match.group(1))
    detail = match.group(2)
    try:
        body = ast.literal_eval(detail)
        detail = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        answer = json.loads(detail)
        detail = f"{answer.get('errorType', 'error')}: {answer.get('error', '')}"
    except (ValueError, SyntaxError, TypeError, AttributeError):
        pass
    detail = detail.strip()[:300]
    if status in (401, 403):
        return PrometheusError(
            "auth",
            f"{url} refused the credentials (HTTP {status}); check PROMETHEUS_TOKEN or "
            "PROMETHEUS_USER/PROMETHEUS_PASSWORD",
        )
    if status == 404:
        return PrometheusError("http", f"no Prometheus API at {url} (HTTP 404); check PROMETHEUS_URL")
    if status in (400, 422):
        return PrometheusError("rejected", f"Prometheus rejected the query (HTTP {status}) — {detail}")
    return PrometheusError(
        "http", f"Prometheus at {url} answered HTTP {status} — {detail}", status in TRANSIENT_STATUS
    )


# ---------------------------------------------------------------------------------------------------
# The pull


@dataclass(frozen=True)
class _Task:
    slo: str
    role: str
    query: str
    chunk: tuple[int, int]


@dataclass
class PullStats:
    requests: int = 0
    clipped: dict[str, int] = field(default_factory=dict)  # SLO id → minutes with good outside [0, valid]
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # SLO id → buckets [start, end) pulled


def pull_ranges(
    slos: Sequence[Slo],
    start: int | None,
    end: int,
    states: Mapping[str, SourceState],
    overlap: int,
) -> dict[str, tuple[int, int]]:
    """Per SLO, the buckets to pull: from `start` when given, else from its high-water mark minus
    `overlap` minutes (late samples are caught), else a backfill over its window (at least 3d)."""
    out = {}
    for slo in slos:
        if start is not None:
            lo = start
        elif slo.id in states:
            lo = states[slo.id].high_water_minute - overlap
        else:
            lo = end - max(slo.window.minutes, MIN_BACKFILL_MINUTES)
        if lo < end:
            out[slo.id] = (lo, end)
    return out


def pull(
    cfg: PrometheusSettings,
    slos: Sequence[Slo],
    ranges: Mapping[str, tuple[int, int]],
    end: int,
    progress: Progress | None = None,
    client_factory: Callable[[PrometheusSettings], Client] = Client,
) -> tuple[Pull, PullStats]:
    """Every SLO's buckets over its range, or PullFailed naming each SLO that could not be pulled."""
    if cfg.problems:
        raise SourceError("Prometheus settings: " + "; ".join(cfg.problems))
    if not cfg.url:
        raise SourceError("PROMETHEUS_URL is not set; expected e.g. PROMETHEUS_URL=http://127.0.0.1:9090")
    by_id = {s.id: s for s in slos if s.id in ranges}
    plans, failures = _plan(by_id.values())
    if failures:
        raise PullFailed(failures, len(slos))
    tasks = [
        _Task(slo_id, role, query, chunk)
        for slo_id, plan in plans.items()
        for chunk in promql.minute_chunks(*ranges[slo_id], cfg.max_points)
        for role, query in plan.named()
    ]
    answers, failures = _fetch(cfg, tasks, by_id, progress, client_factory)
    if failures:
        raise PullFailed(failures, len(slos))
    stats = PullStats(requests=len(tasks), ranges=dict(ranges))
    frames = []
    for slo_id, plan in plans.items():
        frame, clipped = _buckets(by_id[slo_id], plan, answers)
        frames.append(frame)
        if clipped:
            stats.clipped[slo_id] = clipped
    buckets = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"slo_id": [], "minute": [], "good": [], "valid": []})
    )
    return Pull(buckets=buckets, end=end, origin=SOURCE, high_water={s: end for s in plans}), stats


def _plan(slos: Iterable[Slo]) -> tuple[dict[str, promql.SliQueries], dict[str, str]]:
    """Every SLO's per-minute queries, and why for those whose queries cannot be converted."""
    plans: dict[str, promql.SliQueries] = {}
    failures: dict[str, str] = {}
    for slo in slos:
        try:
            plans[slo.id] = promql.plan_queries(slo)
        except promql.QueryShapeError as exc:
            failures[slo.id] = f"{_where(slo)}: {exc}"
    return plans, failures


def _fetch(
    cfg: PrometheusSettings,
    tasks: Sequence[_Task],
    by_id: Mapping[str, Slo],
    progress: Progress | None,
    client_factory: Callable[[PrometheusSettings], Client],
) -> tuple[dict[tuple[str, str], list[dict[int, float]]], dict[str, str]]:
    """Run the range queries, `cfg.parallel` at a time: (SLO, role) → answers per chunk, and the
    first failure of each SLO. A server-level failure stops the rest of the pull."""
    answers: dict[tuple[str, str], list[dict[int, float]]] = {}
    failures: dict[str, str] = {}
    abort = threading.Event()
    local = threading.local()
    clients: list[Client] = []
    lock = threading.Lock()

    def run(task: _Task) -> dict[int, float]:
        client = getattr(local, "client", None)
        if client is None:  # one client per worker thread: a requests Session is not thread-safe
            client = local.client = client_factory(cfg)
            with lock:
                clients.append(client)
        start_s, end_s = promql.range_params(task.chunk)
        result = client.query_range(task.query, start_s, end_s, abort)
        try:
            return promql.series_values(result, task.chunk)
        except ValueError as exc:
            raise PrometheusError("answer", str(exc)) from None

    server_failure: str | None = None
    try:
        with ThreadPoolExecutor(max_workers=cfg.parallel, thread_name_prefix="prometheus") as pool:
            pending: dict[Future[dict[int, float]], _Task] = {pool.submit(run, t): t for t in tasks}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = pending.pop(future)
                    try:
                        answers.setdefault((task.slo, task.role), []).append(future.result())
                    except PrometheusError as exc:
                        if exc.kind == "aborted":
                            failures.setdefault(task.slo, f"not pulled: {server_failure}")
                            continue
                        failures.setdefault(task.slo, _failure_reason(exc, task, by_id[task.slo]))
                        if exc.kind in SERVER_KINDS and server_failure is None:
                            server_failure = str(exc)
                            abort.set()  # the server failed: stop asking it
                if progress:
                    progress(len(tasks) - len(pending), len(tasks))
    finally:
        for client in clients:
            client.close()
    return answers, failures


def _buckets(
    slo: Slo, plan: promql.SliQueries, answers: Mapping[tuple[str, str], list[dict[int, float]]]
) -> tuple[pd.DataFrame, int]:
    """One SLO's buckets from its answers, with the number of minutes whose good count was clipped."""

    def merged(role: str) -> dict[int, float]:
        return promql.merge_chunks(answers.get((slo.id, role), []))

    if plan.kind == "threshold":
        assert slo.sli.threshold is not None
        return promql.threshold_buckets(slo.id, merged("threshold"), slo.sli.threshold, slo.sli.comparison), 0
    return promql.ratio_buckets(
        slo.id,
        merged("valid"),
        good=merged("good") if plan.good else None,
        bad=merged("bad") if plan.bad else None,
    )


def _where(slo: Slo) -> str:
    return f"{slo.source_file}:{slo.source_line}" if slo.source_file else slo.id


def _spec_field(slo: Slo, role: str) -> str:
    """Where in the spec the query of `role` comes from: slis.<name>.good|bad|valid|metric."""
    sli = slo.sli
    written = {"good": sli.good_query, "bad": sli.bad_query, "valid": sli.valid_query}
    return f"slis.{sli.name}.{role if written.get(role) else 'metric'}"


def _failure_reason(exc: PrometheusError, task: _Task, slo: Slo) -> str:
    a, b = task.chunk
    if exc.kind in ("rejected", "answer"):
        return f"{exc} — {_where(slo)}: {_spec_field(slo, task.role)}, sent as: {task.query}"
    return f"{exc} (pulling {task.role} events for {_iso(a)}…{_iso(b)})"


def _iso(minute: int) -> str:
    return datetime_of(minute).strftime("%Y-%m-%dT%H:%MZ")


# ---------------------------------------------------------------------------------------------------
# One run: pull, then publish or mark stale


def default_end(now: dt.datetime | None = None) -> int:
    """The last bucket worth pulling ends a minute before now: its closing sample must be scraped."""
    now = now or dt.datetime.now(dt.UTC)
    return minute_of(now) - 1


def pull_since(
    settings: PrometheusSettings,
    slos: Sequence[Slo],
    states: Mapping[str, SourceState],
    start: int | None = None,
    end: int | None = None,
    progress: Progress | None = None,
) -> tuple[Pull, PullStats]:
    """What is new since the high-water marks `states` (or since `start`), up to `end` (default: a
    minute ago); raises PullFailed when any SLO's pull is incomplete."""
    latest = default_end()
    if end is None:
        end = latest
    elif end > latest:
        raise SourceError(
            f"--to {_iso(end)}: Prometheus data is complete only up to {_iso(latest)} (a minute ago); "
            "expected an earlier time"
        )
    if start is not None and start >= end:
        raise SourceError(f"--from {_iso(start)} is not before the end {_iso(end)}")
    ranges = pull_ranges(slos, start, end, states, settings.overlap_minutes)
    return pull(settings, slos, ranges, end, progress)
