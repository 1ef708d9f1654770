# shellcheck shell=bash
# Sourced by scripts that run a group of processes in the foreground and in the background
# (control-plane.sh, node.sh). They define log, die, check_components, and set $signalled from
# their SIGTERM/SIGINT traps.
#
#   supervise_until_stopped             returns when stdin closes (with stdin on /dev/null, as a
#                                       background job or a watchdog has it, EOF means nothing) or
#                                       a signal arrives, calling check_components every second
#   supervisor_pid DIR SCRIPT           the pid of a live `SCRIPT run` for DIR (from DIR/run.pid)
#   supervisor_up DIR SCRIPT LOG SECS   runs `SCRIPT run DIR` in the background and waits up to SECS
#                                       for DIR/ready; on failure shows the end of LOG and dies
#   supervisor_down DIR SCRIPT SECS     SIGTERM to the `SCRIPT run` for DIR, waiting up to SECS

supervise_until_stopped() {
  local watch_stdin=1 status
  if [ /dev/stdin -ef /dev/null ]; then watch_stdin=0; fi
  while [ -z "$signalled" ]; do
    if [ "$watch_stdin" = 1 ]; then
      status=0
      read -r -t 1 _ || status=$?
      if [ "$status" -ne 0 ] && [ "$status" -le 128 ]; then
        log "stdin closed: stopping"
        return
      fi
    else
      sleep 1 &
      wait $! || true
    fi
    check_components
  done
  log "signal received: stopping"
}

supervisor_pid() {
  local pid
  pid="$(cat "$1/run.pid" 2>/dev/null)" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$2 run" && echo "$pid"
}

supervisor_up() {
  local dir="$1" script="$2" logfile="$3" t0=$SECONDS child
  setsid "$script" run "$dir" </dev/null >"$logfile" 2>&1 &
  child=$!
  until [ -f "$dir/ready" ]; do
    if ! kill -0 "$child" 2>/dev/null || [ $((SECONDS - t0)) -ge "$4" ]; then
      tail -n 30 "$logfile" >&2
      kill -TERM "$child" 2>/dev/null || true
      die "$(basename "$script") did not start (log: $logfile)"
    fi
    sleep 0.2
  done
  log "ready in $((SECONDS - t0))s"
}

supervisor_down() {
  local pid deadline=$((SECONDS + $3))
  if ! pid="$(supervisor_pid "$1" "$2")"; then
    log "not running ($1)"
    return
  fi
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "pid $pid did not stop"
    sleep 0.2
  done
  log "stopped ($1)"
}
