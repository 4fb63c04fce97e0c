# Fresh machine: `make serve` (install, export the model if the store has none, serve) and
# `make test` (install, lint, type-check, tests). Everything lives in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 0.0.0.0
PORT ?= 3000
SERVICE := service.app:CreditRiskService

.PHONY: install model serve test lint bench bench-http clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

model: install
	$(PY) -m export --if-missing

serve: model
	$(VENV)/bin/bentoml serve $(SERVICE) --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

bench: install
	$(VENV)/bin/pytest bench/ --benchmark-only

bench-http: install
	$(PY) -m bench.http

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
