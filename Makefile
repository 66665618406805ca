# Build the environment, run the demo, run the tests. `make demo` is the README's first command.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv install system-deps demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

venv: $(BIN)/python

install: venv
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'

# The main job on the embedded demo: build it, print the budgets, then the service and the dashboard
# (http://127.0.0.1:8501) until Ctrl-C, the demo going on in real time (`slo demo --live`).
demo: install
	$(BIN)/slo demo --live

# The real parts the integration and browser tests drive (DESIGN §4): Debian's Prometheus, Alertmanager
# and Chromium. Installed only when missing; needs root (CI and these machines run as root).
SYSTEM_BINS := /usr/bin/prometheus /usr/bin/promtool /usr/bin/prometheus-alertmanager /usr/bin/chromium
system-deps:
	@missing=0; for b in $(SYSTEM_BINS); do [ -x $$b ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing prometheus, prometheus-alertmanager, chromium (apt)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      prometheus prometheus-alertmanager chromium >/dev/null; \
	  else echo "not root: install prometheus prometheus-alertmanager chromium with apt for the real-part tests"; fi; \
	fi

test: install system-deps
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check pipelines dashboard tests
	$(BIN)/mypy

bench: install
	$(BIN)/python -m pytest tests/benchmarks -p no:cacheprovider -o addopts="" -s

clean:
	rm -rf $(VENV) data/*.duckdb data/*.wal data/writer.lock
