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

.PHONY: help build lint lint-ci unit aws-lc fuzz integration dev e2e test browser-deps testenv-build testenv-up testenv-down demo demo-down crds kind-up kind-down bench \
	node-deps images testenv-up-real testenv-selftest-real chart-package install-yaml

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## build the parity binary and the lean parity-operator
	cargo build --bin parity --bin parity-operator

lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

lint-ci: ## actionlint and shellcheck on the per-PR recipe (examples/ci), and the macOS portability check
	hack/actionlint examples/ci/github-actions.yaml
	@command -v shellcheck >/dev/null || { echo "lint-ci needs shellcheck (apt-get install shellcheck; .ci/run installs it)" >&2; exit 1; }
	shellcheck examples/ci/*.sh hack/actionlint
	cargo test -q --test portability

unit: ## unit tests (no control plane needed)
	cargo test --lib --bins

aws-lc: ## the known-answer vectors under the AWS-LC AES-GCM backend (rebuilds the crate with --features aws-lc)
	PARITY_PYTHON_BIN="$$(hack/pyenv)" cargo test --features aws-lc --test crypto_vectors

fuzz: ## afl.rs: each fuzz target for FUZZ_SECONDS (default 60) from fuzz/corpus; needs cargo-afl
	hack/fuzz

testenv-build: ## build the control-plane binaries from Go modules (cached)
	hack/testenv/build

testenv-up: ## start etcd, kube-apiserver, controller-manager, scheduler and kwok on loopback
	hack/testenv/up

testenv-down: ## stop the testenv started by testenv-up
	hack/testenv/down

node-deps: ## Debian packages of the real test node and the image builds (apt-get, only when missing)
	hack/testenv/node-deps

images: build ## test node images without Docker: parity-operator:dev, pause, CoreDNS, moto (cached)
	hack/testenv/build coredns
	PARITY_BIN=$(PARITY) hack/testenv/images

testenv-up-real: build ## the control plane with one real node (containerd, kubelet, kube-proxy, CoreDNS, kube-router); root
	PARITY_BIN=$(PARITY) hack/testenv/up --real-node

testenv-selftest-real: ## prove down removes everything a real node created (processes, mounts, links, iptables, ipsets)
	hack/testenv/selftest --real-node

# Integration tests need a running testenv (KUBECONFIG) and the Python emulators (moto).
integration: ## integration tests against a running testenv
	@test -f $(PARITY_TESTENV_DIR)/env || { echo "no testenv running: make testenv-up" >&2; exit 1; }
	source $(PARITY_TESTENV_DIR)/env && PARITY_PYTHON_BIN="$$(hack/pyenv)" cargo test --test '*' -- --test-threads=1

browser-deps: ## chromium (apt) and playwright-core (npm ci) for the dashboard browser test
	hack/browser-deps

dev: build ## process mode, no Docker, no cluster: examples/local.yaml as local processes (Ctrl-C stops)
	$(PARITY) dev -f examples/local.yaml --mirror-source examples/topology.yaml --seeds examples/fixtures

e2e: ## end-to-end tests on a real node started for them (root, Linux; stopped afterwards)
	hack/e2e

test: ## everything CI runs: lint, lint-ci, unit, integration (kwok), then the real node's selftest and e2e
	$(MAKE) lint
	$(MAKE) lint-ci
	$(MAKE) unit
	hack/pyenv >/dev/null
	$(MAKE) aws-lc
	$(MAKE) browser-deps
	hack/testenv/build
	hack/testenv/selftest
	hack/testenv/up
	rc=0; $(MAKE) integration || rc=$$?; \
	  if [ $$rc -ne 0 ]; then hack/testenv/logs 60 || true; fi; \
	  hack/testenv/down; exit $$rc
	$(MAKE) build
	hack/testenv/selftest --real-node
	$(MAKE) e2e

crds: ## regenerate the CRD (crds/ and the chart's copy), the chart's RBAC rules and deploy/install.yaml
	cargo run -q -- crd > crds/parity.dev_parityenvironments.yaml
	cp crds/parity.dev_parityenvironments.yaml charts/parity-operator/crds/
	cargo run -q -- crd --rbac-rules > charts/parity-operator/files/rbac-rules.yaml
	$(MAKE) install-yaml

# helm as hack/testenv/build builds it (make testenv-build), else one already on PATH.
WITH_HELM := PATH="$(TESTENV_BIN):$$PATH"

DIST ?= dist
chart-package: ## package the chart into dist/ (then helm push it to an OCI registry: docs/install.md)
	$(WITH_HELM) helm package charts/parity-operator -d $(DIST)

install-yaml: ## render deploy/install.yaml from the chart (default values; tests/chart_template.rs checks it)
	$(WITH_HELM) deploy/render > deploy/install.yaml.tmp
	mv deploy/install.yaml.tmp deploy/install.yaml

demo: ## real control plane + chart RBAC + operator + the three examples, until Ready
	$(MAKE) build
	hack/testenv/build
	PARITY_BIN=$(PARITY) hack/demo

demo-down: ## stop what make demo started
	hack/testenv/down

KIND_CLUSTER ?= parity
IMAGE ?= parity-operator:dev
kind-up: ## laptop cluster (needs Docker, kind, helm): build + load the image, install the chart, apply examples/local.yaml
	@docker info >/dev/null 2>&1 || { echo "kind-up needs a running Docker engine (docker info failed)" >&2; exit 1; }
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml
	docker build -t $(IMAGE) .
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	helm upgrade --install parity charts/parity-operator --namespace parity-system --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --set image.pullPolicy=Never --set nodePorts=true --wait
	kubectl create configmap app-topology --from-file=topology.yaml=examples/topology.yaml --dry-run=client -o yaml | kubectl apply -f -
	kubectl create configmap app-secrets-schema --from-file=examples/secrets.schema.json --dry-run=client -o yaml | kubectl apply -f -
	kubectl create configmap app-seeds --from-file=examples/fixtures/ --dry-run=client -o yaml | kubectl apply -f -
	kubectl apply -f examples/local.yaml
	kubectl wait --for=condition=Ready penv/dev --timeout=300s

kind-down: ## delete the kind cluster kind-up made (everything in it goes with it, retained keyrings too)
	kind delete cluster --name $(KIND_CLUSTER)
