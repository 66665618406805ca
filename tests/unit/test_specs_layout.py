"""The spec readers and the PromQL module import each other one way only (issue 12): read from the source
with `ast`, so `grep -n import pipelines/specs/*.py pipelines/promql.py` shows the same by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
MODULES = {
    **{f"pipelines.specs.{p.stem}": p for p in sorted((PIPELINES / "specs").glob("*.py"))},
    "pipelines.promql": PIPELINES / "promql.py",
}
MODULES["pipelines.specs"] = MODULES.pop("pipelines.specs.__init__")


def imports(path: Path) -> list[tuple[str, str, bool]]:
    """(module, imported name, inside a function) for every import from `pipelines`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipelines"):
            found += [(node.module or "", alias.name, id(node) in local) for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("pipelines")]
            found += [(name, "", id(node) in local) for name in names]
    return found


def test_the_package_and_the_promql_module_are_all_found() -> None:
    assert set(MODULES) == {
        "pipelines.specs",
        "pipelines.specs.load",
        "pipelines.specs.native",
        "pipelines.specs.nodes",
        "pipelines.specs.openslo",
        "pipelines.specs.sloth",
        "pipelines.specs.values",
        "pipelines.specs.write",
        "pipelines.promql",
    }


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_imported_from_another_module(module: str) -> None:
    private = [(source, name) for source, name, _ in imports(MODULES[module]) if name.startswith("_")]
    assert private == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_pipelines_import_inside_a_function(module: str) -> None:
    local = [
        source for source, _, inside in imports(MODULES[module]) if inside and source.startswith("pipelines")
    ]
    assert local == []


def test_promql_imports_no_spec_reader() -> None:
    sources = {source for source, _, _ in imports(MODULES["pipelines.promql"])}
    assert sources == {"pipelines.model"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("pipelines.specs.")))
def test_a_reader_never_imports_the_package_facade(module: str) -> None:
    """`pipelines.specs` (the __init__) imports every reader; a reader importing it back is a cycle."""
    sources = {source for source, _, _ in imports(MODULES[module])}
    assert "pipelines.specs" not in sources


def test_the_readers_import_each_other_without_a_cycle() -> None:
    edges = {
        module: {source for source, _, _ in imports(path) if source in MODULES and source != module}
        for module, path in MODULES.items()
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module not in done:
            for target in sorted(edges[module]):
                visit(target, (*path, module))
            done.add(module)

    for module in sorted(MODULES):
        visit(module, ())
    assert done == set(MODULES)
