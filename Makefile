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

# Debian packages the tests need (root installs what is missing, with one apt-get update; elsewhere
# the tests say how to enable them): Chromium renders the HTML report, and Samba runs the real AD DC
# that tests/directory starts on 127.0.20.x (winbind and the samba-ad-dc meta package are not needed).
# No daemon starts here: this image has no systemd and policy-rc.d exits 101. On a machine with
# systemd the samba package enables and starts smbd/nmbd (0.0.0.0:445/139): check `ss -ltnp` there
# and stop or mask them.
system-test-deps:
	@[ "$$(id -u)" != 0 ] || { set -e; chromium=; samba=; \
		command -v chromium >/dev/null 2>&1 || chromium=chromium; \
		command -v samba >/dev/null 2>&1 || samba="samba samba-dsdb-modules samba-vfs-modules samba-ad-provision ldb-tools krb5-user"; \
		if [ -n "$$chromium$$samba" ]; then apt-get update -qq; fi; \
		if [ -n "$$chromium" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
		if [ -n "$$samba" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$samba >/dev/null; fi; }

test: $(VENV)/.installed-test system-test-deps lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
