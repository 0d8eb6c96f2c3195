# llm-ab: every entry point. `make up` deploys the dev stack; `make test` runs every test.
# Both set up what they need on a fresh machine (venv from PyPI, toolchain from the Go module
# proxy, the embedded local cluster when no cluster is configured).
SHELL := /bin/bash
.DEFAULT_GOAL := help
STACK ?= dev
PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help venv toolchain cluster cluster-down up preview destroy outputs test test-unit test-integration \
        smoke analyze promote rollback bench policy-preview clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt smoke/requirements.txt staging/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed ## create ./venv with the program's and the tests' pinned packages

toolchain: ## build (once per machine, ~35 min cold) pulumi, its kubernetes provider, the local cluster and its real node
	scripts/toolchain

cluster: ## start the embedded local cluster (or use the current context with LLMAB_USE_CURRENT_CONTEXT=1)
	scripts/local-cluster up

cluster-down: ## stop the embedded local cluster
	scripts/local-cluster down

up: venv ## pulumi up of $(STACK) (default dev) with the policy pack, then print its outputs
	scripts/stack up $(STACK)

preview: venv ## pulumi preview --diff of $(STACK) with the policy pack and policy/config/$(STACK).json
	scripts/stack preview $(STACK)

destroy: venv ## pulumi destroy of $(STACK) (the protected weights volume and its namespace are kept)
	scripts/stack destroy $(STACK)

outputs: venv ## the outputs of $(STACK), as `pulumi stack output` prints them
	scripts/stack outputs $(STACK)

test: venv ## every test: unit, mocks, smoke, staging, policy, then the engine and the program on a real local API server
	scripts/toolchain
	LLMAB_INTEGRATION=1 $(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv ## the fast suite only (no engine, no cluster)
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: venv ## only the tests against the local cluster's real API server (and the engine)
	scripts/toolchain
	LLMAB_INTEGRATION=1 $(PY) -m pytest -m integration $(PYTEST_ARGS)

smoke: venv ## run the smoke CLI from outside against $(STACK)'s outputs (through kubectl port-forward)
	scripts/smoke $(STACK)

analyze: venv ## run the A/B analysis from outside against $(STACK)'s outputs (kubectl port-forward; thresholds from analysis.*)
	scripts/analyze $(STACK)

promote: venv ## make the canary's model the stable one in Pulumi.$(STACK).yaml (review with `make preview`)
	$(PY) -m stacks.promote promote --stack $(STACK)

rollback: venv ## send 0% to the canary in Pulumi.$(STACK).yaml (review with `make preview`)
	$(PY) -m stacks.promote rollback --stack $(STACK)

bench: venv ## measurements printed side by side (bench/): unit suite, split check, cluster and engine
	$(PY) bench/bench_unit.py
	$(PY) bench/bench_split.py
	scripts/toolchain
	$(PY) bench/bench_engine.py

clean: ## remove the venv (the toolchain cache lives outside the repo: scripts/toolchain status)
	rm -rf $(VENV)
