# Two commands on a fresh machine:  `make run` (build the default study's lens)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STUDY ?= antofagasta-2025
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install run refresh status test lint format ui daemon postgres faults bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev,postgres]"
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## Materialize every asset for the default study and write its lens (works offline: sample fallback).
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/context-lens build --study $(STUDY)

## Same, but insist on reaching the live sources (no silent sample fallback on a machine with internet).
refresh: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/context-lens refresh

## Per source: mode, last snapshot, freshness and the last error.
status: install
	$(BIN)/context-lens status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Lint, then the whole test suite.
test: lint
	$(BIN)/python -m pytest -q

## The Dagster UI on http://127.0.0.1:3000
ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m pipelines.definitions -h 127.0.0.1 -p 3000

## Schedules and sensors running: dagster-daemon alone, with the same code location (`make ui` has its own).
## For PostgreSQL storage, copy deploy/dagster.postgres.yaml to $(DAGSTER_HOME)/dagster.yaml first.
daemon: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster-daemon run -m pipelines.definitions

## A local PostgreSQL for Dagster's storage (what CI uses), without running the tests.
postgres:
	.ci/run --setup-only

## The reliability matrix: case, expected, observed, pass/fail, and an `N passed, N failed` line.
faults: install
	$(BIN)/python -m tests.faults.report

## Full-size load benchmarks (generated files of the real layouts; several minutes each).
bench: install
	$(BIN)/python bench/bench_streamflow_load.py
	$(BIN)/python bench/bench_deaths_load.py
	$(BIN)/python bench/bench_census_microdata.py

clean:
	rm -rf output warehouse/context.duckdb warehouse/context.duckdb.wal warehouse/raw $(DAGSTER_HOME)
