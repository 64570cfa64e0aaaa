#!/usr/bin/env bash
# Installs the official RocketMQ 5 clients that the gRPC front end is tested against:
# the Python client into a virtualenv, the Node.js client into a private npm prefix and
# the Rust client as a built program, all under $HOME/.cache/sundial, so nothing on the
# system changes but Debian packages the venv needs. Idempotent: a client already at the pinned version is left alone.
# Prints where each one is, as shell assignments a test can source.
set -euo pipefail

PY_VERSION="5.1.2"
NODE_VERSION="1.0.8"
root="${SUNDIAL_RMQ_CLIENTS:-$HOME/.cache/sundial}"
venv="$root/rmq-venv"
node_dir="$root/rmq-node"
python="${PYTHON:-python3}"

apt_install() {
    echo "rocketmq-clients: installing $*" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
command -v "$python" >/dev/null 2>&1 || need+=(python3)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Debian splits venv's pip bootstrap (ensurepip) into python3-venv.
if command -v "$python" >/dev/null 2>&1 && ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
fi

mkdir -p "$root"

# Python: a venv with the client pinned; recreated if it is broken or has another version.
have_py=""
if [ -x "$venv/bin/python" ]; then
    have_py="$("$venv/bin/python" -m pip show rocketmq-python-client 2>/dev/null | sed -n 's/^Version: //p' || true)"
fi
if [ "$have_py" != "$PY_VERSION" ]; then
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "rocketmq-python-client==$PY_VERSION"
fi
"$venv/bin/python" -c 'import rocketmq' >/dev/null

# Node: a private prefix with its own package.json so npm never walks up to another one.
have_node=""
if [ -f "$node_dir/node_modules/rocketmq-client-nodejs/package.json" ]; then
    have_node="$(node -p "require('$node_dir/node_modules/rocketmq-client-nodejs/package.json').version" 2>/dev/null || true)"
fi
if [ "$have_node" != "$NODE_VERSION" ]; then
    mkdir -p "$node_dir"
    [ -f "$node_dir/package.json" ] || echo '{"name":"sundial-rmq-node","private":true}' >"$node_dir/package.json"
    npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error "rocketmq-client-nodejs@$NODE_VERSION" >/dev/null
fi
(cd "$node_dir" && node -e "require('rocketmq-client-nodejs')")

# Rust: the official client crate, built into a program of its own from the pinned
# lock file in tests/rmq-clients/rust (minutes the first time, a no-op afterwards).
rust_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/rmq-clients/rust"
rust_target="$root/rmq-rust-target"
command -v cargo >/dev/null 2>&1 || { echo "rocketmq-clients: cargo is missing" >&2; exit 1; }
# Run from a cargo test, this script inherits that cargo's variables (CARGO_PKG_*,
# CARGO_MANIFEST_DIR, ...); build without them, or they would force a rebuild.
(
    for v in $(compgen -e); do
        case "$v" in
            CARGO_HOME | CARGO_NET_* | CARGO_HTTP_* | CARGO_REGISTRIES_*) ;;
            CARGO | CARGO_* | RUSTC* | RUSTDOC* | RUSTFLAGS | __CARGO*) unset "$v" ;;
        esac
    done
    CARGO_TARGET_DIR="$rust_target" cargo build --quiet --locked \
        --manifest-path "$rust_dir/Cargo.toml" >&2
)

echo "RMQ_PYTHON=$venv/bin/python"
echo "RMQ_NODE_PATH=$node_dir/node_modules"
echo "RMQ_RUST=$rust_target/debug/rmq-rust-client"
