# shellcheck shell=bash
# Sourced by scripts that start servers on loopback (control-plane.sh, node.sh, demo.sh, azurite.sh,
# s3rver.sh).
#
#   free_port    sets $port to a TCP port that nothing listens on now, below the ephemeral range
#                (32768+) so that no outgoing connection takes it meanwhile, and never the same
#                port twice in one shell. Reads /proc instead of needing ss or python. Sets $port
#                rather than printing it: a subshell would forget the ports already handed out.

declare -A free_port_taken=()
free_port() {
  local used
  used="$(awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null || true)"
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))
    [ -z "${free_port_taken[$port]:-}" ] || continue
    grep -qx "$(printf '%04X' "$port")" <<<"$used" && continue
    free_port_taken[$port]=1
    return 0
  done
  echo "no free TCP port found" >&2
  return 1
}
