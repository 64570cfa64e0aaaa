#!/usr/bin/env bash
# Counts the CPU instructions the load generator (`sundial-bench send`) executes per
# single-send request: the other half of the two cores in every side-by-side run.
#
#   scripts/client-instructions.sh [SUNDIAL_BIN] [BENCH_BIN] [COUNT]
#
# Starts `sundial serve` (not instrumented) on 127.0.0.1 port 0, then runs
# `sundial-bench send --addr ... --single-messages COUNT` under callgrind, and again with
# 4 single sends; the difference over COUNT − 4 is the load generator's instructions per
# single send (its client, its bodies, its bookkeeping), the batched sends and the
# start-up both runs share left out. COUNT is 100,000 by default. Installs valgrind if
# missing. Needs a release (or `profiling`) build of both binaries. KEEP=1 keeps the
# work dir.
set -euo pipefail

target="${CARGO_TARGET_DIR:-$HOME/.cache/sundial/target}"
bin="${1:-$target/release/sundial}"
bench="${2:-$target/release/sundial-bench}"
count="${3:-100000}"
if [ "$count" -le 4 ]; then
    echo "client-instructions: COUNT must be above 4, not $count" >&2
    exit 2
fi

script=client-instructions
# shellcheck source=scripts/callgrind-common.sh
. "$(dirname "$0")/callgrind-common.sh"

"$bin" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --grpc-listen off \
    --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
wait_addr "$work"

# Instructions of one `sundial-bench send` run with $1 single sends.
measure() {
    local n="$1"
    (cd "$work" && valgrind --tool=callgrind --callgrind-out-file="$work/cg.$n" \
        "$bench" send --addr "$addr" --no-grpc --no-echo --messages 4096 \
        --single-messages "$n" --repeat 1 >"$work/bench.$n" 2>&1) || {
        cat "$work/bench.$n" >&2
        exit 1
    }
    awk '/^summary:/ {s += $2} END {print s}' "$work/cg.$n"*
}
base="$(measure 4)"
full="$(measure "$count")"
echo "load generator instructions: $full for $count single sends, $base for 4"
echo "$full $base $count" | awk '{printf "  %.0f per single send\n", ($1 - $2) / ($3 - 4)}'
grep -E "single sends, " "$work/bench.$count" || true
