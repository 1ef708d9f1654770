# shellcheck shell=bash
# Sourced by installers: Debian packages, installed once, waiting for the package manager's lock
# (a fresh machine often runs another apt at boot) instead of failing on it.
#
#   apt_install PACKAGE...   installs those not installed yet (one `apt-get update` per process)

apt_lock_wait=(-o DPkg::Lock::Timeout=600)
apt_updated=""

apt_install() {
  local missing=() p sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  if [ -z "$apt_updated" ]; then
    printf '[apt %s] apt-get update\n' "$(date +%H:%M:%S)" >&2
    $sudo apt-get "${apt_lock_wait[@]}" update -qq >/dev/null
    apt_updated=1
  fi
  printf '[apt %s] installing %s\n' "$(date +%H:%M:%S)" "${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get "${apt_lock_wait[@]}" install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}
