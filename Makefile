# `make demo` and `make test` set everything up themselves (a .venv in this folder).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo
PYTEST_ARGS ?=

.PHONY: install demo test test-slow bench clean

install: $(STAMP)

# Reinstall only when the package metadata or the pins change.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,tensorboard]"
	touch $(STAMP)

demo: install
	$(BIN)/snn-icl simulate tasks/water_maze.toml --episodes 4 --out $(DEMO_OUT)
	$(BIN)/snn-icl plot $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/lsnn_throughput.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
