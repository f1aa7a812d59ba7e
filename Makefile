# Two commands: `make up` runs the whole stack, `make test` lints and tests against real services.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up test lint unit fuzz bench chaos format clean browser-deps

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

up: install
	$(PY) -m devstack.up

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(VENV)/bin/pytest

unit: install
	$(VENV)/bin/pytest tests/unit

bench: install
	$(PY) -m bench.run

chaos: install
	$(PY) -m bench.chaos

clean:
	rm -rf .data .pytest_cache .ruff_cache
