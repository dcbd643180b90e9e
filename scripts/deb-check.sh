#!/usr/bin/env bash
# Builds the peercam .deb and shows that it installs, works and purges cleanly in a Debian
# bookworm root.
#
#   scripts/deb-check.sh [amd64|arm64|armhf]      (default: amd64)
#
# amd64: `cargo deb` on this machine; the install test runs in a minimal bookworm root made
#        once with mmdebstrap ($PEERCAM_CROSS_CACHE/deb-amd64-bookworm), so apt has to pull
#        in every dependency the package declares.
# arm64: the binary is cross-built by scripts/cross-check.sh's steps, then
#        `cargo deb --target aarch64-unknown-linux-gnu --no-build` packages it inside the
#        cross root (where dpkg-shlibdeps sees the arm64 libraries); the install test runs in
#        that root, and the installed binary runs under qemu-user-static. The maintainer
#        scripts run with the root's own (amd64) shell and tools: they are plain sh.
# armhf: the same for 32-bit Raspberry Pi OS (armv7-unknown-linux-gnueabihf).
#
# Installs go into a throwaway overlay on top of the cached root, so the cache stays clean.
# The test: apt-get install of the .deb (postinst without systemd running: deb-systemd-helper
# records the enablement), every packaged file present, the service user, the conffile,
# `peercam --version` and `peercam check` from /usr/bin, as the unit's user and environment,
# with /usr/share/peercam/pipelines and /etc/peercam/peercam.toml; the shipped config equal
# to what `peercam config --default` prints; then purge and nothing left behind.
#
# The .deb: target/debian/ (amd64; $CARGO_TARGET_DIR/debian/ when set) or
# $PEERCAM_CROSS_TARGET/debian/ (arm64, armhf; default /var/cache/peercam-build/cross-target).
# Needs root. Cached paths and mirrors: see scripts/cross-check.sh.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/cross-check.sh"

# cargo-deb 3.8 needs Rust 1.85 or newer; pinned so a new release cannot change the package.
CARGO_DEB_VERSION=3.8.0
DEB_ARCH_ARG=${1:-amd64}
START=$SECONDS

case "$DEB_ARCH_ARG" in
  amd64 | arm64) cross_select aarch64 ;; # for amd64: only the shared paths and helpers
  armhf) cross_select armv7 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown architecture '$DEB_ARCH_ARG' (use amd64, arm64 or armhf)" ;;
esac

cargo_deb_tool() {
  step "cargo-deb"
  if ! command -v cargo-deb >/dev/null || [ "$(cargo-deb --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
    nice -n 10 cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
  fi
  cargo-deb --version
  done_step
}

# Reads what the packaging must match from the unit: the service user, whether it is static
# (made by postinst) or dynamic (made by systemd at start), and how systemd would set up the
# process (Environment=, StateDirectory=, CacheDirectory=), to run `peercam check` that way.
read_unit() {
  UNIT=$SRC/systemd/peercam.service
  [ -f "$UNIT" ] || die "$UNIT is missing"
  unit_value() { sed -n "s/^$1=//p" "$UNIT"; }
  UNIT_USER=$(unit_value User | tail -n1)
  DYNAMIC=$(unit_value DynamicUser | tail -n1)
  case "$DYNAMIC" in yes | true | 1 | on) DYNAMIC=yes ;; *) DYNAMIC=no ;; esac
  # %S, %C: the state and cache roots of a system service.
  mapfile -t UNIT_ENV < <(unit_value Environment | sed 's|%S|/var/lib|g; s|%C|/var/cache|g')
  UNIT_DIRS=()
  local d
  for d in $(unit_value StateDirectory); do UNIT_DIRS+=("/var/lib/$d"); done
  for d in $(unit_value CacheDirectory); do UNIT_DIRS+=("/var/cache/$d"); done
  echo "unit: User=${UNIT_USER:-(none)} DynamicUser=$DYNAMIC" \
    "WantedBy=$(unit_value WantedBy | tail -n1) Environment=${UNIT_ENV[*]:-(none)}" \
    "directories=${UNIT_DIRS[*]:-(none)}"
}

build_amd64() {
  step "host tools"
  [ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot, bind mounts): run it with sudo"
  apt_ensure mmdebstrap dpkg-dev util-linux
  mkdir -p "$CACHE" "$TARGET_DIR" "$CARGO_CACHE"
  # in_root mounts the toolchain; the amd64 test does not use it, but the mount needs a path.
  # shellcheck disable=SC2034 # read by in_root
  SYSROOT=$(cd "$SRC" && rustc --print sysroot)
  done_step
  step "cargo deb (amd64, on this machine)"
  # The GStreamer -dev packages the native build needs.
  [ -x "$SRC/scripts/setup.sh" ] && "$SRC/scripts/setup.sh" >/dev/null
  local out=${CARGO_TARGET_DIR:-$SRC/target}/debian
  rm -f "$out"/peercam_*_amd64.deb
  (cd "$SRC" && nice -n 10 cargo deb -p peercam --locked --output "$out/")
  DEB=$(ls "$out"/peercam_*_amd64.deb)
  done_step
}

build_cross() {
  cross_host_tools
  cross_rust_target
  cross_root
  cross_build
  cross_inspect
  step "cargo deb --target $TRIPLE --no-build (inside the root)"
  rm -f "$TARGET_DIR"/debian/peercam_*_"$DEB_ARCH".deb
  in_root sh -c "cd /src && cargo-deb -p peercam --target $TRIPLE --no-build --output /target/debian/"
  DEB=$(ls "$TARGET_DIR"/debian/peercam_*_"$DEB_ARCH".deb)
  done_step
}

# A minimal bookworm root (essential packages and apt) to install the amd64 package into.
install_root_amd64() {
  INSTALL_ROOT=${PEERCAM_DEB_ROOT:-$CACHE/deb-amd64-bookworm}
  step "bookworm root for the install test at $INSTALL_ROOT"
  exec 8>"$CACHE/deb-amd64.lock"
  flock 8
  if [ -f "$INSTALL_ROOT/.peercam-root" ]; then
    echo cached
  else
    rm -rf "$INSTALL_ROOT.partial"
    mmdebstrap --mode=root --variant=apt --architectures=amd64 bookworm "$INSTALL_ROOT.partial" \
      "${SOURCES[@]}" 2>&1 | sed -u 's/^/  /'
    date -u +%FT%TZ >"$INSTALL_ROOT.partial/.peercam-root"
    mv "$INSTALL_ROOT.partial" "$INSTALL_ROOT"
  fi
  done_step
}

show_deb() {
  step "the package: $DEB"
  dpkg-deb --info "$DEB" | sed -n '/Package:/,$p'
  echo "files:"
  dpkg-deb --contents "$DEB" | awk '{print "  " $1, $6, $7, $8}'
  echo "conffiles:"
  dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles | sed 's/^/  /'
  done_step
}

# The install test. Runs each step in the overlay through in_root (IN_ROOT_DIR/IN_ROOT_OVERLAY).
install_test() {
  local arch=$1 run=()
  [ "$arch" = amd64 ] || run=("/usr/local/bin/$QEMU")
  local ov
  ov=$(mktemp -d /var/tmp/peercam-deb-check.XXXXXX)
  trap 'rm -rf "$ov"' EXIT
  # in_root reads these (bash's dynamic scoping): the throwaway overlay on the cached root,
  # the .deb's directory, and apt's download cache kept between runs.
  # shellcheck disable=SC2034
  local IN_ROOT_DIR=$INSTALL_ROOT IN_ROOT_OVERLAY=$ov
  # shellcheck disable=SC2034
  local IN_ROOT_BINDS=("$(dirname "$DEB"):/debs:ro" "$CACHE/deb-apt-archives-$arch:/var/cache/apt/archives:rw")
  mkdir -p "$CACHE/deb-apt-archives-$arch/partial"
  local deb
  deb=/debs/$(basename "$DEB")
  local fork=()
  [ "$arch" != amd64 ] && [ ! -e "/proc/sys/fs/binfmt_misc/$BINFMT" ] && fork=(GST_REGISTRY_FORK=no)
  # shellcheck disable=SC2034
  local IN_ROOT_ENV=(DEBIAN_FRONTEND=noninteractive ${fork[@]+"${fork[@]}"} QEMU_LD_PREFIX=/)

  step "apt-get install $deb (throwaway overlay on $INSTALL_ROOT; no systemd running)"
  in_root sh -c "apt-get update -qq && apt-get install -y $deb" >"$ov/install.log" 2>&1 ||
    {
      cat "$ov/install.log"
      die "installing the package failed"
    }
  grep -E '^(The following NEW packages|[0-9]+ upgraded|Setting up peercam|Unpacking peercam)' "$ov/install.log" || true
  grep -iE 'warning|error' "$ov/install.log" | grep -v '^W: Download is performed unsandboxed' || echo "no warnings or errors in the install log"
  # The install message: the link to open, with the token, never 0.0.0.0.
  grep -E '^peercam: (to watch the camera, open|or by address)' "$ov/install.log" ||
    die "postinst printed no link to open the camera"
  ! grep -q '0\.0\.0\.0' "$ov/install.log" || die "the install message shows 0.0.0.0"
  done_step

  step "installed files"
  # shellcheck disable=SC2016 # expanded by the shell in the root
  in_root sh -c '
    missing=0
    for f in $(dpkg-query -L peercam); do
      if [ -e "$f" ]; then [ -d "$f" ] || ls -l "$f" | sed "s/^/  /"; else echo "MISSING $f"; missing=1; fi
    done
    exit $missing'
  # shellcheck disable=SC2016 # dpkg-query formats
  echo "conffiles: $(in_root dpkg-query -W -f='${Conffiles}' peercam | tr '\n' ' ')"
  # shellcheck disable=SC2016
  echo "status: $(in_root dpkg-query -W -f='${Status} ${Version} ${Architecture}' peercam)"
  done_step

  step "service user and enablement (done by postinst)"
  if [ "$DYNAMIC" = yes ]; then
    echo "the unit uses DynamicUser=yes: systemd makes the user at start, postinst makes none"
  else
    in_root id "$UNIT_USER" || die "postinst did not create user $UNIT_USER"
    in_root sh -c "id -nG $UNIT_USER | tr ' ' '\n' | grep -qx video" || die "$UNIT_USER is not in group video"
  fi
  # What deb-systemd-helper recorded: systemd reads the symlink at the next boot; the state
  # file lets purge remove it again.
  in_root sh -c 'ls -l /etc/systemd/system/*.wants/peercam.service &&
    ls /var/lib/systemd/deb-systemd-helper-enabled/peercam.service.dsh-also' ||
    die "the service was not enabled"
  done_step

  step "peercam --version and peercam check, installed (as ${UNIT_USER:-root})"
  local as=()
  if [ -n "$UNIT_USER" ] && [ "$DYNAMIC" != yes ]; then
    # As systemd would run it: the unit's user, HOME from its passwd entry unless the unit
    # sets it, the unit's environment, its state and cache directories made and owned by
    # the user.
    as=(runuser -u "$UNIT_USER" -- env "HOME=$(in_root getent passwd "$UNIT_USER" | cut -d: -f6)"
      ${UNIT_ENV[@]+"${UNIT_ENV[@]}"})
    local d
    for d in ${UNIT_DIRS[@]+"${UNIT_DIRS[@]}"}; do
      in_root install -d -o "$UNIT_USER" -g "$UNIT_USER" "$d"
    done
  fi
  in_root ${as[@]+"${as[@]}"} ${run[@]+"${run[@]}"} /usr/bin/peercam --version
  if [ ${#run[@]} -eq 0 ]; then
    in_root ${as[@]+"${as[@]}"} /usr/bin/peercam check --source test >"$ov/check.txt" 2>&1
  else
    # qemu-user cannot follow peercam's exec of the (foreign) media program without a binfmt
    # handler, so the two halves of `peercam check` are run one by one.
    in_root ${as[@]+"${as[@]}"} "${run[@]}" /usr/bin/peercam config --json --source test |
      in_root ${as[@]+"${as[@]}"} "${run[@]}" /usr/libexec/peercam/peercam-media check \
        >"$ov/check.txt" 2>&1
  fi ||
    {
      cat "$ov/check.txt"
      die "peercam check failed"
    }
  cat "$ov/check.txt"
  grep -q /usr/share/peercam/pipelines "$ov/check.txt" || die "check did not use /usr/share/peercam/pipelines"
  local registry
  registry=$(printf '%s\n' ${UNIT_ENV[@]+"${UNIT_ENV[@]}"} | sed -n 's/^GST_REGISTRY=//p')
  if [ -n "$registry" ] && [ ${#as[@]} -gt 0 ]; then
    in_root ls -l "$registry" || die "GStreamer could not write its registry at $registry"
  fi
  # /etc/peercam/peercam.toml is packaging/peercam.toml, which must be what this binary
  # prints as its default file (it was read by the check above).
  in_root ${run[@]+"${run[@]}"} /usr/bin/peercam config --default >"$ov/default.toml"
  in_root cat /etc/peercam/peercam.toml | diff -u - "$ov/default.toml" ||
    die "packaging/peercam.toml is out of date: regenerate it with \`peercam config --default > packaging/peercam.toml\`"
  echo "/etc/peercam/peercam.toml is what \`peercam config --default\` prints"
  done_step

  step "apt-get purge peercam"
  in_root apt-get purge -y peercam >"$ov/purge.log" 2>&1 || {
    cat "$ov/purge.log"
    die "purge failed"
  }
  grep -E '^(Removing|Purging)' "$ov/purge.log" || true
  # shellcheck disable=SC2016 # expanded by the shell in the root
  in_root sh -c '
    left=0
    for p in /usr/bin/peercam /usr/libexec/peercam /usr/share/peercam /etc/peercam /usr/share/doc/peercam \
             /usr/lib/systemd/system/peercam.service /var/lib/peercam /var/cache/peercam; do
      [ ! -e "$p" ] || { echo "LEFT $p"; left=1; }
    done
    for p in /etc/systemd/system/*.wants/peercam.service /var/lib/systemd/deb-systemd-helper-enabled/peercam.service*; do
      [ ! -e "$p" ] && [ ! -L "$p" ] || { echo "LEFT $p"; left=1; }
    done
    if [ -n "$1" ] && getent passwd "$1" >/dev/null; then echo "LEFT user $1"; left=1; fi
    dpkg-query -W -f="\${Status}\n" peercam 2>/dev/null | grep -q "^install" && { echo "LEFT package"; left=1; }
    exit $left' sh "$([ "$DYNAMIC" = yes ] || echo "$UNIT_USER")" || die "purge left things behind"
  echo "nothing left behind"
  done_step
  rm -rf "$ov"
  trap - EXIT
}

cargo_deb_tool
read_unit
case "$DEB_ARCH_ARG" in
  amd64)
    build_amd64
    install_root_amd64
    ;;
  arm64 | armhf)
    build_cross
    INSTALL_ROOT=$ROOT
    ;;
esac
show_deb
install_test "$DEB_ARCH_ARG"
printf '\n== deb check for %s passed in %ss: %s\n' "$DEB_ARCH_ARG" "$((SECONDS - START))" "$DEB"
