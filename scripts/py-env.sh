#!/usr/bin/env bash
# Creates (once per requirements file content) a Python virtualenv with the official MCP SDK for
# end-to-end tests and the demo tour. Prints the venv's python on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
req="$here/e2e/python/requirements.txt"
CACHE="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
key="$(sha256sum "$req" | cut -c1-12)"
venv="$CACHE/venv-$key"
log() { printf '[py-env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ]; then
  log "python venv ready ($venv)"
  echo "$venv/bin/python"
  exit 0
fi
rm -rf "$venv"
log "creating $venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
touch "$venv/.complete"
log "installed: $("$venv/bin/python" -m pip freeze | grep -iE '^(mcp|httpx)==' | tr '\n' ' ')"
echo "$venv/bin/python"
