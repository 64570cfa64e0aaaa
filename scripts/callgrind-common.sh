# Shared by scripts/instructions.sh and scripts/client-instructions.sh (sourced, not
# run): installs valgrind if missing, makes the work dir `$work` (kept with KEEP=1), and
# on exit stops the daemon whose pid is in `$pid`, then removes `$work`.
# `$script` names the caller in messages.

if ! command -v valgrind >/dev/null 2>&1; then
    echo "$script: installing valgrind" >&2
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

# wait_addr DIR: waits (up to 60 s) for the daemon `$pid` to print its address into
# DIR/out and sets `addr`; exits with its stderr if it stops first or never prints it.
wait_addr() {
    local dir="$1"
    addr=""
    for _ in $(seq 1 600); do
        addr="$(sed -n 's/.*listening on \([^,]*\),.*/\1/p' "$dir/out")"
        [ -n "$addr" ] && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$dir/err" >&2; exit 1; }
        sleep 0.1
    done
    echo "$script: the daemon did not start" >&2
    exit 1
}
