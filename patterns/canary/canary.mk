# The canary pattern's own commands: included by the playground's Makefile and by the
# Makefile of a starter (make starter PATTERN=canary). The weights live in Redis and change
# through the api's loopback only: `python -m admin` runs inside the api container.
CANARY_COMPOSE_FILE ?= compose.yaml
CANARY_ADMIN := ./compose/compose.sh -f $(CANARY_COMPOSE_FILE) exec -T api python -m admin

.PHONY: canary-report canary-promote canary-rollback canary-weights
canary-report: $(VENV)/.installed ## canary: share, requests, p50/p99, labels, errors per variant and fallbacks, from the api on API_PORT
	$(VENV)/bin/python -m loadtests.canary_report --url http://127.0.0.1:$(API_PORT)

canary-promote: ## canary: the canary gets 100% of the requests (no restart)
	@$(CANARY_ADMIN) promote

canary-rollback: ## canary: the primary gets 100% of the requests (no restart)
	@$(CANARY_ADMIN) rollback

canary-weights: ## canary: PRIMARY=90 CANARY=10 (percent, summing to 100)
	@if [ -z "$(PRIMARY)" ] || [ -z "$(CANARY)" ]; then \
	  echo "Say both: make canary-weights PRIMARY=90 CANARY=10" >&2; exit 2; fi
	@$(CANARY_ADMIN) set '$(PRIMARY)' '$(CANARY)'
