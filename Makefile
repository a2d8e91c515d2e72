# Two commands: `make demo` runs the flagship code mission offline; `make test` runs every gate.
# Both create the virtual environment and install what they need by themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo live-check test lint typecheck unit bench clean

$(STAMP): pyproject.toml scripts/system-deps.sh
	@sh scripts/system-deps.sh
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Nexus needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/nexus demo
	@run=$$($(VENV)/bin/nexus runs --limit 1 --json | $(PY) -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])'); \
	  set -x; \
	  $(VENV)/bin/nexus evidence verify .nexus/evidence/$$run && \
	  $(VENV)/bin/nexus replay $$run && \
	  $(VENV)/bin/nexus audit verify

live-check: setup
	sh scripts/live-check.sh

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports  # the import contracts in pyproject.toml: layers, independence, no cycles

typecheck: setup
	$(PY) -m mypy

unit: setup
	$(PY) -m pytest -q

test: lint typecheck unit

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .nexus .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
