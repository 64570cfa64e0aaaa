//! A `sundial serve` process started by a benchmark, and facts about it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A daemon started here; killed when dropped.
pub struct Daemon {
    child: Child,
    pub addr: String,
    /// The RocketMQ gRPC address.
    pub grpc_addr: Option<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sundial serve` on 127.0.0.1 port 0 with `data`; returns once it listens.
pub fn start_daemon(bin: &Path, data: &Path) -> Result<Daemon, String> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(data)
    .env("SUNDIAL_LOG_LEVEL", "warn");
    started(cmd, bin)
}

/// Starts the echo front end (see `echo`), this program in another process, handing
/// out messages of `body` bytes; it stops when dropped or when this program exits.
pub fn start_echo(body: usize) -> Result<Daemon, String> {
    let bin = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--bodies")
        .arg(crate::bodies::kind().name())
        .arg("echo-serve")
        .arg("--body")
        .arg(body.to_string())
        .stdin(Stdio::piped());
    started(cmd, &bin)
}

/// Spawns `cmd` and waits for its startup line (`... listening on A, ... grpc on G`).
fn started(mut cmd: Command, bin: &Path) -> Result<Daemon, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(l)) = lines.next() {
            let _ = tx.send(l);
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the daemon did not start")?;
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .ok_or_else(|| format!("unexpected daemon output {line:?}"))?
        .to_string();
    let grpc_addr = line.split("grpc on ").nth(1).map(|r| r.trim().to_string());
    Ok(Daemon {
        child,
        addr,
        grpc_addr,
    })
}

impl Daemon {
    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Resident memory of a process in bytes (0 if unknown).
pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The `sundial` binary: the given path, else the one next to this program.
pub fn sundial_bin(given: &Option<PathBuf>) -> Result<PathBuf, String> {
    match given {
        Some(b) => Ok(b.clone()),
        None => Ok(std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("sundial")),
    }
}
