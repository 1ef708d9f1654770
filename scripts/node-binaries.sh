#!/usr/bin/env bash
# Builds what the test ground's node runs beside kubelet and kube-proxy (those two come from
# scripts/k8s-binaries.sh, the same k8s.io/kubernetes module as the control plane), once per
# pinned version, from the Go module proxy and Debian's packages:
#   containerd, containerd-shim-runc-v2, ctr   github.com/containerd/containerd/v2
#   bridge, host-local, loopback, portmap      github.com/containernetworking/plugins (CNI)
#   crictl                                     sigs.k8s.io/cri-tools
#   coredns                                    github.com/coredns/coredns (cluster DNS)
#   metrics-server                             sigs.k8s.io/metrics-server (HPA on real CPU)
#   traefik                                    github.com/traefik/traefik/v3 (the ingress controller)
#   kube-router                                github.com/cloudnativelabs/kube-router/v2 (NetworkPolicy)
#   pause                                      build/pause/linux/pause.c of k8s.io/kubernetes (gcc, static)
#   runc, iptables, conntrack, buildah, mmdebstrap from Debian's packages.
# Output: $MCP_FLEET_CACHE/node/bin (the CNI plugins in bin/cni). Idempotent: a second run only
# checks the files. Prints the bin directory on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/go-tool.sh
source "$here/scripts/lib/go-tool.sh"
# shellcheck source=scripts/lib/apt.sh
source "$here/scripts/lib/apt.sh"
GO_TOOL_LOG_NAME=node-binaries

CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.10.0}"
CRI_TOOLS_VERSION="${CRI_TOOLS_VERSION:-v1.37.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.9.0}"
# v3.7 needs modules the module proxy does not serve (its go-http-auth fork, lego v5 DNS providers).
TRAEFIK_VERSION="${TRAEFIK_VERSION:-v3.6.12}"
# NetworkPolicy, enforced by kube-router's firewall alone (iptables and ipsets). The other
# implementation the module proxy serves, kube-network-policies, needs the kernel's nft "queue"
# expression, which this kernel lacks (CONFIG_NFT_QUEUE). The advisory against v2.1.0
# (GHSA-phqm-jgc3-qf8g) concerns its service proxy, which the node never runs.
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
CACHE="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
ROOT="$CACHE/node"
BIN="$ROOT/bin"
SRC="$ROOT/src"
mkdir -p "$BIN/cni" "$SRC"

export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

build_containerd() {
  local m=github.com/containerd/containerd/v2 cmd
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    go_scratch_build "$BIN" "$cmd" "$CONTAINERD_VERSION" "$SRC/containerd" "$m" "$m/cmd/$cmd" \
      --tags "no_btrfs no_devmapper no_zfs" \
      --ldflags "-X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Revision=module-proxy"
  done
}

build_cni() {
  local m=github.com/containernetworking/plugins p
  for p in main/bridge ipam/host-local main/loopback meta/portmap; do
    go_scratch_build "$BIN/cni" "${p#*/}" "$CNI_PLUGINS_VERSION" "$SRC/cni" "$m" "$m/plugins/$p" \
      --ldflags "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION"
  done
}

# The add-ons (crictl, CoreDNS, metrics-server, Traefik, kube-router) are built from ONE scratch
# module, so one version of each shared library is chosen for all of them (the highest any asks
# for) and Go compiles it once. Built apart, each compiled its own k8s.io/api, apimachinery,
# client-go (v0.29 to v0.37) and gRPC: about 200 MB of Go source, against 110 MB together. The
# k8s.io libraries are pinned to ADDONS_K8S_LIBS (CoreDNS's own version, the newest the add-ons
# ask for); metrics-server, Traefik and kube-router are built against it, newer than they pin.
ADDONS_K8S_LIBS="${ADDONS_K8S_LIBS:-v0.37.1}"
ADDONS_K8S_MODULES=(api apiextensions-apiserver apimachinery apiserver client-go component-base kms)
COREDNS_PLUGINS=(reload ready health errors log cache kubernetes loop)
TRAEFIK=github.com/traefik/traefik/v3
LEGO=github.com/go-acme/lego/v4
KUBE_ROUTER=github.com/cloudnativelabs/kube-router/v2

# What each add-on binary records in NAME.version: its own version, then what else its build
# depends on (scripts/images.sh accepts "<version>+..." for an image of <version>).
addon_records() {
  local libs="k8s.io-$ADDONS_K8S_LIBS"
  printf '%s\n' \
    "crictl $CRI_TOOLS_VERSION+$libs" \
    "coredns $COREDNS_VERSION+$(IFS=,; echo "${COREDNS_PLUGINS[*]}")+$libs" \
    "metrics-server $METRICS_SERVER_VERSION+$libs" \
    "traefik $TRAEFIK_VERSION+lego-dns-exec-only+$libs" \
    "kube-router $KUBE_ROUTER_VERSION+$libs"
}

build_addons() {
  local name record missing=()
  while read -r name record; do go_tool_have "$BIN" "$name" "$record" || missing+=("$name"); done < <(addon_records)
  if [ "${#missing[@]}" = 0 ]; then go_tool_log "crictl, coredns, metrics-server, traefik, kube-router cached"; return; fi
  local dir="$SRC/addons" t0=$SECONDS m r
  rm -rf "$dir" && mkdir -p "$dir/coredns"
  go_tool_log "building crictl, coredns, metrics-server, traefik, kube-router in one module (k8s.io $ADDONS_K8S_LIBS; ${missing[*]} missing or out of date)"
  write_coredns_main "$dir/coredns/main.go"
  cut_lego_dns_providers "$SRC/lego"
  {
    printf 'module mcpfleet.local/addons-scratch\n\ngo 1.26\n\nrequire (\n'
    printf '\t%s %s\n' sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" github.com/coredns/coredns "$COREDNS_VERSION" \
      sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION" "$TRAEFIK" "$TRAEFIK_VERSION" \
      "$KUBE_ROUTER" "$KUBE_ROUTER_VERSION"
    for m in "${ADDONS_K8S_MODULES[@]}"; do printf '\tk8s.io/%s %s\n' "$m" "$ADDONS_K8S_LIBS"; done
    printf ')\n\nreplace %s => %s\n' "$LEGO" "$SRC/lego"
    # Traefik's own replace directives (forks of a few libraries); relative ones point into its module.
    while read -r r; do printf 'replace %s\n' "${r//=> .\//=> $(module_dir "$TRAEFIK@$TRAEFIK_VERSION")/}"; done < <(
      awk '/^replace \(/ { inblock = 1; next } inblock && /^\)/ { inblock = 0; next }
           inblock && /=>/ { sub(/^[ \t]+/, ""); print } /^replace [^(]/ { sub(/^replace /, ""); print }' \
        "$(module_dir "$TRAEFIK@$TRAEFIK_VERSION")/go.mod")
  } >"$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n' >"$dir/tools.go"
  printf '\t_ "%s"\n' sigs.k8s.io/cri-tools/cmd/crictl sigs.k8s.io/metrics-server/cmd/metrics-server \
    "$TRAEFIK/cmd/traefik" "$KUBE_ROUTER/cmd/kube-router" >>"$dir/tools.go"
  printf ')\n' >>"$dir/tools.go"
  (cd "$dir" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$dir/tidy.log") || { cat "$dir/tidy.log" >&2; return 1; }
  # One `go build` for the five: their links overlap the compiles. -X applies per main package.
  local ldflags=(-ldflags "-s -w"
    -ldflags "sigs.k8s.io/cri-tools/cmd/crictl=-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
    -ldflags "./coredns=-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
    -ldflags "sigs.k8s.io/metrics-server/cmd/metrics-server=-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
    -ldflags "$TRAEFIK/cmd/traefik=-s -w -X $TRAEFIK/pkg/version.Version=$TRAEFIK_VERSION"
    -ldflags "$KUBE_ROUTER/cmd/kube-router=-s -w -X $KUBE_ROUTER/pkg/version.Version=$KUBE_ROUTER_VERSION")
  (cd "$dir" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath "${ldflags[@]}" -o "$BIN/" \
    sigs.k8s.io/cri-tools/cmd/crictl ./coredns sigs.k8s.io/metrics-server/cmd/metrics-server \
    "$TRAEFIK/cmd/traefik" "$KUBE_ROUTER/cmd/kube-router")
  while read -r name record; do echo "$record" >"$BIN/$name.version"; done < <(addon_records)
  go_tool_log "built crictl, coredns, metrics-server, traefik, kube-router in $((SECONDS - t0))s"
}

module_dir() { go mod download -json "$1" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p'; }

# lego's DNS-01 providers import the SDKs of some 150 DNS services; Traefik's ACME (unused here) keeps
# only the exec provider in this build. DIR gets a copy of lego at the version Traefik requires.
cut_lego_dns_providers() {
  local dir="$1" tdir lver
  tdir="$(module_dir "$TRAEFIK@$TRAEFIK_VERSION")"
  lver="$(awk -v m="$LEGO" '$1 == m { print $2; exit }' "$tdir/go.mod")"
  [ -n "$lver" ] || { go_tool_log "traefik $TRAEFIK_VERSION: no $LEGO in its go.mod"; return 1; }
  rm -rf "$dir" && cp -r "$(module_dir "$LEGO@$lver")" "$dir" && chmod -R u+w "$dir"
  rm -f "$dir/providers/dns/"*.go
  cat >"$dir/providers/dns/dns_providers.go" <<GO
// Package dns: lego's DNS-01 provider factory, cut down by mcp-fleet's scripts/node-binaries.sh.
package dns

import (
	"fmt"

	"$LEGO/challenge"
	"$LEGO/providers/dns/exec"
)

// NewDNSChallengeProviderByName returns the exec provider; the others are not in this build.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	if name == "exec" {
		return exec.NewDNSProvider()
	}
	return nil, fmt.Errorf("DNS challenge provider %q is not in this build of Traefik (mcp-fleet's test ground keeps only exec)", name)
}
GO
}

# CoreDNS with only the plugins the node's Corefile uses (its plugin.cfg order is the directive order).
write_coredns_main() {
  local m=github.com/coredns/coredns dir p wanted imports="" names=""
  dir="$(module_dir "$m@$COREDNS_VERSION")"
  while IFS=: read -r p _; do
    for wanted in "${COREDNS_PLUGINS[@]}"; do
      if [ "$p" = "$wanted" ]; then
        imports+="	_ \"$m/plugin/$p\"\n"
        names+="\"$p\", "
      fi
    done
  done < <(grep -vE '^\s*(#|$)' "$dir/plugin.cfg")
  printf 'package main\n\nimport (\n\t"%s/core/dnsserver"\n\t"%s/coremain"\n%b)\n\n' "$m" "$m" "$imports" >"$1"
  printf 'func init() { dnsserver.Directives = []string{%s} }\n\nfunc main() { coremain.Run() }\n' "${names%, }" >>"$1"
}

build_pause() {
  if go_tool_have "$BIN" pause "$K8S_VERSION"; then go_tool_log "pause $K8S_VERSION cached"; return; fi
  local dir
  dir="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  go_tool_log "building pause from k8s.io/kubernetes $K8S_VERSION build/pause/linux/pause.c"
  gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION" -o "$BIN/pause" "$dir/build/pause/linux/pause.c"
  strip "$BIN/pause"
  echo "$K8S_VERSION" >"$BIN/pause.version"
}

# One build at a time (test binaries and `make` may call this concurrently).
exec 9>"$ROOT/.lock"
flock 9
start=$SECONDS
apt_install runc iptables ipset conntrack buildah mmdebstrap
build_pause
build_containerd
build_cni
build_addons
go_tool_log "all node binaries ready in $BIN ($((SECONDS - start))s)"
echo "$BIN"
