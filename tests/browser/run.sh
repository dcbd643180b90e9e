#!/usr/bin/env bash
# Runs the browser tests: peercam and headless Chromium, talking over loopback only.
#
#   tests/browser/run.sh [node --test options] [test files, relative to tests/browser]
#
# PEERCAM_BIN   the peercam binary (default target/debug/peercam; this script builds nothing)
# CHROMIUM_BIN  the browser (default /usr/bin/chromium)
# PEERCAM_TEST_SCHEMES  the passes, in order (default "http https"): the same tests with the
#               pages on http://127.0.0.1:PORT/, then on https://peercam.test:PORT/ with the
#               device's self-signed certificate (see README.md)
#
# As root, the tests run in a private network namespace whose only interface is loopback:
# nothing can leave it, and ICE sees no real interface of the machine (see E2E_NOTES.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

# Dependencies first: the namespace below has no network.
if ! npm ls --silent >/dev/null 2>&1; then
    # playwright-core drives the system's Chromium; it must not try to fetch a browser.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

if [[ -z "${PEERCAM_IN_NETNS:-}" && "$(id -u)" == 0 ]] && unshare -n true 2>/dev/null; then
    export PEERCAM_IN_NETNS=1
    exec unshare -n -- bash -c 'ip link set lo up && exec "$0" "$@"' "$here/run.sh" "$@"
fi

export PEERCAM_BIN="$(cd "$repo" && realpath -m "${PEERCAM_BIN:-target/debug/peercam}")"
if [[ ! -x "$PEERCAM_BIN" ]]; then
    echo "run.sh: no peercam binary at $PEERCAM_BIN; run 'cargo build' first or set PEERCAM_BIN" >&2
    exit 2
fi
if [[ -z "${PEERCAM_IN_NETNS:-}" ]]; then
    echo "run.sh: not root or no unshare; running on the machine's own network" >&2
fi

if [[ $# -eq 0 ]]; then
    set -- ./*.test.js
fi
# One file at a time: each test runs its own Chromium, and two at once on a small machine
# turns timing margins into flakes. Every pass runs, even after one fails.
failed=()
for scheme in ${PEERCAM_TEST_SCHEMES:-http https}; do
    case "$scheme" in
        http | https) ;;
        *) echo "run.sh: PEERCAM_TEST_SCHEMES: '$scheme' is neither http nor https" >&2; exit 2 ;;
    esac
    echo "run.sh: the $scheme pass"
    start=$SECONDS
    PEERCAM_TEST_SCHEME=$scheme node --test --test-concurrency=1 "$@" || failed+=("$scheme")
    echo "run.sh: the $scheme pass took $((SECONDS - start)) s"
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run.sh: failed pass(es): ${failed[*]}" >&2
    exit 1
fi
