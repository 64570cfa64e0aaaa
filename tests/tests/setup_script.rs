//! `scripts/libclang.sh`, the set-up's test for a libclang that bindgen can load: the
//! C++ library `libclang-cpp.so.N` that many machines ship is not enough (taking it for
//! libclang left fresh machines without `libclang-dev`, and RocksDB's build failed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../scripts/libclang.sh")
}

/// Runs the check on a directory holding exactly `files`; `Some(path)` when it finds one.
fn check(files: &[&str]) -> Option<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in files {
        std::fs::write(dir.path().join(f), b"").expect("touch");
    }
    run(dir.path())
}

fn run(dir: &Path) -> Option<String> {
    let out = Command::new("bash")
        .arg(script())
        .arg(dir)
        .output()
        .expect("run scripts/libclang.sh");
    match out.status.code() {
        Some(0) => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Some(1) => None,
        other => panic!(
            "libclang.sh failed ({other:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn the_cpp_library_alone_is_not_libclang() {
    assert_eq!(check(&["libclang-cpp.so.14"]), None);
    assert_eq!(check(&["libclang-cpp.so.14", "libclang-cpp.so"]), None);
    assert_eq!(check(&["libclangBasic.a", "libclang-rt.a"]), None);
    assert_eq!(check(&[]), None);
}

#[test]
fn every_name_clang_sys_loads_is_found() {
    for name in [
        "libclang.so",
        "libclang.so.1",
        "libclang.so.14.0.6",
        "libclang-14.so",
        "libclang-14.so.1",
        "libclang-16.so.16.0.1",
    ] {
        let found = check(&["libclang-cpp.so.14", name]).unwrap_or_default();
        assert!(found.ends_with(name), "{name}: found {found:?}");
    }
}

#[test]
fn a_missing_directory_is_not_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(run(&dir.path().join("absent")), None);
}
