# shellcheck shell=bash
# Sourced by scripts that build Go programs from the module proxy into the cache
# (k8s-binaries.sh, node-binaries.sh).
#
#   go_tool_have BIN_DIR NAME VERSION       true when BIN_DIR/NAME was built at VERSION
#   go_scratch_build BIN_DIR NAME VERSION SRC_DIR MODULE PACKAGE [--tags T] [--ldflags L] [--replace R]...
#                    [--require 'MOD VER']... [--main FILE] [--record KEY]
#       builds PACKAGE (a main package of MODULE@VERSION) into BIN_DIR/NAME from a scratch module
#       in SRC_DIR that requires MODULE@VERSION. `go install module@version` refuses modules with
#       replace directives; the scratch module repeats the ones a build needs (--replace 'a => b').
#       With --main, FILE (a Go main package of our own, using MODULE) is what gets built, and
#       PACKAGE is ignored. Records VERSION (or KEY, when what is built depends on more than the
#       version) in BIN_DIR/NAME.version. --require pins a further module that FILE imports (tidy
#       would otherwise take its newest version). Progress goes to stderr.

go_tool_log() { printf '[%s %s] %s\n' "${GO_TOOL_LOG_NAME:-go-build}" "$(date +%H:%M:%S)" "$*" >&2; }

go_tool_have() {
  [ -x "$1/$2" ] && [ -f "$1/$2.version" ] && [ "$(cat "$1/$2.version")" = "$3" ]
}

go_scratch_build() {
  local bin_dir="$1" name="$2" version="$3" src="$4" module="$5" package="$6"
  shift 6
  local tags="" ldflags="-s -w" replaces=() requires=() main="" record="$version"
  while [ $# -gt 0 ]; do
    case "$1" in
      --tags) tags="$2"; shift 2 ;;
      --ldflags) ldflags="$ldflags $2"; shift 2 ;;
      --replace) replaces+=("$2"); shift 2 ;;
      --require) requires+=("$2"); shift 2 ;;
      --main) main="$2"; shift 2 ;;
      --record) record="$2"; shift 2 ;;
      *) go_tool_log "go_scratch_build: unknown option $1"; return 2 ;;
    esac
  done
  if go_tool_have "$bin_dir" "$name" "$record"; then
    go_tool_log "$name $record cached"
    return 0
  fi
  mkdir -p "$bin_dir" "$src"
  local t0=$SECONDS r
  go_tool_log "building $name $version ($package)"
  {
    printf 'module mcpfleet.local/%s-scratch\n\ngo 1.26\n\nrequire %s %s\n' "$name" "$module" "$version"
    for r in "${requires[@]}"; do printf '\nrequire %s\n' "$r"; done
    for r in "${replaces[@]}"; do printf '\nreplace %s\n' "$r"; done
  } >"$src/go.mod"
  rm -f "$src/go.sum" "$src/tools.go" "$src/main.go"
  if [ -n "$main" ]; then
    cp "$main" "$src/main.go"
    package=.
  else
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" >"$src/tools.go"
  fi
  (cd "$src" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$src/tidy.log") || {
    cat "$src/tidy.log" >&2
    return 1
  }
  (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED="${CGO_ENABLED:-0}" go build -trimpath ${tags:+-tags "$tags"} \
    -ldflags "$ldflags" -o "$bin_dir/$name" "$package")
  echo "$record" >"$bin_dir/$name.version"
  go_tool_log "built $name in $((SECONDS - t0))s"
}
