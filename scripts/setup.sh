#!/usr/bin/env bash
# Installs what building sundial needs on Debian beyond the Rust toolchain:
# a C++ compiler for RocksDB and libclang for its bindings; and what its benchmarks and
# tests run next to it: redis-server (the peer of `sundial-bench --peer redis`) and
# prometheus/promtool (the dashboard tests), and a font for `sundial-bench plot`.
# Idempotent. (The RocketMQ clients the tests drive: `make rmq-clients`.)
set -euo pipefail

need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# libclang-cppN (which many machines ship) is not libclang: see scripts/libclang.sh.
bash "$(dirname "$0")/libclang.sh" >/dev/null || need+=(libclang-dev)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for comp in rustfmt clippy; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$comp" >/dev/null 2>&1 || echo "setup: could not add $comp" >&2
    fi
done
