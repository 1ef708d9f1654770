#!/usr/bin/env bash
# Azurite, Microsoft's Azure Storage emulator (npm package `azurite`), for the backup tests and for
# trying `backup --to az://...` by hand. Blob service only, on 127.0.0.1.
#
#   scripts/azurite.sh install        # npm install into $MCP_FLEET_CACHE/azurite-<version> (idempotent);
#                                     # prints the azurite-blob path on the last line of stdout
#   scripts/azurite.sh run [PORT] [CONTAINER...]
#                                     # foreground: a throwaway workspace, a free (or the given) port,
#                                     # the containers created (default `backups`); prints
#                                     # `AZURITE_BLOB_STORAGE_URL=...` once ready; on SIGTERM/SIGINT
#                                     # stops it and deletes the workspace
#
# The emulator's account is the well-known `devstoreaccount1` with its published key; point the
# server at it with AZURE_STORAGE_USE_EMULATOR=true and AZURITE_BLOB_STORAGE_URL.
set -euo pipefail
# shellcheck source=scripts/lib/npm-tool.sh
source "$(dirname "$0")/lib/npm-tool.sh"
# shellcheck source=scripts/lib/ports.sh
source "$(dirname "$0")/lib/ports.sh"

VERSION="${AZURITE_VERSION:-3.37.0}"
log() { printf '[azurite %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

install() {
  npm_tool_install azurite "$VERSION" azurite-blob
}

# Creates a blob container with a Shared Key request (Node's crypto; no Azure CLI needed).
create_container() {
  node - "$1" "$2" <<'JS'
const http = require("http"), crypto = require("crypto");
const [port, container] = process.argv.slice(2);
// The emulator's published, well-known account and key.
const account = "devstoreaccount1";
const key = Buffer.from("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==", "base64");
const date = new Date().toUTCString(), version = "2021-08-06", path = `/${account}/${container}`;
const toSign = ["PUT", "", "", "", "", "", "", "", "", "", "", "",
  `x-ms-date:${date}\nx-ms-version:${version}`, `/${account}${path}\nrestype:container`].join("\n");
const sig = crypto.createHmac("sha256", key).update(toSign, "utf8").digest("base64");
const req = http.request({ host: "127.0.0.1", port, method: "PUT", path: `${path}?restype=container`,
  headers: { "x-ms-date": date, "x-ms-version": version, "Content-Length": 0,
             Authorization: `SharedKey ${account}:${sig}` } }, (res) => {
  if (res.statusCode === 201 || res.statusCode === 409) process.exit(0);
  console.error(`creating container ${container}: HTTP ${res.statusCode}`);
  res.pipe(process.stderr);
  res.on("end", () => process.exit(1));
});
req.on("error", (e) => { console.error(e.message); process.exit(1); });
req.end();
JS
}

run() {
  local bin port ws child stop="" c
  bin="$(install | tail -n1)"
  if [ -n "${1:-}" ]; then port="$1"; else free_port; fi
  shift || true
  [ "$#" -gt 0 ] || set -- backups
  ws="$(mktemp -d "${TMPDIR:-/tmp}/azurite-XXXXXX")"
  # Traps only set a flag and stop the child; the main flow cleans up (see control-plane.sh).
  trap 'stop=1; [ -n "${child:-}" ] && kill -TERM "$child" 2>/dev/null || true' TERM INT
  "$bin" --blobHost 127.0.0.1 --blobPort "$port" --location "$ws" --silent --skipApiVersionCheck \
    --loose --disableProductStyleUrl --disableTelemetry >"$ws.log" 2>&1 &
  child=$!
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$child" 2>/dev/null || [ -n "$stop" ]; then
      log "azurite did not start:"; cat "$ws.log" >&2; rm -rf "$ws" "$ws.log"; exit 1
    fi
    sleep 0.1
  done
  for c in "$@"; do
    create_container "$port" "$c" || { kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; rm -rf "$ws" "$ws.log"; exit 1; }
  done
  echo "AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$port"
  wait "$child" 2>/dev/null || true
  while kill -0 "$child" 2>/dev/null; do wait "$child" 2>/dev/null || true; done
  rm -rf "$ws" "$ws.log"
}

case "${1:-}" in
  install) install ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 install | run [PORT] [CONTAINER...]" >&2; exit 2 ;;
esac
