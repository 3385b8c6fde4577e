# The two commands: `make run` serves on http://127.0.0.1:8000, `make test` runs every check.
# Each sets itself up: a virtualenv in .venv with the project and its dev tools installed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck openapi bench fuzz clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/closeloop serve

test: $(STAMP) lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

openapi: $(STAMP)
	$(BIN)/closeloop export-openapi

bench: $(STAMP)
	$(BIN)/python -m bench.ingest

# schemathesis, every phase (stateful included), against a running service (`make run`, or
# FUZZ_URL) with an admin key: FUZZ_KEY=$$(.venv/bin/closeloop create-api-key --name fuzz
# --scope admin | tail -n 1) make fuzz. FUZZ_SECONDS bounds it; schemathesis.toml has the checks.
FUZZ_URL ?= http://127.0.0.1:8000
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	@test -n "$(FUZZ_KEY)" || { echo "set FUZZ_KEY to an admin key: $(BIN)/closeloop create-api-key --name fuzz --scope admin"; exit 2; }
	@echo "schemathesis against $(FUZZ_URL) for at most $(FUZZ_SECONDS) s"
	@$(BIN)/schemathesis --config-file schemathesis.toml run $(FUZZ_URL)/openapi.json \
		--header "Authorization: Bearer $(FUZZ_KEY)" --max-time $(FUZZ_SECONDS) --workers 1

clean:
	rm -rf $(VENV) .pytest-pg .mypy_cache .ruff_cache .pytest_cache
