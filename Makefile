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

.PHONY: all venv demo test lint typecheck unit integration simulator-test docs-test floor e2e browser services screenshots airflow-up airflow-down docs simulator bench bench-deployment bench-paths bench-smoke clean
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

test: lint typecheck unit integration simulator-test docs-test floor e2e docs bench-smoke

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# One target per folder of tests/ (e2e below): unit runs each module against the simulator and
# the raw server in tests/unit/hostile.py; integration runs real `airflow` processes and nginx
# (make services); simulator-test checks the simulator itself; docs-test runs the commands and
# snippets of the docs. unit also drives the view's page in Debian's Chromium (make browser).
unit: $(VENV)/.installed browser
	$(BIN)/python -m pytest -q tests/unit

integration: $(VENV)/.installed services
	$(BIN)/python -m pytest -q tests/integration

simulator-test: $(VENV)/.installed
	$(BIN)/python -m pytest -q tests/simulator

docs-test: $(VENV)/.installed
	$(BIN)/python -m pytest -q tests/docs

# unit, integration and simulator-test again on the oldest Airflow we claim to support. The docs'
# recipes (tests/docs) run once, on the pinned Airflow they are written for: each starts Airflow
# commands, minutes in all.
floor: $(FLOOR_VENV)/.installed services
	$(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/integration tests/simulator

# Debian's Chromium for the UI tests, driven by the pinned `playwright` package
# (never `playwright install`: it downloads a browser build of its own).
browser:
	@test -x /usr/bin/chromium || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# Debian's Postgres and Redis for the production topology (Postgres, CeleryExecutor on Redis),
# and nginx, which tests/integration/test_nginx.py puts in front of the simulator: each test run
# makes its own throw-away cluster, broker and nginx from these programs.
services:
	@{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null \
	   && test -x /usr/sbin/nginx; } || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql redis-server nginx; }

# Real deployments (api-server, scheduler, dag-processor, triggerers, workers, simulator as
# separate processes) started and stopped by the tests themselves, each module on the topology
# it names (SQLite + LocalExecutor, or Postgres + CeleryExecutor on Redis); see docs/e2e.rst.
e2e: $(VENV)/.installed browser services
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e

# Refresh the screenshots the docs show (docs/_static/) from a run of the UI tests.
screenshots: $(VENV)/.installed browser
	KLING_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/test_ui.py tests/e2e/test_kling_view.py

# The same deployment for a person: the UI address and login are printed; stop it with
# `make airflow-down`. AIRFLOW_STACK_HOME is its AIRFLOW_HOME (default .airflow-stack/).
# TOPOLOGY=celery starts the production one: Postgres, CeleryExecutor on Redis, two Celery
# workers, two triggerers and a rate-limited simulator.
AIRFLOW_STACK_HOME ?= .airflow-stack
TOPOLOGY ?= local
airflow-up: $(VENV)/.installed $(if $(filter celery,$(TOPOLOGY)),services)
	$(BIN)/python -m devtools.deployment up --home $(AIRFLOW_STACK_HOME) --topology $(TOPOLOGY)

airflow-down:
	$(BIN)/python -m devtools.deployment down --home $(AIRFLOW_STACK_HOME)

docs: $(VENV)/.installed
	$(BIN)/sphinx-build -q -W --keep-going -b html docs docs/_build/html

# Every benchmark under bench/ at full size (~45 min on 2 cores); rewrites docs/performance.md.
# It includes two measurements of the production topology: 2,000 waiting requests across its
# two triggerers (bench/deployment.py; `make bench-deployment` runs only that one), and the
# worker processes, CPU and wall time per video of each way of waiting, old path against new
# (bench/paths.py; `make bench-paths` runs only that one).
bench: $(VENV)/.installed services
	$(BIN)/python bench/run_all.py --output docs/performance.md

bench-deployment: $(VENV)/.installed services
	$(BIN)/python bench/deployment.py

bench-paths: $(VENV)/.installed services
	$(BIN)/python bench/paths.py

# The same benchmarks at a tiny size, so they cannot rot; no figure is asserted or kept.
bench-smoke: $(VENV)/.installed
	mkdir -p docs/_build
	$(BIN)/python bench/run_all.py --smoke --output docs/_build/performance-smoke.md

simulator: $(VENV)/.installed
	$(BIN)/python -m airflow_provider_kling.testing.simulator --port 8765

clean:
	rm -rf $(VENV) $(FLOOR_VENV) $(TOOLS) docs/_build out .airflow-stack .pytest_cache .mypy_cache .ruff_cache
