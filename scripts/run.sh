#!/usr/bin/env bash
# Runs the camera on this machine: installs prerequisites, builds, and serves on port 8080.
# With no camera attached, `auto` falls back to a moving test pattern. Extra arguments go to
# `peercam serve` (e.g. --listen 0.0.0.0:9000 --source test).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked
exec target/release/peercam serve "$@"
