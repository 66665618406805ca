# Build the environment, run the demo, run the tests. `make demo` is the README's first command.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv install demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

venv: $(BIN)/python

install: venv
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'

demo: install
	$(BIN)/slo demo
	$(BIN)/slo status

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check pipelines tests
	$(BIN)/mypy

bench: install
	$(BIN)/python -m pytest tests/benchmarks -p no:cacheprovider -o addopts="" -s

clean:
	rm -rf $(VENV) data/*.duckdb data/*.wal data/writer.lock
