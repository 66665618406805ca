"""Settings from the environment (DESIGN §3), with an optional `.env` file in the working directory.

Secrets (model key, PagerDuty routing key, Slack webhook URL) are fields marked `secret`: `repr()` and
`describe()` show only whether they are set, so printing or logging a `Settings` never leaks them.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipelines.auth.tokens import raw_tokens_for
from pipelines.errors import ConfigError, SloError

# seed 000: the ai_triage node's model and timeout; the auto_remediate node's timeout and retry policy.
DEFAULT_TRIAGE_MODEL = "claude-sonnet-4-20250514"
DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_PAGERDUTY_API_URL = "https://api.pagerduty.com"
DEFAULT_STATUSPAGE_API_URL = "https://api.statuspage.io/v1"  # Atlassian Statuspage


def read_dotenv(path: Path) -> dict[str, str]:
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



def env_number(env: Mapping[str, str], name: str, default: float, *, above_zero: bool = False) -> float:
    """`name` from `env` as a number (default when unset or blank); SloError naming the setting when it
    is not a number, or is negative (zero too, with `above_zero`)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SloError(f"{name}={raw!r} is not a number") from None
    if above_zero and not value > 0:
        raise SloError(f"{name}={raw!r} must be above 0")
    if value < 0:
        raise SloError(f"{name}={raw!r} must not be negative")
    return value

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
def _secret(default: str | None = None) -> Any:
    return field(default=default, metadata={"secret": True})


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    specs_dir: Path
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)
    # Triage (seed 000: 30 s timeout; bounded retries on 429/5xx/529/connection errors, inside the timeout)
    anthropic_api_key: str | None = _secret()
    anthropic_base_url: str | None = None
    triage_model: str = DEFAULT_TRIAGE_MODEL
    triage_timeout_s: float = 30.0
    triage_max_retries: int = 2
    # Without a model key the rules decide. By default such an incident escalates (the fallback
    # edge); `slo demo` turns this on so rule-triaged SEV3/SEV4 incidents try their remediation.
    rules_route_by_severity: bool = False
    # Outbound notifications (PagerDuty Events API v2, Slack incoming webhook)
    pagerduty_routing_key: str | None = _secret()
    pagerduty_events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL
    slack_webhook_url: str | None = _secret()
    notify_timeout_s: float = 5.0  # per attempt: with 3 retries a dead endpoint costs at most ~27 s
    notify_max_retries: int = 3
    notify_backoff_s: float = 1.0
    # Remediation (seed 000: 300 s timeout, 2 retries 15 s apart) and verification (seed 003)
    runbooks_dir: Path = Path("runbooks")
    remediation_timeout_s: float = 300.0
    remediation_retries: int = 2
    remediation_retry_delay_s: float = 15.0
    remediation_dry_run: bool = False
    verify_within_minutes: int = 15
    # The recovery watch after a person's mitigation (issue 17; pipelines/incidents/recovery_watch.py)
    recovery_watch_minutes: float = 30.0  # SLO_RECOVERY_WATCH_MINUTES
    # API actors and approvals (issue 15, helper "actors"): named tokens for commands sent through the API
    # (pipelines/auth/tokens.py), and how long a critical remediation waits for an approval before it is
    # withdrawn and the incident escalated.
    api_tokens_file: Path | None = None  # SLO_API_TOKENS_FILE
    api_tokens: str | None = _secret()  # SLO_API_TOKENS: the same YAML mapping, as text
    approval_timeout_s: float = 900.0  # SLO_APPROVAL_TIMEOUT, seconds (15 min)
    # On-call (issue 17, helper r17-oncall): schedules and per-service escalation policies
    # (pipelines/incidents/oncall.py); the routing key of every variable named *ROUTING_KEY, which a
    # policy's tier or a person may name; PagerDuty's REST API, to resolve an incident born there.
    oncall_file: Path | None = None  # SLO_ONCALL_FILE
    routing_keys: dict[str, str] = field(default_factory=dict, hash=False, metadata={"secret": True})
    pagerduty_api_token: str | None = _secret()  # PAGERDUTY_API_TOKEN (a REST API key)
    pagerduty_api_url: str = DEFAULT_PAGERDUTY_API_URL  # PAGERDUTY_API_URL
    pagerduty_from: str | None = None  # PAGERDUTY_FROM: the email of a PagerDuty user, the From header
    # Deploy feed and status page (issue 17, helper r17-ops; pipelines/ingest/deploys.py,
    # pipelines/incidents/statuspage.py): the GitHub deployment environments that are production
    # deploys, GitHub's webhook secret (X-Hub-Signature-256), and an Atlassian Statuspage-compatible API
    # with the services that opt in (service or service=component_id, comma-separated).
    deploy_environments: tuple[str, ...] = ("production", "prod")  # SLO_DEPLOY_ENVIRONMENTS
    github_webhook_secret: str | None = _secret()  # SLO_GITHUB_WEBHOOK_SECRET
    statuspage_api_key: str | None = _secret()  # STATUSPAGE_API_KEY
    statuspage_api_url: str = DEFAULT_STATUSPAGE_API_URL  # STATUSPAGE_API_URL
    statuspage_page_id: str | None = None  # STATUSPAGE_PAGE_ID
    statuspage_services: tuple[tuple[str, str | None], ...] = ()  # SLO_STATUSPAGE_SERVICES

    # The live demo (issue 16, pipelines/demo/live.py): the service keeps appending the demo's minutes
    # to a demo store; `slo up` and `slo demo --live` turn it on. The speed runs the demo's clock faster
    # than the wall clock (tests).
    demo_live: bool = False  # SLO_DEMO_LIVE
    demo_speed: float = 1.0  # SLO_DEMO_SPEED, demo minutes per wall-clock minute

    def routing_key(self, variable: str) -> str | None:
        """The PagerDuty routing key held by environment variable `variable` (None: not set)."""
        if variable == "PAGERDUTY_ROUTING_KEY":
            return self.pagerduty_routing_key
        return self.routing_keys.get(variable)

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings from `env` (default: the process environment) over `./.env`.

        Raises `ConfigError` naming the variable when a number or flag cannot be read.
        """
        merged = {**read_dotenv(Path(".env")), **(env if env is not None else os.environ)}

        def text(name: str) -> str | None:
            value = merged.get(name, "").strip()
            return value or None

        def number(name: str, default: float, *, minimum: float = 0.0) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r}: expected a number of seconds, e.g. 30") from None
            if not value >= minimum or value == float("inf"):
                raise ConfigError(f"{name}={raw!r}: expected a finite number >= {minimum:g}")
            return value

        def count(name: str, default: int) -> int:
            raw = text(name)
            if raw is None:
                return default
            if not raw.isdigit() or int(raw) > 100:
                raise ConfigError(f"{name}={raw!r}: expected a whole number from 0 to 100")
            return int(raw)

        def flag(name: str) -> bool:
            raw = (text(name) or "false").lower()
            if raw in {"1", "true", "yes", "on"}:
                return True
            if raw in {"0", "false", "no", "off"}:
                return False
            raise ConfigError(f"{name}={raw!r}: expected true or false")

        return cls(
            data_dir=Path(merged.get("SLO_DATA_DIR", "data")),
            specs_dir=Path(merged.get("SLO_SPECS_DIR", "slo_specs")),
            prometheus=PrometheusSettings.from_env(merged),
            anthropic_api_key=text("ANTHROPIC_API_KEY"),
            anthropic_base_url=text("ANTHROPIC_BASE_URL"),
            triage_model=text("SLO_TRIAGE_MODEL") or DEFAULT_TRIAGE_MODEL,
            triage_timeout_s=number("SLO_TRIAGE_TIMEOUT", 30.0, minimum=0.1),
            triage_max_retries=count("SLO_TRIAGE_RETRIES", 2),
            rules_route_by_severity=flag("SLO_RULES_ROUTE_BY_SEVERITY"),
            pagerduty_routing_key=text("PAGERDUTY_ROUTING_KEY"),
            pagerduty_events_url=text("PAGERDUTY_EVENTS_URL") or DEFAULT_PAGERDUTY_EVENTS_URL,
            slack_webhook_url=text("SLACK_WEBHOOK_URL"),
            notify_timeout_s=number("SLO_NOTIFY_TIMEOUT", 5.0, minimum=0.1),
            notify_max_retries=count("SLO_NOTIFY_RETRIES", 3),
            notify_backoff_s=number("SLO_NOTIFY_BACKOFF", 1.0),
            runbooks_dir=Path(merged.get("SLO_RUNBOOKS_DIR") or "runbooks"),
            remediation_timeout_s=number("SLO_REMEDIATION_TIMEOUT", 300.0, minimum=0.1),
            remediation_retries=count("SLO_REMEDIATION_RETRIES", 2),
            remediation_retry_delay_s=number("SLO_REMEDIATION_RETRY_DELAY", 15.0),
            remediation_dry_run=flag("SLO_REMEDIATION_DRY_RUN"),
            verify_within_minutes=int(number("SLO_VERIFY_WITHIN_MINUTES", 15, minimum=1)),
            recovery_watch_minutes=number("SLO_RECOVERY_WATCH_MINUTES", 30.0, minimum=0.01),
            # API actors and approvals (issue 15)
            api_tokens_file=Path(raw_file) if (raw_file := text("SLO_API_TOKENS_FILE")) else None,
            api_tokens=text("SLO_API_TOKENS"),
            approval_timeout_s=number("SLO_APPROVAL_TIMEOUT", 900.0, minimum=1.0),
            # On-call (issue 17)
            oncall_file=Path(raw_oncall) if (raw_oncall := text("SLO_ONCALL_FILE")) else None,
            routing_keys={
                k: v.strip() for k, v in merged.items() if k.endswith("ROUTING_KEY") and v.strip()
            },
            pagerduty_api_token=text("PAGERDUTY_API_TOKEN"),
            pagerduty_api_url=(text("PAGERDUTY_API_URL") or DEFAULT_PAGERDUTY_API_URL).rstrip("/"),
            pagerduty_from=text("PAGERDUTY_FROM"),
            # Deploy feed and status page (issue 17)
            deploy_environments=tuple(
                e.strip()
                for e in (text("SLO_DEPLOY_ENVIRONMENTS") or "production,prod").split(",")
                if e.strip()
            ),
            github_webhook_secret=text("SLO_GITHUB_WEBHOOK_SECRET"),
            statuspage_api_key=text("STATUSPAGE_API_KEY"),
            statuspage_api_url=(text("STATUSPAGE_API_URL") or DEFAULT_STATUSPAGE_API_URL).rstrip("/"),
            statuspage_page_id=text("STATUSPAGE_PAGE_ID"),
            statuspage_services=statuspage_services(text("SLO_STATUSPAGE_SERVICES")),
            # The live demo (issue 16)
            demo_live=flag("SLO_DEMO_LIVE"),
            demo_speed=number("SLO_DEMO_SPEED", 1.0, minimum=1.0),
        )

    def secrets(self) -> list[str]:
        """The secret values that are set (to scrub them from any text before it is stored or shown).

        A secret URL (the Slack webhook) carries its secret in the path, so the path counts too. The
        personal API tokens count one by one, from `SLO_API_TOKENS` and `SLO_API_TOKENS_FILE` both (their
        YAML text is not one secret value); a `sha256:` entry holds no token. Never raises.
        """
        values = [
            v
            for f in fields(self)
            if f.metadata.get("secret")
            and f.name not in ("api_tokens", "routing_keys")
            and (v := getattr(self, f.name))
        ]
        values += [v for v in self.routing_keys.values() if v]
        paths = [p for v in values if len(p := urllib.parse.urlsplit(v).path) > 8]
        tokens = raw_tokens_for(self)
        # longest first: a URL before its path
        return sorted({*values, *paths, *tokens}, key=len, reverse=True)

    def describe(self) -> dict[str, Any]:
        """Every setting as JSON-ready values, secrets shown only as set / not set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret"):
                out[f.name] = "set" if value else "not set"
            else:
                out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"Settings({body})"


def statuspage_services(raw: str | None) -> tuple[tuple[str, str | None], ...]:
    """SLO_STATUSPAGE_SERVICES: `checkout-api=cmp_1,search` → (("checkout-api", "cmp_1"), ("search", None));
    ConfigError naming the entry when one is empty."""
    out: list[tuple[str, str | None]] = []
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        service, _, component = entry.partition("=")
        if not service.strip() or ("=" in entry and not component.strip()):
            raise ConfigError(
                f"SLO_STATUSPAGE_SERVICES: {entry.strip()!r}: expected a service, or service=component_id"
            )
        out.append((service.strip(), component.strip() or None))
    return tuple(out)


def scrub(text: str, settings: Settings) -> str:
    """`text` with every configured secret replaced by `***` (for stored details and error messages)."""
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text
