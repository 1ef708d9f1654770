# shellcheck shell=bash
# Sourced by scripts that run a Node.js tool from npm (azurite.sh, s3rver.sh).
#
#   npm_tool_install PACKAGE VERSION BIN
#
# Installs PACKAGE@VERSION into $MCP_FLEET_CACHE/PACKAGE-VERSION once (idempotent; one installer
# at a time across parallel make or test processes) and prints the path of its executable BIN on
# the last line of stdout. Progress goes to stderr.

npm_tool_install() {
  local package="$1" version="$2" bin_name="$3"
  local cache="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
  local prefix="$cache/$package-$version"
  local bin="$prefix/node_modules/.bin/$bin_name"
  say() { printf '[%s %s] %s\n' "$package" "$(date +%H:%M:%S)" "$*" >&2; }
  if [ -x "$bin" ] && [ -f "$prefix/.complete" ]; then
    say "$package $version present ($prefix)"
    echo "$bin"
    return
  fi
  command -v npm >/dev/null || { say "npm is missing: install Node.js 20+ (Debian: apt-get install nodejs npm)"; exit 1; }
  mkdir -p "$cache"
  exec 9>"$cache/.$package-install.lock"
  flock 9
  if [ -x "$bin" ] && [ -f "$prefix/.complete" ]; then
    echo "$bin"
    return
  fi
  rm -rf "$prefix"
  mkdir -p "$prefix"
  say "npm install $package@$version into $prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$package@$version" >&2
  [ -x "$bin" ] || { say "npm finished but $bin is missing"; exit 1; }
  touch "$prefix/.complete"
  echo "$bin"
}
