#!/usr/bin/env bash
# Fuzzes the fleet's untrusted inputs (model-written SQL, tool arguments, config files,
# McpTenants) with cargo fuzz (libFuzzer), each target for a bounded time, and ends with one
# summary line. Exits non-zero when a target crashes (a panic, a stack overflow, an input slower
# than 10 s, running out of memory) and prints where the input is.
#
#   scripts/fuzz.sh [SECONDS] [--seed N] [--target NAME]...
#
# SECONDS per target, default 60. --seed fixes libFuzzer's random seed (default: a fresh one,
# printed) so a run can be repeated. Targets (server/fuzz/fuzz_targets): sql_guard, tool_args,
# tenant_spec.
# Seeds come from server/fuzz/corpus/<target> and server/fuzz/seeds/<target>, read only. The
# corpus the fuzzer grows, the build and crash inputs live under $MCP_FLEET_CACHE/fuzz (default
# ~/.cache/mcp-fleet/fuzz): a rerun builds incrementally and starts from what earlier runs
# found (delete $MCP_FLEET_CACHE/fuzz/corpus to start from the seeds alone).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=60
seed=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    --seed=*) seed="${1#--seed=}"; shift ;;
    --target) targets+=("${2:?--target needs a name}"); shift 2 ;;
    --target=*) targets+=("${1#--target=}"); shift ;;
    -h | --help) sed -n '2,14p' "$0" | cut -c3-; exit 0 ;;
    '' | *[!0-9]*) echo "fuzz: unexpected argument ${1@Q} (see --help)" >&2; exit 2 ;;
    *) seconds="$1"; shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(sql_guard tool_args tenant_spec)
case "$seed" in '' | *[!0-9]*) [ -z "$seed" ] || { echo "fuzz: --seed takes a number" >&2; exit 2; } ;; esac

cache="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}/fuzz"
fuzz_dir=server/fuzz

# cargo fuzz builds with nightly-only compiler flags. Use rustup's nightly when it is installed;
# otherwise the default (stable) compiler with RUSTC_BOOTSTRAP=1, which accepts the same flags.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  cargo=(cargo +nightly)
else
  echo "fuzz: no nightly toolchain; using $(rustc --version) with RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
  cargo=(cargo)
fi

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into ~/.cargo/bin (once)" >&2
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --quiet
fi

# No address sanitizer by default: the project's code forbids `unsafe`, and without it a run
# executes several times more inputs. MCP_FLEET_FUZZ_SANITIZER=address turns it on.
build_opts=(
  --fuzz-dir "$fuzz_dir"
  --release --debug-assertions
  --sanitizer "${MCP_FLEET_FUZZ_SANITIZER:-none}"
  --target-dir "$cache/target"
)
# One target is built alone (`cargo fuzz build` takes one name or none). The sql_guard target
# needs only the validator crate and sqlparser: without the default `tool_args` feature, the
# server is not compiled at all.
one=()
[ ${#targets[@]} -ne 1 ] || one=("${targets[0]}")
[ "${targets[*]}" != sql_guard ] || build_opts+=(--no-default-features)
start=$SECONDS
echo "== fuzz: building ${targets[*]}"
"${cargo[@]}" fuzz build "${build_opts[@]}" "${one[@]}" >&2
echo "fuzz: built in $((SECONDS - start))s"

summary=()
failed=0
for target in "${targets[@]}"; do
  corpus="$cache/corpus/$target"
  artifacts="$cache/artifacts/$target"
  log="$cache/logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  seeds=()
  for dir in "$fuzz_dir/corpus/$target" "$fuzz_dir/seeds/$target"; do
    [ -d "$dir" ] && seeds+=("$dir")
  done
  flags=(
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096
    -print_final_stats=1 -artifact_prefix="$artifacts/"
  )
  [ -n "$seed" ] && flags+=(-seed="$seed")
  [ -f "$fuzz_dir/dict/$target.dict" ] && flags+=(-dict="$fuzz_dir/dict/$target.dict")

  echo "== fuzz: $target for ${seconds}s (corpus $corpus; seeds ${seeds[*]})"
  set +e
  # The first corpus directory receives new inputs; the seed directories are only read.
  "${cargo[@]}" fuzz run "${build_opts[@]}" "$target" "$corpus" "${seeds[@]}" -- "${flags[@]}" >"$log" 2>&1
  status=$?
  set -e
  grep -E '^INFO: Seed:|INITED|DONE|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" || true

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  size=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  crashes=0
  if [ "$status" -ne 0 ]; then
    failed=1
    crashes=1
    echo "fuzz: $target FAILED (exit $status); the end of its log ($log):"
    tail -n 60 "$log"
    # A panic's backtrace is long: its first lines (where, and the message) may be above the tail.
    cause=$(grep -m1 -A1 -E 'panicked at|^==[0-9]+== ?ERROR' "$log" || true)
    echo "fuzz: cause: ${cause:-not found in the log}"
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz: crashing input: ${input:-none written (see the log)}; artifacts in $artifacts/"
    [ -z "$input" ] || echo "fuzz: reproduce with: ${cargo[*]} fuzz run ${build_opts[*]} $target $input"
  fi
  summary+=("$target ${execs:-?} execs (${rate:-?}/s), corpus ${size:-?}, $crashes crashes")
done

total=$((SECONDS - start))
line=$(IFS=';'; echo "${summary[*]}")
line=${line//;/; }
echo "fuzz summary: $line; ${total}s"
exit "$failed"
