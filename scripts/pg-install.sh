#!/usr/bin/env bash
# Installs what the tests and the demo need from PostgreSQL, on a Debian 12 machine:
# the PostgreSQL 15 server, its development headers, and pgvector built from Debian's
# source package (suite trixie, deb-src only, so the base system is never upgraded).
# Idempotent and quick when everything is present. Needs root (or sudo) only when installing.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
CACHE="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
log() { printf '[pg-install %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# shellcheck source=scripts/lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"

apt_install "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-client-$PG_MAJOR" dpkg-dev

# The Debian package's postgresql service is never used; tests run throwaway clusters.
ext_dir="$("$PG_CONFIG" --sharedir)/extension"
if [ -f "$ext_dir/vector.control" ] && [ -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]; then
  log "pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ext_dir/vector.control") present"
  exit 0
fi

src_list=/etc/apt/sources.list.d/mcp-fleet-trixie-src.sources
if [ ! -f "$src_list" ]; then
  log "adding a deb-src (source only) entry for suite trixie"
  $SUDO tee "$src_list" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_updated=""
fi
apt_update

build="$CACHE/pgvector-src"
rm -rf "$build" && mkdir -p "$build"
log "fetching pgvector source package"
(cd "$build" && apt-get source -qq pgvector >/dev/null 2>&1)
dir="$(find "$build" -maxdepth 1 -mindepth 1 -type d -name 'pgvector-*' | head -n1)"
[ -n "$dir" ] || { log "apt-get source pgvector produced no source tree"; exit 1; }
log "building $(basename "$dir") against PostgreSQL $PG_MAJOR"
make -s -C "$dir" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
$SUDO make -s -C "$dir" PG_CONFIG="$PG_CONFIG" install >/dev/null
log "pgvector installed into $ext_dir"
