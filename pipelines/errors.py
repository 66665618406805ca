"""The product's error hierarchy, raised at the edges and turned into exit codes in one place.

    SloError                 base; exit code 1 in the CLI
    ├── SpecError            one or more problems in spec files (each with file, line, field path)
    ├── ConfigError          an environment setting has a value that cannot be used
    ├── ExportError          some SLOs cannot be written as Prometheus rules
    ├── ImportFileError      a historical-incident file cannot be imported (every problem, located)
    ├── CommandError         a human step that cannot be accepted (the same check at every door)
    ├── NoSnapshot           nothing published yet (the dashboard's readers)
    ├── SourceError          a metrics source failed (file missing, bad columns, Prometheus down)
    │   └── PullFailed       a Prometheus pull is incomplete: SLO id → reason (nothing published)
    ├── StoreError           the DuckDB store or its lock
    │   └── WriterBusy       another process holds the writer lock (`slo serve`, `slo run`, `slo demo`)
    ├── SnapshotUnreadable   the published snapshot is empty, truncated or damaged (the next cycle
    │                        republishes it from the writer's work file)
    └── IngestError          an HTTP delivery was refused; `status` is the HTTP answer
        ├── MalformedInput   400: not parseable, or not the shape its format requires (says where)
        ├── Unauthorized     401: missing or wrong bearer token (or a missing PagerDuty signature)
        ├── BadSignature     403: an `X-PagerDuty-Signature` that matches no `v1=` value
        ├── Forbidden        403: a known caller whose role does not allow the command (error `forbidden`)
        ├── TooLarge         413: over the body-size limit
        ├── NotJson          415: a content type other than JSON
        └── Unavailable      503: could not be stored (disk full, disk error, shutting down)

`HTTP_ANSWERS` is the one table of the service's error answers: status → the `error` name in the JSON
body, and what the OpenAPI document says it means. The CLI's exit codes: 0 ok, 1 any SloError, 2 usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class SloError(Exception):
    """Base of every error the product reports to a person."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec file, located by file, line and field path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class SpecError(SloError):
    """Spec files are invalid; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(SloError):
    """An environment setting has a value that cannot be used (the message names it)."""


class ExportError(SloError):
    """Some SLOs cannot be written as Prometheus rules; the message lists each one and why."""


class ImportFileError(SloError):
    """The file cannot be imported; `problems` lists every problem found, each with where it is."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class CommandError(SloError):
    """A human step that cannot be accepted; the message names the field.

    `str()` is `<field> <value>: expected …`; `detail` is `<path>: <problem>`, the HTTP API's form,
    where `path` is `command` or `args.<field>`.
    """

    def __init__(self, message: str, path: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.problem = problem or message

    @property
    def detail(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else str(self)


class NoSnapshot(SloError):
    """No published snapshot yet: the pipeline has not run (the dashboard says so)."""


class SourceError(SloError):
    """A metrics source could not deliver data; the message says which and why."""


class PullFailed(SourceError):
    """The pull is incomplete for `failures` (SLO id → reason); nothing of it was published."""

    def __init__(self, failures: Mapping[str, str], total: int, note: str = ""):
        self.failures = dict(failures)
        self.total = total
        lines = [
            f"Prometheus pull incomplete for {len(failures)} of {total} SLO(s); nothing was published "
            f"(the snapshot is unchanged) and these SLOs are marked stale:{note}"
        ]
        lines += [f"  {slo}: {reason}" for slo, reason in sorted(failures.items())]
        super().__init__("\n".join(lines))


class StoreError(SloError):
    """The store could not be opened, locked, migrated or published."""


class WriterBusy(StoreError):
    """Another process holds the single-writer lock. Accepted input waits in the inbox; whoever holds
    the lock (normally the running service) applies it."""

    def __init__(self, data_dir: object, holder: str):
        self.holder = holder
        super().__init__(
            f"{data_dir}: another writer holds the store (pid {holder}); only one of "
            "`slo serve`, `slo run` or `slo demo` may write at a time — stop it or wait"
        )


class SnapshotUnreadable(SloError):
    """The published snapshot cannot be read (empty, cut short, damaged). Readers say so in one line;
    the pipeline's next cycle republishes it from the work file (`cycle.republish_if_unreadable`)."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = " ".join(reason.split())[:300]  # one line, whatever DuckDB said
        super().__init__(f"snapshot unreadable ({self.path}: {self.reason}); the next cycle rebuilds it")


class IngestError(SloError):
    """A delivery to the ingest API was refused; nothing was stored. `status` is the HTTP status."""

    status = 400


class MalformedInput(IngestError):
    status = 400


class Unauthorized(IngestError):
    status = 401


class BadSignature(IngestError):
    status = 403


class Forbidden(IngestError):
    """A command from a caller who may not send it (its role, or no named actor for an approval)."""

    status = 403
    error = "forbidden"  # the answer's `error` name (403's default in HTTP_ANSWERS is bad_signature)


class TooLarge(IngestError):
    status = 413


class NotJson(IngestError):
    status = 415


class Unavailable(IngestError):
    status = 503


# status → (the `error` field of the JSON answer, what the OpenAPI document says it means).
HTTP_ANSWERS: dict[int, tuple[str, str]] = {
    400: (
        "bad_request",
        "Malformed: not JSON, unknown format, or a field missing/wrong (detail says where).",
    ),
    401: (
        "unauthorized",
        "Missing or wrong `Authorization: Bearer` token (SLO_INGEST_TOKEN). Nothing stored.",
    ),
    403: (
        "bad_signature",
        "`X-PagerDuty-Signature` matches no v1= value (PAGERDUTY_WEBHOOK_SECRET). Nothing stored.",
    ),
    404: ("not_found", "No such route."),
    405: ("method_not_allowed", "The route does not take this method."),
    408: (
        "timeout",
        "The body did not arrive within SLO_BODY_TIMEOUT seconds of the headers. Nothing stored.",
    ),
    413: ("too_large", "Body over SLO_INGEST_MAX_BYTES. Nothing stored."),
    415: ("not_json", "Content-Type is not application/json. Nothing stored."),
    500: ("internal", "An unexpected error; nothing was accepted."),
    503: (
        "unavailable",
        "Could not be stored (disk full, disk error or shutting down); nothing was accepted, retry.",
    ),
}
