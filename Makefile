# Two commands: `make up` runs the whole stack, `make test` lints and tests against real services.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up test lint audit unit fuzz bench bench-auth chaos scale scale-deps format clean browser-deps promtool-deps

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
	$(MAKE) --no-print-directory audit

# Known vulnerabilities in the pinned runtime set (PyPI's advisory data): a finding fails.
# A pin the service has no data for is listed as skipped; AUDIT_FLAGS=--strict fails on
# those too (use it where the service can see every pin, e.g. CI with PyPI's JSON API).
AUDIT_FLAGS ?=
audit: install
	$(VENV)/bin/pip-audit -r requirements.txt --no-deps --disable-pip --progress-spinner off $(AUDIT_FLAGS)

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint browser-deps promtool-deps
	$(VENV)/bin/pytest

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the chromium package for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium >/dev/null; }; \
	else \
	  echo "browser-deps: /usr/bin/chromium is missing; install the chromium package (as root)" >&2; \
	fi

# promtool (Debian's prometheus package) checks a live /metrics scrape and the alert rules.
# Only promtool is wanted: the package's server is stopped if its install started it.
promtool-deps:
	@if command -v promtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the prometheus package for promtool"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends prometheus >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }; \
	  invoke-rc.d prometheus stop >/dev/null 2>&1 || true; \
	else \
	  echo "promtool-deps: promtool is missing; install the prometheus package (as root)" >&2; \
	fi

unit: install
	$(VENV)/bin/pytest tests/unit

# Schemathesis CLI, every check and phase (stateful too), anonymous and as a customer, on a
# private stack with the fuzz profile's raised rate limits (bench/fuzz.py); not in make test.
fuzz: install
	$(PY) -m bench.fuzz $(FUZZ_ARGS)

# Private stacks on free loopback ports; e.g. make bench BENCH_ARGS="--broker amqp://guest:guest@127.0.0.1:5672//"
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

# 50 concurrent register + login while an order ships (bench/auth_load.py); not in make test.
bench-auth: install
	$(PY) -m bench.auth_load $(BENCH_AUTH_ARGS)

chaos: install
	$(PY) -m bench.chaos $(CHAOS_ARGS)

# Scale-out test (bench/scale.py): 2 APIs behind HAProxy, workers split by queue, a private
# RabbitMQ node; installs Debian's haproxy and rabbitmq-server when missing (as root).
scale-deps:
	@for pkg in haproxy rabbitmq-server; do \
	  if dpkg -s $$pkg >/dev/null 2>&1; then :; \
	  elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing the $$pkg package for make scale"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q $$pkg >/dev/null || { apt-get update -q && apt-get install -y -q $$pkg >/dev/null; }; \
	  else echo "scale-deps: install the $$pkg package (as root)" >&2; fi; \
	done

scale: install scale-deps
	$(PY) -m bench.scale $(SCALE_ARGS)

clean:
	rm -rf .data .pytest_cache .ruff_cache
