#!/usr/bin/env bash
# Counts the CPU instructions the daemon executes per single-send request: a machine-
# independent figure next to the timings (this kind of VM often has no hardware
# counters, so valgrind's callgrind counts them).
#
#   scripts/instructions.sh [SUNDIAL_BIN] [BENCH_BIN] [SENDS]
#
# Starts `sundial serve` under callgrind with instrumentation off, lets it open its store,
# switches instrumentation on, sends SENDS messages one per request (4 producers x 64 in
# flight, 256 B random bodies) with sundial-bench, switches it off and prints
# the instructions of all the daemon's threads divided by the requests. Installs
# valgrind if missing. Needs a release (or `profiling`) build of both binaries.
set -euo pipefail

target="${CARGO_TARGET_DIR:-$HOME/.cache/sundial/target}"
bin="${1:-$target/release/sundial}"
bench="${2:-$target/release/sundial-bench}"
sends="${3:-20000}"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "instructions: installing valgrind" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

work="$(mktemp -d)"; [ -n "${KEEP:-}" ] && echo "work dir: $work" >&2
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

SUNDIAL_LOG_LEVEL=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$work/callgrind.out.%p" \
    "$bin" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --grpc-listen off \
    --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
addr=""
for _ in $(seq 1 600); do
    addr="$(sed -n 's/.*listening on \([^,]*\),.*/\1/p' "$work/out")"
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "instructions: the daemon did not start" >&2; exit 1; }

callgrind_control -i on "$pid" >/dev/null 2>&1
"$bench" send --addr "$addr" --no-grpc --no-echo --repeat 1 --producers 4 \
    --messages 4 --batch 1 --single-inflight 64 --single-messages "$sends" >"$work/bench" 2>&1 \
    || { cat "$work/bench" >&2; exit 1; }
callgrind_control -i off "$pid" >/dev/null 2>&1
callgrind_control -d "$pid" >/dev/null 2>&1
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=""

total=0
for f in "$work"/callgrind.out.*; do
    n="$(sed -n 's/^totals: //p' "$f" | head -n1 | awk '{print $1}')"
    total=$((total + ${n:-0}))
done
requests=$((sends + 4))
echo "daemon instructions: $total over $requests send requests: $((total / requests)) per request"
grep -E "single sends" "$work/bench" || true
