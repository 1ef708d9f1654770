#!/usr/bin/env bash
# A local PostgreSQL 15 cluster (with pgvector) for the demo and for trying things by hand.
# Tests do not use it: they start their own throwaway clusters (testkit/src/pg.rs).
#
#   scripts/pg-cluster.sh start   # initdb on first use, start, create database "zava"; prints env
#   scripts/pg-cluster.sh env     # prints DATABASE_URL etc. for a running cluster
#   scripts/pg-cluster.sh stop    # stop (data kept under $RUN_DIR/pg)
#   scripts/pg-cluster.sh destroy # stop and delete the data
#
# PG_POD_ADDRESS and PG_POD_CIDR (both or neither): also listen on that host address (the node
# bridge's, so that pods reach the database) and admit password logins from that range.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="${MCP_FLEET_RUN_DIR:-$here/.run}"
PG_BIN="${MCP_FLEET_PG_BIN:-/usr/lib/postgresql/15/bin}"
DIR="$RUN_DIR/pg"
DATA="$DIR/data"
DB="${MCP_FLEET_DB:-zava}"
POD_ADDRESS="${PG_POD_ADDRESS:-}"
POD_CIDR="${PG_POD_CIDR:-}"
log() { printf '[pg-cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port() { cat "$DIR/port"; }
password() { cat "$DIR/superuser-password"; }

print_env() {
  echo "export DATABASE_URL=postgres://postgres:$(password)@127.0.0.1:$(port)/$DB"
  echo "export PGHOST=127.0.0.1 PGPORT=$(port) PGUSER=postgres PGDATABASE=$DB PGPASSWORD=$(password)"
}

running() { [ -f "$DATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  mkdir -p "$DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/superuser-password"
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' >"$DIR/port"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$DIR"
    as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$DIR/superuser-password" -E UTF8 --locale=C >/dev/null
  fi
  local listen=127.0.0.1
  if [ -n "$POD_ADDRESS" ]; then
    listen="127.0.0.1,$POD_ADDRESS"
    grep -qF "host all all $POD_CIDR scram-sha-256" "$DATA/pg_hba.conf" ||
      echo "host all all $POD_CIDR scram-sha-256" >>"$DATA/pg_hba.conf"
  fi
  if running && [ "$(cat "$DIR/listen" 2>/dev/null)" != "$listen" ]; then
    log "restarting to listen on $listen"
    as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  fi
  if running; then
    log "already running on $listen:$(port)"
  else
    log "starting PostgreSQL on $listen:$(port)"
    echo "$listen" >"$DIR/listen"
    as_pg "$PG_BIN/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 \
      -o "-p $(port) -k $DIR -c listen_addresses=$listen -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
  fi
  if ! PGPASSWORD="$(password)" "$PG_BIN/psql" -h 127.0.0.1 -p "$(port)" -U postgres -d postgres -tAc \
       "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    PGPASSWORD="$(password)" "$PG_BIN/psql" -h 127.0.0.1 -p "$(port)" -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null
    log "created database $DB"
  fi
  print_env
}

stop() {
  if running; then
    as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    log "stopped"
  else
    log "not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  destroy) stop; rm -rf "$DIR"; log "deleted $DIR" ;;
  *) echo "usage: $0 start|stop|env|destroy" >&2; exit 2 ;;
esac
