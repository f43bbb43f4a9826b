# ML serving patterns playground. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PATTERN ?= web-single
# Patterns are the folders of patterns/ that have a compose file.
PATTERNS := $(sort $(patsubst patterns/%/compose.yaml,%,$(wildcard patterns/*/compose.yaml)))
USERS ?= 16
SPAWN_RATE ?= $(USERS)
DURATION ?= 30s
API_PORT ?= 8000
ROWS ?= 10000
ROUNDS ?= 3
PYTHON ?= python3
VENV ?= .venv
COMPOSE = ./compose/compose.sh -f patterns/$(PATTERN)/compose.yaml
export API_PORT

.PHONY: help
help: ## Show this help
	@echo "ML serving patterns playground. Patterns: $(PATTERNS)"
	@echo
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: PATTERN=$(PATTERN) USERS=$(USERS) DURATION=$(DURATION) API_PORT=$(API_PORT) ROWS=$(ROWS) MLSP_OFFLINE=0|1"

.PHONY: check-pattern
check-pattern:
	@if [ -z "$(filter $(PATTERN),$(PATTERNS))" ]; then \
	  echo "Unknown PATTERN '$(PATTERN)'. Choose one of: $(PATTERNS)" >&2; exit 2; fi

.PHONY: up
up: check-pattern ## Build and start PATTERN's stack, wait until healthy, print its URL
	@start=$$(date +%s); \
	$(COMPOSE) up --build --wait --remove-orphans && \
	echo "$(PATTERN) is up in $$(( $$(date +%s) - start )) s: http://127.0.0.1:$(API_PORT)  (docs: http://127.0.0.1:$(API_PORT)/docs)"

.PHONY: down
down: check-pattern ## Stop PATTERN's stack and remove its containers and volumes
	$(COMPOSE) down --volumes --remove-orphans

.PHONY: ps
ps: check-pattern ## Show PATTERN's containers
	$(COMPOSE) ps --all

.PHONY: logs
logs: check-pattern ## Follow PATTERN's logs (JSON lines; grep a request id to follow one request)
	$(COMPOSE) logs --follow --no-log-prefix

.PHONY: load
load: up ## Headless Locust on PATTERN (USERS, DURATION); report in loadtests/results/
	@mkdir -p loadtests/results
	$(COMPOSE) run --rm --build -e PATTERN=$(PATTERN) loadtest \
	  --users $(USERS) --spawn-rate $(SPAWN_RATE) --run-time $(DURATION) \
	  --host http://api:8080 --out /results/$(PATTERN)

# The batch pattern's own commands (they bring its stack up first).
BATCH_CTL := ./compose/compose.sh -f patterns/batch/compose.yaml run --rm ctl

.PHONY: batch-up batch-load batch-run batch-status batch-bench
batch-up batch-load batch-run batch-status batch-bench: PATTERN := batch
batch-up: # the batch stack, brought up unless its workers already run
	@$(COMPOSE) ps --services --status running 2>/dev/null | grep -qx worker \
	  || $(MAKE) --no-print-directory up PATTERN=batch

batch-load: batch-up ## batch: add ROWS (10000) pending rows of sample data
	$(BATCH_CTL) load $(ROWS)

batch-run: batch-up ## batch: start a run now and wait until it has finished
	$(BATCH_CTL) run --wait

batch-status: batch-up ## batch: pending, done and failed rows, and the latest runs
	$(BATCH_CTL) status

batch-bench: batch-up ## batch: rows/s of runs over ROWS rows vs the DB-only limit, ROUNDS times (wipes the tables)
	$(BATCH_CTL) bench $(ROWS) --rounds $(ROUNDS)

.PHONY: models
models: $(VENV)/.installed ## Export the models to models/build/ on the host
	$(VENV)/bin/python -m models.export --out models/build

.PHONY: test
test: $(VENV)/.installed ## Unit tests and lint (no Docker needed)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -m "not e2e"

.PHONY: e2e
e2e: $(VENV)/.installed ## End-to-end tests: bring every pattern up with docker compose
	$(VENV)/bin/pytest -m e2e

.PHONY: lint
lint: $(VENV)/.installed ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: standins
standins: ## Build the offline stand-ins of the base images from Debian packages (root)
	./compose/offline/build-standins.sh

.PHONY: clean
clean: ## Stop every pattern, forget the image choice, remove build output
	@for p in $(PATTERNS); do ./compose/compose.sh -f patterns/$$p/compose.yaml down --volumes --remove-orphans 2>/dev/null || true; done
	rm -rf .mlsp models/build

$(VENV)/.installed: compose/requirements/*.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r compose/requirements/dev.txt
	@touch $@
