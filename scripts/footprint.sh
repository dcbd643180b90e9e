#!/bin/bash
# Memory of an idle device: starts `peercam serve --source test` on a free loopback port with
# no viewer, waits, and prints RSS and PSS of each of its processes (the serving process and
# its spare media worker) and their sums. RSS counts shared library pages once per process;
# PSS splits each shared page between the processes that map it.
#
#   scripts/footprint.sh [PEERCAM_BINARY] [SECONDS]
#
# Default binary target/release/peercam, default wait 4 s.
set -euo pipefail

bin=${1:-target/release/peercam}
wait=${2:-4}
[ -x "$bin" ] || { echo "footprint.sh: no executable at $bin (cargo build --release)" >&2; exit 1; }

state=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$state"' EXIT
STATE_DIRECTORY=$state "$bin" serve --source test --no-discovery --listen 127.0.0.1:0 \
    >/dev/null 2>"$state/log" &
pid=$!
sleep "$wait"
kill -0 "$pid" 2>/dev/null || { cat "$state/log" >&2; exit 1; }

tree() {
    echo "$1"
    local task child
    for task in /proc/"$1"/task/*; do
        for child in $(cat "$task/children" 2>/dev/null); do tree "$child"; done
    done
}

rss_sum=0
pss_sum=0
for p in $(tree "$pid"); do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
    pss=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")
    args=$(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-60)
    awk -v p="$p" -v r="$rss" -v s="$pss" -v a="$args" \
        'BEGIN { printf "%-8s RSS %6.1f MB  PSS %6.1f MB  %s\n", p, r / 1024, s / 1024, a }'
    rss_sum=$((rss_sum + rss))
    pss_sum=$((pss_sum + pss))
done
awk -v r="$rss_sum" -v s="$pss_sum" \
    'BEGIN { printf "total    RSS %6.1f MB  PSS %6.1f MB\n", r / 1024, s / 1024 }'
