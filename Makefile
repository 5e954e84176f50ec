# Agency: run `make help` for the targets. Every target installs what it needs itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml Makefile | sha1sum | cut -c1-12)
TESTBED_DIR ?= .testbed
export PYTHONPATH := $(CURDIR)/tests
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip uv
	@# Bytecode at install time, as the image does (UV_COMPILE_BYTECODE): where PYTHONDONTWRITEBYTECODE is
	@# set, every runtime process would otherwise compile litellm and openai again before its first request.
	@$(VENV)/bin/uv pip sync -q --compile-bytecode --python $(PY) requirements-dev.lock
	@$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: venv
venv: $(STAMP) ## Create the virtualenv with the locked dependencies

.PHONY: testbed-build
testbed-build: ## Build (once, cached in ~/.cache/agency) kube-apiserver, etcd, kcm, kubectl, helm, Jaeger
	@$(PYTHON) tests/agency_testbed/build.py

.PHONY: testbed
testbed: venv ## Start a control plane on loopback; prints `export KUBECONFIG=...`
	@$(PYTHON) tests/agency_testbed/build.py >&2
	@$(PY) -m agency_testbed up --dir $(TESTBED_DIR)

.PHONY: testbed-down
testbed-down: venv ## Stop the control plane `make testbed` started
	@$(PY) -m agency_testbed down --dir $(TESTBED_DIR)

.PHONY: lock
lock: venv ## Re-pin dependencies: requirements-dev.lock (tests), requirements.lock (the image, same pins)
	@$(VENV)/bin/uv pip compile -q pyproject.toml --extra dev -o requirements-dev.lock --python-version 3.11
	@$(VENV)/bin/uv pip compile -q pyproject.toml -o requirements.lock --python-version 3.11 -c requirements-dev.lock

.PHONY: crds
crds: venv ## Regenerate crds/ from the Python API models (and the chart's copy)
	@$(PY) -m agency_runtime.api.crd --out crds
	@cp crds/*.yaml charts/agency/crds/

.PHONY: lint
lint: venv ## ruff, mypy --strict and the import contract
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports

.PHONY: test
test: venv testbed-build ## Lint, then every test (unit, integration on the real testbed, e2e)
	@$(MAKE) --no-print-directory lint
	@$(VENV)/bin/pytest

.PHONY: test-unit
test-unit: venv ## Only the fast unit tests (no control plane)
	@$(VENV)/bin/pytest -m unit

.PHONY: demo
demo: venv testbed-build ## The cold-chain fleet on a local control plane with a scripted model
	@$(PY) -m agency_testbed.demo

.PHONY: bench
bench: venv testbed-build ## Benchmarks, printed as ratios against built-in controllers
	@$(PY) -m benchmarks

.PHONY: clean
clean: testbed-down ## Remove the virtualenv and local state (the binary cache stays)
	@rm -rf $(VENV) $(TESTBED_DIR) .mypy_cache .ruff_cache .pytest_cache
