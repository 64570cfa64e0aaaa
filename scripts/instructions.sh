#!/usr/bin/env bash
# Counts the CPU instructions the daemon executes per request: a machine-independent
# figure next to the timings (this kind of VM often has no hardware counters, so
# valgrind's callgrind counts them).
#
#   scripts/instructions.sh [SUNDIAL_BIN] [BENCH_BIN] [COUNT]
#   WORKLOAD=consume scripts/instructions.sh ...
#   WORKLOAD=burst scripts/instructions.sh ...
#   WORKLOAD=batched scripts/instructions.sh ...
#
# WORKLOAD=send (the default): COUNT messages sent one per request (4 producers x 64
# in flight, 256 B random bodies); prints instructions per send request.
# WORKLOAD=batched: COUNT messages sent 256 per request (4 producers x 8 in flight, the
# defaults of `sundial-bench send`), flushes of full memtables included; prints
# instructions per message.
# WORKLOAD=consume: COUNT messages scheduled in batches and then consumed by 64
# consumers that receive one and ack it per request (`sundial-bench consume`), minus
# a second daemon's count for the same batched sends alone (due in an hour there, so
# that count leaves out making them Ready); prints instructions per
# message consumed (one receive and one ack request).
# WORKLOAD=burst: COUNT messages due in the same millisecond (`sundial-bench burst`, 4
# consumers receiving up to 1,024 and acking them per request), counted from the moment
# the daemon has stored all the sends (its metrics say so) to the end: prints
# instructions per message made Ready, received and acked.
#
# Each measurement starts `sundial serve` under callgrind with instrumentation off, lets
# it open its store, switches instrumentation on, runs the workload, switches it off and
# sums the instructions of all the daemon's threads. Installs valgrind if missing.
# BODY sets the body size of WORKLOAD=batched (256 bytes by default).
# CALLGRIND_ARGS adds options, e.g. --separate-threads=yes for one file per thread.
# Needs a release (or `profiling`) build of both binaries. KEEP=1 keeps the work dir.
set -euo pipefail

target="${CARGO_TARGET_DIR:-$HOME/.cache/sundial/target}"
bin="${1:-$target/release/sundial}"
bench="${2:-$target/release/sundial-bench}"
workload="${WORKLOAD:-send}"
case "$workload" in
    send) count="${3:-20000}" ;;
    consume) count="${3:-20000}" ;;
    burst) count="${3:-100000}" ;;
    batched) count="${3:-500000}" ;;
    *) echo "instructions: WORKLOAD is send, batched, consume or burst, not $workload" >&2; exit 2 ;;
esac

script=instructions
# shellcheck source=scripts/callgrind-common.sh
. "$(dirname "$0")/callgrind-common.sh"

# measure NAME BENCH_ARGS...: runs sundial-bench BENCH_ARGS against a fresh daemon
# under callgrind and writes the daemon's instructions to $work/NAME/total. It runs in
# this shell, not a subshell, so the exit trap stops the daemon if anything fails.
measure() {
    local name="$1"; shift
    local dir="$work/$name"
    mkdir -p "$dir"
    SUNDIAL_LOG_LEVEL=warn valgrind --tool=callgrind --instr-atstart=no ${CALLGRIND_ARGS:-} \
        --callgrind-out-file="$dir/callgrind.out.%p" \
        "$bin" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --grpc-listen off \
        --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
    pid=$!
    wait_addr "$dir"
    if [ -z "${ON_AFTER_SENDS:-}" ]; then
        callgrind_control -i on "$pid" >/dev/null 2>&1
        "$bench" "$@" --addr "$addr" --no-grpc >"$dir/bench" 2>&1 \
            || { cat "$dir/bench" >&2; exit 1; }
    else
        # Count from the moment the daemon has stored ON_AFTER_SENDS sends.
        local metrics bp
        metrics="$(sed -n 's/.*metrics on \(http:[^ ,]*\).*/\1/p' "$dir/out")"
        "$bench" "$@" --addr "$addr" --no-grpc >"$dir/bench" 2>&1 &
        bp=$!
        python3 - "$metrics" "$ON_AFTER_SENDS" "$bp" <<'PY' || { kill "$bp" 2>/dev/null; cat "$dir/bench" >&2; exit 1; }
import os, sys, time, urllib.request
url, want, bench = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + 600
while time.time() < deadline:
    try:
        os.kill(bench, 0)
    except ProcessLookupError:
        sys.exit("instructions: the workload ended before its sends were stored")
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    sent = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("sundial_sends_total"))
    if sent >= want:
        sys.exit(0)
    time.sleep(0.5)
sys.exit("instructions: the sends were not stored within 600 s")
PY
        callgrind_control -i on "$pid" >/dev/null 2>&1
        wait "$bp" || { cat "$dir/bench" >&2; exit 1; }
    fi
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    local total=0 n
    for f in "$dir"/callgrind.out.*; do
        n="$(sed -n 's/^totals: //p' "$f" | head -n1 | awk '{print $1}')"
        total=$((total + ${n:-0}))
    done
    echo "$total" >"$dir/total"
}

if [ "$workload" = send ]; then
    measure send send --repeat 1 --producers 4 --messages 4 --batch 1 \
        --single-inflight 64 --single-messages "$count" --no-echo
    total="$(cat "$work/send/total")"
    requests=$((count + 4))
    echo "daemon instructions: $total over $requests send requests: $((total / requests)) per request"
    grep -E "single sends" "$work/send/bench" || true
elif [ "$workload" = batched ]; then
    measure batched send --repeat 1 --producers 4 --messages "$count" --batch 256 \
        --inflight 8 --single-inflight 0 --no-echo --body "${BODY:-256}"
    total="$(cat "$work/batched/total")"
    echo "daemon instructions: $total for $count messages sent in batches of 256: $((total / count)) per message"
    grep -E "sends \(batched\)" "$work/batched/bench" || true
elif [ "$workload" = burst ]; then
    # Under callgrind the sends run at a few thousand a second: the due time is set
    # far enough out for them to finish first.
    ON_AFTER_SENDS=$((count + 1000)) measure burst burst --messages "$count" --after 1000 \
        --lead-ms $((60000 + count / 2))
    total="$(cat "$work/burst/total")"
    all=$((count + 1000))
    echo "daemon instructions from the sends' end: $total for $all messages made Ready, received and acked: $((total / all)) per message"
    grep -E "all received" "$work/burst/bench" || true
else
    measure consume consume --messages "$count" --consumers 64 --no-echo
    total="$(cat "$work/consume/total")"
    # The same batched sends the consume workload schedules first: 256 per request,
    # 8 requests in flight, from one producer.
    measure fill send --repeat 1 --producers 1 --messages "$count" --batch 256 \
        --inflight 8 --single-messages 0 --no-echo
    fill="$(cat "$work/fill/total")"
    echo "daemon instructions: $total for $count messages sent in batches, received and acked one by one"
    echo "  minus $fill for the batched sends alone: $(((total - fill) / count)) per message consumed (a receive and an ack)"
    grep -E "msg/s" "$work/consume/bench" | head -n1 || true
fi
