#!/usr/bin/env bash
# Runs the workspace tests and ends with one summary line:
#   test summary: <passed> passed, <failed> failed, <ignored> ignored in <n> test binaries (<secs>s)
# With no arguments the tests run in two groups side by side: the e2e package (one control plane
# and node at a time, mostly waiting on pods) streamed here, and every other package (PostgreSQL,
# MCP clients, the embedding model) whose output follows when it is done. Each group is one
# `cargo test`, so each runs its test binaries one after the other as before; the groups share
# nothing but the machine. Arguments (a package, a filter) give one plain `cargo test` run, and so
# does MCP_FLEET_TEST_GROUPS=1.
set -uo pipefail
start=$SECONDS
node_out="$(mktemp)"
rest_out="$(mktemp)"
trap 'rm -f "$node_out" "$rest_out"' EXIT
status=0
if [ $# -gt 0 ] || [ "${MCP_FLEET_TEST_GROUPS:-2}" = 1 ]; then
  cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$node_out"
  status=${PIPESTATUS[0]}
else
  # Compile once, so that the two groups never wait on each other's build lock.
  cargo test --workspace --no-run --quiet || exit $?
  cargo test --workspace --exclude mcp-fleet-e2e --no-fail-fast >"$rest_out" 2>&1 &
  rest=$!
  echo "== tests of the e2e package (the tests of every other package run alongside; their output follows)"
  cargo test -p mcp-fleet-e2e --no-fail-fast 2>&1 | tee "$node_out"
  status=${PIPESTATUS[0]}
  wait "$rest" || status=1
  echo "== tests of every package but e2e"
  cat "$rest_out"
fi
awk -v secs=$((SECONDS - start)) '
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed;?$/) p += $i
      if ($(i+1) ~ /^failed;?$/) f += $i
      if ($(i+1) ~ /^ignored;?$/) g += $i
    }
    n++
  }
  END { printf "test summary: %d passed, %d failed, %d ignored in %d test binaries (%ss)\n", p, f, g, n, secs }
' "$node_out" "$rest_out"
exit "$status"
