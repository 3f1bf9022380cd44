# Tollway — `make run` and `make test` work on a fresh machine: they create .venv and install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# The stamp changes whenever the dependency list or the lock does, so `make` reinstalls.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: install cc run test lint format bench bench-micro bench-soak redis-server chromium postgresql wrk lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c requirements.lock -e '.[test,dev,bench,granian]'
	rm -f $(VENV)/.installed-*
	touch $@

# The hot path compiled with mypyc (proxy/compiled.py); a no-op while the build is fresh.
install: $(STAMP)
	$(PY) -c 'import sys; from proxy.compiled import build; sys.exit(build())'

run: install
	$(VENV)/bin/tollway

# For the Redis-backed ledger and cache (multi-replica): install redis-server if missing.
# `make test` needs it: tests/cache start a real one (and fail, not skip, without it).
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# For the admin UI's browser tests (tests/ui): headless Chromium and its WebDriver.
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  echo "installing chromium and chromium-driver"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# For the PostgreSQL store (several replicas): tests/store start a real server from Debian's
# postgresql (as the postgres user when run as root) on a free port, and fail without it.
postgresql:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  echo "installing postgresql"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# For the compiled hot path (proxy/compiled.py): a C compiler and Python's headers. `make
# install` without them runs the hot path interpreted, with a warning; `make test` tests the
# compiled build, so it installs them first.
cc: | $(PY)
	@{ command -v "$$($(PY) -c 'import sysconfig; print((sysconfig.get_config_var("CC") or "cc").split()[0])')" \
	  && $(PY) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))'; \
	} >/dev/null 2>&1 || { \
	  echo "installing gcc and python3-dev"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev >/dev/null; }

test: cc install redis-server chromium postgresql
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff format --check proxy tests bench
	$(VENV)/bin/ruff check proxy tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format proxy tests bench
	$(VENV)/bin/ruff check --fix proxy tests bench

# The load generator of `make bench`'s rows above one user (bench/wrk.py).
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

bench: install wrk
	$(PY) -m bench.run

bench-micro: install
	$(PY) -m bench.micro

bench-soak: install
	$(PY) -m bench.soak

# Re-resolve the lock from pyproject's lower bounds (needs the package index).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install -q -e '.[test,dev,bench,granian]'
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
