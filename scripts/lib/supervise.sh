# shellcheck shell=bash
# shellcheck disable=SC2154 # run_dir, pids, signalled and TIMEOUT belong to the sourcing script
# Sourced by scripts that run a group of processes in the foreground and in the background
# (control-plane.sh, node.sh). They define log and check_components, keep their components'
# pids in the associative array `pids` (name -> pid) with logs in $run_dir/logs/<name>.log, and
# set $signalled from their SIGTERM/SIGINT traps.
#
#   die MESSAGE                         logs "error: MESSAGE" and exits 1
#   alive NAME                          true while component NAME runs
#   components_alive                    dies, with the end of its log, when a component has exited
#   wait_until DESCRIPTION COMMAND...   runs COMMAND every 0.2 s until it succeeds, checking the
#                                       components meanwhile; dies after $TIMEOUT seconds, and exits
#                                       quietly when a signal arrives
#   supervise_until_stopped             returns when stdin closes (with stdin on /dev/null, as a
#                                       background job or a watchdog has it, EOF means nothing) or
#                                       a signal arrives, calling check_components every second
#   supervisor_pid DIR SCRIPT           the pid of a live `SCRIPT run` for DIR (from DIR/run.pid)
#   supervisor_up DIR SCRIPT LOG SECS   runs `SCRIPT run DIR` in the background and waits up to SECS
#                                       for DIR/ready; on failure shows the end of LOG and dies
#   supervisor_down DIR SCRIPT SECS     SIGTERM to the `SCRIPT run` for DIR, waiting up to SECS

die() { log "error: $*"; exit 1; }

alive() { [ -n "${pids[$1]:-}" ] && kill -0 "${pids[$1]}" 2>/dev/null; }

components_alive() {
  local name
  for name in "${!pids[@]}"; do
    alive "$name" || die "$name exited unexpectedly; last lines of $run_dir/logs/$name.log:
$(tail -n 20 "$run_dir/logs/$name.log" 2>/dev/null)"
  done
}

wait_until() {
  local what="$1" deadline=$((SECONDS + TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    [ -z "$signalled" ] || { log "signal received while starting: stopping"; exit 0; }
    check_components
    [ $SECONDS -lt $deadline ] || die "timed out after ${TIMEOUT}s waiting for $what (logs in $run_dir/logs)"
    sleep 0.2
  done
}

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
