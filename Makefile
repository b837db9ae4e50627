# Hallpass. Needs only python3 (>= 3.11) and GNU make; uv is bootstrapped into .tools/ if missing.
#
#   make run     start every service on embedded defaults with demo data (http://127.0.0.1:8000)
#   make test    lint, type-check, compare the OpenAPI specs and run the tests

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

TOOLS := .tools
TOOLS_UV := $(TOOLS)/bin/uv
UV ?= $(or $(shell command -v uv 2>/dev/null),$(TOOLS_UV))
RUN := $(UV) run --frozen

# Only the bootstrapped uv is something make knows how to build; a uv found on PATH (or given as
# UV=...) is used as it is.
ifeq ($(UV),$(TOOLS_UV))
UV_BOOTSTRAP := $(TOOLS_UV)
else
UV_BOOTSTRAP :=
endif

# Evaluated when a recipe uses it, i.e. after `install` has synced the environment.
XDIST = $(shell $(RUN) python -c "import xdist" >/dev/null 2>&1 && echo "-n auto --dist loadgroup")

.PHONY: help install run test check fmt openapi openapi-check bench fuzz fuzz-files screenshots clean

help:
	@echo "make run            start Hallpass with demo data on http://$(HOST):$(PORT)"
	@echo "make test           check + openapi-check + pytest (PYTEST_ARGS=... to pass options)"
	@echo "make check          ruff lint, ruff format --check, mypy --strict"
	@echo "make fmt            format and autofix"
	@echo "make openapi        regenerate openapi/*.json from the code"
	@echo "make openapi-check  fail if openapi/*.json differs from the code"
	@echo "make bench          run the benchmarks (decisions, publish check, names, scan cost, bulk send, overload)"
	@echo "make fuzz           schemathesis contract tests with 500 examples per operation"
	@echo "make fuzz-files     upload and check a generated corpus of hostile image files"
	@echo "make screenshots    photograph the console and the carers' pages into docs/screenshots/ (needs chromium)"
	@echo "make install        create .venv from uv.lock"
	@echo "make clean          remove caches, .venv and .tools (keeps the .hallpass data dir)"

$(TOOLS_UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Hallpass needs Python >= 3.11 (found $$($(PYTHON) --version 2>&1))" >&2; exit 1; }
	@echo "uv not found on PATH; installing it into $(TOOLS)/"
	@$(PYTHON) -m venv $(TOOLS) \
		|| { echo "python3 -m venv failed; on Debian/Ubuntu install python3-venv" >&2; exit 1; }
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv

install: $(UV_BOOTSTRAP)
	$(UV) sync --frozen

run: install
	$(RUN) hallpass demo
	$(RUN) hallpass serve --host $(HOST) --port $(PORT)

test: install check openapi-check
	$(RUN) pytest $(XDIST) $(PYTEST_ARGS)

check: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

fmt: install
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

openapi: install
	$(RUN) hallpass openapi --out openapi

openapi-check: install
	$(RUN) hallpass openapi --out openapi --check

bench: install
	$(UV) sync --frozen --group bench
	$(RUN) python bench/decisions.py
	$(RUN) python bench/publish_check.py
	$(RUN) python bench/namescan.py
	$(RUN) python bench/scan_cost.py
	$(RUN) python bench/bulk_send.py
	$(RUN) python bench/overload.py
	$(RUN) python bench/cli_startup.py
	$(RUN) python bench/scale.py

screenshots: install
	$(RUN) python -m tests.web.screenshots

fuzz: install
	HALLPASS_FUZZ_EXAMPLES=500 $(RUN) pytest -m contract $(XDIST) $(PYTEST_ARGS)

fuzz-files: install
	$(RUN) pytest tests/media/hostile/test_hostile_files.py $(PYTEST_ARGS)

clean:
	rm -rf .venv $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
