"""The package's shape (issue 12), read from the source with `ast`, so it holds as the code grows:
no import cycles, no private names imported across modules, one module that opens the writer, and a
cycle and incident stage that never mention the demo."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"

# Modules whose function-local imports are deliberate, for start-up time: the CLI's command handlers
# import what their command needs when it runs, so `slo --help` and every other command start without
# loading DuckDB, pandas, FastAPI or the Prometheus client for nothing; the ingest service answers
# before DuckDB and pandas are loaded; the anthropic SDK (~2 s to import) loads only when a model is called.
LAZY_IMPORTS = {
    "pipelines.cli": "each command imports what it runs (start-up time)",
    "pipelines.analytics.cli": "each command imports what it runs (start-up time)",
    "pipelines.incidents.cli_incidents": "each command imports what it runs (start-up time)",
    "pipelines.incidents.cli_deploys": "each command imports what it runs (start-up time)",
    "pipelines.incidents.steps.triage": "the triage module loads the anthropic SDK only when one runs",
    "pipelines.incidents.narrative": "the anthropic SDK only when a post-mortem narrative is asked for",
    "pipelines.analytics.summary": "the anthropic SDK only when an executive summary is asked for",
    "pipelines.incidents.triage": "the anthropic SDK only when a model is asked (a key is set)",
    "pipelines.service.app": "the ingest door answers without loading DuckDB (the snapshot readers)",
    "pipelines.service.worker": "the cycle (DuckDB, pandas) loads in the worker thread, after start-up",
    "pipelines.promql": "the spec loader (`slo validate`, `slo rules`) imports it and need not load pandas",
    "pipelines.cycle": "the Prometheus source (and requests) only for a Prometheus pull, not a file load",
    "pipelines.launch": "sign-in and server limits (uvicorn) only for the commands that start servers",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PIPELINES.rglob("*.py"))}


def runtime_imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import that runs (not those under `if TYPE_CHECKING:`), and whether it is inside a function."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (pair for other in child.orelse for pair in walk_one(other, in_function))
                continue
            yield from walk_one(child, in_function)

    def walk_one(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, in_function
        yield from walk(node, in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))

    yield from walk(tree, False)


def imported(
    name: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]
) -> Iterator[str]:
    """The project modules an import statement loads."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name in known)
        return
    base = node.module or ""
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:
        full = f"{base}.{alias.name}"
        if full in known:
            yield full
        elif base in known:
            yield base


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node, _ in runtime_imports(ast.parse(path.read_text(), str(path))):
            graph[name].update(m for m in imported(name, path, node, known) if m != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check below could pass by finding nothing: a known three-module loop is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50 and graph["pipelines.cycle"]  # the walk saw the package
    assert cycles(graph) == []


def test_promql_imports_nothing_but_the_model() -> None:
    """The one PromQL module reads query text only: the spec readers import it, never the reverse."""
    assert import_graph()["pipelines.promql"] == {"pipelines.model"}


def test_no_module_imports_a_private_name_from_another() -> None:
    offenders = []
    for path in sorted(
        [*PIPELINES.rglob("*.py"), *(ROOT / "dashboard").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    ):
        for node, _ in runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                    and (node.module or "").split(".")[0] in ("pipelines", "dashboard", "tests")
                ]
    assert offenders == []


def test_function_local_imports_only_where_they_are_deliberately_lazy() -> None:
    offenders = []
    for name, path in modules().items():
        if name in LAZY_IMPORTS:
            continue
        for node, in_function in runtime_imports(ast.parse(path.read_text(), str(path))):
            if in_function:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def test_one_module_opens_the_writer() -> None:
    """`Writer(` outside its own definition appears only in the write path."""
    openers = sorted(
        str(p.relative_to(ROOT))
        for p in [*PIPELINES.rglob("*.py"), *(ROOT / "dashboard").rglob("*.py")]
        if "Writer(" in p.read_text()
    )
    assert openers == ["pipelines/cycle.py"]


def test_the_cycle_and_the_incident_stage_never_mention_the_demo() -> None:
    for path in (PIPELINES / "cycle.py", PIPELINES / "incidents" / "stage.py"):
        lines = [
            f"{n}: {line}"
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if "demo" in line.lower()
        ]
        assert lines == [], path
