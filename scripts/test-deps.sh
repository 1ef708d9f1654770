#!/usr/bin/env bash
# Prepares what `make test` needs in two chains side by side; `make deps images` does the same one
# step after the other. The Go chain (etcd, the control plane, helm, the node's binaries, the
# collector) is the longest on a fresh machine: about half of a cold CI run. The other chain
# (PostgreSQL and pgvector, the model, the Python SDK, the object stores, the Rust test build, the
# fleet's images) downloads and compiles meanwhile, filling the Go chain's module downloads and
# single-threaded links. The installers take turns on their own locks (apt, one build of each Go
# tool at a time), so nothing is built twice. Lines keep their `[step hh:mm:ss]` prefixes.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '[test-deps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
m=(make --no-print-directory)
start=$SECONDS

"${m[@]}" k8s-binaries node-binaries otelcol &
go_chain=$!

# The fleet's images (Debian bases, binaries, model) need nothing of the Go chain; the add-ons'
# images (`make images` below) wait for the node's binaries.
prepare_the_rest() {
  "${m[@]}" deps-pg model py-env object-stores &&
    step "cargo test --workspace --no-run (the test build)" &&
    cargo test --workspace --no-run --quiet &&
    scripts/images.sh fleet >/dev/null
}
rest=0
prepare_the_rest || rest=$?

go=0
wait "$go_chain" || go=$?
if [ "$go" != 0 ] || [ "$rest" != 0 ]; then
  [ "$go" = 0 ] || step "the Go builds (make k8s-binaries node-binaries otelcol) failed: exit $go"
  [ "$rest" = 0 ] || step "PostgreSQL, model, Python SDK, object stores, test build or images failed: exit $rest"
  exit 1
fi
"${m[@]}" images
step "ready in $((SECONDS - start))s"
