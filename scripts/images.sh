#!/usr/bin/env bash
# shellcheck disable=SC2317 # image builders are called indirectly (build_if_changed, build_${kind}_base)
# Builds the container images of mcp-fleet and the node's add-ons without Docker and without
# pulling anything from a container registry, and exports each one to an archive that
# `ctr -n k8s.io images import` loads under its name. See `scripts/images.sh --help`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

# Add-on images: one static binary each, from scripts/node-binaries.sh. Same variables and defaults
# as there; a binary built at another version is refused.
K8S_VERSION="${K8S_VERSION:-v1.36.3}"                 # pause, from k8s.io/kubernetes build/pause
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.9.0}"
TRAEFIK_VERSION="${TRAEFIK_VERSION:-v3.6.12}" # node-binaries.sh: v3.7 needs modules the proxy lacks

DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
PROFILE="${MCP_FLEET_IMAGE_PROFILE:-debug}"
CACHE="${MCP_FLEET_CACHE:-$HOME/.cache/mcp-fleet}"
IMG="$CACHE/images"
ARCHIVES="$IMG/archives"
INDEX="$ARCHIVES/index.tsv"
STATE="$IMG/state"
WORK="$IMG/work"
TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$here/$TARGET_DIR" ;; esac

REPO=localhost/mcp-fleet        # the refs pods use (imagePullPolicy IfNotPresent/Never)
BUILD_REPO=localhost/mcp-fleet-build # intermediate images: bases, binaries, model
SERVER_REF="$REPO/mcp-fleet-server:local"
OPERATOR_REF="$REPO/mcp-fleet-operator:local"
# name binary version user: FROM scratch, the binary at /<binary>, entrypoint the binary.
# pause keeps the user of the upstream pause image (65535); the others run as 65532 (nonroot).
ADDONS=(
  "pause pause $K8S_VERSION 65535:65535"
  "coredns coredns $COREDNS_VERSION 65532:65532"
  "metrics-server metrics-server $METRICS_SERVER_VERSION 65532:65532"
  "traefik traefik $TRAEFIK_VERSION 65532:65532"
)

usage() {
  cat <<EOF
Usage: scripts/images.sh [all|fleet|addons]     (default: all)

Builds container images with buildah from local material only: no Docker engine, no pull
from any registry.
  fleet   $SERVER_REF and $OPERATOR_REF:
          the Dockerfile's own \`server\` and \`operator\` stages (buildah bud --pull=never),
          built over
            - base root filesystems made by mmdebstrap from Debian's packages ($DEBIAN_SUITE):
              server-base   = bookworm-slim + ca-certificates + postgresql-client-15,
              operator-base = the distroless cc equivalent (glibc, libgcc, libstdc++, libssl,
                              CA bundle, tzdata, user nonroot 65532; no shell);
            - the binaries of \`cargo build --workspace --bin mcp-fleet-server --bin mcp-fleet-operator\`
              (run here; debug info stripped from the copies);
            - the model of scripts/model.sh.
  addons  the node's add-ons, FROM scratch with one static binary of scripts/node-binaries.sh:
            $REPO/pause:$K8S_VERSION  $REPO/coredns:$COREDNS_VERSION
            $REPO/metrics-server:$METRICS_SERVER_VERSION  $REPO/traefik:$TRAEFIK_VERSION
  all     both.

Every image is exported to a docker-archive (manifest.json RepoTags = the ref), which
\`ctr -n k8s.io images import ARCHIVE\` stores under exactly that ref, in
  $ARCHIVES/
and listed in $INDEX, one line per image:
  <ref> TAB <absolute archive path> TAB <image size in bytes (uncompressed layers)>
An image is rebuilt only when its inputs changed (binaries, model, base, Dockerfile, versions).
Progress goes to stderr; stdout is a table of images and sizes, then the index path as the
last line.

Environment:
  MCP_FLEET_CACHE          cache root (default ~/.cache/mcp-fleet); everything lives in
                           \$MCP_FLEET_CACHE/images, buildah's storage included
  MCP_FLEET_IMAGE_PROFILE  debug (default, what \`make test\` builds) or release
  MCP_FLEET_IMAGE_WITH_TESTS=1  (set by \`make test\`) a debug build adds --tests: the binaries
                           get the tests' feature set, and one build serves images and tests
  CARGO_TARGET_DIR         cargo's target directory (default ./target)
  MCP_FLEET_NODE_BIN       directory of the add-on binaries (default: scripts/node-binaries.sh)
  MCP_FLEET_APT_SOURCES    apt sources file (one-line or deb822) listing Debian $DEBIAN_SUITE for
                           mmdebstrap (default: /etc/apt/sources.list.d/debian.sources, else
                           /etc/apt/sources.list)
  MCP_FLEET_IMAGE_REFRESH_BASES=1  rebuild the Debian bases even if their definition did not
                           change (to pick up security updates)
  K8S_VERSION COREDNS_VERSION METRICS_SERVER_VERSION TRAEFIK_VERSION  add-on versions
EOF
}

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
sha() { sha256sum | cut -c1-64; }
# A cheap identity of a file: path, size and modification time (ns).
file_stat() { stat -L -c '%n %s %.9Y' "$@"; }

# ---- buildah, confined to the cache: its own storage, an empty registries.conf (no search
# registries, so no short name can resolve to a registry) and an accept-anything signature
# policy (local images carry no signatures), whatever /etc/containers says.
STORAGE_DRIVER="${MCP_FLEET_IMAGE_STORAGE_DRIVER:-overlay}"
bh() {
  buildah --root "$IMG/storage" --runroot "$IMG/runroot" --storage-driver "$STORAGE_DRIVER" \
    --registries-conf "$IMG/registries.conf" "$@"
}
POLICY=(--signature-policy "$IMG/policy.json")
image_id() { bh images -q --no-trunc "$1" 2>/dev/null | head -n1 || true; }

# ---- state: per image, the key of its inputs, the image ID and the archive's size.
state_get() { if [ -f "$STATE/$1" ]; then cat "$STATE/$1"; fi; }
state_put() { printf '%s\n' "$2" >"$STATE/$1.tmp" && mv "$STATE/$1.tmp" "$STATE/$1"; }
archive_path() { printf '%s/%s.tar\n' "$ARCHIVES" "$(basename "${1%:*}")"; }

# Export REF to its docker-archive unless the archive already holds that image ID.
# docker-archive: its manifest.json lists RepoTags, which `ctr images import` (containerd 1.x and
# 2.x alike), `docker load` and `podman load` all take as the image's name, as is.
export_archive() {
  local ref="$1" id archive rec size
  id="$(image_id "$ref")"
  archive="$(archive_path "$ref")"
  rec="$(state_get "archive-$(basename "$archive")")"
  if [ -f "$archive" ] && [ "${rec%% *}" = "$id" ]; then return 0; fi
  log "exporting $ref to $archive"
  rm -f "$archive.partial"
  bh push -q "${POLICY[@]}" "$ref" "docker-archive:$archive.partial:$ref" >&2
  mv "$archive.partial" "$archive"
  # image size: the uncompressed layers, as the archive holds them
  size="$(tar -tvf "$archive" | awk '$1 ~ /^-/ && $6 ~ /\.tar$/ {s += $3} END {printf "%d", s}')"
  state_put "archive-$(basename "$archive")" "$id $size"
}

# Build an image with a command only when KEY differs from the last build of REF (or REF or its
# archive is gone). The command builds REF; then it is exported.
build_if_changed() {
  local ref="$1" key="$2" name
  shift 2
  name="$(basename "${ref%:*}")"
  if [ "$(state_get "key-$name")" = "$key" ] && [ -n "$(image_id "$ref")" ] && [ -f "$(archive_path "$ref")" ]; then
    log "$ref up to date"
    export_archive "$ref"
    return 0
  fi
  local t0=$SECONDS
  log "building $ref"
  "$@"
  state_put "key-$name" "$key"
  export_archive "$ref"
  log "built $ref in $((SECONDS - t0))s"
}

# Drop every tag of REPO (an image name without tag) but KEEP; main prunes the layers after.
drop_other_tags() {
  local repo="$1" keep="$2" n
  for n in $(bh images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep -F "$repo:" || true); do
    [ "$n" = "$keep" ] || bh rmi "$n" >/dev/null 2>&1 || true
  done
}

# ---- Debian bases, from Debian's packages with mmdebstrap. A base's tag is the hash of what
# defines it (this recipe, the suite, the package lists and the apt sources), so a changed
# definition builds a new base and an unchanged one is reused as is.
apt_sources() {
  local f="${MCP_FLEET_APT_SOURCES:-}"
  if [ -z "$f" ]; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then f=/etc/apt/sources.list.d/debian.sources
    else f=/etc/apt/sources.list; fi
  fi
  [ -s "$f" ] || die "no apt sources file $f (set MCP_FLEET_APT_SOURCES to a sources file listing Debian $DEBIAN_SUITE)"
  grep -Eq "^[[:space:]]*(Suites:.*[[:space:]]${DEBIAN_SUITE}([[:space:]]|$)|deb[[:space:]].*[[:space:]]${DEBIAN_SUITE}[[:space:]])" "$f" \
    || die "$f lists no Debian $DEBIAN_SUITE binary packages (set MCP_FLEET_APT_SOURCES to one that does)"
  printf '%s\n' "$f"
}

# What debian:bookworm-slim leaves out (debuerreotype's slimify list).
SLIM_DPKG_OPTS=(
  'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/groff/*' 'path-exclude=/usr/share/info/*'
  'path-exclude=/usr/share/lintian/*' 'path-exclude=/usr/share/linda/*'
  'path-exclude=/usr/share/locale/*'
)
SERVER_BASE_PACKAGES=(ca-certificates postgresql-client-15)
# gcr.io/distroless/cc-debian12: glibc, libgcc, libgomp, libstdc++, libssl, tzdata, netbase,
# base-files (os-release), the CA bundle (from ca-certificates, without its tooling).
OPERATOR_BASE_PACKAGES=(base-files netbase tzdata ca-certificates libc6 libgcc-s1 libgomp1 libstdc++6 libssl3)
BASE_RECIPE_VERSION=1 # bump when the functions below change what a base contains

base_key() {
  local kind="$1" sources="$2"
  {
    echo "recipe $BASE_RECIPE_VERSION $kind $DEBIAN_SUITE"
    printf '%s\n' "${SLIM_DPKG_OPTS[@]}"
    if [ "$kind" = server ]; then printf '%s\n' "${SERVER_BASE_PACKAGES[@]}"; else printf '%s\n' "${OPERATOR_BASE_PACKAGES[@]}"; fi
    grep -v '^[[:space:]]*#' "$sources"
    if [ -n "${MCP_FLEET_IMAGE_REFRESH_BASES:-}" ]; then date +%s; fi
  } | sha | cut -c1-16
}

# Fail rather than delete through a mount that mmdebstrap left behind.
safe_rm_tree() {
  local d="$1"
  [ -e "$d" ] || return 0
  if findmnt -rn -o TARGET | grep -Fq "$(realpath "$d")/"; then die "$d still has mounts; not deleting it"; fi
  rm -rf --one-file-system "$d"
}

# Commit the directory ROOTFS as image REF (one layer), with buildah config ARGS.
commit_rootfs() {
  local rootfs="$1" ref="$2" c mnt
  shift 2
  c="$(bh from --pull=never "${POLICY[@]}" scratch)"
  mnt="$(bh mount "$c")"
  # device nodes are the runtime's business; keep /dev empty
  tar -C "$rootfs" --exclude='./dev/*' --numeric-owner -cf - . | tar -C "$mnt" --numeric-owner -xpf -
  bh umount "$c" >/dev/null
  bh config --os linux --arch "$(dpkg --print-architecture)" "$@" "$c"
  bh commit -q --rm "${POLICY[@]}" --identity-label=false "$c" "$ref" >/dev/null
}

build_server_base() {
  local ref="$1" sources="$2" dir="$WORK/server-base" opts=() o
  for o in "${SLIM_DPKG_OPTS[@]}"; do opts+=("--dpkgopt=$o"); done
  safe_rm_tree "$dir"
  log "mmdebstrap: $DEBIAN_SUITE minbase + ${SERVER_BASE_PACKAGES[*]} (a few minutes)"
  mmdebstrap --quiet --mode=root --variant=minbase --format=directory "${opts[@]}" \
    --include="$(IFS=,; echo "${SERVER_BASE_PACKAGES[*]}")" \
    "$DEBIAN_SUITE" "$dir" "$sources" >&2
  [ -x "$dir/usr/lib/postgresql/15/bin/pg_dump" ] || die "server base has no /usr/lib/postgresql/15/bin/pg_dump"
  commit_rootfs "$dir" "$ref" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash \
    --label "org.opencontainers.image.description=Debian $DEBIAN_SUITE slim + ${SERVER_BASE_PACKAGES[*]} (mmdebstrap)"
  safe_rm_tree "$dir"
}

# The operator's base: only the files of the listed packages (no dependency closure, as
# distroless does it), so no shell, no dpkg, no apt, no perl.
build_operator_base() {
  local ref="$1" sources="$2" dl="$WORK/operator-base-dl" dir="$WORK/operator-base" p deb
  safe_rm_tree "$dl"
  safe_rm_tree "$dir"
  log "mmdebstrap: downloading ${OPERATOR_BASE_PACKAGES[*]}"
  # variant extract brings the dependencies too (debconf, perl, mawk, openssl); it is only the
  # downloader here, and its package cache is kept to unpack the chosen packages by hand.
  mmdebstrap --quiet --mode=root --variant=extract --format=directory --skip=cleanup/apt/cache \
    --include="$(IFS=,; echo "${OPERATOR_BASE_PACKAGES[*]}")" "$DEBIAN_SUITE" "$dl" "$sources" >&2
  mkdir -p "$dir/var/lib/dpkg/status.d"
  for p in "${OPERATOR_BASE_PACKAGES[@]}"; do
    deb="$(find "$dl/var/cache/apt/archives" -maxdepth 1 -name "${p}_*.deb" | head -n1)"
    [ -n "$deb" ] || die "mmdebstrap downloaded no $p"
    dpkg-deb -x "$deb" "$dir"
    dpkg-deb -f "$deb" >"$dir/var/lib/dpkg/status.d/$p" # what scanners read, as in distroless
  done
  safe_rm_tree "$dl"
  # The CA bundle, as update-ca-certificates would write it; then drop the tooling.
  mkdir -p "$dir/etc/ssl/certs"
  find "$dir/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort | xargs cat >"$dir/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$dir/usr/sbin/update-ca-certificates" "$dir/usr/share/ca-certificates" "$dir/etc/ca-certificates" \
    "$dir/etc/ca-certificates.conf" "$dir/usr/share/doc" "$dir/usr/share/man" "$dir/usr/share/lintian" \
    "$dir/usr/share/locale" "$dir/usr/share/gcc" "$dir/usr/share/gdb" "$dir/etc/profile.d" "$dir/etc/skel" \
    "$dir/etc/update-motd.d"
  [ -z "$(find "$dir" -path '*/bin/*sh' -o -path '*/bin/busybox')" ] || die "operator base has a shell"
  cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$dir/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' \
    >"$dir/etc/nsswitch.conf"
  install -d -m 0700 "$dir/root"
  install -d -m 0700 -o 65532 -g 65532 "$dir/home/nonroot"
  install -d -m 1777 "$dir/tmp"
  install -d "$dir/proc" "$dir/sys" "$dir/dev" "$dir/etc/ssl/private" "$dir/var/tmp"
  commit_rootfs "$dir" "$ref" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --user 65532:65532 --workingdir /home/nonroot \
    --label "org.opencontainers.image.description=Debian $DEBIAN_SUITE glibc + libgcc + CA bundle, distroless cc equivalent (mmdebstrap)"
  safe_rm_tree "$dir"
}

# ensure_base KIND: prints the base's ref, building it when its definition is new.
ensure_base() {
  local kind="$1" sources key ref t0=$SECONDS
  sources="$(apt_sources)"
  key="$(base_key "$kind" "$sources")"
  ref="$BUILD_REPO/$kind-base:$key"
  if [ -z "$(image_id "$ref")" ]; then
    log "building $kind base $ref"
    "build_${kind}_base" "$ref" "$sources"
    drop_other_tags "$BUILD_REPO/$kind-base" "$ref"
    log "built $kind base in $((SECONDS - t0))s"
  fi
  printf '%s\n' "$ref"
}

# ---- the fleet: binaries + model images, then the Dockerfile's stages over them.
SCRIPT_KEY="$(sha <"$0" | cut -c1-16)" # any change to this script rebuilds the (cheap) non-base images

# Stripped copies of the cargo binaries in $WORK/bin; re-stripped only when cargo relinked
# (size or mtime changed), and then hashed, so a relink to the same bytes rebuilds nothing.
# Prints the hash of the stripped pair.
stage_binaries() {
  local b src st rec hashes=""
  mkdir -p "$WORK/bin"
  for b in mcp-fleet-server mcp-fleet-operator; do
    src="$TARGET_DIR/$PROFILE/$b"
    [ -x "$src" ] || die "$src missing after cargo build"
    st="$(file_stat "$src")"
    rec="$(state_get "strip-$b")"
    if [ "${rec#* | }" != "$st" ] || [ ! -x "$WORK/bin/$b" ]; then
      log "stripping debug info: $src"
      objcopy --strip-debug "$src" "$WORK/bin/$b.tmp"
      chmod 0755 "$WORK/bin/$b.tmp"
      mv "$WORK/bin/$b.tmp" "$WORK/bin/$b"
      rec="$(sha <"$WORK/bin/$b") | $st"
      state_put "strip-$b" "$rec"
    fi
    hashes+="$b ${rec%% | *}"$'\n'
  done
  printf '%s' "$hashes" | sha | cut -c1-16
}

build_binaries_image() {
  local ref="$1" c
  c="$(bh from --pull=never scratch)"
  bh copy "$c" "$WORK/bin/mcp-fleet-server" "$WORK/bin/mcp-fleet-operator" /out/ >/dev/null
  bh commit -q --rm "${POLICY[@]}" --identity-label=false "$c" "$ref" >/dev/null
}

build_model_image() {
  local ref="$1" dir="$2" c
  c="$(bh from --pull=never scratch)"
  bh copy "$c" "$dir/model.safetensors" "$dir/tokenizer.json" "$dir/config.json" /model/ >/dev/null
  bh commit -q --rm "${POLICY[@]}" --identity-label=false "$c" "$ref" >/dev/null
}

# The Dockerfile's stage TARGET with the local parts; an empty context (the runtime stages
# only copy from other stages, and the source tree is not theirs to read).
bud_stage() {
  local target="$1" ref="$2"
  mkdir -p "$WORK/empty-context"
  bh bud -q --pull=never --skip-unused-stages=true "${POLICY[@]}" --identity-label=false \
    --target "$target" -f "$here/Dockerfile" \
    --build-arg "BINARIES=$binaries_ref" --build-arg "MODEL=$model_ref" \
    --build-arg "SERVER_BASE=$server_base" --build-arg "OPERATOR_BASE=$operator_base" \
    -t "$ref" "$WORK/empty-context" >/dev/null
  # buildah 1.28 leaves the working containers of the FROM-only stages (binaries, model-files)
  # behind, mounted; nothing else uses this storage, so drop every working container.
  bh rm --all >/dev/null
}

build_fleet() {
  local profile_flag=() t0=$SECONDS key model_dir dockerfile_key
  case "$PROFILE" in
    debug) ;;
    release) profile_flag=(--release) ;;
    *) die "MCP_FLEET_IMAGE_PROFILE must be debug or release, not $PROFILE" ;;
  esac
  server_base="$(ensure_base server)"
  operator_base="$(ensure_base operator)"

  t0=$SECONDS
  # Under `make test` (MCP_FLEET_IMAGE_WITH_TESTS=1) a debug build resolves features as
  # `cargo test --workspace` does (--tests: the dev-dependencies add tokio's test-util and rmcp's
  # client features), so one build serves these images, the tests and the e2e tests' own builds of
  # the binaries (e2e's WorkspaceBin); without it every crate over tokio is compiled twice.
  # Otherwise (`make images`, `make demo`) only the two binaries are built.
  local targets=(--workspace --bin mcp-fleet-server --bin mcp-fleet-operator)
  [ "$PROFILE" = release ] || [ "${MCP_FLEET_IMAGE_WITH_TESTS:-}" != 1 ] || targets+=(--tests)
  log "cargo build ${targets[*]} ${profile_flag[*]}"
  (cd "$here" && cargo build -q "${targets[@]}" "${profile_flag[@]}" >&2)
  log "cargo build done in $((SECONDS - t0))s"

  key="$(stage_binaries)"
  binaries_ref="$BUILD_REPO/binaries:$key"
  if [ -z "$(image_id "$binaries_ref")" ]; then
    log "building $binaries_ref"
    build_binaries_image "$binaries_ref"
    drop_other_tags "$BUILD_REPO/binaries" "$binaries_ref"
  fi

  model_dir="$("$here/scripts/model.sh" | tail -n1)"
  key="$(file_stat "$model_dir"/model.safetensors "$model_dir"/tokenizer.json "$model_dir"/config.json | sed "s|$model_dir/||" | sha | cut -c1-16)"
  model_ref="$BUILD_REPO/model:$key"
  if [ -z "$(image_id "$model_ref")" ]; then
    log "building $model_ref"
    build_model_image "$model_ref" "$model_dir"
    drop_other_tags "$BUILD_REPO/model" "$model_ref"
  fi

  dockerfile_key="$(sha <"$here/Dockerfile" | cut -c1-16)"
  build_if_changed "$SERVER_REF" "$SCRIPT_KEY $dockerfile_key $server_base $binaries_ref $model_ref" \
    bud_stage server "$SERVER_REF"
  build_if_changed "$OPERATOR_REF" "$SCRIPT_KEY $dockerfile_key $operator_base $binaries_ref" \
    bud_stage operator "$OPERATOR_REF"
}

# ---- add-ons: FROM scratch, one static binary each.
build_addon_image() {
  local ref="$1" bin="$2" name="$3" version="$4" user="$5" c
  c="$(bh from --pull=never scratch)"
  bh copy --chmod 0755 "$c" "$bin" "/$name" >/dev/null
  bh config --os linux --arch "$(dpkg --print-architecture)" --entrypoint "[\"/$name\"]" --user "$user" \
    --label "org.opencontainers.image.title=$name" --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.description=$name $version built from source by scripts/node-binaries.sh" "$c"
  bh commit -q --rm "${POLICY[@]}" --identity-label=false "$c" "$ref" >/dev/null
}

build_addons() {
  local bindir="${MCP_FLEET_NODE_BIN:-}" a name bin version user ref
  if [ -z "$bindir" ]; then
    log "scripts/node-binaries.sh (waits while another run builds)"
    bindir="$("$here/scripts/node-binaries.sh" | tail -n1)"
  fi
  for a in "${ADDONS[@]}"; do
    read -r name bin version user <<<"$a"
    [ -x "$bindir/$bin" ] || die "$bindir/$bin missing (scripts/node-binaries.sh builds it)"
    # node-binaries.sh records the version, plus build details after a "+" (coredns: its plugins)
    if [ -f "$bindir/$bin.version" ]; then
      case "$(cat "$bindir/$bin.version")" in
        "$version" | "$version+"*) ;;
        *) die "$bindir/$bin is $(cat "$bindir/$bin.version"), not $version" ;;
      esac
    fi
    ref="$REPO/$name:$version"
    build_if_changed "$ref" "$SCRIPT_KEY $(file_stat "$bindir/$bin" | sha | cut -c1-16) $version $user" \
      build_addon_image "$ref" "$bindir/$bin" "$name" "$version" "$user"
  done
}

main() {
  local what="${1:-all}" refs=() all_refs=() a name version ref archive rec id size start=$SECONDS
  case "$what" in
    all | fleet | addons) ;;
    -h | --help | help) usage; return 0 ;;
    *) usage >&2; return 2 ;;
  esac
  mkdir -p "$ARCHIVES" "$STATE" "$WORK"
  # One run at a time: `make test` and a developer's `make images` may overlap.
  exec 8>"$IMG/.lock"
  if ! flock -n 8; then
    log "another images.sh holds $IMG/.lock; waiting"
    flock 8
  fi
  printf '' >"$IMG/registries.conf"
  printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$IMG/policy.json"
  if ! command -v buildah >/dev/null || ! command -v mmdebstrap >/dev/null; then
    # shellcheck source=scripts/lib/apt.sh
    source "$here/scripts/lib/apt.sh"
    apt_install buildah mmdebstrap
  fi
  bh rm --all >/dev/null 2>&1 || true # what an interrupted run left

  case "$what" in
    all) build_fleet; build_addons ;;
    fleet) build_fleet ;;
    addons) build_addons ;;
  esac
  [ "$what" = addons ] || refs+=("$SERVER_REF" "$OPERATOR_REF")
  if [ "$what" != fleet ]; then
    for a in "${ADDONS[@]}"; do read -r name _ version _ <<<"$a"; refs+=("$REPO/$name:$version"); done
  fi
  bh rmi --prune >/dev/null 2>&1 || true # layers no tag uses any more

  # index.tsv: every image of this script whose archive is current, whichever subcommand built it.
  all_refs=("$SERVER_REF" "$OPERATOR_REF")
  for a in "${ADDONS[@]}"; do read -r name _ version _ <<<"$a"; all_refs+=("$REPO/$name:$version"); done
  : >"$INDEX.tmp"
  for ref in "${all_refs[@]}"; do
    archive="$(archive_path "$ref")"
    rec="$(state_get "archive-$(basename "$archive")")"
    id="$(image_id "$ref")"
    if [ ! -f "$archive" ] || [ -z "$id" ] || [ "${rec%% *}" != "$id" ]; then continue; fi
    printf '%s\t%s\t%s\n' "$ref" "$archive" "${rec#* }" >>"$INDEX.tmp"
  done
  mv "$INDEX.tmp" "$INDEX"

  log "images ready in $((SECONDS - start))s"
  printf '%-52s %9s\n' IMAGE 'SIZE(MB)'
  for ref in "${refs[@]}"; do
    size="$(awk -F'\t' -v r="$ref" '$1 == r {print $3}' "$INDEX")"
    printf '%-52s %9.1f\n' "$ref" "$(awk -v s="${size:-0}" 'BEGIN {print s / 1e6}')"
  done
  echo "$INDEX"
}

# Everything above is definitions; bash has read the whole file before main runs, so editing
# this script while a run is under way does not derail that run.
main "$@"
exit
