# Two commands do all the set-up on a fresh Debian 12 machine with Python 3.11:
#   make demo   creates .venv, installs hardening, runs the demo against the built-in lab
#   make test   creates .venv with the test extras, installs what the tests need, runs everything
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint system-test-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/hardening demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check hardening tests
	$(BIN)/mypy

# Debian packages the tests need: Chromium renders the HTML report (root installs it; elsewhere the
# report tests say how to enable them).
system-test-deps:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(VENV)/.installed-test system-test-deps lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
