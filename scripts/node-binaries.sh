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
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.8.0}"
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

build_addons() {
  go_scratch_build "$BIN" crictl "$CRI_TOOLS_VERSION" "$SRC/crictl" sigs.k8s.io/cri-tools \
    sigs.k8s.io/cri-tools/cmd/crictl --ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
  build_coredns
  go_scratch_build "$BIN" metrics-server "$METRICS_SERVER_VERSION" "$SRC/metrics-server" sigs.k8s.io/metrics-server \
    sigs.k8s.io/metrics-server/cmd/metrics-server \
    --ldflags "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
  build_traefik
  local kr=github.com/cloudnativelabs/kube-router/v2
  go_scratch_build "$BIN" kube-router "$KUBE_ROUTER_VERSION" "$SRC/kube-router" "$kr" "$kr/cmd/kube-router" \
    --ldflags "-X $kr/pkg/version.Version=$KUBE_ROUTER_VERSION"
}

# Traefik, with its ACME client's DNS-01 providers left out. Traefik's ACME support imports lego's
# factory of every DNS provider, and with it the SDKs of some 150 DNS services: 847 of a Traefik
# build's 2,495 packages, and a third of its cold build (745 s with them, 493 s without, on 2 cores
# with the modules downloaded, 2026-12-02). The ingress tests never
# ask for a certificate (nothing here reaches an ACME server), so the build replaces lego with a
# copy whose factory knows only the `exec` provider and names the others as left out; everything
# else in Traefik, the Kubernetes Ingress provider included, is its release's code.
# Traefik also replaces one of its own sub-modules with a folder of the main module, and some
# dependencies with its forks: the scratch module repeats every replace directive of its go.mod,
# with relative paths made absolute.
TRAEFIK_BUILD="$TRAEFIK_VERSION+lego-dns-exec-only"
build_traefik() {
  if go_tool_have "$BIN" traefik "$TRAEFIK_BUILD"; then go_tool_log "traefik $TRAEFIK_BUILD cached"; return; fi
  local t=github.com/traefik/traefik/v3 l=github.com/go-acme/lego/v4 tdir ldir lver r replaces=()
  tdir="$(go mod download -json "$t@$TRAEFIK_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  while read -r r; do replaces+=(--replace "${r//=> .\//=> $tdir/}"); done < <(
    awk '/^replace \(/ { inblock = 1; next } inblock && /^\)/ { inblock = 0; next }
         inblock && /=>/ { sub(/^[ \t]+/, ""); print } /^replace [^(]/ { sub(/^replace /, ""); print }' "$tdir/go.mod")
  lver="$(awk -v m="$l" '$1 == m { print $2; exit }' "$tdir/go.mod")"
  [ -n "$lver" ] || { go_tool_log "traefik $TRAEFIK_VERSION: no $l in its go.mod"; return 1; }
  ldir="$(go mod download -json "$l@$lver" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  rm -rf "$SRC/lego" && cp -r "$ldir" "$SRC/lego" && chmod -R u+w "$SRC/lego"
  rm -f "$SRC/lego/providers/dns/"*.go
  cat >"$SRC/lego/providers/dns/dns_providers.go" <<GO
// Package dns: lego's DNS-01 provider factory, cut down by mcp-fleet's scripts/node-binaries.sh.
package dns

import (
	"fmt"

	"$l/challenge"
	"$l/providers/dns/exec"
)

// NewDNSChallengeProviderByName returns the exec provider; the others are not in this build.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	if name == "exec" {
		return exec.NewDNSProvider()
	}
	return nil, fmt.Errorf("DNS challenge provider %q is not in this build of Traefik (mcp-fleet's test ground keeps only exec)", name)
}
GO
  go_scratch_build "$BIN" traefik "$TRAEFIK_VERSION" "$SRC/traefik" "$t" "$t/cmd/traefik" --record "$TRAEFIK_BUILD" \
    --ldflags "-X $t/pkg/version.Version=$TRAEFIK_VERSION" --replace "$l => $SRC/lego" "${replaces[@]}"
}

# CoreDNS with only the plugins the cluster's Corefile uses (scripts/node.sh), the way CoreDNS
# documents custom builds: a main package that registers them in plugin.cfg's order. The full
# build compiles every cloud provider's SDK and took 12 minutes on a busy 2-core machine.
COREDNS_PLUGINS=(reload ready health errors log cache kubernetes loop)
build_coredns() {
  local key
  key="$COREDNS_VERSION+$(IFS=,; echo "${COREDNS_PLUGINS[*]}")"
  if go_tool_have "$BIN" coredns "$key"; then go_tool_log "coredns $key cached"; return; fi
  local m=github.com/coredns/coredns dir main p imports="" names=""
  dir="$(go mod download -json "$m@$COREDNS_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  while IFS=: read -r p _; do
    for wanted in "${COREDNS_PLUGINS[@]}"; do
      if [ "$p" = "$wanted" ]; then
        imports+="	_ \"$m/plugin/$p\"\n"
        names+="\"$p\", "
      fi
    done
  done < <(grep -vE '^\s*(#|$)' "$dir/plugin.cfg")
  main="$(mktemp)"
  printf 'package main\n\nimport (\n\t"%s/core/dnsserver"\n\t"%s/coremain"\n%b)\n\n' "$m" "$m" "$imports" >"$main"
  printf 'func init() { dnsserver.Directives = []string{%s} }\n\nfunc main() { coremain.Run() }\n' "${names%, }" >>"$main"
  go_scratch_build "$BIN" coredns "$COREDNS_VERSION" "$SRC/coredns" "$m" "$m" --main "$main" --record "$key" \
    --ldflags "-X $m/coremain.GitCommit=$COREDNS_VERSION"
  rm -f "$main"
}

# The sandbox ("pause") container's program, from the Kubernetes source at the pinned release.
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
