# The two commands: `make demo` runs the whole pipeline on examples/credit; `make test` runs
# lint, types and the test suite. Both create and install their own environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.shipml-installed

.PHONY: demo test lint bench-pipeline bench-serving clean

demo: $(STAMP)
	$(BIN)/shipml run --project examples/credit

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy

bench-pipeline: $(STAMP)
	$(BIN)/python benchmarks/pipeline/run.py

bench-serving: $(STAMP)
	$(BIN)/python benchmarks/serving/run.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) examples/credit/.shipml
