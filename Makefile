# Two commands do all set-up on a fresh machine:
#   make run    creates .venv if needed, installs recpipe, runs the nightly flow on the demo data
#   make test   creates .venv if needed, installs recpipe with dev extras, runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-dev lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/recpipe run $(ARGS)

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check flows tasks models expectations tests
	$(BIN)/mypy flows tasks expectations models

clean:
	rm -rf $(VENV) recpipe-home .pytest_cache
