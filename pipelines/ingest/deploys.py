"""The deploy feed's doors (issue 17): a deploy read from every format into one checked `Deploy`, and
the inbox entry that carries it. Pure: JSON values and text in, records out; nothing is stored here.

    parse_native(body, now)                      POST /api/deploys, `slo deploys add`
        {"service": "checkout-api", "version": "v1.4.2", "time": "2026-11-23T12:00:00Z",
         "who": "alice", "link": "https://ci.example.com/runs/88", "description": "…"?, "id": "…"?}
    parse_github(event, body, now, environments)  GitHub's `deployment` / `deployment_status` webhooks
    parse_csv(text, now)                          `slo import deploys --format csv` (header row:
                                                  service,time,version,who,link[,description][,id])
    check_service(deploy, known)                  an unknown service is refused, naming the field
    to_entry(deploy, actor)                       the inbox row: a `deploy` command naming no incident

Required: service, version, time and who; link and description are optional. Every problem is a
`MalformedInput` naming the field (a JSON path, or `line N: column`), raised before anything is
stored. A deploy is idempotent by its de-duplication key: the sender's `id` when given (GitHub: the
repository and the deployment id), else service + version + time, so a re-sent deploy is a duplicate.

GitHub: a deployment is recorded once, at the deployment's `created_at`, from whichever of its events
arrives first: the `deployment` event, or a `deployment_status` whose state is `success` (other states
are ignored). Only deployments to a production environment are deploys here: `production_environment`
true, or an environment named in SLO_DEPLOY_ENVIRONMENTS (default production, prod). The service is the
deployment payload's `service` when it names one, else the repository's name.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import urllib.parse
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.errors import MalformedInput
from pipelines.inbox import Entry
from pipelines.incidents.contract import Command
from pipelines.ingest.fields import digest, identifier, no_control, obj, text, timestamp

DEPLOY_COMMAND = "deploy"  # the inbox command that carries a deploy (it names no incident)
FIELDS = ("service", "time", "version", "who", "link", "description", "id")
REQUIRED = ("service", "time", "version", "who")
MAX_SHORT = 200  # service, version, who, id
MAX_LINK = 2000
MAX_DESCRIPTION = 2000
GITHUB_EVENTS = ("deployment", "deployment_status")
GITHUB_SIGNATURE_HEADER = "x-hub-signature-256"
DEFAULT_ENVIRONMENTS = ("production", "prod")


@dataclass(frozen=True)
class Deploy:
    """One deploy, checked. `deployed_at` is naive UTC; `key` is the inbox de-duplication key."""

    service: str
    version: str
    deployed_at: dt.datetime
    who: str
    link: str | None
    description: str | None
    source: str  # api | cli | csv | github
    key: str

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["deployed_at"] = self.deployed_at.isoformat()
        return d

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> Deploy:
        """A Deploy from a stored command's args (what `to_json` wrote); MalformedInput when they are
        not one (a row appended by hand, or stored before a rule changed)."""
        root = obj(args, "args")
        deployed_at = timestamp(root, "deployed_at", "args")
        assert deployed_at is not None  # required
        return cls(
            service=_short(root, "service", "args"),
            version=_short(root, "version", "args"),
            deployed_at=deployed_at,
            who=_short(root, "who", "args"),
            link=_link(root, "link", "args"),
            description=_description(root, "description", "args"),
            source=_short(root, "source", "args"),
            key=_short(root, "key", "args"),
        )


@dataclass(frozen=True)
class Ignored:
    """A GitHub event that is not a deploy here (another environment, a status other than success)."""

    reason: str


def _short(root: dict[str, Any], key: str, path: str, *, required: bool = True) -> str:
    value = identifier(root, key, path, required=required).strip()
    where = f"{path}.{key}" if path else key
    if required and not value:
        raise MalformedInput(f"{where}: must not be empty")
    if len(value) > MAX_SHORT:
        raise MalformedInput(f"{where}: at most {MAX_SHORT} characters, got {len(value)}")
    return value


def _link(root: dict[str, Any], key: str, path: str) -> str | None:
    value = text(root, key, path, required=False).strip()
    if not value:
        return None
    where = f"{path}.{key}" if path else key
    no_control(value, where)
    if len(value) > MAX_LINK:
        raise MalformedInput(f"{where}: at most {MAX_LINK} characters, got {len(value)}")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MalformedInput(f"{where}: {value[:60]!r} is not an http(s) URL")
    return value


def _description(root: dict[str, Any], key: str, path: str) -> str | None:
    value = text(root, key, path, required=False).strip()
    return value[:MAX_DESCRIPTION] or None


def _key(source: str, service: str, version: str, deployed_at: dt.datetime, own_id: str | None) -> str:
    if own_id:
        return f"deploy:{digest(source, service, own_id)}"
    return f"deploy:{digest(service, version, deployed_at.isoformat())}"


def parse_native(body: Any, now: dt.datetime, *, source: str = "api", path: str = "") -> Deploy:
    """The native JSON object (module docstring). Unknown fields are refused, so a typo such as
    `servce` is an error naming it, not a deploy without a service."""
    root = obj(body, path or "body")
    unknown = sorted(set(root) - set(FIELDS))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise MalformedInput(f"{where}: unknown field; expected {', '.join(FIELDS)}")
    for name in REQUIRED:
        if name not in root or root[name] is None or root[name] == "":
            where = f"{path}.{name}" if path else name
            raise MalformedInput(f"{where}: required field is missing")
    service = _short(root, "service", path)
    version = _short(root, "version", path)
    deployed_at = timestamp(root, "time", path, now=now)
    if deployed_at is None:  # Go's zero time: no time at all
        raise MalformedInput(f"{path + '.' if path else ''}time: required time is missing")
    who = _short(root, "who", path)
    own_id = _short(root, "id", path, required=False) or None
    return Deploy(
        service=service,
        version=version,
        deployed_at=deployed_at,
        who=who,
        link=_link(root, "link", path),
        description=_description(root, "description", path),
        source=source,
        key=_key(source, service, version, deployed_at, own_id),
    )


def github_event(headers: Any, body: Any) -> str | None:
    """The GitHub event a payload is: the `X-GitHub-Event` header, else told by its fields."""
    named = headers.get("x-github-event") if headers is not None else None
    if named:
        return str(named)
    if isinstance(body, dict):
        if "deployment_status" in body:
            return "deployment_status"
        if "deployment" in body:
            return "deployment"
    return None


def parse_github(
    event: str | None,
    body: Any,
    now: dt.datetime,
    environments: Collection[str] = DEFAULT_ENVIRONMENTS,
    *,
    path: str = "",
) -> Deploy | Ignored:
    """A GitHub `deployment` or `deployment_status` webhook payload → a Deploy, or Ignored saying why."""
    root = obj(body, path or "body")
    join = (lambda key: f"{path}.{key}") if path else (lambda key: key)
    if event not in GITHUB_EVENTS:
        shown = "none" if event is None else repr(str(event)[:40])
        raise MalformedInput(
            f"X-GitHub-Event: {shown} is not a deploy event; expected deployment or deployment_status"
        )
    deployment = obj(root.get("deployment"), join("deployment"))
    repository = obj(root.get("repository"), join("repository"))
    dpath = join("deployment")
    if event == "deployment_status":
        status = obj(root.get("deployment_status"), join("deployment_status"))
        state = text(status, "state", join("deployment_status"))
        if state != "success":
            return Ignored(
                f"deployment_status.state {state[:20]!r}: only a successful deployment is a deploy"
            )
    environment = text(deployment, "environment", dpath)
    production = deployment.get("production_environment") is True
    if not production and environment.strip().lower() not in {e.lower() for e in environments}:
        return Ignored(
            f"deployment.environment {environment[:60]!r} is not production (SLO_DEPLOY_ENVIRONMENTS: "
            f"{', '.join(environments)})"
        )
    payload = deployment.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("service"), str) and payload["service"].strip():
        service = _short(payload, "service", f"{dpath}.payload")
    else:
        service = _short(repository, "name", join("repository"))
    sha = _short(deployment, "sha", dpath)
    ref = _short(deployment, "ref", dpath, required=False)
    version = f"{ref}@{sha[:7]}" if ref and ref != sha else sha[:12]
    deployed_at = timestamp(deployment, "created_at", dpath, now=now)
    if deployed_at is None:
        raise MalformedInput(f"{dpath}.created_at: required time is missing")
    creator = deployment.get("creator")
    who = (
        _short(creator, "login", f"{dpath}.creator")
        if isinstance(creator, dict) and creator.get("login")
        else "github"
    )
    deployment_id = deployment.get("id")
    if not isinstance(deployment_id, int) or isinstance(deployment_id, bool):
        raise MalformedInput(f"{dpath}.id: expected the deployment's number")
    full_name = _short(repository, "full_name", join("repository"), required=False) or service
    html = repository.get("html_url")
    link = f"{html}/commit/{sha}" if isinstance(html, str) and html.startswith("https://") else None
    task = text(deployment, "description", dpath, required=False).strip()
    description = f"{environment}: {task}" if task else environment
    return Deploy(
        service=service,
        version=version,
        deployed_at=deployed_at,
        who=who,
        link=_link({"link": link}, "link", dpath) if link else None,
        description=description[:MAX_DESCRIPTION],
        source="github",
        key=_key("github", full_name, "", deployed_at, str(deployment_id)),
    )


def parse_csv(content: str, now: dt.datetime) -> list[Deploy]:
    """A CSV with a header row naming its columns (module docstring); each problem names its line."""
    reader = csv.DictReader(io.StringIO(content))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise MalformedInput(
            f"line 1: header: missing column(s) {', '.join(missing)}; expected {', '.join(FIELDS)}"
        )
    unknown = [h for h in header if h not in FIELDS]
    if unknown:
        raise MalformedInput(f"line 1: header: unknown column {unknown[0]!r}; expected {', '.join(FIELDS)}")
    out = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise MalformedInput(f"line {line}: more values than the header has columns")
        values = {k.strip(): (v if v is None else v.strip()) for k, v in row.items()}
        if not any(values.values()):
            continue
        body = {k: v for k, v in values.items() if v}
        out.append(parse_native(body, now, source="csv", path=f"line {line}"))
    return out


def check_service(deploy: Deploy, known: Iterable[str], field_name: str = "service") -> None:
    """Refuse a deploy of a service that no SLO spec (nor the store) knows, naming the field."""
    names = sorted(set(known))
    if deploy.service in names:
        return
    listed = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
    raise MalformedInput(
        f"{field_name}: {deploy.service[:60]!r} is not a known service (one with an SLO spec); "
        f"known: {listed or 'none (no SLO specs loaded)'}"
    )


def github_service_field(body: Any) -> str:
    """Where a GitHub payload named its service (for `check_service`'s message)."""
    deployment = body.get("deployment") if isinstance(body, dict) else None
    payload = deployment.get("payload") if isinstance(deployment, dict) else None
    if isinstance(payload, dict) and isinstance(payload.get("service"), str) and payload["service"].strip():
        return "deployment.payload.service"
    return "repository.name"


def to_command(deploy: Deploy, actor: str) -> Command:
    """The inbox command that carries `deploy`: `deploy`, naming no incident; `actor` is who sent it
    (the personal token's name, the CLI's login, or `github` for a signed webhook)."""
    return Command(
        command=DEPLOY_COMMAND,
        incident_id=None,
        actor=actor[:MAX_SHORT],
        source=deploy.source,
        dedup_key=deploy.key,
        at=deploy.deployed_at,
        args=deploy.to_json(),
    )


def to_entry(deploy: Deploy, actor: str) -> Entry:
    cmd = to_command(deploy, actor)
    return Entry(cmd.dedup_key, "command", cmd.source, cmd.to_json())


def sign_github(raw: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub sends: `sha256=` and the HMAC-SHA256 of the body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def github_signature_matches(raw: bytes, signature: str, secret: str) -> bool:
    """Whether `signature` is GitHub's for `raw` with `secret` (a constant-time comparison)."""
    return hmac.compare_digest(signature.strip().encode(errors="replace"), sign_github(raw, secret).encode())
