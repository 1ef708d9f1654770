#!/usr/bin/env bash
# s3rver, a small S3-compatible server (npm package `s3rver`), for the backup tests' `s3://` round
# trip. Path-style requests; it knows one access key, S3RVER (secret S3RVER), and checks it on uploads.
#
#   scripts/s3rver.sh install              # npm install into $MCP_FLEET_CACHE/s3rver-<version> (idempotent);
#                                          # prints the s3rver path on the last line of stdout
#   scripts/s3rver.sh run [PORT] [BUCKET]  # foreground: a throwaway directory, a free (or the given) port,
#                                          # BUCKET created (default `backups`); prints `AWS_ENDPOINT=...`
#                                          # once it listens; on SIGTERM/SIGINT stops it and deletes the directory
#
# Point the server at it with AWS_ENDPOINT, AWS_ALLOW_HTTP=true, AWS_REGION=us-east-1 and
# AWS_ACCESS_KEY_ID=S3RVER / AWS_SECRET_ACCESS_KEY=S3RVER. S3RVER_ADDRESS (default 127.0.0.1) is where it listens:
# the node bridge's host address for backup Jobs running in pods.
set -euo pipefail
# shellcheck source=scripts/lib/npm-tool.sh
source "$(dirname "$0")/lib/npm-tool.sh"
# shellcheck source=scripts/lib/ports.sh
source "$(dirname "$0")/lib/ports.sh"

VERSION="${S3RVER_VERSION:-3.7.1}"
log() { printf '[s3rver %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

install() {
  npm_tool_install s3rver "$VERSION" s3rver
}

run() {
  local bin port bucket dir child stop=""
  bin="$(install | tail -n1)"
  if [ -n "${1:-}" ]; then port="$1"; else free_port; fi
  bucket="${2:-backups}"
  local address="${S3RVER_ADDRESS:-127.0.0.1}"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/s3rver-XXXXXX")"
  # Traps only set a flag and stop the child; the main flow cleans up (see control-plane.sh).
  trap 'stop=1; [ -n "${child:-}" ] && kill -TERM "$child" 2>/dev/null || true' TERM INT
  "$bin" --directory "$dir/data" --address "$address" --port "$port" --silent \
    --configure-bucket "$bucket" >"$dir.log" 2>&1 &
  child=$!
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/$address/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$child" 2>/dev/null || [ -n "$stop" ]; then
      log "s3rver did not start:"; cat "$dir.log" >&2; rm -rf "$dir" "$dir.log"; exit 1
    fi
    sleep 0.1
  done
  echo "AWS_ENDPOINT=http://$address:$port"
  wait "$child" 2>/dev/null || true
  while kill -0 "$child" 2>/dev/null; do wait "$child" 2>/dev/null || true; done
  rm -rf "$dir" "$dir.log"
}

case "${1:-}" in
  install) install ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 install | run [PORT] [BUCKET]" >&2; exit 2 ;;
esac
