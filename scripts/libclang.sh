#!/usr/bin/env bash
# Tells whether a libclang that bindgen (clang-sys) can load is installed.
#
# clang-sys loads `libclang.so`, `libclang.so.N` or `libclang-N.so[.M]`. Debian machines
# often ship `libclang-cpp.so.N` (the C++ API of package libclang-cppN) without libclang
# itself; a loose `libclang*.so*` glob takes that for libclang and the RocksDB build then
# fails in bindgen with "Unable to find libclang". Only the real library counts here.
#
# Usage: libclang.sh [DIR...]   exit 0 and print the path when found, 1 otherwise.
# Without DIRs it looks where Debian's packages put it (and in $LIBCLANG_PATH if set).
set -euo pipefail

is_libclang_name() {
    case "$1" in
        libclang.so | libclang.so.[0-9]*) return 0 ;;
        libclang-[0-9]*.so | libclang-[0-9]*.so.[0-9]*) return 0 ;;
        *) return 1 ;;
    esac
}

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
    [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
    for d in /usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
        [ -d "$d" ] && dirs+=("$d")
    done
fi

for d in "${dirs[@]}"; do
    [ -d "$d" ] || continue
    for f in "$d"/libclang*; do
        [ -e "$f" ] || continue
        if is_libclang_name "$(basename "$f")"; then
            echo "$f"
            exit 0
        fi
    done
done
exit 1
