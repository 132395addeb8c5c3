# Marketplace operations platform: developer and CI entry points.
#
#   make run     the demo on http://127.0.0.1:8000 (SQLite in var/ unless DATABASE_URL is set)
#   make test    ruff check, then the pytest suite on a throwaway PostgreSQL cluster
#   make lint    ruff check, ruff format --check, hadolint Dockerfile
#   make smoke   fresh SQLite, migrate, demo data, every scheduled task once, GET /admin/login/ must be 200
#   make bench   tests/benchmarks/bench_*.py on a throwaway PostgreSQL cluster (BENCH_SCALE=N)
#
# Overridable: VENV, PYTHON (a python3.12 to build the venv with), PYTEST_WORKERS, PYTEST_ARGS,
# BENCH_SCALE, BENCH_ARGS, RUN_ADDR, SMOKE_PATHS.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV ?= .venv
PYTHON ?=
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.requirements.stamp
MANAGE := $(PY) manage.py
PGCLUSTER := $(PY) tests/pgcluster.py
DEV_SETTINGS := config.settings.dev

PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
BENCH_SCALE ?= 1000
BENCH_ARGS ?=
RUN_ADDR ?= 127.0.0.1:8000
SMOKE_PATHS ?= /admin/login/

.PHONY: help venv run test lint fmt smoke bench clean distclean

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

# --- Virtual environment ---------------------------------------------------------------
# Reinstalls only when a requirements file is newer than the stamp (or the venv is missing).
venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@is312() { "$$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }; \
	if [ -x "$(PY)" ] && ! is312 "$(PY)"; then echo "$(VENV) is not Python 3.12: recreating it"; rm -rf "$(VENV)"; fi; \
	if [ ! -x "$(PY)" ]; then \
	  py="$(PYTHON)"; \
	  if [ -z "$$py" ]; then \
	    for cand in "$$(command -v python3.12 || true)" "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.12.*/bin/python /root/.pyenv/versions/3.12.*/bin/python; do \
	      if [ -n "$$cand" ] && [ -x "$$cand" ] && is312 "$$cand"; then py="$$cand"; break; fi; \
	    done; \
	  fi; \
	  if [ -z "$$py" ]; then echo "Python 3.12 not found: install it or pass PYTHON=/path/to/python3.12" >&2; exit 1; fi; \
	  echo "creating $(VENV) with $$py"; \
	  "$$py" -m venv "$(VENV)"; \
	fi; \
	echo "installing requirements-dev.txt into $(VENV)"; \
	"$(PY)" -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt; \
	touch "$@"

# --- Run the demo ----------------------------------------------------------------------
# One shell: the django-q2 cluster runs in the background and is stopped when the server exits.
run: venv
	@export DJANGO_SETTINGS_MODULE=$(DEV_SETTINGS); \
	mkdir -p var; \
	$(MANAGE) migrate --noinput; \
	$(MANAGE) staff_groups; \
	$(MANAGE) schedules; \
	$(MANAGE) load_demo_data; \
	qpid=; \
	trap 'if [ -n "$$qpid" ]; then kill "$$qpid" 2>/dev/null || true; wait "$$qpid" 2>/dev/null || true; fi' EXIT; \
	trap 'exit 130' INT; \
	trap 'exit 143' TERM; \
	$(MANAGE) qcluster & qpid=$$!; \
	echo "qcluster running (pid $$qpid); serving http://$(RUN_ADDR)/ (admin /admin/, CMS /cms/); Ctrl-C stops both"; \
	$(MANAGE) runserver $(RUN_ADDR)

# --- Tests and checks ------------------------------------------------------------------
# pytest exits non-zero when no test ran (exit 5), so an empty suite fails here.
# Two pytest runs on one throwaway cluster: the suite in parallel, then the browser tests on
# their own (a live server and Playwright's threads must not share a process with the tests
# that fork children: tests/processes.py).
test: venv
	$(BIN)/ruff check .
	$(PGCLUSTER) -- sh -c '$(BIN)/pytest -n $(PYTEST_WORKERS) --ignore=tests/browser $(PYTEST_ARGS) && $(BIN)/pytest tests/browser -p no:xdist -q'

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

fmt: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks are bench_*.py files, collected only here (pyproject's python_files is test_*.py).
# No statement_timeout there: the 1M-row loads COPY a table in one statement.
bench: venv
	@if ! compgen -G 'tests/benchmarks/bench_*.py' >/dev/null; then echo "no tests/benchmarks/bench_*.py to run" >&2; exit 1; fi
	BENCH_SCALE=$(BENCH_SCALE) DATABASE_STATEMENT_TIMEOUT_MS=0 $(PGCLUSTER) -- $(BIN)/pytest tests/benchmarks -p no:xdist -s -o 'python_files=bench_*.py' $(BENCH_ARGS)

# The newcomer's path: no DATABASE_URL, embedded SQLite (in a temp dir), dev settings.
smoke: venv
	@tmp=$$(mktemp -d); \
	srv=; \
	trap 'if [ -n "$$srv" ]; then kill "$$srv" 2>/dev/null || true; wait "$$srv" 2>/dev/null || true; fi; rm -rf "$$tmp"' EXIT; \
	unset DATABASE_URL REDIS_URL; \
	export DJANGO_SETTINGS_MODULE=$(DEV_SETTINGS) SQLITE_PATH="$$tmp/db.sqlite3" DJANGO_MEDIA_ROOT="$$tmp/media" DJANGO_STATIC_ROOT="$$tmp/static"; \
	port=$$($(PY) -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	echo "smoke: SQLite at $$SQLITE_PATH"; \
	$(MANAGE) migrate --noinput; \
	$(MANAGE) staff_groups; \
	$(MANAGE) load_demo_data; \
	$(MANAGE) schedules --run-now; \
	$(MANAGE) runserver --noreload "127.0.0.1:$$port" >"$$tmp/server.log" 2>&1 & srv=$$!; \
	for path in $(SMOKE_PATHS); do \
	  code=000; \
	  for _ in $$(seq 1 120); do \
	    code=$$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 10 "http://127.0.0.1:$$port$$path" || true); \
	    if [ "$$code" = 200 ] || ! kill -0 "$$srv" 2>/dev/null; then break; fi; \
	    sleep 0.5; \
	  done; \
	  if [ "$$code" != 200 ]; then \
	    echo "smoke: FAILED: GET $$path -> $$code (server log follows)" >&2; cat "$$tmp/server.log" >&2; exit 1; \
	  fi; \
	  echo "smoke: GET $$path -> 200"; \
	done; \
	echo "smoke: OK"

# --- Housekeeping ----------------------------------------------------------------------
clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis var/static

# Also removes the virtual environment and the local SQLite database and media.
distclean: clean
	rm -rf $(VENV) var
