# parity-operator: `make demo` runs the main job, `make test` passes the tests.
# Both do all set-up themselves (Go-built control plane, Python emulators) on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PARITY_CACHE ?= $(HOME)/.cache/parity-operator
export PARITY_CACHE
export CARGO_TARGET_DIR ?= $(PARITY_CACHE)/target
export PARITY_TESTENV_DIR ?= $(CURDIR)/.testenv
TESTENV_BIN := $(PARITY_CACHE)/testenv/bin
PARITY := $(CARGO_TARGET_DIR)/debug/parity

.PHONY: help build lint unit integration test testenv-build testenv-up testenv-down demo demo-down crds kind-up bench

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## build the parity binary
	cargo build --bin parity

lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

unit: ## unit tests (no control plane needed)
	cargo test --lib --bins

testenv-build: ## build the control-plane binaries from Go modules (cached)
	hack/testenv/build

testenv-up: ## start etcd, kube-apiserver, controller-manager, scheduler and kwok on loopback
	hack/testenv/up

testenv-down: ## stop the testenv started by testenv-up
	hack/testenv/down

# Integration tests need a running testenv (KUBECONFIG) and the Python emulators (moto).
integration: ## integration tests against a running testenv
	@test -f $(PARITY_TESTENV_DIR)/env || { echo "no testenv running: make testenv-up" >&2; exit 1; }
	source $(PARITY_TESTENV_DIR)/env && PARITY_PYTHON_BIN="$$(hack/pyenv)" cargo test --tests --test '*'

test: ## everything CI runs: lint, unit, testenv up, integration, testenv down (always)
	$(MAKE) lint
	$(MAKE) unit
	hack/pyenv >/dev/null
	hack/testenv/build
	hack/testenv/selftest
	hack/testenv/up
	rc=0; $(MAKE) integration || rc=$$?; \
	  if [ $$rc -ne 0 ]; then hack/testenv/logs 60 || true; fi; \
	  hack/testenv/down; exit $$rc

demo: ## start the testenv and show how to use it
	$(MAKE) build
	hack/testenv/up
	@echo
	@echo "The control plane is up. Try:"
	@echo "  source $(PARITY_TESTENV_DIR)/env"
	@echo "  kubectl get nodes"
	@echo "Stop it with: make demo-down"

demo-down: ## stop what make demo started
	hack/testenv/down
