#!/usr/bin/env bash
# `make demo`: the whole fleet on one machine, on embedded defaults, as a user runs it on a cluster.
#
#   scripts/demo.sh          # bring everything up, run the tour, keep serving until Ctrl-C
#   scripts/demo.sh --smoke  # the same, non-interactively: write the tour's results and stop
#   scripts/demo.sh down     # stop a serving demo (it tears down and ends), or what a run left
#
# 1. The images (scripts/images.sh: no Docker, no registry) and a one-node Kubernetes cluster
#    (scripts/node.sh: control plane, containerd, kubelet, kube-proxy, CoreDNS, metrics-server,
#    the Traefik ingress controller on loopback). Needs root.
# 2. PostgreSQL + pgvector (local cluster, also listening on the node bridge for pods), migrated,
#    seeded, products embedded (local model).
# 3. A local OIDC issuer (development only) over HTTPS on the bridge, with a CA of its own.
# 4. `helm install` of the operator (two pods, leader election) and two McpTenants (seattle:
#    Seattle; eastside: Bellevue + Redmond): their servers run as pods behind Ingresses.
# 5. A tour with the official MCP Python SDK through the ingress; 6. `kubectl get mcpt,pods`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
RUN="${MCP_FLEET_RUN_DIR:-$here/.run}"
DEMO="$RUN/demo"
NODE_DIR="$RUN/node"
ISSUER_PORT="${MCP_FLEET_DEMO_ISSUER_PORT:-18400}"
NS=retail
OPERATOR_NS=mcp-system
TENANTS=(seattle eastside)
MODE="${1:-up}"
export MCP_FLEET_RUN_DIR="$RUN"
# candle otherwise re-reads /proc/cpuinfo on every matrix product (see server/src/embed/local.rs)
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-$(nproc)}"

started=$SECONDS
t0=$SECONDS
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; t0=$SECONDS; }
done_in() { printf '    done in %ss\n' "$((SECONDS - t0))"; }
say() { printf '    %s\n' "$*"; }
die() { printf '\ndemo: %s\n' "$*" >&2; exit 1; }

start_bg() { # name, log, command...: start in the background, remember the pid
  local name="$1" log="$2"; shift 2
  setsid "$@" >"$log" 2>&1 < /dev/null &
  echo $! >"$DEMO/$name.pid"
}
stop_bg() {
  local f pid
  for f in "$DEMO"/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$f"
  done
}
# The pid of the demo that is serving, so that `make demo-down` from another terminal ends it too:
# SIGUSR1 makes it tear down, say so and exit 0, where it would otherwise wait forever.
SERVING="$DEMO/serving"
stop_serving() {
  local pid
  pid="$(cat "$SERVING" 2>/dev/null)" || return 0
  # Only a demo.sh of ours: a stale file may name a pid that another program has now.
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'scripts/demo\.sh' &&
    kill -USR1 "$pid" 2>/dev/null; then
    wait_for 120 gone "$pid" || true
  fi
  rm -f "$SERVING"
}
down() {
  stop_bg
  "$here/scripts/node.sh" down "$NODE_DIR" >/dev/null 2>&1 || true
  "$here/scripts/pg-cluster.sh" stop >/dev/null 2>&1 || true
}
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for() { # seconds, command...: poll until the command succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}
# Polls until condition $2 of object $3... is True. `kubectl wait --for=condition=` fails at once,
# instead of waiting, while the object has no conditions yet.
wait_condition() { # seconds, condition, kubectl get arguments...
  local deadline=$((SECONDS + $1)) cond="$2"
  shift 2
  until [ "$("$KUBECTL" get "$@" -o jsonpath="{.status.conditions[?(@.type==\"$cond\")].status}" 2>/dev/null)" = True ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

if [ "$MODE" = down ]; then
  mkdir -p "$DEMO"; stop_serving; down; echo "demo: stopped"; exit 0
fi
SMOKE=0; [ "$MODE" = --smoke ] && SMOKE=1
mkdir -p "$DEMO"
stop_serving   # a demo still serving in another terminal ends (it holds the machine's one node)
stop_bg   # leftovers of an interrupted run
sleeper=""
trap 'echo; echo "demo: stopping..."; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; rm -f "$SERVING"; down; echo "demo: stopped"' EXIT
trap 'exit 130' INT TERM
trap 'exit 0' USR1

step "1/6 Dependencies and images (PostgreSQL + pgvector, model, Kubernetes and node binaries, MCP SDK)"
[ "$(id -u)" = 0 ] || die "the demo runs a Kubernetes node (containerd, kubelet, a bridge, iptables): run it as root (sudo make demo)"
"$here/scripts/pg-install.sh"
"$here/scripts/model.sh" >/dev/null
K8S_BIN="$("$here/scripts/k8s-binaries.sh" | tail -n1)"
"$here/scripts/node-binaries.sh" >/dev/null
PY="$("$here/scripts/py-env.sh" | tail -n1)"
say "building mcp-fleet-server and mcp-fleet-operator, and their images"
"$here/scripts/images.sh" | sed '$d' | sed 's/^/    /'
TARGET="${CARGO_TARGET_DIR:-$here/target}/debug"
KUBECTL="$K8S_BIN/kubectl"
HELM="$K8S_BIN/helm"
done_in

step "2/6 Kubernetes: a one-node cluster (control plane, containerd, kubelet, kube-proxy, DNS, metrics, ingress)"
if ! "$here/scripts/node.sh" up "$NODE_DIR" >"$DEMO/node-up.log" 2>&1; then
  tail -n 25 "$DEMO/node-up.log" >&2
  die "the Kubernetes node did not start (log: $NODE_DIR/node.log, component logs: $NODE_DIR/logs/).
      It needs root, the cgroup v1 controllers under /sys/fs/cgroup, iptables, overlayfs and a free
      10.244.0.0/24. Fix what the log names, then run \`make demo\` again; \`make cluster-down\` removes a
      half-started node. The demo does not fall back to host processes."
fi
# shellcheck disable=SC1091
source "$NODE_DIR/env"
export KUBECONFIG
INGRESS="http://127.0.0.1:$INGRESS_PORT"
say "node $NODE_NAME Ready at $NODE_ADDRESS; ingress controller at $INGRESS"
done_in

step "3/6 PostgreSQL: migrate, seed the Zava sample, embed product descriptions"
eval "$(PG_POD_ADDRESS="$NODE_ADDRESS" PG_POD_CIDR="$POD_CIDR" "$here/scripts/pg-cluster.sh" start)"
"$TARGET/mcp-fleet-server" seed --migrate
"$TARGET/mcp-fleet-server" embed
# The operator's own login: a member of mcpfleet_operator, never a superuser.
OP_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
/usr/lib/postgresql/15/bin/psql -qtAX -v ON_ERROR_STOP=1 -v pw="$OP_PASSWORD" >/dev/null <<'SQL'
SELECT format('CREATE ROLE mcpfleet_demo_operator LOGIN IN ROLE mcpfleet_operator')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcpfleet_demo_operator') \gexec
ALTER ROLE mcpfleet_demo_operator PASSWORD :'pw';
SQL
OPERATOR_DB_URL="postgres://mcpfleet_demo_operator:$OP_PASSWORD@$NODE_ADDRESS:$PGPORT/$PGDATABASE"
done_in

step "4/6 The operator (helm install, images built here) and two McpTenants"
ISSUER="https://$NODE_ADDRESS:$ISSUER_PORT"
rm -f "$DEMO/issuer/ca.crt"
start_bg issuer "$DEMO/issuer.log" "$PY" "$here/e2e/python/demo_issuer.py" serve --dir "$DEMO/issuer" \
  --port "$ISSUER_PORT" --host "$NODE_ADDRESS" --tls
wait_for 30 curl -fsS --cacert "$DEMO/issuer/ca.crt" -o /dev/null "$ISSUER/jwks" \
  || die "the demo OIDC issuer did not start (see $DEMO/issuer.log)"
image() { awk -F'\t' -v n="/$1:" 'index($1, n) {print $1; exit}' "$IMAGES_INDEX"; }
OPERATOR_IMAGE="$(image mcp-fleet-operator)"
SERVER_IMAGE="$(image mcp-fleet-server)"
for ns in "$OPERATOR_NS" "$NS"; do
  "$KUBECTL" create namespace "$ns" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
done
"$KUBECTL" -n "$OPERATOR_NS" create secret generic pg-admin --from-literal=url="$OPERATOR_DB_URL" \
  --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
export HELM_CACHE_HOME="$DEMO/helm/cache" HELM_CONFIG_HOME="$DEMO/helm/config" HELM_DATA_HOME="$DEMO/helm/data"
"$HELM" upgrade --install mcp-fleet "$here/charts/mcp-fleet" -n "$OPERATOR_NS" \
  --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" --set image.pullPolicy=Never \
  --set serverImage="$SERVER_IMAGE" --set database.existingSecret=pg-admin --set logging.format=text \
  --wait --timeout 180s >/dev/null || die "the operator did not become ready: $("$KUBECTL" -n "$OPERATOR_NS" get pods 2>&1)"
say "operator: $("$KUBECTL" -n "$OPERATOR_NS" get pods -l app.kubernetes.io/component=operator --no-headers | wc -l) pods, leader $("$KUBECTL" -n "$OPERATOR_NS" get lease mcp-fleet-operator -o jsonpath='{.spec.holderIdentity}')"
"$KUBECTL" -n "$NS" create configmap demo-issuer-ca --from-file=ca.crt="$DEMO/issuer/ca.crt" \
  --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
for t in "${TENANTS[@]}"; do
  sed "s#https://10.244.0.1:18400#$ISSUER#" "$here/examples/demo/$t.yaml" | "$KUBECTL" apply -f - >/dev/null
done
applied=$SECONDS
declare -A URL TOKEN
for t in "${TENANTS[@]}"; do
  wait_condition 240 Ready -n "$NS" "mcpt/$t" \
    || die "tenant $t did not become Ready: $("$KUBECTL" -n "$NS" describe mcpt "$t" | tail -n 20)"
  URL[$t]="$("$KUBECTL" -n "$NS" get mcpt "$t" -o jsonpath='{.status.endpoint}')"
  # Ready means a pod is Ready; the ingress routes to it a moment later (Traefik applies an
  # EndpointSlice change after its 2-s provider throttle, and answers 503 until then).
  host="${URL[$t]#http://}"
  host="${host%%/*}"
  wait_for 60 curl -fsS -o /dev/null -H "Host: $host" "$INGRESS/health/ready" \
    || die "tenant $t is Ready but the ingress does not route to it: $(curl -sS -H "Host: $host" "$INGRESS/health/ready" 2>&1)"
  TOKEN[$t]="$("$PY" "$here/e2e/python/demo_issuer.py" token --dir "$DEMO/issuer" --issuer "$ISSUER" --aud "${URL[$t]}" --tenant "$t" --roles analyst)"
  say "$t: Ready $((SECONDS - applied))s after kubectl apply; its servers run as pods, reached at ${URL[$t]} through the ingress"
done
done_in

step "5/6 Tour with the official MCP Python SDK, through the ingress"
args=()
for t in "${TENANTS[@]}"; do args+=(--tenant "$t" "${URL[$t]}" "${TOKEN[$t]}"); done
"$PY" "$here/e2e/python/demo_tour.py" "${args[@]}" --via "$INGRESS" --json "$DEMO/tour.json"
done_in

step "6/6 kubectl get mcpt,pods"
"$KUBECTL" -n "$NS" get mcpt
"$KUBECTL" -n "$NS" get pods -o wide
"$KUBECTL" -n "$NS" top pods 2>/dev/null || true
# The servers' resident memory after the tour (VmRSS of the server process, PID 1 of its container).
# shellcheck disable=SC2016 # awk's own $2, in the pod
for pod in $("$KUBECTL" -n "$NS" get pods -l app.kubernetes.io/component=server -o name); do
  say "${pod#pod/}: server RSS $("$KUBECTL" -n "$NS" exec "$pod" -- awk '/^VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/1/status 2>/dev/null || echo unknown)"
done

printf '\n\033[1mThe fleet is up after %ss.\033[0m\n' "$((SECONDS - started))"
for t in "${TENANTS[@]}"; do
  ( umask 077; mkdir -p "$DEMO/tenants/$t"; printf '%s\n' "${TOKEN[$t]}" >"$DEMO/tenants/$t/token" )
  host="${URL[$t]#http://}"; host="${host%%/*}"
  cat <<INFO

  Tenant $t
    MCP endpoint  ${URL[$t]} (the ingress on this machine: http://$host:$INGRESS_PORT/mcp)
    Bearer token  ${TOKEN[$t]:0:24}... (full token in $DEMO/tenants/$t/token, valid 8 h)
    VS Code (.vscode/mcp.json):
      {"servers": {"zava-$t": {"type": "http", "url": "http://$host:$INGRESS_PORT/mcp", "headers": {"Authorization": "Bearer \${input:zava-$t-token}"}}},
       "inputs": [{"id": "zava-$t-token", "type": "promptString", "password": true, "description": "mcp-fleet $t token"}]}
    Try it:  curl -s $INGRESS/mcp -H 'Host: $host' -H "Authorization: Bearer \$(cat $DEMO/tenants/$t/token)" \\
               -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
               -H 'MCP-Protocol-Version: 2025-06-18' \\
               -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_current_utc_date","arguments":{}}}'
INFO
done
cat <<NEXT

  Next: export KUBECONFIG=$KUBECONFIG PATH=$K8S_BIN:\$PATH, then try \`kubectl -n $NS describe mcpt eastside\`,
        edit a tenant (\`kubectl -n $NS edit mcpt seattle\`) and watch the pods roll, read the operator's
        log (\`kubectl -n $OPERATOR_NS logs deploy/mcp-fleet-operator\`), or connect psql:
        eval "\$(scripts/pg-cluster.sh env)" && psql
NEXT

if [ "$SMOKE" = 1 ]; then
  exit 0
fi
# shellcheck disable=SC2016 # the backquotes are for the reader
printf '\nServing. Press Ctrl-C (or run `make demo-down`) to stop everything.\n'
echo $$ >"$SERVING"
# `wait` returns on a signal; a foreground sleep would hold the traps back until it ends.
while true; do
  sleep 3600 &
  sleeper=$!
  wait "$sleeper" || true
done
