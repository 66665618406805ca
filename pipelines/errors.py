"""The product's error hierarchy, raised at the edges and turned into exit codes in one place.

    SloError                 base; exit code 1 in the CLI
    ├── SpecError            one or more problems in spec files (each with file, line, field path)
    ├── ConfigError          an environment setting has a value that cannot be used
    ├── ExportError          some SLOs cannot be written as Prometheus rules
    ├── ImportFileError      a historical-incident file cannot be imported (every problem, located)
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
        ├── TooLarge         413: over the body-size limit
        └── NotJson          415: a content type other than JSON
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


class TooLarge(IngestError):
    status = 413


class NotJson(IngestError):
    status = 415
