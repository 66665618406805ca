"""Service runbooks: the text triage reads, the allow-listed remediation actions, the script that runs them.

    runbooks/<service>/runbook.md     what on-call (and the triage) should know about the service
    runbooks/<service>/actions.yaml   the allow-list: actions: [{name, description, critical}]
    runbooks/<service>/remediate.sh   run as `remediate.sh --action A --alert-id X` (argument list, no shell)

Only actions named in `actions.yaml` ever run. A service without a runbook directory, or with a broken
`actions.yaml`, gets an empty allow-list, so its incidents escalate; `problems` says what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Service and action names become path parts and script arguments: keep them to a safe alphabet.
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
RESERVED_ACTIONS = {"escalate"}  # the triage's "no action" answer can never be an allow-listed action
MAX_RUNBOOK_CHARS = 20_000  # what triage quotes to the model


@dataclass(frozen=True)
class Action:
    name: str
    description: str
    critical: bool  # needs a recorded human approval before it runs


@dataclass(frozen=True)
class Runbook:
    service: str
    text: str
    actions: tuple[Action, ...] = ()
    script: Path | None = None  # remediate.sh when present and executable
    problems: tuple[str, ...] = field(default=())

    @property
    def allowed_actions(self) -> list[str]:
        return [a.name for a in self.actions]

    @property
    def critical_actions(self) -> set[str]:
        return {a.name for a in self.actions if a.critical}


def runbook_dir(runbooks_dir: Path, service: str) -> Path | None:
    """`runbooks_dir/<service>` when `service` is a safe name, else None (never a path outside)."""
    if not SERVICE_NAME.match(service) or service in {".", ".."}:
        return None
    return runbooks_dir / service


def load_runbook(runbooks_dir: Path, service: str) -> Runbook:
    """The service's runbook; never raises. Missing or invalid parts leave the allow-list empty."""
    directory = runbook_dir(runbooks_dir, service)
    if directory is None:
        return Runbook(
            service=service, text="", problems=(f"service name {service!r} is not a safe path name",)
        )
    if not directory.is_dir():
        return Runbook(service=service, text="", problems=(f"{directory}: no runbook for this service",))
    problems: list[str] = []
    text = ""
    text_path = directory / "runbook.md"
    try:
        text = text_path.read_text(encoding="utf-8")[:MAX_RUNBOOK_CHARS]
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{text_path}: cannot read ({exc.__class__.__name__})")
    actions, action_problems = _load_actions(directory / "actions.yaml")
    problems.extend(action_problems)
    script = directory / "remediate.sh"
    script_ok = script.is_file() and not script.is_symlink() and (script.stat().st_mode & 0o111)
    if not script_ok:
        problems.append(f"{script}: missing or not an executable file; no action can run")
    return Runbook(
        service=service,
        text=text,
        actions=actions if script_ok else (),
        script=script if script_ok else None,
        problems=tuple(problems),
    )


def _load_actions(path: Path) -> tuple[tuple[Action, ...], list[str]]:
    """Parse actions.yaml strictly: any problem empties the whole allow-list (nothing half-applied)."""
    if not path.is_file():
        return (), [f"{path}: missing; the allow-list is empty"]
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return (), [f"{path}: not readable YAML ({exc.__class__.__name__}); the allow-list is empty"]
    entries = doc.get("actions") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return (), [f"{path}: actions: expected a list of {{name, description, critical}}"]
    actions: list[Action] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{path}: actions[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with name, description, critical")
            continue
        name = entry.get("name")
        critical = entry.get("critical", False)
        if not isinstance(name, str) or not ACTION_NAME.match(name):
            problems.append(f"{where}.name: {name!r} is not a lower_snake_case action name")
        elif name in RESERVED_ACTIONS:
            problems.append(f"{where}.name: {name!r} is reserved for 'no action, page a human'")
        elif name in seen:
            problems.append(f"{where}.name: {name!r} is listed twice")
        elif not isinstance(critical, bool):
            problems.append(f"{where}.critical: expected true or false, got {critical!r}")
        else:
            seen.add(name)
            actions.append(
                Action(name=name, description=str(entry.get("description", "")), critical=critical)
            )
    if problems:
        return (), [*problems, f"{path}: the allow-list is empty until these are fixed"]
    return tuple(actions), []
