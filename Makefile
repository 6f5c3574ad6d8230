# Everything a newcomer needs: `make demo` to try it, `make test` to test it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STATE  := .localcluster
# The renderers use the pinned kustomize and helm from the build cache unless these are set.
TOOL    = $(shell $(PYTHON) -c 'from tools.localcluster.build import binary; print(binary("$(1)"))')
export GITOPS_JOB_KUSTOMIZE ?= $(call TOOL,kustomize)
export GITOPS_JOB_HELM ?= $(call TOOL,helm)

.PHONY: system-tools venv build fixtures lint test cluster-up cluster-down cluster-status demo clean bench image

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

## system-tools: git, openssl, npm, shellcheck … with apt-get when missing (tools/system-tools)
system-tools:
	@tools/system-tools

## build: the pinned control plane, kubectl, kustomize and helm, into the cache (seconds when already built)
build:
	$(PYTHON) -m tools.localcluster build

## lint: ruff check, ruff format --check, mypy (strict) on gitops_job/, the layers contract (import-linter)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## fixtures: GitHub's pinned REST description and webhook payloads (npm) for the GitHub stand-in, into the cache
fixtures: venv
	$(BIN)/python -m tools.github_fixtures

## image: build localhost/gitops-job:dev with buildah on a local Debian base (tools/image.py; cached in the build cache)
image: system-tools venv build
	$(BIN)/python -m tools.image

## test: lint, then the whole suite against a local cluster started for the run
test: system-tools lint build fixtures
	$(BIN)/pytest

## cluster-up: start a cluster whose state lives in .localcluster/ and print its kubeconfig path
cluster-up: build
	@$(PYTHON) -m tools.localcluster up --state-dir $(STATE)

cluster-down:
	@$(PYTHON) -m tools.localcluster down --state-dir $(STATE)

cluster-status:
	@$(PYTHON) -m tools.localcluster status --state-dir $(STATE)

## demo: start the local cluster, plan examples/ against it, apply them, then show their status
demo: system-tools venv cluster-up
	@kc=$$(pwd)/$(STATE)/kubeconfig; \
	echo; echo "\$$ gitops-job plan --repo examples --kubeconfig $$kc"; \
	$(BIN)/gitops-job plan --repo examples --kubeconfig $$kc; \
	echo; echo "\$$ gitops-job apply --repo examples --kubeconfig $$kc"; \
	$(BIN)/gitops-job apply --repo examples --kubeconfig $$kc; \
	echo; echo "\$$ gitops-job status --repo examples --kubeconfig $$kc"; \
	$(BIN)/gitops-job status --repo examples --kubeconfig $$kc; \
	echo; echo "kubectl: $(call TOOL,kubectl) --kubeconfig $$kc get nodes"; \
	echo "Stop the cluster with: make cluster-down"

clean: cluster-down
	rm -rf $(VENV) $(STATE)

## bench: gitops-job plan/apply/reconcile vs kubectl diff/apply --server-side on a fresh local cluster (BENCH_N objects,
##        default 1000; the scheduled pull at BENCH_PULL_N, default 1000,10000), PASS/FAIL per target of issue 14;
##        then the registry scan (100 repositories x 500 tags on docker-registry) vs skopeo, issue 15's targets
BENCH_N ?= 1000
BENCH_PULL_N ?= 1000,10000
bench: system-tools venv build
	$(BIN)/python -m tools.bench --n $(BENCH_N) --pull-n $(BENCH_PULL_N)
