#!/usr/bin/env bash
# Cross-builds peercam for Raspberry Pi OS (bookworm) and runs the result under qemu.
#
#   scripts/cross-check.sh [aarch64|armv7]      (default: aarch64)
#
# Steps:
#   1. host tools: mmdebstrap, qemu-user-static, file, readelf (installed with apt if missing)
#   2. the Rust target (rustup target add)
#   3. a clean Debian bookworm root made once with mmdebstrap, holding the build tools, the
#      cross compiler and the target's GStreamer -dev and runtime packages through multiarch.
#      Those -dev packages cannot sit next to the host's own, which is why the build happens
#      in this root and not on the host.
#   4. cargo build --release --target <triple> inside that root (chroot), with the host's
#      Rust toolchain bind-mounted read-only and the source tree read-only
#   5. each program's ELF header and the newest glibc symbol version it needs (must be
#      <= 2.36, the glibc of Raspberry Pi OS bookworm)
#   6. `peercam --version` and the check (`peercam config --json --source test |
#      peercam-media check`, what `peercam check` runs) under qemu-user-static in the root
#
# Everything cached lives outside the clone, so repeated runs only rebuild what changed:
#   PEERCAM_CROSS_CACHE   base directory        (default /var/cache/peercam-build; not
#                         /var/cache/peercam, which is the service's CacheDirectory= and is
#                         chowned to the service user and removed on purge by the package)
#   PEERCAM_CROSS_ROOT    the bookworm root     (default $PEERCAM_CROSS_CACHE/cross-<arch>-bookworm)
#   PEERCAM_CROSS_TARGET  cargo target dir      (default $PEERCAM_CROSS_CACHE/cross-target)
#   PEERCAM_CROSS_CARGO_HOME  crate downloads   (default $PEERCAM_CROSS_CACHE/cross-cargo-home)
#   PEERCAM_DEBIAN_MIRROR Debian mirror         (default http://deb.debian.org/debian)
#   PEERCAM_DEBIAN_SECURITY_MIRROR              (default http://deb.debian.org/debian-security;
#                         `none` leaves bookworm-security out, for a mirror whose copy of it is
#                         broken: the root then has bookworm as of the last point release)
# Delete the root directory to rebuild it from scratch.
#
# Needs root (chroot and bind mounts, which live in a private mount namespace and vanish with
# it). scripts/deb-check.sh sources this file for its functions.
set -euo pipefail

# ---------------------------------------------------------------------------- helpers

step() {
  printf '\n== %s (%s)\n' "$*" "$(date +%T)"
  STEP_START=$SECONDS
}
done_step() { printf -- '-- done in %ss\n' "$((SECONDS - STEP_START))"; }
die() {
  printf 'cross-check: %s\n' "$*" >&2
  exit 1
}

# Sets the per-architecture names. $1: aarch64 | armv7.
cross_select() {
  ARCH_NAME=$1
  case "$ARCH_NAME" in
    aarch64)
      TRIPLE=aarch64-unknown-linux-gnu
      DEB_ARCH=arm64
      GNU_TYPE=aarch64-linux-gnu
      QEMU=qemu-aarch64-static
      BINFMT=qemu-aarch64
      CROSS_PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
      ;;
    armv7)
      TRIPLE=armv7-unknown-linux-gnueabihf
      DEB_ARCH=armhf
      GNU_TYPE=arm-linux-gnueabihf
      QEMU=qemu-arm-static
      BINFMT=qemu-arm
      CROSS_PACKAGES=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
      ;;
    *) die "unknown architecture '$ARCH_NAME' (use aarch64 or armv7)" ;;
  esac
  CACHE=${PEERCAM_CROSS_CACHE:-/var/cache/peercam-build}
  ROOT=${PEERCAM_CROSS_ROOT:-$CACHE/cross-$ARCH_NAME-bookworm}
  TARGET_DIR=${PEERCAM_CROSS_TARGET:-$CACHE/cross-target}
  CARGO_CACHE=${PEERCAM_CROSS_CARGO_HOME:-$CACHE/cross-cargo-home}
  MIRROR=${PEERCAM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
  SECURITY_MIRROR=${PEERCAM_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
  SOURCES=("deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main")
  [ "$SECURITY_MIRROR" = none ] || SOURCES+=("deb $SECURITY_MIRROR bookworm-security main")
  SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  case "$ROOT/" in "$SRC"/*) die "the root must be outside the source tree ($ROOT)" ;; esac
  case "$TARGET_DIR/" in "$SRC"/*) die "the target dir must be outside the source tree" ;; esac
  BIN=$TARGET_DIR/$TRIPLE/release/peercam
  MEDIA_BIN=$TARGET_DIR/$TRIPLE/release/peercam-media
  # What the root holds: host build tools, the cross compiler, the target's GStreamer -dev
  # packages (to build) and runtime plugins (to run the result), and dpkg-dev for
  # dpkg-shlibdeps when scripts/deb-check.sh packages the binary.
  ROOT_PACKAGES=(
    ca-certificates gcc libc6-dev pkg-config file binutils dpkg-dev
    "${CROSS_PACKAGES[@]}"
    "libgstreamer1.0-dev:$DEB_ARCH" "libgstreamer-plugins-base1.0-dev:$DEB_ARCH"
    "libgstreamer-plugins-bad1.0-dev:$DEB_ARCH"
    "gstreamer1.0-plugins-base:$DEB_ARCH" "gstreamer1.0-plugins-good:$DEB_ARCH"
    "gstreamer1.0-plugins-bad:$DEB_ARCH" "gstreamer1.0-plugins-ugly:$DEB_ARCH"
    "gstreamer1.0-nice:$DEB_ARCH"
  )
}

# Installs the host packages named in "$@" that are missing.
apt_ensure() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "installing on the host: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

cross_host_tools() {
  step "host tools"
  [ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot, bind mounts): run it with sudo"
  if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
    die "cargo and rustup are needed (https://rustup.rs)"
  fi
  apt_ensure mmdebstrap qemu-user-static file binutils util-linux
  mkdir -p "$CACHE" "$TARGET_DIR" "$CARGO_CACHE"
  # One run per architecture at a time: the root and its package database are shared.
  exec 9>"$CACHE/cross-$ARCH_NAME.lock"
  flock 9
  done_step
}

cross_rust_target() {
  step "Rust target $TRIPLE"
  # The toolchain that builds in the root is the one this source tree selects on the host.
  SYSROOT=$(cd "$SRC" && rustc --print sysroot)
  TOOLCHAIN=$(basename "$SYSROOT")
  (cd "$SRC" && rustup target add "$TRIPLE")
  [ -d "$SYSROOT/lib/rustlib/$TRIPLE/lib" ] || die "rust-std for $TRIPLE missing in $SYSROOT"
  echo "toolchain $TOOLCHAIN ($(rustc --version))"
  done_step
}

# Runs "$@" inside $ROOT, in a private mount namespace with /proc, /dev, DNS, the Rust
# toolchain (read-only at /opt/rust), the source tree (read-only at /src), the cargo target
# dir (/target), the crate cache (/opt/cargo-home), qemu and, when present, cargo-deb.
# Extra bind mounts: IN_ROOT_BINDS=(host-path:root-path ...). Environment: IN_ROOT_ENV=(K=V ...).
# IN_ROOT_DIR: the root to use instead of $ROOT. IN_ROOT_OVERLAY: a scratch directory; when
# set, the root is mounted read-only under an overlay whose changes go to that directory, so
# successive calls see each other's changes and the root itself stays untouched.
in_root() {
  local root=${IN_ROOT_DIR:-$ROOT} overlay=${IN_ROOT_OVERLAY:-}
  local binds=(
    "$SYSROOT:/opt/rust:ro"
    "$SRC:/src:ro"
    "$TARGET_DIR:/target:rw"
    "$CARGO_CACHE:/opt/cargo-home:rw"
  )
  [ -e "/usr/bin/$QEMU" ] && binds+=("/usr/bin/$QEMU:/usr/local/bin/$QEMU:ro")
  # The host's trust store for cargo, so it reaches crates.io from the root wherever the host
  # does (a host may trust a local proxy's CA that Debian's bundle lacks). Beside the root's
  # own bundle, not over it: ca-certificates in the root must stay free to rewrite that.
  local ca=${CARGO_HTTP_CAINFO:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}} ca_env=()
  if [ -f "$ca" ]; then
    binds+=("$ca:/opt/host-ca.crt:ro")
    ca_env=(CARGO_HTTP_CAINFO=/opt/host-ca.crt)
  fi
  local cargo_deb
  cargo_deb=$(command -v cargo-deb 2>/dev/null || true)
  [ -n "$cargo_deb" ] && binds+=("$cargo_deb:/usr/local/bin/cargo-deb:ro")
  binds+=(${IN_ROOT_BINDS[@]+"${IN_ROOT_BINDS[@]}"})
  local env=(
    HOME=/root
    PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    LANG=C.UTF-8
    TERM="${TERM:-dumb}"
    CARGO_HOME=/opt/cargo-home
    CARGO_TARGET_DIR=/target
    RUSTC=/opt/rust/bin/rustc
    ${ca_env[@]+"${ca_env[@]}"}
    ${IN_ROOT_ENV[@]+"${IN_ROOT_ENV[@]}"}
  )
  # shellcheck disable=SC2016 # the script below expands its own arguments
  unshare --mount --fork --propagation private -- bash -euo pipefail -c '
    root=$1 overlay=$2 nbinds=$3
    shift 3
    if [ -n "$overlay" ]; then
      mkdir -p "$overlay/upper" "$overlay/work" "$overlay/merged"
      mount -t overlay overlay \
        -o "lowerdir=$root,upperdir=$overlay/upper,workdir=$overlay/work" "$overlay/merged"
      root=$overlay/merged
    fi
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/tmp"
    [ -e "$root/etc/resolv.conf" ] || : >"$root/etc/resolv.conf"
    mount --bind -o ro /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null ||
      mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
    for ((i = 0; i < nbinds; i++)); do
      spec=$1; shift
      from=${spec%%:*}; rest=${spec#*:}; to=${rest%%:*}; mode=${rest##*:}
      if [ -d "$from" ]; then mkdir -p "$root$to"; else mkdir -p "$(dirname "$root$to")"; [ -e "$root$to" ] || : >"$root$to"; fi
      mount --bind "$from" "$root$to"
      [ "$mode" = ro ] && mount -o remount,bind,ro "$root$to"
    done
    exec chroot "$root" /usr/bin/env -i "$@"
  ' in-root "$root" "$overlay" "${#binds[@]}" "${binds[@]}" "${env[@]}" "$@"
}

# Sets MISSING to the packages of ROOT_PACKAGES not installed in $ROOT.
root_missing() {
  local p
  MISSING=()
  for p in "${ROOT_PACKAGES[@]}"; do
    # shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
    chroot "$ROOT" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      MISSING+=("$p")
  done
}

cross_root() {
  step "bookworm root for $DEB_ARCH at $ROOT"
  if [ -f "$ROOT/.peercam-root" ]; then
    root_missing
    if [ "${#MISSING[@]}" -eq 0 ]; then
      echo "cached ($(du -sh --apparent-size "$ROOT" 2>/dev/null | cut -f1))"
    else
      echo "adding to the root: ${MISSING[*]}"
      # shellcheck disable=SC2016 # expanded by the shell in the root
      in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
        sh "${MISSING[@]}"
    fi
  else
    # Made beside the final path and renamed at the end, so an interrupted run never leaves
    # a half-made root that a later run would take for finished.
    local tmp=$ROOT.partial
    rm -rf "$tmp"
    mkdir -p "$(dirname "$ROOT")"
    local include
    include=$(IFS=,; echo "${ROOT_PACKAGES[*]}")
    echo "mmdebstrap (a few minutes the first time): ${ROOT_PACKAGES[*]}"
    local attempt
    # A second attempt rides out a mirror caught mid-sync ("File has unexpected size").
    for attempt in 1 2; do
      rm -rf "$tmp"
      if mmdebstrap --mode=root --variant=apt --architectures="amd64,$DEB_ARCH" \
        --aptopt='APT::Install-Recommends "false"' \
        --include="$include" \
        bookworm "$tmp" "${SOURCES[@]}" 2>&1 | sed -u 's/^/  /'; then
        break
      fi
      [ "$attempt" = 2 ] && die "mmdebstrap failed twice (see above). If the mirror's" \
        "bookworm-security is what fails, PEERCAM_DEBIAN_SECURITY_MIRROR=none leaves it out."
      echo "mmdebstrap failed; trying once more in 30 s"
      sleep 30
    done
    [ -x "$tmp/usr/bin/$GNU_TYPE-gcc" ] || die "mmdebstrap did not produce a usable root in $tmp"
    date -u +%FT%TZ >"$tmp/.peercam-root"
    mv "$tmp" "$ROOT"
    root_missing
    [ "${#MISSING[@]}" -eq 0 ] || die "packages missing from the new root: ${MISSING[*]}"
    echo "made ($(du -sh --apparent-size "$ROOT" | cut -f1))"
  fi
  done_step
}

cross_build() {
  step "cargo build --release --target $TRIPLE (inside the root)"
  in_root sh -c "cd /src && nice -n 10 cargo build --release --locked --target $TRIPLE --bin peercam --bin peercam-media"
  [ -x "$BIN" ] || die "no binary at $BIN"
  [ -x "$MEDIA_BIN" ] || die "no binary at $MEDIA_BIN"
  ls -l "$BIN" "$MEDIA_BIN"
  done_step
}

cross_inspect() {
  step "binaries"
  local bin glibc v
  for bin in "$BIN" "$MEDIA_BIN"; do
    file "$bin"
    glibc=$(readelf --version-info --wide "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n1)
    echo "needs at most $glibc; needed libraries:"
    readelf --dynamic "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/  \1/p'
    v=${glibc#GLIBC_}
    [ "$(printf '%s\n2.36\n' "$v" | sort -V | tail -n1)" = 2.36 ] ||
      die "$bin needs $glibc, newer than bookworm's glibc 2.36"
  done
  # GStreamer belongs to the media program; the serving program must not map it.
  ! readelf --dynamic "$BIN" | grep -q 'NEEDED.*libgst' ||
    die "$BIN links GStreamer; only peercam-media should"
  done_step
}

# Runs the target binary "$1" with arguments "${@:2}" under qemu inside the root.
run_target() {
  local bin=$1
  shift
  local fork=()
  # Without a binfmt handler GStreamer cannot exec its (foreign) plugin scanner, so the
  # registry is built in-process instead.
  [ -e "/proc/sys/fs/binfmt_misc/$BINFMT" ] || fork=(GST_REGISTRY_FORK=no)
  local IN_ROOT_ENV=(${IN_ROOT_ENV[@]+"${IN_ROOT_ENV[@]}"} ${fork[@]+"${fork[@]}"} QEMU_LD_PREFIX=/)
  in_root "/usr/local/bin/$QEMU" "$bin" "$@"
}

cross_run() {
  local bin=/target/$TRIPLE/release/peercam
  step "peercam --version under $QEMU"
  run_target "$bin" --version
  done_step
  step "the check under $QEMU: peercam config --json --source test | peercam-media check"
  # This is what `peercam check` runs; the two halves are run one by one because qemu-user
  # cannot follow peercam's exec of a foreign program without a binfmt handler. The first run
  # in a fresh root spends a few seconds building GStreamer's plugin registry under
  # emulation; it is kept in the root's /root/.cache for later runs.
  local config out IN_ROOT_ENV=(PEERCAM_PIPELINES=/src/pipelines)
  config=$(run_target "$bin" config --json --source test) ||
    die "peercam config --json failed under qemu"
  out=$(printf '%s\n' "$config" | run_target "${bin%/*}/peercam-media" check 2>&1) ||
    {
      printf '%s\n' "$out"
      die "peercam-media check failed under qemu"
    }
  printf '%s\n' "$out"
  grep -q '^would use:' <<<"$out" || die "the check printed no choice"
  done_step
}

cross_main() {
  local start=$SECONDS
  cross_select "${1:-aarch64}"
  cross_host_tools
  cross_rust_target
  cross_root
  cross_build
  cross_inspect
  cross_run
  printf '\n== cross check for %s passed in %ss: %s\n' "$TRIPLE" "$((SECONDS - start))" "$BIN"
}

# Sourced by deb-check.sh: functions only.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

case "${1:-aarch64}" in
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac
cross_main "${1:-aarch64}"
