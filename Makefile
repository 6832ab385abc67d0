# Two commands do all set-up on a fresh machine:
#   make run    creates .venv if needed, installs recpipe, runs the nightly flow on the demo data
#   make test   creates .venv if needed, installs recpipe with dev extras, runs the test suite
#   make docs   builds the documentation site into site/ (strict: any warning fails)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test docs install install-dev lint clean

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

docs: install-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

lint: install-dev
	$(BIN)/ruff check flows tasks models expectations tests
	$(BIN)/mypy flows tasks expectations models

clean:
	rm -rf $(VENV) recpipe-home .pytest_cache
