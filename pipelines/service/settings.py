"""The service's knobs, from the environment (or `.env`)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import env_number, read_dotenv
from pipelines.limits import Limits

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class ServiceSettings:
    """The service's knobs, from the environment (or `.env`)."""

    token: str | None = None  # SLO_INGEST_TOKEN: bearer token required on every POST
    pagerduty_secret: str | None = None  # PAGERDUTY_WEBHOOK_SECRET: verifies X-PagerDuty-Signature
    max_body_bytes: int = 1_048_576  # SLO_INGEST_MAX_BYTES
    cycle_seconds: float = 5.0  # SLO_CYCLE_SECONDS; 0 turns the worker off
    group_commit: bool = True  # SLO_INGEST_GROUP_COMMIT=0: one transaction per request (benchmarks)
    gc_freeze: bool = True  # SLO_GC_FREEZE=0: keep start-up objects in the collector (benchmarks)
    limits: Limits = dataclasses.field(default_factory=Limits)  # timeouts, connections, Host names

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> ServiceSettings:
        merged = {**read_dotenv(Path(".env")), **(env if env is not None else os.environ)}

        def number(name: str, default: float) -> float:
            return env_number(merged, name, default)

        return cls(
            token=merged.get("SLO_INGEST_TOKEN") or None,
            pagerduty_secret=merged.get("PAGERDUTY_WEBHOOK_SECRET") or None,
            max_body_bytes=int(number("SLO_INGEST_MAX_BYTES", 1_048_576)),
            cycle_seconds=number("SLO_CYCLE_SECONDS", 5.0),
            group_commit=merged.get("SLO_INGEST_GROUP_COMMIT", "1").strip().lower()
            not in {"0", "false", "no"},
            gc_freeze=merged.get("SLO_GC_FREEZE", "1").strip().lower() not in {"0", "false", "no"},
            limits=Limits.load(merged),
        )


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
