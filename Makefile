# fundrouter: the single entry point. `make up` runs the whole system locally,
# `make test` runs every check. Both set up what they need on a fresh clone.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13: from PATH first (a pyenv shim does not count: it only resolves when
# 3.13 is pyenv's selected version), then from pyenv's installed versions.
PYTHON313 := $(or $(shell which -a python3.13 2>/dev/null | grep -v '/shims/' | head -n 1),$(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13))))
ifeq ($(PYTHON313),)
$(error Python 3.13 is required and was not found on PATH or under ~/.pyenv/versions/3.13*. Install it (e.g. `pyenv install 3.13`) and retry)
endif
# sam build looks for python3.13 on PATH.
export PATH := $(dir $(PYTHON313)):$(PATH)

VENV := .venv
MS_VENV := .venv-ministack
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
UV := $(VENV)/bin/uv
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)

export SAM_CLI_TELEMETRY := 0
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: help up down logs test lint typecheck validate unit integration bench build clean locks openapi

help:
	@echo "make up        start ministack, build and deploy template.yaml into it, write .fundrouter/local.env"
	@echo "make down      stop what make up started"
	@echo "make logs      follow the local stack's logs (Lambda output included)"
	@echo "make test      lint, types, template validation and every test"
	@echo "make bench     print import-time ratios, DynamoDB requests per order and per match, match latency and claims/s on a local stack, and the bank test under faults with 5,000 orders"
	@echo "make build     sam build for the template's default architecture (arm64)"
	@echo "make openapi   regenerate openapi.json from the code"

# ------------------------------------------------------------------ virtualenvs
$(VENV)/.installed: requirements/bootstrap.txt requirements/dev.txt pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/bootstrap.txt
	$(UV) pip install --quiet --python $(PY) --require-hashes -r requirements/dev.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e . -e clients/python
	touch $@

$(MS_VENV)/.installed: requirements/ministack.txt $(VENV)/.installed
	test -x $(MS_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON313) $(MS_VENV)
	$(UV) pip install --quiet --python $(MS_VENV)/bin/python --require-hashes -r requirements/ministack.txt
	touch $@

$(SAM_VENV)/.installed: requirements/sam.txt $(VENV)/.installed
	test -x $(SAM_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON313) $(SAM_VENV)
	$(UV) pip install --quiet --python $(SAM_VENV)/bin/python --require-hashes -r requirements/sam.txt
	touch $@

# checkov apart: its ~100 pinned dependencies must not move the dev or SAM pins.
$(CHECKOV_VENV)/.installed: requirements/checkov.txt $(VENV)/.installed
	test -x $(CHECKOV_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON313) $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python --require-hashes -r requirements/checkov.txt
	touch $@

venvs: $(VENV)/.installed $(MS_VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed

# Regenerate the locks after editing requirements/*.in.
locks: $(VENV)/.installed
	$(UV) pip compile --quiet --python-version 3.13 --generate-hashes requirements/dev.in -o requirements/dev.txt
	$(UV) pip compile --quiet --python-version 3.13 --generate-hashes requirements/ministack.in -o requirements/ministack.txt
	$(UV) pip compile --quiet --python-version 3.13 --generate-hashes requirements/sam.in -o requirements/sam.txt
	$(UV) pip compile --quiet --python-version 3.13 --generate-hashes requirements/checkov.in -o requirements/checkov.txt
	$(UV) pip compile --quiet --python-version 3.13 --python-platform aarch64-manylinux_2_28 --no-annotate --no-header \
	  --no-emit-package boto3 --no-emit-package botocore --no-emit-package s3transfer --no-emit-package jmespath \
	  --no-emit-package urllib3 --no-emit-package python-dateutil --no-emit-package six \
	  requirements/layer.in -o layers/fundrouter/requirements.txt

# ------------------------------------------------------------------ local stack
# DEMO_LINES=0 starts the stack without the demo funders' lines.
up: venvs
	$(PY) scripts/localstack.py up --arch $(ARCH) $(if $(filter 0,$(DEMO_LINES)),,--demo-lines)

down: $(VENV)/.installed
	$(PY) scripts/localstack.py down

logs: $(VENV)/.installed
	$(PY) scripts/localstack.py logs

build: $(SAM_VENV)/.installed
	$(SAM) build

# ------------------------------------------------------------------ checks
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy layers/fundrouter/fundrouter functions
	$(VENV)/bin/mypy cli
	$(VENV)/bin/mypy clients/python/src
	MYPYPATH=layers/fundrouter $(VENV)/bin/mypy sim

# checkov: zero unsuppressed findings; each suppression is justified in template.yaml
# next to its resource (Metadata: checkov: skip).
validate: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	$(SAM) validate --lint --region us-east-1
	$(SAM_VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation --file template.yaml

unit: $(VENV)/.installed
	$(VENV)/bin/pytest -m "not integration" -q

integration: venvs
	$(VENV)/bin/pytest -m integration -q

# Four pytest processes at once (scripts/run_tests.sh): the local-stack tests beside
# the CPU-bound moto tests (two processes, one per core), so the suite takes the
# longest of them, not the sum.
test: venvs lint typecheck validate
	scripts/run_tests.sh

openapi: $(VENV)/.installed
	$(PY) scripts/openapi.py

bench: venvs
	$(PY) bench/run.py --arch $(ARCH)
	$(PY) -m sim.hot_line --seed 7

clean:
	-$(PY) scripts/localstack.py down
	rm -rf .aws-sam .fundrouter .mypy_cache .ruff_cache .pytest_cache
