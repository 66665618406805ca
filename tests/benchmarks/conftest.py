"""Collect `bench_*.py` here as test modules (the project's `python_files` only matches `test_*.py`).

The benchmarks are not part of the normal run: pyproject's addopts ignore this directory, so run
them with `python -m pytest tests/benchmarks -o addopts="" -s`.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
