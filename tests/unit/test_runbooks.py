"""Runbook loading: the demo runbooks' allow-lists, and a broken runbook leaving the allow-list empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.incidents.runbooks import load_runbook
from pipelines.specs import load_specs

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"

DEMO_ALLOW_LISTS = {
    "auth": (["rollback", "restart", "flush_cache"], {"flush_cache"}),
    "checkout-api": (["rollback", "restart", "scale_up", "failover_db"], {"failover_db"}),
    "inventory": (["restart", "scale_up"], set()),
    "notifications": (["restart", "scale_up"], set()),
    "payments": (["rollback", "restart", "scale_up"], set()),
    "reports": ([], set()),
    "search": (["rollback", "restart", "scale_up", "flush_cache"], set()),
}


@pytest.mark.parametrize("service", sorted(DEMO_ALLOW_LISTS))
def test_demo_runbooks(service: str) -> None:
    runbook = load_runbook(RUNBOOKS, service)
    allowed, critical = DEMO_ALLOW_LISTS[service]
    assert runbook.problems == ()
    assert (runbook.allowed_actions, runbook.critical_actions) == (allowed, critical)
    assert runbook.text.startswith(f"# Runbook: {service}\n")
    assert runbook.script == RUNBOOKS / service / "remediate.sh"


def test_every_demo_service_has_a_runbook() -> None:
    demo_dir = ROOT / "pipelines" / "demo" / "specs"
    services = {slo.service for slo in load_specs([demo_dir])[0]}
    assert services == set(DEMO_ALLOW_LISTS)


def write(tmp: Path, service: str, actions: str, *, script: bool = True) -> Path:
    d = tmp / service
    d.mkdir(parents=True)
    (d / "runbook.md").write_text("# notes\n")
    (d / "actions.yaml").write_text(actions)
    if script:
        (d / "remediate.sh").write_text("#!/bin/sh\nexit 0\n")
        (d / "remediate.sh").chmod(0o755)
    return d


VALID = "  - name: rollback\n    description: a valid entry that must not survive its neighbours' problems\n"


@pytest.mark.parametrize(
    ("actions", "problem"),
    [
        ("actions: [restart", "not readable YAML"),
        ("actions: restart", "actions: expected a list"),
        (
            f"actions:\n{VALID}  - name: Restart Now\n",
            "actions[1].name: 'Restart Now' is not a lower_snake_case",
        ),
        (f"actions:\n{VALID}  - name: escalate\n", "actions[1].name: 'escalate' is reserved"),
        (f"actions:\n{VALID}  - name: rollback\n", "actions[1].name: 'rollback' is listed twice"),
        (
            f"actions:\n{VALID}  - name: restart\n    critical: maybe\n",
            "actions[1].critical: expected true or false",
        ),
        (f"actions:\n{VALID}  - restart\n", "actions[1]: expected a mapping"),
    ],
)
def test_a_broken_actions_file_empties_the_whole_allow_list(
    tmp_path: Path, actions: str, problem: str
) -> None:
    write(tmp_path, "svc", actions)
    runbook = load_runbook(tmp_path, "svc")
    assert runbook.allowed_actions == []
    assert any(problem in p for p in runbook.problems), runbook.problems
    assert (
        runbook.problems[-1].endswith("the allow-list is empty until these are fixed")
        or len(runbook.problems) == 1
    )


def test_missing_runbook_means_empty_allow_list(tmp_path: Path) -> None:
    runbook = load_runbook(tmp_path, "ghost")
    assert runbook.allowed_actions == [] and runbook.script is None
    assert runbook.problems == (f"{tmp_path / 'ghost'}: no runbook for this service",)


def test_a_script_that_is_not_executable_allows_nothing(tmp_path: Path) -> None:
    d = write(tmp_path, "svc", "actions:\n  - name: restart\n")
    (d / "remediate.sh").chmod(0o644)
    runbook = load_runbook(tmp_path, "svc")
    assert runbook.allowed_actions == []
    assert "missing or not an executable file" in runbook.problems[0]


@pytest.mark.parametrize("service", ["../etc", "..", "a/b", "-rf", ""])
def test_unsafe_service_names_never_become_paths(tmp_path: Path, service: str) -> None:
    runbook = load_runbook(tmp_path, service)
    assert runbook.allowed_actions == [] and runbook.script is None
    assert "not a safe path name" in runbook.problems[0]
