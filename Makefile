# Two commands on a fresh machine: `make demo` and `make test`.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint unit integration clean down

install:
	@bash scripts/bootstrap.sh

demo: install
	$(BIN)/netfate demo

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

# Lint and type-check first (fast), then every test. Pytest's exit code 5 (no tests) fails.
test: install lint
	$(BIN)/netfate testbed down --quiet
	$(BIN)/pytest -q -ra --tb=short --durations=30 tests

down: install
	$(BIN)/netfate testbed down

clean: down
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -rf /var/cache/netfate/oci
