# The two set-up commands of the README. Each installs what it needs (espeak-ng and python3-venv via apt when root,
# a virtual env with the pip packages) and then runs.
#   make demo   the main job end to end on the built-in world (writes runs/demo/)
#   make test   the test suite (slow tests excluded; `make test-all` runs them too)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
DEMO_ARGS ?=

.PHONY: setup system-deps demo test test-all clean

system-deps:
	PYTHON=$(PYTHON) ./scripts/ensure_system_deps.sh

# A venv left half-made by an earlier failure (no pip inside) is rebuilt.
$(BIN)/.installed: setup.py constraints.txt
	$(MAKE) system-deps
	test -x $(BIN)/pip || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]" -c constraints.txt
	touch $@

setup: $(BIN)/.installed system-deps

demo: setup
	$(BIN)/python -m tfvgs.demo --workdir $(DEMO_DIR) $(DEMO_ARGS)

test: setup
	$(BIN)/python -m pytest -q tests

test-all: setup
	$(BIN)/python -m pytest -q -m "" tests

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
