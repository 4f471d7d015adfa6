# Two commands set up a fresh machine: `make demo` and `make test` (see README.md).
# Everything they need is installed here, pinned, from PyPI only.

PYTHON ?= python3
UV_VERSION := 0.13.9
# The newest Airflow we support, and the oldest (the floor in pyproject.toml).
AIRFLOW_LOCK ?= requirements/airflow-3.3.txt
FLOOR_LOCK ?= requirements/airflow-3.1.txt

TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
VENV := .venv
FLOOR_VENV := .venv-floor
BIN := $(VENV)/bin

.PHONY: all venv demo test lint typecheck unit floor docs simulator clean
.DEFAULT_GOAL := test

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The stamp depends on the lock and on pyproject.toml, so editing either reinstalls.
$(VENV)/.installed: $(UV) $(AIRFLOW_LOCK) pyproject.toml
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -r $(AIRFLOW_LOCK)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e .
	touch $@

$(FLOOR_VENV)/.installed: $(UV) $(FLOOR_LOCK) pyproject.toml
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(FLOOR_VENV)
	VIRTUAL_ENV=$(FLOOR_VENV) $(UV) pip install --quiet -r $(FLOOR_LOCK)
	VIRTUAL_ENV=$(FLOOR_VENV) $(UV) pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# Runs the example DAG against the local simulator through the real deferral path
# and leaves the video in out/.
demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: lint typecheck unit floor docs

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# The same suite on the oldest Airflow we claim to support.
floor: $(FLOOR_VENV)/.installed
	$(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider

docs: $(VENV)/.installed
	$(BIN)/sphinx-build -q -W --keep-going -b html docs docs/_build/html

simulator: $(VENV)/.installed
	$(BIN)/python -m airflow_provider_kling.testing.simulator --port 8765

clean:
	rm -rf $(VENV) $(FLOOR_VENV) $(TOOLS) docs/_build out .pytest_cache .mypy_cache .ruff_cache
