//! Runs the built `sundial demo` and checks its report: every message received, none early.

use std::process::Command;

#[test]
fn demo_delivers_every_message_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sundial"))
        .args([
            "demo",
            "--messages",
            "3",
            "--spacing-ms",
            "200",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("scheduled ").count(), 3, "{stdout}");
    let received = stdout
        .lines()
        .filter(|l| l.starts_with("received ") && !l.starts_with("received and acked"))
        .count();
    assert_eq!(received, 3, "{stdout}");
    assert!(
        stdout.contains("received and acked 3 of 3; early deliveries: 0"),
        "{stdout}"
    );
}
