# Everything a newcomer needs: `make demo` to try it, `make test` to test it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STATE  := .localcluster

.PHONY: venv build lint test cluster-up cluster-down cluster-status demo clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

## build: the pinned control plane, kubectl, kustomize and helm, into the cache (seconds when already built)
build:
	$(PYTHON) -m tools.localcluster build

## lint: ruff check, ruff format --check, mypy (strict) on gitops_job/
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then the whole suite against a local cluster started for the run
test: lint build
	$(BIN)/pytest

## cluster-up: start a cluster whose state lives in .localcluster/ and print its kubeconfig path
cluster-up: build
	@$(PYTHON) -m tools.localcluster up --state-dir $(STATE)

cluster-down:
	@$(PYTHON) -m tools.localcluster down --state-dir $(STATE)

cluster-status:
	@$(PYTHON) -m tools.localcluster status --state-dir $(STATE)

## demo: start the local cluster and show how to reach it
demo: venv cluster-up
	@kc=$$(pwd)/$(STATE)/kubeconfig; kubectl=$$($(PYTHON) -c 'from tools.localcluster.build import binary; print(binary("kubectl"))'); \
	echo; echo "The local cluster runs. Try:"; \
	echo "  $$kubectl --kubeconfig $$kc get nodes"; \
	echo "  $(BIN)/gitops-job --help"; \
	echo "Stop it with: make cluster-down"; echo; \
	$$kubectl --kubeconfig $$kc get nodes

clean: cluster-down
	rm -rf $(VENV) $(STATE)
