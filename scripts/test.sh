#!/usr/bin/env bash
# Runs the workspace tests and ends with one summary line:
#   test summary: <passed> passed, <failed> failed, <ignored> ignored in <n> test binaries (<secs>s)
set -uo pipefail
start=$SECONDS
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
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
' "$out"
exit "$status"
