# Deploying an ML service: one make target per thing you do. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first Python >= 3.11 on PATH, python3 itself first (a version that only exists as a shim fails the test).
ifndef PYTHON
PYTHON := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { command -v $$p; break; }; done)
endif
NO_PYTHON := { echo "No Python 3.11 or newer found (tried python3, python3.13, python3.12, python3.11)."; \
	echo "  macOS: brew install python@3.13 (or the installer from python.org)"; \
	echo "  Ubuntu, Debian, WSL: sudo apt install python3 python3-venv"; \
	echo "  or name one: make PYTHON=/path/to/python3.12 ..."; exit 1; }
VENV := .venv
BIN := $(VENV)/bin
LABKIT := $(BIN)/labkit
PYTEST := $(BIN)/pytest
TARGET ?= exercises
BUILD := build
comma := ,
# The classic builder only where the docker CLI has no BuildKit (no buildx plugin: an offline Debian
# docker.io engine); Docker Desktop and current engines build with their default, BuildKit.
ifneq ($(if $(PYTHON),$(shell $(PYTHON) -m labkit.engine builder 2>/dev/null)),buildkit)
export DOCKER_BUILDKIT ?= 0
export COMPOSE_DOCKER_CLI_BUILD ?= 0
endif

.PHONY: help setup venv venv-notebooks venv-maintainer lock doctor images up down grade test test-unit test-graded test-stubs \
        test-notebooks test-notebooks-a test-notebooks-b grader-smoke notebooks notebooks-ru release release-check clean compat bench-sync bench-async grade-many chaos up-swarm down-swarm bench \
        cluster-up cluster-down up-cluster chaos-cluster

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# The venv installs a set exported from uv.lock (labkit/locked/*.txt): every package pinned, hashes
# checked; then labkit itself, whose dependencies are already there. Students get the lean set,
# `make notebooks` adds Jupyter, the maintainers' targets add notebook execution and API fuzzing.
define install_locked
	@test -n "$(PYTHON)" || $(NO_PYTHON)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "'$(PYTHON) -m venv' failed. Debian, Ubuntu, WSL: sudo apt install python3-venv"; exit 1; }
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@{ $(BIN)/python -m pip install --quiet --require-hashes -r labkit/locked/$(1).txt && \
	   $(BIN)/python -m pip install --quiet --no-deps -e . ; } > $(VENV)/pip-install.log 2>&1 || { cat $(VENV)/pip-install.log; exit 1; }
	@touch $@
endef

$(BIN)/.installed: pyproject.toml labkit/locked/host.txt
	$(call install_locked,host)

$(BIN)/.installed-notebooks: $(BIN)/.installed labkit/locked/notebooks.txt
	$(call install_locked,notebooks)

$(BIN)/.installed-maintainer: $(BIN)/.installed labkit/locked/maintainer.txt
	$(call install_locked,maintainer)

venv: $(BIN)/.installed

venv-notebooks: $(BIN)/.installed-notebooks

venv-maintainer: $(BIN)/.installed-maintainer

setup: venv ## install everything: Python deps, Docker engine + compose (if missing), base images
	@PYTHON=$(BIN)/python sh labkit/setup_host.sh
	@$(LABKIT) images

doctor: ## check the machine (Python, engine, compose, disk, images, ports) and say how to fix; needs no .venv
	@test -n "$(PYTHON)" || $(NO_PYTHON)
	@$(PYTHON) -m labkit.doctor

images: venv ## pull the base images, or build offline stand-ins
	@$(LABKIT) images

up: setup ## start the week's ML service and call it like the lecture does
	@$(BIN)/python -m labkit.services
	@$(BIN)/python -m labkit.stack build
	docker compose up --detach --no-build --wait --wait-timeout 180
	@$(BIN)/python -m labkit.demo

down: ## stop the service and remove its containers, networks and volumes
	docker compose down --volumes --remove-orphans

up-swarm: setup ## the same service as a swarm stack `iris` (builds, joins a single-node swarm if needed)
	@$(BIN)/python -m labkit.services
	@$(BIN)/python -m labkit.stack build
	@$(BIN)/python -m labkit.stack deploy iris
	@$(BIN)/python -m labkit.demo

down-swarm: ## remove the swarm stack (`docker swarm leave --force` leaves the swarm)
	docker stack rm iris

cluster-up: setup ## a 3-node swarm on this machine, engines in containers (NODES=3, SUITE=bookworm|trixie)
	@$(LABKIT) cluster up $(if $(NODES),--nodes $(NODES)) $(if $(SUITE),--suite $(SUITE))

up-cluster: setup ## the service across the cluster: API and workers spread, state and one beat on the manager
	@$(BIN)/python -m labkit.services
	@$(BIN)/python -m labkit.stack build
	@$(LABKIT) cluster up $(if $(NODES),--nodes $(NODES)) $(if $(SUITE),--suite $(SUITE))
	@$(LABKIT) cluster deploy

chaos-cluster: venv-maintainer ## on the cluster of up-cluster: drain, then kill a worker node under load; sent, failed, lost
	@$(BIN)/python -m labkit.cluster_chaos

cluster-down: venv ## remove the cluster's nodes, their volumes and its network
	@$(LABKIT) cluster down

grade: setup ## grade your labs: LAB=01 or LAB=01,04 (default: the labs you started); TARGET=solutions|PATH
	@$(PYTEST) tests/graded --target $(TARGET) --lab "$(or $(LAB),started)" -q -rN --no-header -p no:warnings || true

grade-many: setup ## grade every submission folder in DIR: grades.csv + feedback per student (JOBS=, LABS=, OUT=)
	@test -n "$(DIR)" || { echo "usage: make grade-many DIR=/path/to/submissions [JOBS=2] [LABS=01-docker,...] [OUT=...]"; exit 2; }
	@$(LABKIT) grade-many "$(DIR)" --jobs $(or $(JOBS),1) $(if $(LABS),--labs $(LABS)) $(if $(OUT),--out "$(OUT)")

notebooks: setup venv-notebooks ## open the week's notebooks in Jupyter
	$(BIN)/jupyter notebook notebooks/

notebooks-ru: venv-maintainer ## refresh notebooks/ru/ after an English notebook changed (code and outputs from English)
	@$(LABKIT) notebooks-ru

release: venv ## regenerate exercises/ from solutions/, and every requirements file from uv.lock
	@$(LABKIT) release

lock: venv ## re-resolve uv.lock (UPGRADE=name,... moves those), regenerate every requirements file; then make test
	@$(LABKIT) lock $(foreach p,$(subst $(comma), ,$(UPGRADE)),--upgrade $(p))

release-check: venv ## fail when exercises/ or a requirements file is not what release / the lock makes
	@$(LABKIT) release --check

test-unit: setup venv-maintainer
	$(PYTEST) tests --ignore=tests/graded -q --durations=15

test-graded: setup
	@mkdir -p $(BUILD)
	$(PYTEST) tests/graded --target solutions --grades-json $(BUILD)/grades-solutions.json -q --durations=15 || true
	$(LABKIT) check-grades $(BUILD)/grades-solutions.json --expect full

test-stubs: setup  # after test-graded: compares with build/grades-solutions.json
	$(PYTEST) tests/graded --target exercises --grades-json $(BUILD)/grades-exercises.json -q --durations=10 || true
	$(LABKIT) check-grades $(BUILD)/grades-exercises.json --expect zero --same-tests-as $(BUILD)/grades-solutions.json

# In two halves, which `make test` runs side by side (labkit/suite.py). 03 and 05 are in the same half:
# both publish 127.0.0.1:15555 (the cluster's Flower, notebook 05's). Every other notebook is in b.
NOTEBOOKS_A := notebooks/01_docker.ipynb notebooks/03_swarm.ipynb notebooks/05_async_queues.ipynb
NOTEBOOKS_B := $(filter-out $(NOTEBOOKS_A),$(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb)))

test-notebooks: test-notebooks-a test-notebooks-b

test-notebooks-a: setup venv-maintainer
	$(PYTEST) --nbval-lax --nbval-current-env $(NOTEBOOKS_A) -q --durations=10

test-notebooks-b: setup venv-maintainer
	$(PYTEST) --nbval-lax --nbval-current-env $(NOTEBOOKS_B) -q --durations=10

grader-smoke: setup
	$(LABKIT) grader-check --smoke

# venv-maintainer before the lanes start: three of them need it, and three pip installs into one venv at
# once (a fresh clone) race each other (one failed: a file of IPython gone while another pip replaced it).
test: setup venv-maintainer clean release-check ## everything: unit, graded (solutions 100 %, stubs 0), corpus smoke, notebooks: four lanes, times
	@$(BIN)/python -m labkit.suite
	@$(LABKIT) clean --check

bench-sync: setup venv-maintainer ## benchmark lab 04's sync service against its baselines (2-3 minutes)
	@$(BIN)/python -m labkit.services 04-flask-serving
	$(BIN)/python -m labkit.bench_sync

bench-async: setup venv-maintainer ## sync vs async: 1,000 tasks end to end with 1 and 2 worker processes
	$(BIN)/python -m labkit.bench_async

bench: setup venv-maintainer ## one table: lab 04's sync service, lab 05's queue, and the capstone through its gateway
	@$(BIN)/python -m labkit.services
	$(BIN)/python -m labkit.bench

chaos: setup venv-maintainer ## fault tests of the complete service with big loads: sent, failed, lost
	CHAOS=full $(PYTEST) tests/capstone -s -q

grader-check: setup ## grade the corpus of known submissions (LABS=01-docker,... QUICK=1 or SMOKE=1); fails on any wrong verdict
	@$(LABKIT) grader-check $(if $(LABS),--labs $(LABS)) $(if $(QUICK),--quick) $(if $(SMOKE),--smoke)

compat: setup ## compatibility matrix (ROWS=...): non-root user, no GNU tools, Python 3.13, Engine 26 (15-35 min)
	@$(LABKIT) compat $(ROWS)

clean: venv ## remove whatever a grading run left in Docker
	@$(LABKIT) clean
