# Fresh machine: `make serve` (install, export the model if the store has none, serve) and
# `make test` (install, lint, type-check, tests). Everything lives in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 0.0.0.0
PORT ?= 3000
SERVICE := service.app:CreditRiskService
# HTTPS: `make serve SSL_CERT=server.crt SSL_KEY=server.key` (PEM files; BentoML's SSL options).
SSL_CERT ?=
SSL_KEY ?=
# TLS 1.3, and TLS 1.2 with forward-secret AEAD suites only (BentoML's default `TLSv1` offered
# CBC with SHA-1 on TLS 1.2); the Kubernetes TLS variant passes the same string.
SSL_ARGS := $(if $(SSL_CERT)$(SSL_KEY),--ssl-certfile "$(SSL_CERT)" --ssl-keyfile "$(SSL_KEY)" --ssl-ciphers "ECDHE+AESGCM:ECDHE+CHACHA20")
SERVE_ARGS ?=  # more `bentoml serve` options, e.g. --verbose

.PHONY: install system-deps model serve ssl-options test lint bench bench-http clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

model: install
	$(PY) -m export --if-missing

serve: ssl-options model
	$(VENV)/bin/bentoml serve $(SERVICE) --host $(HOST) --port $(PORT) $(SSL_ARGS) $(SERVE_ARGS)

ssl-options:
	@if [ -n "$(SSL_CERT)$(SSL_KEY)" ] && { [ -z "$(SSL_CERT)" ] || [ -z "$(SSL_KEY)" ]; }; then \
		echo "make serve: HTTPS needs both SSL_CERT and SSL_KEY" >&2; exit 2; fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The suite drives real HAProxy, Java (Spark), Chromium...: scripts/system-deps.sh lists them and
# installs the missing ones when run as root (else it prints the one install command and stops).
system-deps:
	bash scripts/system-deps.sh

# Three xdist workers, a test file on one worker (a file's servers are shared by its tests), the
# longest files first (tests/conftest.py, LONGEST_FIRST). Three on this 2-core machine: a third
# of the suite's time is spent waiting (drains, timeouts, server starts), which a third worker
# fills (347 s against 367 s with two, in one quiet afternoon). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 3
test: system-deps lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: install
	$(VENV)/bin/pytest bench/ --benchmark-only

bench-http: install
	$(PY) -m bench.http

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
