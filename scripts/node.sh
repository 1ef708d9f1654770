#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine, for the tests and the demo: the control plane of
# scripts/control-plane.sh (plus kube-scheduler) listening on the node bridge's host address, and
# a node: containerd 2 with runc and the CNI bridge plugin, kubelet, kube-proxy (iptables mode).
# Add-ons run as pods from images built here (scripts/images.sh): CoreDNS (Service names resolve in
# pods), metrics-server (HPAs see real CPU) and Traefik (serves Ingress objects; host network,
# reachable on 127.0.0.1:$INGRESS_PORT).
#
#   scripts/node.sh run <dir>   foreground: start, wait until ready, print the env file's path; stop
#                               everything on stdin EOF, SIGTERM or SIGINT (stdin on /dev/null:
#                               on a signal only)
#   scripts/node.sh up [dir]    `run` in the background; returns once ready (make cluster-up)
#   scripts/node.sh down [dir]  stop what `up` started (make cluster-down)
#   scripts/node.sh cleanup     remove what an earlier run left behind (every start does this first)
#
# [dir] defaults to .run/node. Files in <dir>: env (KUBECONFIG, NODE_ADDRESS, INGRESS_PORT, ... as
# shell assignments), kubeconfig (admin), ready, logs/, cp/ (the control plane's run directory),
# and the node's state (containerd/, kubelet/, cni/).
#
# Network rules of this workplace, enforced here:
# - pod (10.244.0.0/24) and Service (10.0.0.0/16) addresses exist only on the bridges mcpf0 and
#   mcpf-svc (an empty bridge: the dead end for Service traffic kube-proxy does not translate);
# - a mangle FORWARD chain drops every forwarded packet that enters or leaves mcpf0 from or to any
#   other interface, so nothing a pod sends is routed off the machine, and nothing is masqueraded
#   out (the CNI plugin's ipMasq is off);
# - host services that pods need listen on the bridge's host address $NODE_ADDRESS.
# One node per machine (the bridge, cgroups and iptables are machine-wide): a lock in
# /run/mcp-fleet-node, the teardown of any earlier run before the start, and on exit the teardown
# of processes, mounts, cgroups, iptables chains, bridges and changed sysctls.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/ports.sh
source "$here/scripts/lib/ports.sh"
# shellcheck source=scripts/lib/supervise.sh
source "$here/scripts/lib/supervise.sh"

POD_CIDR=10.244.0.0/24
NODE_ADDRESS=10.244.0.1
SERVICE_CIDR=10.0.0.0/16
DNS_IP=10.0.0.10
BRIDGE=mcpf0
SVC_BRIDGE=mcpf-svc
NODE_NAME=mcp-fleet-node
CGROUP_ROOT=mcp-fleet
CLUSTER_DOMAIN=cluster.local
STATE=/run/mcp-fleet-node
TIMEOUT="${NODE_TIMEOUT:-240}" # seconds to become ready
# Machine-wide settings kubelet, kube-proxy and the bridge plugin change; restored on teardown.
SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Teardown: everything a run adds, found by the run directories recorded in $STATE/runs, by the
# fixed names above, and by processes whose command line names a recorded run directory.

sysctl_path() { echo "/proc/sys/${1//.//}"; }

save_sysctls() {
  [ -f "$STATE/sysctl.orig" ] && return # an unfinished run's originals win
  local k
  for k in "${SYSCTLS[@]}"; do
    [ -e "$(sysctl_path "$k")" ] && echo "$k=$(cat "$(sysctl_path "$k")")"
  done >"$STATE/sysctl.orig.tmp"
  mv "$STATE/sysctl.orig.tmp" "$STATE/sysctl.orig"
}

restore_sysctls() {
  [ -f "$STATE/sysctl.orig" ] || return 0
  local k v
  while IFS='=' read -r k v; do
    if [ -n "$k" ]; then echo "$v" >"$(sysctl_path "$k")" 2>/dev/null || true; fi
  done <"$STATE/sysctl.orig"
  rm -f "$STATE/sysctl.orig"
}

# The processes of a run in directory $1, by the paths their command lines name (containerd's
# shims outlive containerd; after a SIGKILL of this script, everything may be left). Not this
# script nor what started it, whose command lines name the directory itself only.
pids_of_run() {
  local p cmd
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" != "$$" ] || continue
    cmd="$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" || continue
    case "$cmd" in
      *"$1/containerd/"* | *"$1/kubelet/"* | *"$1/kube-proxy.yaml"* | *"$1/cp/"* | *"$1/cp "*) echo "${p#/proc/}" ;;
    esac
  done
  return 0
}

kill_cgroup_procs() {
  local d
  for d in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [ -d "$d" ] || continue
    # shellcheck disable=SC2038 # the files hold pids, one per line
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
}

remove_cgroups() {
  local d
  for _ in 1 2 3 4 5; do
    kill_cgroup_procs
    for d in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    compgen -G "/sys/fs/cgroup/*/$CGROUP_ROOT" >/dev/null || return 0
    sleep 0.2
  done
  log "warning: cgroups left behind: $(compgen -G "/sys/fs/cgroup/*/$CGROUP_ROOT" | tr '\n' ' ')"
}

unmount_under() {
  local m
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: cannot unmount $m"
  done
}

# Rules in built-in chains that jump to chains named $2* (in table $1 of iptables or ip6tables $3),
# then those chains.
remove_chains() {
  local table="$1" prefix="$2" ipt="$3" rule chain
  "$ipt" -w -t "$table" -S 2>/dev/null | awk -v p="-j $prefix" '$1 == "-A" && $2 ~ /^[A-Z]+$/ && index($0, p)' |
    while read -r rule; do
      eval "$ipt -w -t $table -D ${rule#-A }" 2>/dev/null || true
    done
  for chain in $("$ipt" -w -t "$table" -S 2>/dev/null | awk -v p="^$prefix" '$1 == "-N" && $2 ~ p {print $2}'); do
    "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
  done
  for chain in $("$ipt" -w -t "$table" -S 2>/dev/null | awk -v p="^$prefix" '$1 == "-N" && $2 ~ p {print $2}'); do
    "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
  done
}

cleanup() {
  mkdir -p "$STATE"
  local dir pid t ipt link set
  if [ -f "$STATE/runs" ]; then
    while read -r dir; do
      [ -n "$dir" ] || continue
      for pid in $(pids_of_run "$dir"); do kill -KILL "$pid" 2>/dev/null || true; done
      kill_cgroup_procs
      unmount_under "$dir"
      rm -rf "$dir/containerd" "$dir/kubelet" "$dir/cni" "$dir/pod-logs"
    done <"$STATE/runs"
  fi
  remove_cgroups
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do
      remove_chains "$t" KUBE- "$ipt"
      remove_chains "$t" MCPF- "$ipt"
    done
  done
  # kube-router's ipsets, once no rule refers to them.
  if command -v ipset >/dev/null; then
    for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router)'); do ipset destroy "$set" 2>/dev/null || true; done
  fi
  for link in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  ip link del "$SVC_BRIDGE" 2>/dev/null || true
  command -v conntrack >/dev/null && {
    conntrack -D -s "$POD_CIDR" >/dev/null 2>&1 || true
    conntrack -D -d "$POD_CIDR" >/dev/null 2>&1 || true
  }
  # libcni caches each pod's result under /var/lib/cni/results, whatever the config says.
  rm -f /var/lib/cni/results/mcp-fleet-* 2>/dev/null || true
  if [ -f "$STATE/made-var-lib-cni" ]; then
    rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
    rm -f "$STATE/made-var-lib-cni"
  fi
  rm -rf "$STATE/s"
  restore_sysctls
  rm -f "$STATE/runs"
}

# ---------------------------------------------------------------------------------------------
# Start-up

# The machine-wide lock, held on descriptor 8 for the life of this script, with this script's pid in
# $STATE/owner. A lock whose owner is gone is held by processes of a killed run that inherited it
# (containerd's shims): they are killed, since nothing else opens that file.
take_lock() { # seconds to wait for a live owner
  mkdir -p "$STATE"
  exec 8>"$STATE/lock"
  if ! flock -n 8; then
    local owner f
    owner="$(cat "$STATE/owner" 2>/dev/null || true)"
    if [ -n "$owner" ] && [ "$owner" != $$ ] && tr '\0' ' ' <"/proc/$owner/cmdline" 2>/dev/null | grep -q 'node.sh run'; then
      log "another node runs on this machine (pid $owner): waiting up to ${1}s for it to stop"
      flock -w "$1" 8 || die "another node still runs (pid $owner): stop it first (make cluster-down, or its test run)"
    else
      log "the lock outlived its node: stopping the processes of a killed run that still hold it"
      for f in /proc/[0-9]*/fd/*; do
        [ "$(readlink "$f" 2>/dev/null)" = "$STATE/lock" ] || continue
        f="${f#/proc/}"
        [ "${f%%/*}" = $$ ] || kill -KILL "${f%%/*}" 2>/dev/null || true
      done
      flock -w 10 8 || die "cannot take $STATE/lock"
    fi
  fi
  echo $$ >"$STATE/owner"
}

ensure_host_tools() {
  # shellcheck source=scripts/lib/apt.sh
  source "$here/scripts/lib/apt.sh"
  apt_install runc iptables ipset conntrack openssl
}

setup_network() {
  echo 1 >"$(sysctl_path net.ipv4.ip_forward)"
  echo 1 >"$(sysctl_path net.bridge.bridge-nf-call-iptables)" 2>/dev/null || true
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_ADDRESS/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  ip link add "$SVC_BRIDGE" type bridge
  ip link set "$SVC_BRIDGE" up
  ip route add "$SERVICE_CIDR" dev "$SVC_BRIDGE" src "$NODE_ADDRESS"
  # mangle FORWARD runs before filter FORWARD, where kube-proxy's accept rules live.
  iptables -w -t mangle -N MCPF-GUARD
  iptables -w -t mangle -A MCPF-GUARD -i "$BRIDGE" -o "$BRIDGE" -j RETURN
  # A pod's packet to a Service address that kube-proxy did not rewrite (the Service has no
  # endpoints, as the API server's has while it restarts) heads for the Service bridge, which has
  # no ports. Refuse it in the filter table (REJECT exists only there) as kube-proxy would, so
  # the client hears "refused" at once instead of hanging on SYN retries.
  iptables -w -t mangle -A MCPF-GUARD -i "$BRIDGE" -o "$SVC_BRIDGE" -j RETURN
  iptables -w -N MCPF-SVC-REJECT
  iptables -w -A MCPF-SVC-REJECT -i "$BRIDGE" -o "$SVC_BRIDGE" -p tcp -j REJECT --reject-with tcp-reset
  iptables -w -A MCPF-SVC-REJECT -i "$BRIDGE" -o "$SVC_BRIDGE" -j REJECT
  iptables -w -I FORWARD 1 -j MCPF-SVC-REJECT
  iptables -w -t mangle -A MCPF-GUARD -i "$BRIDGE" -j DROP
  iptables -w -t mangle -A MCPF-GUARD -o "$BRIDGE" -j DROP
  iptables -w -t mangle -A MCPF-GUARD -i "$SVC_BRIDGE" -j DROP
  iptables -w -t mangle -A MCPF-GUARD -o "$SVC_BRIDGE" -j DROP
  iptables -w -t mangle -I FORWARD 1 -j MCPF-GUARD
}

declare -A pids=()
stop_order=(kube-router kube-proxy kubelet containerd)
stopping=""
signalled=""

start_component() { # name argv...
  local name="$1"
  shift
  # 8>&-: the lock's descriptor must not outlive this script in containerd's shims.
  setpriv --pdeathsig KILL -- "$@" >"$run_dir/logs/$name.log" 2>&1 </dev/null 8>&- &
  pids[$name]=$!
}

check_components() { components_alive; }

kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$cp_dir/kubeconfig" --request-timeout 10s "$@"; }
crictl() { "$NODE_BIN/crictl" --runtime-endpoint "unix://$sock" --timeout 30s "$@"; }

write_containerd_config() {
  local c="$run_dir/containerd"
  mkdir -p "$c/root" "$c/state" "$c/certs.d/_default" "$run_dir/cni/net.d" "$run_dir/cni/ipam"
  # Pulls fail at once: every registry host resolves to a closed port on loopback.
  cat >"$c/certs.d/_default/hosts.toml" <<'TOML'
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
TOML
  cat >"$c/config.toml" <<TOML
# containerd $CONTAINERD_VERSION. version = 4 would silently ignore [grpc].address.
version = 3
root = "$c/root"
state = "$c/state"
oom_score = 0
imports = []

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins.'io.containerd.cri.v1.runtime']
  # root here lacks CAP_SYS_RESOURCE: without this, runc fails to lower a container's oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '$RUNC'
        Root = '$c/runc'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['$NODE_BIN/cni']
    conf_dir = '$run_dir/cni/net.d'
    max_conf_num = 1

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '$PAUSE_IMAGE'
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '$c/certs.d'

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = '127.0.0.1'

[plugins.'io.containerd.internal.v1.opt']
  path = '$c/opt'

# A shim's socket path is this folder plus 65 characters, and must stay under 108.
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = '$STATE/s'

[plugins.'io.containerd.nri.v1.nri']
  disable = true
TOML
  cat >"$run_dir/cni/net.d/10-mcp-fleet.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "mcp-fleet",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$run_dir/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_ADDRESS"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}
  ]
}
JSON
}

# kubelet puts every pod under /$CGROUP_ROOT of each cgroup v1 hierarchy, and wants it to exist.
make_cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    mkdir -p "$h$CGROUP_ROOT"
    if [ -f "$h/cpuset.cpus" ]; then # a new cpuset is empty: give it its parent's CPUs and memory nodes
      cat "$h/cpuset.cpus" >"$h$CGROUP_ROOT/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h$CGROUP_ROOT/cpuset.mems"
    fi
  done
}

write_kubelet_config() {
  local k="$run_dir/kubelet" pki="$cp_dir/pki"
  mkdir -p "$k/root" "$run_dir/pod-logs"
  # Pods get CoreDNS and the cluster's search path only: no host resolver, so no name leads off
  # the machine.
  : >"$k/resolv.conf"
  cat >"$k/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_ADDRESS
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$sock
# The kernel mounts cgroup v1 and there is no systemd.
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
# root here lacks CAP_SYS_RESOURCE: a negative score cannot be set.
oomScoreAdj: 0
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $k/resolv.conf
podLogsDir: $run_dir/pod-logs
serializeImagePulls: false
# A busy 2-core test machine: evict only when truly out of room, never collect our local images.
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
nodeStatusUpdateFrequency: 4s
shutdownGracePeriod: 0s
YAML
}

# NetworkPolicy, enforced for real by kube-router's firewall alone (no routing, no service proxy:
# the bridge CNI and kube-proxy do those): iptables chains per pod that a policy selects, on the
# FORWARD path (pod to pod, pod to Service) and on INPUT/OUTPUT (pod to node, node to pod), with
# ipsets of the peers. It lets the node's own address reach local pods (the kubelet's probes; here
# also Traefik, on the host network).
start_kube_router() {
  start_component kube-router "$NODE_BIN/kube-router" --kubeconfig "$cp_dir/kube-router.kubeconfig" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --hostname-override="$NODE_NAME" --service-cluster-ip-range="$SERVICE_CIDR" \
    --health-port=0 --iptables-sync-period=1m --v=1
}

write_kube_proxy_config() {
  cat >"$run_dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $cp_dir/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_ADDRESS
healthzBindAddress: 127.0.0.1:$proxy_healthz_port
metricsBindAddress: 127.0.0.1:$proxy_metrics_port
# root here lacks CAP_SYS_RESOURCE.
oomScoreAdj: 0
# 0: leave the machine's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
# NodePorts on the bridge address only; localhost NodePorts would need route_localnet.
nodePortAddresses: [$NODE_ADDRESS/32]
iptables: {localhostNodePorts: false, masqueradeAll: false, syncPeriod: 30s, minSyncPeriod: 0s}
YAML
}

import_images() { # all at once: they share no layers, and the biggest one dominates
  local ref archive n=0 failed=0 importing=()
  while IFS=$'\t' read -r ref archive _; do
    [ -n "$ref" ] || continue
    "$NODE_BIN/ctr" --address "$sock" -n k8s.io images import "$archive" >"$run_dir/logs/import-$n.log" 2>&1 8>&- &
    importing+=("$!:$ref")
    n=$((n + 1))
  done <"$IMAGES_INDEX"
  for ref in "${importing[@]}"; do
    wait "${ref%%:*}" || { log "error: importing ${ref#*:} failed"; failed=1; }
  done
  [ "$failed" = 0 ] || die "image import failed (logs: $run_dir/logs/import-*.log)"
  log "imported $n images into containerd"
}

image_ref() { # name: the ref in the images index whose repository ends in /name
  awk -F'\t' -v n="$1" '{ split($1, a, ":"); r = a[1]; sub(/.*\//, "", r); if (r == n) { print $1; exit } }' "$IMAGES_INDEX"
}

node_ready() {
  [ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

deployment_available() { # namespace name
  [ "$(kubectl -n "$1" get deployment "$2" -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" = True ]
}

apiservice_available() {
  [ "$(kubectl get apiservice "$1" -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" = True ]
}

run() {
  run_dir="$1"
  mkdir -p "$run_dir"
  run_dir="$(cd "$run_dir" && pwd)"
  [ "$(id -u)" = 0 ] || die "the node needs root (network namespaces, cgroups, iptables, mounts)"
  [ -d /sys/fs/cgroup/cpu ] || die "expected cgroup v1 controllers under /sys/fs/cgroup"
  local t0=$SECONDS
  ensure_host_tools
  K8S_BIN="${MCP_FLEET_K8S_BIN:-$("$here/scripts/k8s-binaries.sh" | tail -n1)}"
  NODE_BIN="${MCP_FLEET_NODE_BIN:-$("$here/scripts/node-binaries.sh" | tail -n1)}"
  IMAGES_INDEX="${MCP_FLEET_IMAGES_INDEX:-$("$here/scripts/images.sh" addons | tail -n1)}"
  CONTAINERD_VERSION="$(cat "$NODE_BIN/containerd.version")"
  RUNC="$(command -v runc)"
  PAUSE_IMAGE="$(image_ref pause)"
  [ -n "$PAUSE_IMAGE" ] || die "no pause image in $IMAGES_INDEX (run scripts/images.sh)"
  local b
  for b in kubelet kube-proxy kube-scheduler kubectl; do [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b is missing"; done

  take_lock "$TIMEOUT"
  cleanup
  save_sysctls
  [ -e /var/lib/cni ] || touch "$STATE/made-var-lib-cni"
  echo "$run_dir" >>"$STATE/runs"
  rm -rf "$run_dir/logs" "$run_dir/env" "$run_dir/ready"
  mkdir -p "$run_dir/logs"
  echo $$ >"$run_dir/run.pid"
  sock="$run_dir/containerd/containerd.sock"
  cp_dir="$run_dir/cp"
  trap stop_all EXIT
  trap 'signalled=1' TERM INT

  setup_network
  log "bridge $BRIDGE $NODE_ADDRESS/${POD_CIDR#*/}, Services $SERVICE_CIDR on $SVC_BRIDGE, forwarding off the bridge dropped"

  # The control plane, on the bridge address so that pods reach the API server.
  mkdir -p "$cp_dir"
  CONTROL_PLANE_ADDRESS="$NODE_ADDRESS" CONTROL_PLANE_NODE=1 CONTROL_PLANE_NODE_NAME="$NODE_NAME" \
    MCP_FLEET_K8S_BIN="$K8S_BIN" setpriv --pdeathsig TERM -- \
    bash "$here/scripts/control-plane.sh" run "$cp_dir" </dev/null >"$run_dir/logs/control-plane.log" 2>&1 8>&- &
  pids[control-plane]=$!
  free_port && kubelet_healthz_port=$port
  free_port && proxy_healthz_port=$port
  free_port && proxy_metrics_port=$port
  free_port && INGRESS_PORT=$port
  free_port && traefik_admin_port=$port

  write_containerd_config
  start_component containerd "$NODE_BIN/containerd" --config "$run_dir/containerd/config.toml"
  wait_until "containerd on $sock" "$NODE_BIN/ctr" --address "$sock" version
  import_images
  wait_until "the control plane" test -f "$cp_dir/ready"
  log "control plane ready after $((SECONDS - t0))s"
  ln -sf "$cp_dir/kubeconfig" "$run_dir/kubeconfig"

  write_kubelet_config
  make_cgroup_root
  start_component kubelet "$K8S_BIN/kubelet" --config "$run_dir/kubelet/config.yaml" \
    --kubeconfig "$cp_dir/kubelet.kubeconfig" --root-dir "$run_dir/kubelet/root" \
    --cert-dir "$run_dir/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_ADDRESS" --v 1
  write_kube_proxy_config
  start_component kube-proxy "$K8S_BIN/kube-proxy" --config "$run_dir/kube-proxy.yaml" --v 1
  wait_until "node $NODE_NAME Ready" node_ready
  log "node $NODE_NAME Ready after $((SECONDS - t0))s"

  addons | kubectl apply --server-side --field-manager mcp-fleet-node -f - >/dev/null
  wait_until "CoreDNS" deployment_available kube-system coredns
  wait_until "Traefik" deployment_available kube-system traefik
  wait_until "metrics-server" deployment_available kube-system metrics-server
  wait_until "the metrics API" apiservice_available v1beta1.metrics.k8s.io
  start_kube_router
  wait_until "kube-router's firewall chains" iptables -w -S KUBE-ROUTER-FORWARD
  log "CoreDNS, metrics-server, Traefik (http://127.0.0.1:$INGRESS_PORT) and kube-router's firewall ready"

  cat >"$run_dir/env" <<ENV
KUBECONFIG=$cp_dir/kubeconfig
K8S_BIN=$K8S_BIN
NODE_BIN=$NODE_BIN
NODE_NAME=$NODE_NAME
NODE_ADDRESS=$NODE_ADDRESS
POD_CIDR=$POD_CIDR
SERVICE_CIDR=$SERVICE_CIDR
DNS_IP=$DNS_IP
INGRESS_PORT=$INGRESS_PORT
INGRESS_ADMIN_PORT=$traefik_admin_port
INGRESS_CLASS=traefik
CONTAINERD_ADDRESS=$sock
IMAGES_INDEX=$IMAGES_INDEX
ENV
  echo "$run_dir/env" >"$run_dir/ready"
  log "ready in $((SECONDS - t0))s: kubectl --kubeconfig $cp_dir/kubeconfig get nodes"
  echo "$run_dir/env"

  supervise_until_stopped
  stop_all
}

stop_all() {
  [ -z "$stopping" ] || return 0
  stopping=1
  local t0=$SECONDS name deadline
  rm -f "$run_dir/ready"
  # Pods first, while containerd still runs: their network is torn down through CNI.
  for name in kubelet kube-proxy; do alive "$name" && kill -TERM "${pids[$name]}" 2>/dev/null; done
  if alive containerd; then
    crictl rmp --all --force >/dev/null 2>&1 || log "warning: crictl rmp failed"
  fi
  for name in "${stop_order[@]}" control-plane; do
    alive "$name" || continue
    kill -TERM "${pids[$name]}" 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while alive "$name" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    alive "$name" && { log "$name did not stop within 20s: killing it"; kill -KILL "${pids[$name]}" 2>/dev/null || true; }
    wait "${pids[$name]}" 2>/dev/null || true
  done
  cleanup
  rm -f "$run_dir/run.pid"
  log "stopped in $((SECONDS - t0))s; processes, mounts, cgroups, iptables chains, bridges and sysctls restored"
}

# The add-ons, as a user would install them: RBAC, Deployments, Services; images from the index.
addons() {
  local coredns metrics traefik
  coredns="$(image_ref coredns)"
  metrics="$(image_ref metrics-server)"
  traefik="$(image_ref traefik)"
  if [ -z "$coredns" ] || [ -z "$metrics" ] || [ -z "$traefik" ]; then
    die "add-on images missing from $IMAGES_INDEX"
  fi
  local restricted='securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
            seccompProfile: {type: RuntimeDefault}'
  cat <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "mcp-fleet-node:coredns"}
rules:
  - apiGroups: [""]
    resources: [services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mcp-fleet-node:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mcp-fleet-node:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Cluster names only: no forward plugin, so no query leaves the machine.
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
            pods insecure
        }
        cache 30
        loop
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      # Port 53 without root or a capability: a namespaced sysctl, "safe" for the kubelet. The
      # pod's own port matters: NetworkPolicy ports (e.g. a tenant's egress to DNS on 53) apply
      # after the Service's translation.
      securityContext:
        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "53"}]
      containers:
        - name: coredns
          image: $coredns
          imagePullPolicy: Never
          args: [-conf, /etc/coredns/Corefile]
          ports:
            - {name: dns, containerPort: 53, protocol: UDP}
            - {name: dns-tcp, containerPort: 53, protocol: TCP}
          readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
          resources: {requests: {cpu: 20m, memory: 32Mi}, limits: {memory: 128Mi}}
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
          $restricted
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, targetPort: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 53, protocol: TCP}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: metrics-server, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "mcp-fleet-node:metrics-server"}
rules:
  - apiGroups: [""]
    resources: [nodes/metrics]
    verbs: [get]
  - apiGroups: [""]
    resources: [pods, nodes]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mcp-fleet-node:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mcp-fleet-node:metrics-server"}
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mcp-fleet-node:metrics-server:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "mcp-fleet-node:metrics-server:auth-reader", namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: "mcp-fleet-node:aggregated-metrics-reader"
  labels:
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
  - apiGroups: [metrics.k8s.io]
    resources: [pods, nodes]
    verbs: [get, list, watch]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: metrics-server, namespace: kube-system, labels: {k8s-app: metrics-server}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: metrics-server}}
  template:
    metadata: {labels: {k8s-app: metrics-server}}
    spec:
      serviceAccountName: metrics-server
      containers:
        - name: metrics-server
          image: $metrics
          imagePullPolicy: Never
          args:
            - --cert-dir=/tmp
            - --secure-port=10250
            - --kubelet-preferred-address-types=InternalIP
            - --kubelet-use-node-status-port
            - --kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt
            - --metric-resolution=15s
            - --kubelet-request-timeout=5s
          ports: [{name: https, containerPort: 10250}]
          readinessProbe: {httpGet: {path: /readyz, port: https, scheme: HTTPS}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /livez, port: https, scheme: HTTPS}, periodSeconds: 10}
          resources: {requests: {cpu: 20m, memory: 48Mi}, limits: {memory: 256Mi}}
          volumeMounts: [{name: tmp, mountPath: /tmp}]
          $restricted
      volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system, labels: {k8s-app: metrics-server}}
spec:
  selector: {k8s-app: metrics-server}
  ports: [{name: https, port: 443, targetPort: https}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system}
  # metrics-server serves a self-signed certificate (--cert-dir).
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "mcp-fleet-node:traefik"}
rules:
  - apiGroups: [""]
    resources: [services, secrets, nodes]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses, ingressclasses]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses/status]
    verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mcp-fleet-node:traefik"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mcp-fleet-node:traefik"}
subjects: [{kind: ServiceAccount, name: traefik, namespace: kube-system}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: traefik
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec:
  controller: traefik.io/ingress-controller
---
# Every router of the web entry point retries a call whose backend connection failed (a pod
# that has just died, before its endpoint is gone), on another endpoint. Only connection-level
# failures are retried: once a server answers, its answer stands. ingress-nginx does the same
# by default (proxy_next_upstream error). Each retry picks an endpoint afresh and may meet the
# dead pod again, so the backoff (100 ms, then 200 ms) spans the second or two until its
# endpoint is gone.
apiVersion: v1
kind: ConfigMap
metadata: {name: traefik-dynamic, namespace: kube-system}
data:
  retry.yaml: |
    http:
      middlewares:
        connect-retry:
          retry: {attempts: 10, initialInterval: 100ms}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: traefik, namespace: kube-system, labels: {app: traefik}}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: traefik}}
  template:
    metadata: {labels: {app: traefik}}
    spec:
      serviceAccountName: traefik
      # The host's network, listening on loopback only: clients on this machine reach Ingresses
      # at http://127.0.0.1:$INGRESS_PORT with the Ingress's Host header.
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      containers:
        - name: traefik
          image: $traefik
          imagePullPolicy: Never
          args:
            - --entryPoints.web.address=127.0.0.1:$INGRESS_PORT
            - --entryPoints.traefik.address=127.0.0.1:$traefik_admin_port
            - --ping=true
            # Its read-only API on the same loopback-only entry point: tests ask it which pods a
            # Service's Ingress routes to (/api/http/services), as an operator would.
            - --api.insecure=true
            - --api.dashboard=false
            - --providers.kubernetesingress=true
            - --providers.kubernetesingress.ingressendpoint.ip=127.0.0.1
            # A Service with no Ready endpoint answers 503 (what Traefik's own Helm chart sets
            # since v31), not 404 as if the Ingress did not exist.
            - --providers.kubernetesingress.allowEmptyServices=true
            - --providers.file.directory=/etc/traefik/dynamic
            - --entryPoints.web.http.middlewares=connect-retry@file
            - --global.checknewversion=false
            - --global.sendanonymoususage=false
            - --log.level=INFO
            - --log.noColor=true
          readinessProbe: {httpGet: {host: 127.0.0.1, path: /ping, port: $traefik_admin_port}, periodSeconds: 2}
          livenessProbe: {httpGet: {host: 127.0.0.1, path: /ping, port: $traefik_admin_port}, periodSeconds: 10}
          resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 512Mi}}
          volumeMounts: [{name: dynamic, mountPath: /etc/traefik/dynamic, readOnly: true}]
          $restricted
      volumes: [{name: dynamic, configMap: {name: traefik-dynamic}}]
---
# kube-router's firewall (a host process, like kube-proxy) reads these as user system:kube-router.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "mcp-fleet-node:kube-router"}
rules:
  - apiGroups: [""]
    resources: [pods, namespaces, nodes, services, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mcp-fleet-node:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mcp-fleet-node:kube-router"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-router"}]
YAML
}

default_dir() { echo "${1:-$here/.run/node}"; }

up() {
  local dir pid
  dir="$(default_dir "${1:-}")"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if pid="$(supervisor_pid "$dir" node.sh)" && [ -f "$dir/ready" ]; then
    log "already running (pid $pid)"
  else
    # Build or check the binaries and images in the foreground, with progress.
    "$here/scripts/k8s-binaries.sh" >/dev/null
    "$here/scripts/node-binaries.sh" >/dev/null
    "$here/scripts/images.sh" >/dev/null
    log "starting in $dir (log: $dir/node.log)"
    supervisor_up "$dir" "$0" "$dir/node.log" $((TIMEOUT + 60))
  fi
  cat <<EOF
env: $dir/env
  export KUBECONFIG=$dir/kubeconfig PATH=$(sed -n 's/^K8S_BIN=//p' "$dir/env"):\$PATH; kubectl get nodes,pods -A
ingress: http://127.0.0.1:$(sed -n 's/^INGRESS_PORT=//p' "$dir/env") (with an Ingress's Host header)
stop it with: make cluster-down
EOF
}

down() { supervisor_down "$(default_dir "${1:-}")" node.sh 120; }

case "${1:-}" in
  run)
    [ -n "${2:-}" ] || die "usage: $0 run <dir>"
    run "$2"
    ;;
  up) up "${2:-}" ;;
  down) down "${2:-}" ;;
  cleanup)
    take_lock 5
    cleanup
    log "cleaned up"
    ;;
  -h | --help | help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    ;;
  *)
    echo "usage: $0 run <dir> | up [dir] | down [dir] | cleanup | --help" >&2
    exit 2
    ;;
esac
