# ccat_api: one entry point for people and CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# Stock Debian's python3 cannot make a venv without python3-venv (no ensurepip).
.PHONY: system-deps
system-deps: ## Install python3-venv, PostgreSQL, Redis and Redis Sentinel from Debian's packages if missing (needs root)
	@if ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1 \
			|| ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v redis-server >/dev/null \
			|| ! command -v redis-sentinel >/dev/null; then \
		echo "installing python3-venv, postgresql, redis-server and redis-sentinel"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv postgresql redis-server redis-sentinel; \
	fi

# Only the tests need these. promtool ships only in Debian's prometheus package (the server
# too); none of its recommends (the node exporter) is needed.
.PHONY: test-deps
test-deps: system-deps ## Also Chromium (console tests), promtool (alert rule tests), systemd-analyze (unit files), Patroni and etcd (deploy/patroni) if missing (needs root)
	@if ! command -v chromium >/dev/null || ! command -v promtool >/dev/null \
			|| ! command -v systemd-analyze >/dev/null || ! command -v patroni >/dev/null \
			|| ! command -v etcd >/dev/null; then \
		echo "installing chromium, prometheus (for promtool), systemd (for systemd-analyze), patroni and etcd-server"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus systemd \
			patroni etcd-server; \
	fi

# constraints.txt pins every package to the versions CI last passed with (pip freeze);
# refresh it deliberately with `make lock` after testing newer versions.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

.PHONY: lock
lock: ## Re-resolve dependencies to their newest versions and pin them in constraints.txt
	$(PYTHON) -m venv /tmp/ccat-lock-venv
	/tmp/ccat-lock-venv/bin/pip install -q -e '.[dev]'
	/tmp/ccat-lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf /tmp/ccat-lock-venv

.PHONY: install
install: system-deps $(STAMP) ## Create .venv with the package and its dev tools

.PHONY: run
run: install ## Start the local two-site stack, play the demo, keep running until Ctrl-C
	$(BIN)/ccat-api stack up

.PHONY: demo
demo: install ## Start the stack, play the demo, stop (a smoke test)
	$(BIN)/ccat-api stack up --exit-after-demo

.PHONY: migrate
migrate: install ## Bring the main database (CCAT_MAIN_DB_URL) to the newest schema
	$(BIN)/ccat-api migrate

.PHONY: worker
worker: install ## Run this secondary site's processor and LSN tracker without the HTTP server
	$(BIN)/ccat-api process

.PHONY: format
format: install ## Fix what ruff can fix and format the code
	$(BIN)/ruff check --fix ccat_api tests bench docs
	$(BIN)/ruff format ccat_api tests bench docs

.PHONY: check
check: lint typecheck unit ## Everything that needs no services: lint, types, unit tests

.PHONY: lint
lint: install ## ruff lint and format check
	$(BIN)/ruff check ccat_api tests bench docs
	$(BIN)/ruff format --check ccat_api tests bench docs

.PHONY: typecheck
typecheck: install ## mypy --strict
	$(BIN)/mypy

.PHONY: env-example
env-example: install ## Regenerate .env.example from the Settings model (a unit test compares them)
	$(BIN)/ccat-api config example > .env.example

.PHONY: unit
unit: install ## Unit tests only (no services, seconds)
	$(BIN)/pytest tests/unit -q

# -E: a fresh environment, so the references generated from the code are always rewritten;
# -n and MyST's heading anchors: a link to a missing page or heading is a warning, -W an error.
.PHONY: docs
docs: install ## Build the docs site into docs/_build/html (warnings are errors, internal links checked)
	$(BIN)/sphinx-build -E -W --keep-going -n -q -b html docs docs/_build/html
	@echo "docs: file://$(CURDIR)/docs/_build/html/index.html"

.PHONY: test
test: test-deps lint typecheck docs ## Everything CI runs: lint, types, docs, unit and integration tests
	$(BIN)/pytest -q --durations=10

.PHONY: fuzz
fuzz: install ## Fuzz both sites' APIs from their OpenAPI (longer than CI's run, a fresh seed each time)
	CCAT_FUZZ_EXAMPLES=$${CCAT_FUZZ_EXAMPLES:-40} CCAT_FUZZ_SEED=$${CCAT_FUZZ_SEED:-$$RANDOM$$RANDOM} \
		CCAT_FUZZ_TIMEOUT_S=3600 $(BIN)/pytest tests/integration/test_fuzz.py -q -s --timeout=7200

.PHONY: chaos
chaos: install ## Seeded fault campaign, the long run: >= 10,000 writes, 24 faults (CCAT_CHAOS_SEED replays one)
	$(BIN)/python -m ccat_api.devstack.chaos --writes $${CCAT_CHAOS_WRITES:-10000} \
		--faults $${CCAT_CHAOS_FAULTS:-24}

.PHONY: bench
bench: install ## Benchmarks through the WAN simulator at 200 ms RTT (prints figures and ratios; two sites draining at once too)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.redis_ha
	$(BIN)/python -m bench.reads

# The one-site drain runs first, so the two-site rows have its figure to compare with.
.PHONY: bench-sites
bench-sites: install ## Two sites draining onto one main at once (BENCH_SITES_BACKLOG each, default 10,000), with the one-site drain to compare
	$(BIN)/python -m bench.run --phases drain,drain_sites --out bench/results/sites.json

.PHONY: bench-reads
bench-reads: install ## Reads and Redis memory with 100,000 buffered: list page and get-by-id p99, bytes per transaction, gateway RSS
	$(BIN)/python -m bench.reads

.PHONY: bench-ha
bench-ha: install ## The buffer on Redis with Sentinel: write latency with and without WAIT, failover gap
	$(BIN)/python -m bench.redis_ha

.PHONY: bench-ws
bench-ws: install ## WebSocket fan-out latency: 500 monitors on a 2-worker gateway, 20 writes/s (p99 target 100 ms)
	$(BIN)/python -m bench.ws_fanout

.PHONY: bench-retention
bench-retention: install ## Site Redis memory: 100,000 transactions buffered, drained, expired (target: <= 1 MB kept)
	$(BIN)/python -m bench.retention

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info docs/_build
