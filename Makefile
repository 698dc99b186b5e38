# ddp — run `make` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SCALE ?= 100000
PORT ?= 3000
HOST ?= 127.0.0.1
PYTEST_ARGS ?=
# pytest-xdist workers (tests isolate their data, instances, ports and servers); 0 runs serially
TEST_WORKERS ?= 2

.PHONY: help setup system-deps demo build dev test lint format typecheck check bench clean

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/ddp: pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	$(BIN)/uv sync --frozen --inexact --extra dev --compile-bytecode --python $(BIN)/python
	@touch $@

setup: $(BIN)/ddp ## Create .venv with the locked dependencies (uv.lock)

demo: setup ## Quickstart 1: generate the demo data, build every product, serve the Dagster UI
	$(BIN)/ddp demo --scale $(SCALE)
	$(BIN)/ddp materialize --all
	$(BIN)/ddp catalog build catalog_site
	DDP_CATALOG_URL=$(CURDIR)/catalog_site $(BIN)/ddp dev --host $(HOST) --port $(PORT)

build: setup ## Generate the demo data and build every product (no UI)
	$(BIN)/ddp demo --scale $(SCALE)
	$(BIN)/ddp materialize --all

dev: setup ## Serve the Dagster UI on what is already built
	DDP_CATALOG_URL=$(CURDIR)/catalog_site $(BIN)/ddp dev --host $(HOST) --port $(PORT)

# The tests drive Debian's Chromium (never a browser download) and start a throwaway PostgreSQL.
system-deps: ## Debian packages the tests need (Chromium, PostgreSQL server, jq); apt-get as root
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v jq >/dev/null 2>&1 || missing="$$missing jq"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; \
		echo "apt-get install$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: setup system-deps ## Quickstart 2: run every test (real dbt, DuckDB, Dagster, PostgreSQL, Chromium)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: setup ## ruff lint and format check, the import layers (.importlinter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: setup ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup ## pyright (standard mode)
	$(BIN)/pyright

check: lint typecheck ## lint + typecheck

bench: setup ## Benchmarks: prints ratios, writes bench/results/*.json
	$(BIN)/python -m bench

clean: ## Remove built data, the local Dagster instance and dbt artifacts
	rm -rf data .dagster_home dbt_project/target dbt_project/models/_ddp dbt_project/macros/_ddp dbt_project/logs
