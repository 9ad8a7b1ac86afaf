# The two set-up commands of the README, plus helpers. Every target is idempotent:
# a second call reuses the venv, the Docker engine, the base image and the test hosts.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
LAUNCH := $(VENV)/bin/launch
DEMO_REPLICAS ?= 100

.PHONY: bench-search demo test venv docker base-image test-hosts test-hosts-down ray-cluster browser lint unit bench clean-venv wandb-sweeps

## demo: the main job: 100 replicas of the training image on the local Docker engine
demo: venv docker base-image
	$(LAUNCH) experiments/replicas.yaml --replicas $(DEMO_REPLICAS)

## test: lint, type-check and the whole test suite against real Docker engines and Ray
test: lint docker base-image test-hosts browser wandb-sweeps
	$(VENV)/bin/pytest

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev,ray,search,mlflow]'
	@touch $(STAMP)

docker:
	@scripts/ensure-docker.sh

base-image: docker
	@scripts/base-image.sh >/dev/null

test-hosts: docker
	@scripts/test-hosts.sh up

ray-cluster: venv test-hosts
	@scripts/ray-cluster.sh up

test-hosts-down:
	@scripts/test-hosts.sh down

wandb-sweeps:
	@scripts/wandb-sweeps-venv.sh

browser:
	@scripts/ensure-browser.sh

## lint: ruff, mypy --strict over the package and the tests, shellcheck over the scripts
lint: venv
	$(VENV)/bin/ruff check launcher tests experiments benchmarks
	$(VENV)/bin/mypy --strict launcher tests
	@scripts/ensure-shellcheck.sh
	shellcheck -x scripts/*.sh launcher/data/*.sh .ci/run

## unit: the tests that need no Docker engine
unit: venv
	$(VENV)/bin/pytest tests/unit

bench: venv docker base-image
	$(VENV)/bin/python -m benchmarks.fanout

## bench-search: adaptive search and early termination (benchmarks/README.md)
bench-search: venv docker base-image wandb-sweeps
	$(VENV)/bin/python -m benchmarks.search

clean-venv:
	rm -rf $(VENV)
