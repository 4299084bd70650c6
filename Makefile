# The two set-up commands of the README. Each installs what it needs (a virtual env with the pip packages, and
# espeak-ng via apt when root) and then runs.
#   make demo   the main job end to end on the built-in world (writes runs/demo/)
#   make test   the test suite (slow tests excluded; `make test-all` runs them too)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
DEMO_ARGS ?=

.PHONY: setup demo test test-all benchmarks clean

$(BIN)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed
	./scripts/ensure_system_deps.sh

demo: setup
	$(BIN)/python -m tfvgs.demo --workdir $(DEMO_DIR) $(DEMO_ARGS)

test: setup
	$(BIN)/python -m pytest -q tests

test-all: setup
	$(BIN)/python -m pytest -q -m "" tests

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
