#!/usr/bin/env bash
# Runs the workspace tests and ends with one summary line:
#   test summary: <passed> passed, <failed> failed, <ignored> ignored in <n> test binaries (<secs>s)
# With no arguments the tests run in two groups side by side. The test files that hold the
# machine's one node (each has a line beginning `// test group: node`; they mostly wait on pods)
# run one after the other, their output streamed here. Every other test target (unit tests, the
# other integration tests, doc tests: PostgreSQL, MCP clients, the embedding model, control planes
# without a node) runs alongside, its output following when it is done. A file that starts a node
# must carry the line: in the other group its node start would wait on the machine-wide node lock
# only a bounded time (scripts/node.sh) while this group holds the node for minutes.
# Each group selects its test targets by name within `--workspace`, so features resolve as for
# `cargo test --workspace` and both use its one build (`-p` or `--exclude` would resolve them anew
# and rebuild most crates). The groups share nothing but the machine.
# Arguments (a package, a filter) give one plain `cargo test` run, and so does
# MCP_FLEET_TEST_GROUPS=1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit # the groups list the test targets from */tests/
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
  node=() rest=(--lib --bins)
  for f in */tests/*.rs; do
    if grep -q '^// test group: node' "$f"; then
      node+=(--test "$(basename "$f" .rs)")
    else
      rest+=(--test "$(basename "$f" .rs)")
    fi
  done
  (
    r=0
    cargo test --workspace --no-fail-fast "${rest[@]}" || r=1
    cargo test --workspace --no-fail-fast --doc || r=1
    exit "$r"
  ) >"$rest_out" 2>&1 &
  rest_pid=$!
  echo "== the tests on the node (the tests of every other target run alongside; their output follows)"
  cargo test --workspace --no-fail-fast "${node[@]}" 2>&1 | tee "$node_out"
  status=${PIPESTATUS[0]}
  wait "$rest_pid" || status=1
  echo "== the tests of every other target"
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
