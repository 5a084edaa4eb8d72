# The two commands of the README: `make demo` runs opsfleet, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes: the tests mostly wait on real subprocesses and sockets, so three workers
# on two cores keep both busy; each test module stays on one worker (module fixtures).
TEST_WORKERS ?= 3

.PHONY: demo test install proto lint typecheck unit clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: create the virtualenv, install opsfleet and run a Manager with a local Daemon
demo: $(STAMP)
	$(BIN)/opsfleet demo

## test: install, check generated code, lint, type-check, run every test
test: $(STAMP)
	$(BIN)/python scripts/gen_proto.py --check
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy
	sh scripts/ensure_chromium.sh
	sh scripts/ensure_alertmanager.sh
	sh scripts/ensure_prometheus.sh
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

## proto: regenerate src/opsfleet/proto from proto/*.proto
proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
