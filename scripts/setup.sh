#!/usr/bin/env bash
# Installs what peercam needs on Debian 12 / Raspberry Pi OS (bookworm).
#   scripts/setup.sh          build and run: GStreamer runtime and development packages
#   scripts/setup.sh --test   also what the tests need: Chromium, Node.js packages, aiortc
# Installs only what is missing, so repeated runs take a second.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

packages=(
  pkg-config gcc libc6-dev ca-certificates
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-tools gstreamer1.0-alsa
)
if [ "$want_test" = 1 ]; then
  # openssl: the TLS tests compare fingerprints with its output; dbus-daemon: the avahi
  # coexistence test starts its own system bus (avahi may otherwise pull in dbus-broker);
  # nftables: the lossy-link test drops packets with it.
  packages+=(chromium iproute2 util-linux systemd avahi-daemon avahi-utils openssl dbus-daemon
    nftables)
  # firefox-esr: a second browser (without H.264 offline: it watches the VP8 encode).
  packages+=(firefox-esr)
  # zbar-tools, librsvg2-bin: the share test reads the QR codes back (zbarimg, rsvg-convert).
  packages+=(zbar-tools librsvg2-bin)
  # python3-venv: the aiortc interop test's virtualenv (tests/aiortc).
  packages+=(python3 python3-venv)
  # janus, curl: the WHIP test publishes to Janus and reaches it with curl. Its WHIP front,
  # simple-whip-server, depends on Debian's nodejs, which a Node.js from elsewhere conflicts
  # with: it is unpacked under tests/whip/server below instead of installed.
  packages+=(janus curl)
  # Any working Node.js will do (it may come from outside Debian with its own npm).
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: Rust is missing; install it with rustup (https://rustup.rs) and re-run" >&2
  exit 1
fi

if [ "$want_test" = 1 ] && [ -f tests/browser/package.json ]; then
  (cd tests/browser && { { [ -d node_modules/playwright-core ] && [ -d node_modules/puppeteer-core ]; } ||
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; })
fi
# simple-whip-server (Janus's WHIP front, from Debian) unpacked under tests/whip/server, and
# the npm packages it needs (at the versions Debian ships) in tests/whip/node_modules.
if [ "$want_test" = 1 ] && [ -f tests/whip/package.json ]; then
  (cd tests/whip && {
    [ -f server/usr/share/simple-whip-server/src/server.js ] || {
      tmp=$(mktemp -d)
      (cd "$tmp" && { apt-get download simple-whip-server >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download simple-whip-server >/dev/null; }; })
      dpkg-deb -x "$tmp"/simple-whip-server_*.deb server
      rm -rf "$tmp"
    }
    [ -d node_modules/express ] || npm ci --no-audit --no-fund --loglevel=error; })
fi
# aiortc (a Python WebRTC stack) for the interop test, in a virtualenv of its own; installed
# again only when its pinned versions change.
if [ "$want_test" = 1 ] && [ -f tests/aiortc/requirements.txt ]; then
  (cd tests/aiortc && { cmp -s requirements.txt .venv/installed.txt ||
    { python3 -m venv .venv && .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt &&
      cp requirements.txt .venv/installed.txt; }; })
fi
echo "setup: ok"
