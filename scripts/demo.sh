#!/usr/bin/env bash
# `make demo`: the whole fleet on one machine, on embedded defaults.
#
#   scripts/demo.sh          # bring everything up, run the tour, keep serving until Ctrl-C
#   scripts/demo.sh --smoke  # the same, non-interactively: write the tour's results and stop
#   scripts/demo.sh down     # stop whatever a previous run left behind
#
# 1. PostgreSQL + pgvector (local cluster), migrated, seeded, products embedded (local model).
# 2. The local Kubernetes control plane, the CRDs, the operator as a local process, and two
#    McpTenants (seattle: Seattle; eastside: Bellevue + Redmond).
# 3. No kubelet runs pods, so each tenant's server runs as a local process from what the operator
#    produced for it: the rendered ConfigMap and the generated credentials Secret. The servers
#    really log in with the operator-provisioned tenant roles, and require tokens from a local
#    OIDC issuer (development only).
# 4. A tour with the official MCP Python SDK; 5. `kubectl get mcpt`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
RUN="${MCP_FLEET_RUN_DIR:-$here/.run}"
DEMO="$RUN/demo"
ISSUER_PORT="${MCP_FLEET_DEMO_ISSUER_PORT:-18400}"
NS=retail
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
down() {
  stop_bg
  "$here/scripts/control-plane.sh" down "$RUN/k8s" >/dev/null 2>&1 || true
  "$here/scripts/pg-cluster.sh" stop >/dev/null 2>&1 || true
}
wait_http() { # url, seconds
  local url="$1" deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.3
  done
}
# Polls until condition $2 of object $3... is True. `kubectl wait --for=condition=` fails at once,
# instead of waiting, while the object has no conditions yet (as a CRD just after it is created).
wait_condition() { # seconds, condition, kubectl get arguments...
  local deadline=$((SECONDS + $1)) cond="$2"
  shift 2
  until [ "$("$KUBECTL" get "$@" -o jsonpath="{.status.conditions[?(@.type==\"$cond\")].status}" 2>/dev/null)" = True ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.3
  done
}

if [ "$MODE" = down ]; then
  mkdir -p "$DEMO"; down; echo "demo: stopped"; exit 0
fi
SMOKE=0; [ "$MODE" = --smoke ] && SMOKE=1
mkdir -p "$DEMO"
stop_bg   # leftovers of an interrupted run
trap 'echo; echo "demo: stopping..."; down; echo "demo: stopped"' EXIT
trap 'exit 130' INT TERM

step "1/6 Dependencies (PostgreSQL + pgvector, embedding model, Kubernetes binaries, MCP Python SDK)"
"$here/scripts/pg-install.sh"
"$here/scripts/model.sh" >/dev/null
K8S_BIN="$("$here/scripts/k8s-binaries.sh" | tail -n1)"
PY="$("$here/scripts/py-env.sh" | tail -n1)"
say "building mcp-fleet-server and mcp-fleet-operator"
cargo build -q -p mcp-fleet-server -p mcp-fleet-operator --bins
TARGET="${CARGO_TARGET_DIR:-$here/target}/debug"
KUBECTL="$K8S_BIN/kubectl"
done_in

step "2/6 PostgreSQL: migrate, seed the Zava sample, embed product descriptions"
eval "$("$here/scripts/pg-cluster.sh" start)"
"$TARGET/mcp-fleet-server" seed --migrate
"$TARGET/mcp-fleet-server" embed
# The operator's own login: a member of mcpfleet_operator, never a superuser.
OP_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
/usr/lib/postgresql/15/bin/psql -qtAX -v ON_ERROR_STOP=1 -v pw="$OP_PASSWORD" >/dev/null <<'SQL'
SELECT format('CREATE ROLE mcpfleet_demo_operator LOGIN IN ROLE mcpfleet_operator')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcpfleet_demo_operator') \gexec
ALTER ROLE mcpfleet_demo_operator PASSWORD :'pw';
SQL
OPERATOR_DB_URL="postgres://mcpfleet_demo_operator:$OP_PASSWORD@127.0.0.1:$PGPORT/$PGDATABASE"
done_in

step "3/6 Kubernetes: control plane, CRDs, the operator, two McpTenants"
"$here/scripts/control-plane.sh" up "$RUN/k8s" >/dev/null
KUBECONFIG="$RUN/k8s/kubeconfig"
export KUBECONFIG
"$KUBECTL" apply --server-side -f "$here/crds/" >/dev/null
wait_condition 60 Established crd/mcptenants.mcpfleet.io || die "the McpTenant CRD was not established within 60 s"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
if ! curl -fsS -o /dev/null "http://127.0.0.1:$ISSUER_PORT/jwks" 2>/dev/null; then
  start_bg issuer "$DEMO/issuer.log" "$PY" "$here/e2e/python/demo_issuer.py" serve --dir "$DEMO/issuer" --port "$ISSUER_PORT"
fi
ISSUER="http://127.0.0.1:$ISSUER_PORT"
wait_http "$ISSUER/jwks" 20 || die "the demo OIDC issuer did not start (see $DEMO/issuer.log)"
OP_PORT="$(free_port)"
start_bg operator "$DEMO/operator.log" env MCP_FLEET_OPERATOR_DATABASE_URL="$OPERATOR_DB_URL" \
  "$TARGET/mcp-fleet-operator" --leader-election=false --listen "127.0.0.1:$OP_PORT" --log-format text --resync-interval 1m
wait_http "http://127.0.0.1:$OP_PORT/health" 30 || die "the operator did not start (see $DEMO/operator.log)"
for t in "${TENANTS[@]}"; do
  sed "s#http://127.0.0.1:18400#$ISSUER#" "$here/examples/demo/$t.yaml" | "$KUBECTL" apply -f - >/dev/null
done
for t in "${TENANTS[@]}"; do
  wait_condition 90 DatabaseReady -n "$NS" "mcpt/$t" \
    || die "tenant $t did not get its database roles: $("$KUBECTL" -n "$NS" get mcpt "$t" -o jsonpath='{.status.conditions}')"
  say "$t: roles, Secret, ConfigMap, Deployment, Service, HPA, PDB, NetworkPolicy applied by the operator"
done
done_in

step "4/6 Tenant servers from the operator's ConfigMaps and Secrets (no kubelet: local processes)"
declare -A URL TOKEN
for t in "${TENANTS[@]}"; do
  dir="$DEMO/tenants/$t"; mkdir -p "$dir"; chmod 700 "$dir"
  "$KUBECTL" -n "$NS" get configmap "$t-config" -o jsonpath='{.data.server\.yaml}' >"$dir/server.yaml"
  ( umask 077; "$KUBECTL" -n "$NS" get secret "$t-db-credentials" -o jsonpath='{.data.password}' | base64 -d >"$dir/password" )
  port="$(free_port)"
  URL[$t]="http://127.0.0.1:$port/mcp"
  start_bg "server-$t" "$dir/server.log" "$TARGET/mcp-fleet-server" serve --config "$dir/server.yaml" \
    --listen "127.0.0.1:$port" --public-url "${URL[$t]}" --database-password-file "$dir/password" --log-format text
  wait_http "http://127.0.0.1:$port/health/ready" 60 \
    || die "the $t server is not ready: $(curl -s "http://127.0.0.1:$port/health/ready"; tail -n 5 "$dir/server.log")"
  TOKEN[$t]="$("$PY" "$here/e2e/python/demo_issuer.py" token --dir "$DEMO/issuer" --issuer "$ISSUER" --aud "${URL[$t]}" --tenant "$t" --roles analyst)"
  say "$t: ${URL[$t]} (logged in as mcpt_${t}_login, ready)"
done
done_in

step "5/6 Tour with the official MCP Python SDK"
args=()
for t in "${TENANTS[@]}"; do args+=(--tenant "$t" "${URL[$t]}" "${TOKEN[$t]}"); done
"$PY" "$here/e2e/python/demo_tour.py" "${args[@]}" --json "$DEMO/tour.json"
done_in

step "6/6 kubectl get mcpt"
"$KUBECTL" -n "$NS" get mcpt
say "(no kubelet runs pods here, so Deployments report 0 available replicas; the servers above"
say " are those pods' containers run locally from the same ConfigMap and Secret)"

printf '\n\033[1mThe fleet is up after %ss.\033[0m\n' "$((SECONDS - started))"
for t in "${TENANTS[@]}"; do
  ( umask 077; printf '%s\n' "${TOKEN[$t]}" >"$DEMO/tenants/$t/token" )
  cat <<INFO

  Tenant $t
    MCP endpoint  ${URL[$t]}
    Bearer token  ${TOKEN[$t]:0:24}... (full token in $DEMO/tenants/$t/token, valid 8 h)
    VS Code (.vscode/mcp.json):
      {"servers": {"zava-$t": {"type": "http", "url": "${URL[$t]}", "headers": {"Authorization": "Bearer \${input:zava-$t-token}"}}},
       "inputs": [{"id": "zava-$t-token", "type": "promptString", "password": true, "description": "mcp-fleet $t token"}]}
    Claude Desktop (claude_desktop_config.json):
      {"mcpServers": {"zava-$t": {"command": "npx", "args": ["-y", "mcp-remote", "${URL[$t]}", "--header", "Authorization: Bearer \${ZAVA_TOKEN}"], "env": {"ZAVA_TOKEN": "<token>"}}}}
    Try it:  curl -s ${URL[$t]} -H "Authorization: Bearer \$(cat $DEMO/tenants/$t/token)" -H 'Content-Type: application/json' \\
               -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-06-18' \\
               -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_current_utc_date","arguments":{}}}'
INFO
done
cat <<NEXT

  Next: export KUBECONFIG=$KUBECONFIG and try \`kubectl -n $NS describe mcpt eastside\`,
        edit a tenant (\`kubectl -n $NS edit mcpt seattle\`) and watch the operator ($DEMO/operator.log),
        or connect psql: eval "\$(scripts/pg-cluster.sh env)" && psql
NEXT

if [ "$SMOKE" = 1 ]; then
  exit 0
fi
printf '\nServing. Press Ctrl-C (or run `make demo-down`) to stop everything.\n'
while true; do sleep 3600; done
