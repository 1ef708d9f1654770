#!/usr/bin/env bash
# Builds the Kubernetes test-ground binaries from Go modules, once per pinned version:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, and the node's kubelet and
#   kube-proxy (all k8s.io/kubernetes), etcd, helm.
# Output: $MCP_FLEET_CACHE/k8s/<k8s-version>/bin. Idempotent: a second run only checks the files.
# Prints the bin directory on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/go-tool.sh
source "$here/scripts/lib/go-tool.sh"
GO_TOOL_LOG_NAME=k8s-binaries

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
ROOT="$CACHE/k8s/$K8S_VERSION"
BIN="$ROOT/bin"
SRC="$ROOT/src"
mkdir -p "$BIN" "$SRC"

log() { go_tool_log "$@"; }
have() { go_tool_have "$BIN" "$1" "$2"; }
KUBERNETES_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
staging_version="v0.${K8S_VERSION#v1.}"

build_kubernetes() {
  local cmd missing=()
  for cmd in "${KUBERNETES_CMDS[@]}"; do have "$cmd" "$K8S_VERSION" || missing+=("$cmd"); done
  if [ "${#missing[@]}" = 0 ]; then
    log "${KUBERNETES_CMDS[*]} $K8S_VERSION cached"
    return
  fi
  local dir="$SRC/kubernetes"
  mkdir -p "$dir"
  log "resolving k8s.io/kubernetes $K8S_VERSION and its staging modules at $staging_version"
  {
    echo "module mcpfleet.local/k8s-scratch"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # every k8s.io/* staging module that k8s.io/kubernetes replaces with ./staging/... is published
    # under its own path at v0.<minor>.<patch>; point the scratch module at those.
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
    local gomod
    gomod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | while read -r m; do
      case "$m" in k8s.io/sample-*) continue ;; esac
      echo "replace $m => $m $staging_version"
    done
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "${KUBERNETES_CMDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
    printf ')\n'
  } >"$dir/tools.go"
  if ! (cd "$dir" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$dir/tidy.log"); then
    cat "$dir/tidy.log" >&2
    exit 1
  fi
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in "${missing[@]}"; do
    log "building $cmd $K8S_VERSION (several minutes on 2 cores)"
    local t0=$SECONDS
    (cd "$dir" && go build -trimpath -tags tools -ldflags "$ldflags" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd")
    echo "$K8S_VERSION" >"$BIN/$cmd.version"
    log "built $cmd in $((SECONDS - t0))s"
  done
}

build_etcd() {
  # go.etcd.io/etcd/server/v3 replaces its sibling modules with relative paths, so `go install
  # module@version` refuses it; the scratch module pins the siblings to the same release instead.
  local m replaces=()
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
    replaces+=(--replace "go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION")
  done
  go_scratch_build "$BIN" etcd "$ETCD_VERSION" "$SRC/etcd" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 \
    "${replaces[@]}"
}

build_helm() {
  if have helm "$HELM_VERSION"; then log "helm $HELM_VERSION cached"; return; fi
  log "building helm $HELM_VERSION"
  local t0=$SECONDS
  local major="${HELM_VERSION%%.*}"
  GOBIN="$BIN" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" >"$BIN/helm.version"
  log "built helm in $((SECONDS - t0))s"
}

# One build at a time per version (test binaries and `make` may call this concurrently).
exec 9>"$ROOT/.lock"
flock 9
start=$SECONDS
build_etcd
build_kubernetes
build_helm
log "all binaries ready in $BIN ($((SECONDS - start))s)"
echo "$BIN"
