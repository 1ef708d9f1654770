# shellcheck shell=bash
# Sourced by installers: Debian packages, installed once, waiting for the package manager's lock
# (a fresh machine often runs another apt at boot) instead of failing on it. `make test` runs
# installers side by side, so this project's own apt-get calls also take turns on a lock file.
#
#   apt_get ARG...           apt-get ARG..., as root (sudo when needed), one at a time
#   apt_update               `apt-get update`, once per process
#   apt_install PACKAGE...   installs those not installed yet

apt_lock_wait=(-o DPkg::Lock::Timeout=600)
apt_updated=""

apt_get() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  (
    flock 7
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get "${apt_lock_wait[@]}" "$@"
  ) 7>"${TMPDIR:-/tmp}/mcp-fleet-apt.lock"
}

apt_update() {
  [ -z "$apt_updated" ] || return 0
  printf '[apt %s] apt-get update\n' "$(date +%H:%M:%S)" >&2
  apt_get update -qq >/dev/null
  apt_updated=1
}

apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  apt_update
  printf '[apt %s] installing %s\n' "$(date +%H:%M:%S)" "${missing[*]}" >&2
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
