"""Load SLO spec files (YAML) into the frozen model records, checking every field.

`load_specs` is pure: it reads the given files and either returns every `Slo` with the warnings, or
raises `SpecError` listing every problem found as `file:line: field.path: what is wrong and expected`.
Each YAML document goes to the reader of its format (`spec_format`): native, OpenSLO v1 or Sloth.
The native format is described in `slo_specs/README.md`; `slo_specs/checkout-api.yaml` is the
reference example.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from pipelines.errors import SpecError, SpecProblem
from pipelines.model import Slo, SpecWarning
from pipelines.query_shape import slo_problems
from pipelines.specs.native import check_native
from pipelines.specs.nodes import Entry, FileCheck, is_null
from pipelines.specs.openslo import OPENSLO_API, OpenSloDocuments
from pipelines.specs.openslo_v1alpha import OPENSLO_V1ALPHA_API, check_openslo_v1alpha
from pipelines.specs.sloth import SLOTH_API, SLOTH_VERSION, check_sloth_file

SPEC_SUFFIXES = (".yaml", ".yml")


def load_specs(paths: Sequence[str | Path]) -> tuple[list[Slo], list[SpecWarning]]:
    """Every SLO (sorted by id) and warning in the given files and directories, or `SpecError`.

    A directory contributes its `*.yaml` and `*.yml` files (sorted, not recursive). Every problem in
    every file is collected before raising; nothing is returned when there is any problem.
    """
    if isinstance(paths, (str, Path)):  # one path given bare: not a sequence of one-letter paths
        paths = [paths]
    problems: list[SpecProblem] = []
    warnings: list[SpecWarning] = []
    slos: list[Slo] = []
    first_seen: dict[str, tuple[str, int]] = {}
    # OpenSLO objects refer to each other across files: collect them all, then resolve.
    openslo = OpenSloDocuments()
    files = [(FileCheck(display), path) for display, path in _spec_files(paths, problems)]
    entries = {id(check): _check_file(check, path, openslo) for check, path in files}
    for check, entry in openslo.resolve():
        entries[id(check)].append(entry)
    for check, _ in files:
        for entry in entries[id(check)]:
            if entry.id in first_seen:
                first_file, first_line = first_seen[entry.id]
                check.problem(
                    entry.line,
                    entry.path,
                    f"duplicate SLO id '{entry.id}' (first defined at {first_file}:{first_line}); "
                    "expected each <service>/<name> once: give one of them a different 'name'",
                )
            else:
                first_seen[entry.id] = (check.file, entry.line)
                # one query-shape check for every format: what validates also pulls and exports
                shape = slo_problems(entry.slo) if entry.slo is not None else []
                for message in shape:
                    check.problem(entry.line, entry.path, message)
                if entry.slo is not None and not shape:
                    slos.append(entry.slo)
        problems.extend(sorted(check.problems, key=lambda p: p.line))
        warnings.extend(sorted(check.warnings, key=lambda w: w.line))
    if problems:
        raise SpecError(problems)
    return sorted(slos, key=lambda slo: slo.id), warnings


def _spec_files(paths: Sequence[str | Path], problems: list[SpecProblem]) -> list[tuple[str, Path]]:
    """(path as given, path) of every spec file named, directories expanded, each file once."""
    files: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())
            if not found:
                message = "directory has no spec files; expected *.yaml or *.yml files in it"
                problems.append(SpecProblem(str(given), 1, "(file)", message))
            members = [(str(p), p) for p in found]
        elif path.is_file():
            members = [(str(given), path)]
        else:
            problems.append(
                SpecProblem(
                    str(given),
                    1,
                    "(file)",
                    "no such file or directory; expected a spec file (.yaml) or a directory of them",
                )
            )
            members = []
        for display, member in members:
            if member.resolve() not in seen:
                seen.add(member.resolve())
                files.append((display, member))
    return files

# libyaml's parser where PyYAML was built with it (about 10× faster on a fleet's specs): the nodes and
# their line marks are the same as the pure-Python parser's.
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_file(check: FileCheck, path: Path, openslo: OpenSloDocuments) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        check.problem(1, "(file)", f"cannot read the file ({exc}); expected a readable UTF-8 YAML file")
        return []
    try:
        documents = list(yaml.compose_all(text, Loader=FAST_LOADER))
    except yaml.YAMLError:
        try:  # the pure-Python parser words its errors (and places them) the way our messages expect
            documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError as exc:
            line, message = _yaml_error(exc, text)
            check.problem(line, "(yaml)", message)
            return []
    documents = [doc for doc in documents if not is_null(doc)]
    if not documents:
        check.problem(1, "(document)", "the file is empty; expected a spec with service, owner, slis, slos")
        return []
    entries: list[Entry] = []
    sloth: list[tuple[yaml.Node, str]] = []  # read together: an AlertWindows applies to its file's SLOs
    for document in _documents(documents):
        form = spec_format(document)
        if form == "native":
            entries.extend(check_native(check, document))
        elif form == "openslo":
            openslo.add(check, document)
        elif form.startswith("sloth"):
            sloth.append((document, form))
        elif form == "openslo-v1alpha":
            entries.extend(check_openslo_v1alpha(check, document))
        else:
            check.problem(
                document,
                "apiVersion",
                f"'{form.removeprefix('unknown:')}' is not a spec format read here; expected openslo/v1, "
                "sloth.slok.dev/v1 (kind PrometheusServiceLevel), version: prometheus/v1 (Sloth), "
                "or a native spec (no apiVersion)",
            )
    entries.extend(check_sloth_file(check, sloth))
    return entries


def _documents(documents: list[yaml.Node]) -> list[yaml.Node]:
    """Every spec document, a YAML list of objects with an apiVersion (the OpenSLO form `oslo fmt`, the
    OpenSLO go-sdk and Nobl9 write) opened into its items, each read by its own format. A list of
    anything else is left whole, so the native reader says what it expected."""
    out: list[yaml.Node] = []
    for document in documents:
        items = document.value if isinstance(document, yaml.SequenceNode) else []
        if items and all(_has_api_version(item) for item in items if not is_null(item)):
            out += [item for item in document.value if not is_null(item)]
        else:
            out.append(document)
    return out


def _has_api_version(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(key, yaml.ScalarNode) and key.value == "apiVersion" for key, _ in node.value
    )


def _yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """The line and message for a YAML syntax error, as PyYAML reports it."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = f"invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    else:
        position = getattr(exc, "position", 0) or 0
        line = text.count("\n", 0, position) + 1
        message = f"invalid YAML: {exc}"
    return line, f"{message}; expected well-formed YAML (check indentation, colons and quotes)"


def spec_format(root: yaml.Node) -> str:
    """'native', 'openslo', 'sloth', 'sloth-crd', or 'unknown:<what>' for a document's root node."""
    if not isinstance(root, yaml.MappingNode):
        return "native"
    top = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    api = top.get("apiVersion")
    if api is not None:
        value = api.value if isinstance(api, yaml.ScalarNode) else None
        if value == OPENSLO_API:
            return "openslo"
        if value == SLOTH_API:
            return "sloth-crd"
        if value == OPENSLO_V1ALPHA_API:
            return "openslo-v1alpha"
        return f"unknown:{value}"
    version = top.get("version")
    if isinstance(version, yaml.ScalarNode) and version.value == SLOTH_VERSION:
        return "sloth"
    return "native"
