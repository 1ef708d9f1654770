#!/usr/bin/env bash
# Lints what is not Rust: every shell script the repository tracks (with ShellCheck, from Debian's
# package) and the CI workflow (actionlint, built from its Go module into the cache; it also
# checks the workflow's `run:` blocks with ShellCheck). Part of `make lint`; installs what it needs.
#
#   scripts/lint-shell.sh        lint; exit status 1 on any finding
#
# Environment: MCP_FLEET_CACHE (default ~/.cache/mcp-fleet).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
# shellcheck source=scripts/lib/apt.sh
source scripts/lib/apt.sh
# shellcheck source=scripts/lib/go-tool.sh
source scripts/lib/go-tool.sh

ACTIONLINT_VERSION=v1.7.12
CACHE="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
BIN="$CACHE/lint-tools/bin"
export GO_TOOL_LOG_NAME=lint-shell

command -v shellcheck >/dev/null || apt_install shellcheck
go_scratch_build "$BIN" actionlint "$ACTIONLINT_VERSION" "$CACHE/lint-tools/src/actionlint" \
  github.com/rhysd/actionlint github.com/rhysd/actionlint/cmd/actionlint

mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
status=0
shellcheck -x "${scripts[@]}" || status=1
"$BIN/actionlint" .github/workflows/*.yml || status=1
[ "$status" = 0 ] && echo "shellcheck: ${#scripts[@]} scripts clean; actionlint: workflows clean"
exit "$status"
