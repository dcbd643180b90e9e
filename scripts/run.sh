#!/usr/bin/env bash
# Runs the camera on this machine: installs prerequisites, builds, and serves on port 8080.
# With no camera attached, `auto` falls back to a moving test pattern, and with no microphone
# the sound is a test tone. Extra arguments go to
# `peercam serve` (e.g. --listen 0.0.0.0:9000 --source test).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked
# No microphone (and no configuration saying otherwise): the camera's sound is a test tone,
# so that a first run shows the sound works too.
if ! grep -qs capture /proc/asound/pcm && [[ " $* " != *" --audio "* && " $* " != *" --config "* ]]; then
    set -- --audio test "$@"
fi
exec target/release/peercam serve "$@"
