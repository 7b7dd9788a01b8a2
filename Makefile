# The README's two commands: `make demo` and `make test`. Both work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= build/demo

.PHONY: demo test lint typecheck unit bench clean wheel-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,spark,browser]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m assay.demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# Build the wheel, install it in a fresh venv, run the main commands from another folder (CI runs it).
wheel-test: $(STAMP)
	PYTHON=$(PYTHON) PIP=$(BIN)/pip bash scripts/wheel_smoke.sh

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
