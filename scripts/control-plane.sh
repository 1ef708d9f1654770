#!/usr/bin/env bash
# A throwaway Kubernetes control plane on loopback, the way envtest runs one: etcd,
# kube-apiserver and kube-controller-manager (no kubelet, so pods never run), with fresh
# certificates and an admin kubeconfig in a run directory. scripts/node.sh runs it with
# CONTROL_PLANE_ADDRESS=<the node bridge's host address> and CONTROL_PLANE_NODE=1: the API server
# then listens there (so pods reach it), kube-scheduler runs too, and the certificates and
# kubeconfigs of the node's kubelet, kube-proxy and kube-router are made beside the others.
#
#   scripts/control-plane.sh run <dir>   # foreground: start, wait until ready, print the kubeconfig
#                                        # path; stop everything on stdin EOF, SIGTERM or SIGINT
#                                        # (with stdin on /dev/null: on SIGTERM or SIGINT only)
#   scripts/control-plane.sh up [dir]    # `run` in the background; returns once ready (make cluster-up)
#   scripts/control-plane.sh down [dir]  # stop what `up` started (make cluster-down)
#
# [dir] defaults to .run/k8s in the repository. Binaries come from scripts/k8s-binaries.sh (or
# $MCP_FLEET_K8S_BIN). Every `run` starts from an empty etcd and new certificates. Files in <dir>:
# kubeconfig (admin, group system:masters), pki/, logs/, pids, and `ready` once the API answers.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/ports.sh
source "$here/scripts/lib/ports.sh"
# shellcheck source=scripts/lib/apt.sh
source "$here/scripts/lib/apt.sh"
# shellcheck source=scripts/lib/supervise.sh
source "$here/scripts/lib/supervise.sh"
TIMEOUT="${CONTROL_PLANE_TIMEOUT:-120}" # seconds to become ready
ADDRESS="${CONTROL_PLANE_ADDRESS:-127.0.0.1}" # where the API server listens and what it advertises
NODE_MODE="${CONTROL_PLANE_NODE:-}"           # non-empty: kube-scheduler and the node's credentials
NODE_NAME="${CONTROL_PLANE_NODE_NAME:-mcp-fleet-node}"
# kube-apiserver's /debug/pprof (for `make bench-operator ARGS="--pprof DIR"`); off unless asked.
PROFILING="${MCP_FLEET_APISERVER_PROFILING:-false}"
case "$PROFILING" in true | false) ;; *)
  echo "MCP_FLEET_APISERVER_PROFILING must be true or false, not '$PROFILING'" >&2
  exit 2
  ;;
esac
SERVICE_CIDR=10.0.0.0/16
STOP_TIMEOUT=15                         # seconds each component gets to exit after SIGTERM
log() { printf '[control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

k8s_bin() {
  if [ -n "${MCP_FLEET_K8S_BIN:-}" ]; then echo "$MCP_FLEET_K8S_BIN"; else "$here/scripts/k8s-binaries.sh" | tail -n1; fi
}

ensure_openssl() {
  command -v openssl >/dev/null && return
  log "installing openssl (needed to generate certificates)"
  apt_install openssl
  command -v openssl >/dev/null || die "openssl is missing and could not be installed"
}

# CA, API server serving certificate, client certificates, service-account key pair (all ECDSA P-256:
# fast to generate, accepted by Go and rustls alike).
gen_pki() {
  local pki="$1"
  mkdir -p "$pki"
  cat >"$pki/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = mcp-fleet-test-ca
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:$ADDRESS, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, IP:10.0.0.1
authorityKeyIdentifier = keyid
[kubelet-serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:$ADDRESS, DNS:$NODE_NAME
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
CNF
  local key keys=(ca apiserver admin controller-manager sa front-proxy-ca front-proxy-client)
  [ -z "$NODE_MODE" ] || keys+=(scheduler apiserver-kubelet-client kubelet kubelet-serving kube-proxy kube-router)
  for key in "${keys[@]}"; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$key.key" 2>/dev/null
  done
  chmod 600 "$pki"/*.key
  openssl req -x509 -new -config "$pki/openssl.cnf" -extensions ca -key "$pki/ca.key" -days 30 \
    -out "$pki/ca.crt"
  # The aggregation layer (metrics.k8s.io) authenticates the API server to extension servers with
  # a client certificate from a CA of its own.
  openssl req -x509 -new -config "$pki/openssl.cnf" -extensions ca -key "$pki/front-proxy-ca.key" \
    -subj /CN=mcp-fleet-front-proxy-ca -days 30 -out "$pki/front-proxy-ca.crt"
  sign() { # name subject extensions [ca]
    local ca="${4:-ca}"
    openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 30 -extfile "$pki/openssl.cnf" -extensions "$3" -out "$pki/$1.crt" 2>/dev/null
    rm -f "$pki/$1.csr"
  }
  sign apiserver "/CN=kube-apiserver" serving
  sign admin "/O=system:masters/CN=mcp-fleet-admin" client
  sign controller-manager "/CN=system:kube-controller-manager" client
  sign front-proxy-client "/CN=front-proxy-client" client front-proxy-ca
  if [ -n "$NODE_MODE" ]; then
    sign scheduler "/CN=system:kube-scheduler" client
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
    sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" client
    sign kubelet-serving "/CN=$NODE_NAME" kubelet-serving
    sign kube-proxy "/CN=system:kube-proxy" client
    # kube-router's firewall (NetworkPolicy); scripts/node.sh grants this user what it reads.
    sign kube-router "/CN=system:kube-router" client
  fi
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
}

# kubeconfig <file> <user> <server>: certificates embedded, so the file stands alone.
write_kubeconfig() {
  local file="$1" user="$2" server="$3" pki="$run_dir/pki"
  (
    umask 077
    cat >"$file" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: mcp-fleet-test
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$user.crt")
    client-key-data: $(base64 -w0 <"$pki/$user.key")
contexts:
- name: mcp-fleet-test
  context:
    cluster: mcp-fleet-test
    user: $user
    namespace: default
current-context: mcp-fleet-test
YAML
  )
}

declare -A pids=()
order=(kube-scheduler kube-controller-manager kube-apiserver etcd) # stop order
stopping=""
# Signal traps only set these flags; the loops below act on them. (Exiting from inside a SIGINT
# trap and then stopping children from the EXIT trap crashes bash 5.2.)
signalled=""
restart_requested="" # SIGUSR1: restart kube-apiserver (`restart-apiserver`)

start_component() { # name argv...
  local name="$1"
  shift
  # Last resort: a component is killed if this script dies without stopping it (even by SIGKILL).
  # (SIGTERM would not do: kube-apiserver hangs in graceful shutdown when etcd goes at once.)
  "${pdeath[@]}" "$@" >"$run_dir/logs/$name.log" 2>&1 </dev/null &
  pids[$name]=$!
  echo "$name ${pids[$name]}" >>"$run_dir/pids"
}

check_components() {
  if [ -n "$restart_requested" ]; then
    restart_requested=""
    restart_apiserver
  fi
  components_alive
}

stop_all() {
  [ -z "$stopping" ] || return 0
  stopping=1
  rm -f "$run_dir/ready"
  local name deadline
  for name in "${order[@]}"; do
    alive "$name" || continue
    kill -TERM "${pids[$name]}" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$name" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if alive "$name"; then
      log "$name did not stop within ${STOP_TIMEOUT}s: killing it"
      kill -KILL "${pids[$name]}" 2>/dev/null || true
    fi
    wait "${pids[$name]}" 2>/dev/null || true
  done
  rm -f "$run_dir/run.pid"
  log "stopped"
}

# etcd's /health over bash's /dev/tcp (no curl needed): true once it has a leader and serves.
etcd_healthy() {
  local reply
  reply="$(exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && timeout 2 cat <&3)" || return 1
  grep -q '"health":"true"' <<<"$reply"
}

# kube-apiserver with the flags `run` gave it; its variables (bin, etcd_port, api_port, pki,
# node_flags) are run's locals, which bash's dynamic scope shows to the functions it calls.
start_apiserver() {
  start_component kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$ADDRESS" --advertise-address "$ADDRESS" --secure-port "$api_port" \
    --cert-dir "$pki" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    "${node_flags[@]}" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC --allow-privileged=true --profiling="$PROFILING"
}

# A control-plane fault for the e2e tests (`control-plane.sh restart-apiserver DIR`): kube-apiserver
# gets SIGTERM, as in an upgrade, and starts again with the same flags; DIR/apiserver-restarts
# counts the restarts once it is ready again.
restart_apiserver() {
  local t0=$SECONDS pid="${pids[kube-apiserver]}" deadline=$((SECONDS + STOP_TIMEOUT)) n
  log "restarting kube-apiserver (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  mv -f "$run_dir/logs/kube-apiserver.log" "$run_dir/logs/kube-apiserver.previous.log"
  log "kube-apiserver stopped after $((SECONDS - t0))s; starting it again"
  start_apiserver
  wait_until "kube-apiserver /readyz after its restart" "${kubectl[@]}" get --raw /readyz
  n="$(cat "$run_dir/apiserver-restarts" 2>/dev/null || echo 0)"
  echo $((n + 1)) >"$run_dir/apiserver-restarts"
  log "kube-apiserver restarted in $((SECONDS - t0))s"
}

run() {
  run_dir="$1"
  mkdir -p "$run_dir"
  run_dir="$(cd "$run_dir" && pwd)"
  local t0=$SECONDS bin
  bin="$(k8s_bin)"
  local b
  local needed=(etcd kube-apiserver kube-controller-manager kubectl)
  [ -z "$NODE_MODE" ] || needed+=(kube-scheduler)
  for b in "${needed[@]}"; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: run scripts/k8s-binaries.sh (make k8s-binaries)"
  done
  ensure_openssl
  pdeath=()
  if command -v setpriv >/dev/null; then pdeath=(setpriv --pdeathsig KILL --); fi

  # Only the files this script owns: never a blanket delete of a directory given on the command line.
  rm -rf "$run_dir/pki" "$run_dir/etcd" "$run_dir/logs"
  rm -f "$run_dir"/*.kubeconfig "$run_dir/kubeconfig" "$run_dir/pids" "$run_dir/ready"
  mkdir -p "$run_dir/logs"
  echo $$ >"$run_dir/run.pid"
  trap stop_all EXIT
  trap 'signalled=1' TERM INT
  trap 'restart_requested=1' USR1

  gen_pki "$run_dir/pki"
  local etcd_port peer_port api_port pki="$run_dir/pki"
  free_port || die "no free port"; etcd_port=$port
  free_port || die "no free port"; peer_port=$port
  free_port || die "no free port"; api_port=$port
  local server="https://$ADDRESS:$api_port"
  write_kubeconfig "$run_dir/kubeconfig" admin "$server"
  write_kubeconfig "$run_dir/controller-manager.kubeconfig" controller-manager "$server"
  if [ -n "$NODE_MODE" ]; then
    local user
    for user in scheduler kubelet kube-proxy kube-router; do write_kubeconfig "$run_dir/$user.kubeconfig" "$user" "$server"; done
  fi

  start_component etcd "$bin/etcd" --name cp --data-dir "$run_dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "cp=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn \
    --heartbeat-interval 10 --election-timeout 100
  wait_until "etcd on port $etcd_port" etcd_healthy "$etcd_port"
  log "etcd healthy after $((SECONDS - t0))s"

  # With a node: `kubectl logs/exec` and metrics go to the kubelet at its InternalIP (the node's
  # name does not resolve here), as a client the kubelet's webhook authorizer admits.
  local node_flags=()
  # shellcheck disable=SC2054 # a flag's comma-separated value, not array elements
  [ -z "$NODE_MODE" ] || node_flags=(--kubelet-preferred-address-types InternalIP,Hostname
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt"
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority "$pki/ca.crt")
  start_apiserver
  local kubectl=("$bin/kubectl" --kubeconfig "$run_dir/kubeconfig" --request-timeout 5s)
  wait_until "kube-apiserver /readyz on port $api_port" "${kubectl[@]}" get --raw /readyz
  log "kube-apiserver ready after $((SECONDS - t0))s"

  # The controllers Kubernetes runs by default (garbage collector, deployment, replicaset, job,
  # cronjob, horizontal-pod-autoscaler, namespace, serviceaccount, serviceaccount-token, ...), each
  # with its own service-account credentials as on a real cluster. No HTTPS endpoint of its own.
  start_component kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$run_dir/controller-manager.kubeconfig" --use-service-account-credentials \
    --controllers '*' --leader-elect=false --secure-port 0 \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR"
  # The service-account controller creating `default` in `default` shows the controllers run.
  wait_until "kube-controller-manager (ServiceAccount default/default)" \
    "${kubectl[@]}" get serviceaccount default --namespace default
  if [ -n "$NODE_MODE" ]; then
    start_component kube-scheduler "$bin/kube-scheduler" --kubeconfig "$run_dir/scheduler.kubeconfig" \
      --leader-elect=false --secure-port 0
  fi

  echo "$run_dir/kubeconfig" >"$run_dir/ready"
  log "ready in $((SECONDS - t0))s: API server $server"
  echo "$run_dir/kubeconfig"

  supervise_until_stopped
  stop_all
}

default_dir() { echo "${1:-$here/.run/k8s}"; }

usage_hint() {
  local bin
  bin="$(k8s_bin 2>/dev/null)"
  cat <<EOF
kubeconfig: $1/kubeconfig
  export KUBECONFIG=$1/kubeconfig PATH=$bin:\$PATH; kubectl get ns
stop it with: make control-plane-down
EOF
}

up() {
  local dir pid
  dir="$(default_dir "${1:-}")"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if pid="$(supervisor_pid "$dir" control-plane.sh)" && [ -f "$dir/ready" ]; then
    log "already running (pid $pid)"
  else
    k8s_bin >/dev/null # build or check the binaries in the foreground, with progress
    log "starting in $dir (log: $dir/control-plane.log)"
    supervisor_up "$dir" "$0" "$dir/control-plane.log" $((TIMEOUT + 10))
  fi
  usage_hint "$dir"
}

down() { supervisor_down "$(default_dir "${1:-}")" control-plane.sh $((3 * STOP_TIMEOUT + 5)); }

# Asks the running control plane of DIR to restart kube-apiserver, and waits until it is ready again.
restart_apiserver_of() {
  local dir pid before deadline=$((SECONDS + TIMEOUT + STOP_TIMEOUT))
  dir="$(default_dir "${1:-}")"
  pid="$(supervisor_pid "$dir" control-plane.sh)" || die "no control plane runs in $dir"
  before="$(cat "$dir/apiserver-restarts" 2>/dev/null || echo 0)"
  kill -USR1 "$pid"
  until [ "$(cat "$dir/apiserver-restarts" 2>/dev/null || echo 0)" -gt "$before" ]; do
    kill -0 "$pid" 2>/dev/null || die "the control plane stopped (log: $dir/logs)"
    [ $SECONDS -lt $deadline ] || die "kube-apiserver was not ready again within $((TIMEOUT + STOP_TIMEOUT))s"
    sleep 0.2
  done
  log "kube-apiserver of $dir restarted and ready"
}

case "${1:-}" in
  run)
    [ -n "${2:-}" ] || die "usage: $0 run <dir>"
    run "$2"
    ;;
  up) up "${2:-}" ;;
  down) down "${2:-}" ;;
  restart-apiserver) restart_apiserver_of "${2:-}" ;;
  *)
    echo "usage: $0 run <dir> | up [dir] | down [dir] | restart-apiserver [dir]" >&2
    exit 2
    ;;
esac
