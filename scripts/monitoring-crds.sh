#!/usr/bin/env bash
# Generates the Prometheus Operator CRDs the chart's optional objects need (ServiceMonitor,
# PodMonitor, PrometheusRule) from the Go module that defines them, with controller-gen built from
# its Go module — the way upstream generates them — so the chart tests install the real schemas
# into the test API server. Once per pinned version, into
# $MCP_FLEET_CACHE/monitoring-crds/<version>; prints that directory on the last line of stdout.
set -euo pipefail

PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.95.2}"
CONTROLLER_TOOLS_VERSION="${CONTROLLER_TOOLS_VERSION:-v0.23.0}"
CACHE="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
ROOT="$CACHE/monitoring-crds/$PROMETHEUS_OPERATOR_VERSION"
OUT="$ROOT/crds"
SRC="$ROOT/src"
KINDS=(servicemonitors podmonitors prometheusrules)

log() { printf '[monitoring-crds %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

generated() {
  local k
  for k in "${KINDS[@]}"; do [ -s "$OUT/monitoring.coreos.com_$k.yaml" ] || return 1; done
}

mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
flock 9
if generated; then
  log "CRDs $PROMETHEUS_OPERATOR_VERSION cached"
  echo "$OUT"
  exit 0
fi

t0=$SECONDS
mkdir -p "$SRC" "$OUT"
cat >"$SRC/go.mod" <<MOD
module mcpfleet.local/monitoring-crds

go 1.26

require (
	github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring $PROMETHEUS_OPERATOR_VERSION
	sigs.k8s.io/controller-tools $CONTROLLER_TOOLS_VERSION
)
MOD
cat >"$SRC/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
GO
log "building controller-gen $CONTROLLER_TOOLS_VERSION (a few minutes the first time)"
if ! (cd "$SRC" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$SRC/tidy.log"); then
  cat "$SRC/tidy.log" >&2
  exit 1
fi
(cd "$SRC" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$SRC/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen)
log "generating monitoring.coreos.com/v1 CRDs $PROMETHEUS_OPERATOR_VERSION"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$SRC" && ./controller-gen crd:crdVersions=v1,maxDescLen=0 \
  "paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1" "output:crd:dir=$tmp")
for k in "${KINDS[@]}"; do
  cp "$tmp/monitoring.coreos.com_$k.yaml" "$OUT/"
done
log "ready in $((SECONDS - t0))s"
echo "$OUT"
