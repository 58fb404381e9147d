# lowdose: the two commands a new machine needs are `make demo` and `make test`.
# Each creates .venv when missing and installs the project with its development extras; a stamp
# file makes a second run skip the install unless pyproject.toml changed.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lowdose-installed
# numba's on-disk cache: kept inside .venv so that a reinstall (new venv) starts clean.
export NUMBA_CACHE_DIR := $(CURDIR)/$(VENV)/numba-cache

.PHONY: demo test lint unit bench broker-start broker-stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lowdose demo

lint: $(STAMP)
	$(BIN)/ruff check lowdose optimiser simulator report streams protocols ingest store web tests benchmarks
	$(BIN)/ruff format --check lowdose optimiser simulator report streams protocols ingest store web tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite: lint, unit, real-data, Kafka integration (own throwaway broker unless
# KAFKA_BOOTSTRAP_SERVERS names one) and the benchmarks in quick mode with their ratio gate.
test: lint
	$(BIN)/python -m pytest tests benchmarks --benchmark-quick -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-full -p no:cacheprovider

broker-start: $(STAMP)
	$(BIN)/lowdose broker start

broker-stop: $(STAMP)
	$(BIN)/lowdose broker stop

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache demo-out
