"""Settings from the environment (DESIGN §3), with an optional `.env` file in the working directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        values[name.strip()] = value.strip().strip("'\"")
    return values


# Prometheus refuses a range query with more than 11,000 points per series; chunks stay below it.
PROMETHEUS_POINTS_LIMIT = 11_000


@dataclass(frozen=True)
class PrometheusSettings:
    """How to reach Prometheus. Values that do not parse are kept in `problems`, reported when used.

    PROMETHEUS_URL, PROMETHEUS_TOKEN (bearer) or PROMETHEUS_USER + PROMETHEUS_PASSWORD (basic),
    PROMETHEUS_CA_FILE, PROMETHEUS_CERT_FILE + PROMETHEUS_KEY_FILE (client certificate),
    PROMETHEUS_INSECURE_SKIP_VERIFY, PROMETHEUS_TIMEOUT (seconds per request, default 30),
    PROMETHEUS_RETRIES (extra attempts on a transient error, default 2), PROMETHEUS_PARALLEL
    (requests in flight, default 4), PROMETHEUS_MAX_POINTS (points per request, default 10,000),
    PROMETHEUS_OVERLAP (minutes re-read before the high-water mark, default 10).
    """

    url: str | None = None
    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False
    timeout: float = 30.0
    retries: int = 2
    parallel: int = 4
    max_points: int = 10_000
    overlap_minutes: int = 10
    problems: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PrometheusSettings:
        problems: list[str] = []

        def number(name: str, default: float, lo: float, hi: float, kind: type = float) -> float:
            text = env.get(name, "").strip()
            if not text:
                return default
            try:
                value = kind(text)
            except ValueError:
                value = None
            if value is None or not lo <= value <= hi:
                what = "a whole number" if kind is int else "a number"
                problems.append(f"{name}={text!r}: expected {what} from {lo:g} to {hi:g}")
                return default
            return value

        def flag(name: str) -> bool:
            text = env.get(name, "").strip().lower()
            if text in ("", "0", "false", "no"):
                return False
            if text in ("1", "true", "yes"):
                return True
            problems.append(f"{name}={text!r}: expected true or false")
            return False

        def text(name: str) -> str | None:
            return env.get(name, "").strip() or None

        settings = cls(
            url=(text("PROMETHEUS_URL") or "").rstrip("/") or None,
            token=text("PROMETHEUS_TOKEN"),
            user=text("PROMETHEUS_USER"),
            password=env.get("PROMETHEUS_PASSWORD") or None,
            ca_file=text("PROMETHEUS_CA_FILE"),
            cert_file=text("PROMETHEUS_CERT_FILE"),
            key_file=text("PROMETHEUS_KEY_FILE"),
            insecure_skip_verify=flag("PROMETHEUS_INSECURE_SKIP_VERIFY"),
            timeout=number("PROMETHEUS_TIMEOUT", 30.0, 0.1, 600),
            retries=int(number("PROMETHEUS_RETRIES", 2, 0, 10, int)),
            parallel=int(number("PROMETHEUS_PARALLEL", 4, 1, 32, int)),
            max_points=int(number("PROMETHEUS_MAX_POINTS", 10_000, 1, PROMETHEUS_POINTS_LIMIT - 1, int)),
            overlap_minutes=int(number("PROMETHEUS_OVERLAP", 10, 0, 1440, int)),
        )
        if settings.token and (settings.user or settings.password):
            problems.append(
                "PROMETHEUS_TOKEN and PROMETHEUS_USER/PROMETHEUS_PASSWORD: set one of them, not both"
            )
        if bool(settings.user) != bool(settings.password):
            problems.append("PROMETHEUS_USER and PROMETHEUS_PASSWORD: basic auth needs both")
        if bool(settings.cert_file) != bool(settings.key_file):
            problems.append("PROMETHEUS_CERT_FILE and PROMETHEUS_KEY_FILE: a client certificate needs both")
        for name, path in (
            ("PROMETHEUS_CA_FILE", settings.ca_file),
            ("PROMETHEUS_CERT_FILE", settings.cert_file),
            ("PROMETHEUS_KEY_FILE", settings.key_file),
        ):
            if path and not Path(path).is_file():
                problems.append(f"{name}={path}: no such file")
        if settings.url and not settings.url.startswith(("http://", "https://")):
            problems.append(f"PROMETHEUS_URL={settings.url!r}: expected http://host:port or https://…")
        return cls(**{**settings.__dict__, "problems": tuple(problems)})


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    specs_dir: Path
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Settings:
        merged = {**_dotenv(Path(".env")), **(env if env is not None else os.environ)}
        return cls(
            data_dir=Path(merged.get("SLO_DATA_DIR", "data")),
            specs_dir=Path(merged.get("SLO_SPECS_DIR", "slo_specs")),
            prometheus=PrometheusSettings.from_env(merged),
        )
