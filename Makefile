# crmsync: `make run` starts the local stack, `make test` runs every check. `make help` lists all targets.
# Every setting below can be overridden from the environment (`?=`), e.g. `CRMSYNC_PORT=3001 make run`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON312     ?= $(shell local/find-python.sh)
VENV          ?= .venv
MS_VENV       ?= .venv-ministack
PY            := $(VENV)/bin/python
CRMSYNC_PORT  ?= 3000
PYTEST_ARGS   ?=
export SAM_CLI_TELEMETRY := 0
export CRMSYNC_PORT

.PHONY: help install run send-sample demo-reconcile dlq redrive replay hubspot-setup hubspot-fake salesforce-fake test test-unit test-integration test-e2e fuzz lint format typecheck validate build deploy bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements-dev.txt layers/core/requirements.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found (see local/find-python.sh)"; exit 1; }
	@test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(MS_VENV)/.installed: local/requirements-ministack.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found (see local/find-python.sh)"; exit 1; }
	@test -x $(MS_VENV)/bin/python || $(PYTHON312) -m venv $(MS_VENV)
	$(MS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r local/requirements-ministack.txt
	@touch $@

install: $(VENV)/.installed $(MS_VENV)/.installed ## Create the virtualenvs and install pinned dependencies (quick when done)

run: install ## Start the local stack (ministack + sam build + sam deploy) on http://127.0.0.1:$CRMSYNC_PORT
	$(PY) local/run.py

send-sample: install ## Send a signed sample webhook to the running local stack (SOURCE=shopify|woocommerce|stripe)
	$(PY) local/send_sample.py

demo-reconcile: install ## On the running local stack: reconcile drift against a local shop, backfill records/s (RECORDS=2000)
	$(PY) -m local.demo $(if $(RECORDS),--records $(RECORDS))

# Operator tools (local/ops.py) through the API with the operator key: the running local stack's by default, or
# CRMSYNC_URL + CRMSYNC_API_KEY (e.g. a stack in AWS). QUEUE is ingest-dlq, crm-dlq, events-dlq or rules-dlq.
dlq: install ## List the DLQs' messages with their errors (QUEUE=... LIMIT=10); nothing is consumed
	$(PY) local/ops.py dlq list $(if $(QUEUE),--queue $(QUEUE)) $(if $(LIMIT),--limit $(LIMIT))

redrive: install ## Send a DLQ's messages back to their queue: QUEUE=... (all), IDS="<message id> ..." for some
	@test -n "$(QUEUE)" || { echo "usage: make redrive QUEUE=ingest-dlq|crm-dlq|events-dlq|rules-dlq [IDS=\"id ...\"]"; exit 2; }
	$(PY) local/ops.py dlq redrive --queue $(QUEUE) $(foreach id,$(IDS),--message-id $(id))

replay: install ## Replay archived webhooks: FROM=... TO=... (UTC, ISO 8601) or RECEIPTS="<receipt id> ..."
	$(PY) local/ops.py replay $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) \
		$(foreach r,$(RECEIPTS),--receipt-id $(r)) $(if $(LIMIT),--limit $(LIMIT))

hubspot-setup: install ## Create the HubSpot properties crmsync needs, idempotently (HUBSPOT_ACCESS_TOKEN, HUBSPOT_BASE_URL)
	PYTHONPATH=layers/core $(PY) -m crmsync.crm.hubspot_setup $(if $(DRY_RUN),--dry-run)

hubspot-fake: install ## Serve the spec-validating fake HubSpot on 127.0.0.1:$HUBSPOT_FAKE_PORT (default 8765)
	$(PY) -m local.hubspot_fake --port $(or $(HUBSPOT_FAKE_PORT),8765) $(if $(HUBSPOT_ACCESS_TOKEN),--token $(HUBSPOT_ACCESS_TOKEN))

salesforce-fake: install ## Serve the fake Salesforce on 127.0.0.1:$SALESFORCE_FAKE_PORT (default 8766)
	$(PY) -m local.salesforce_fake --port $(or $(SALESFORCE_FAKE_PORT),8766) $(if $(SALESFORCE_ACCESS_TOKEN),--token $(SALESFORCE_ACCESS_TOKEN))

test: install lint typecheck validate ## Run everything: ruff, mypy, sam validate --lint, unit, integration and e2e tests
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install ## Unit tests only (no AWS, no sockets)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install ## Handler tests on moto, in-process
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: install ## End-to-end tests against a real local stack on free ports
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

fuzz: install ## Security fuzzing with fresh random examples, 10x as many as make test's fixed draw (slow)
	CRMSYNC_FUZZ=explore $(PY) -m pytest tests/security -p no:cacheprovider $(PYTEST_ARGS)

lint: install ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install ## mypy (strict, pydantic plugin)
	$(VENV)/bin/mypy functions layers/core/crmsync local bench tests

validate: install ## sam validate --lint
	$(VENV)/bin/sam validate --lint

build: install ## sam build into .aws-sam/build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build

deploy: build ## Deploy to your AWS account (guided, asks before changing anything)
	$(VENV)/bin/sam deploy --guided

bench: install ## Benchmarks as ratios against baselines run in the same process (DESIGN.md section 6)
	$(PY) bench/run.py

clean: ## Remove build output and local stack state (keeps the virtualenvs)
	rm -rf .aws-sam .local .mypy_cache .ruff_cache .pytest_cache
