//! Helpers for black-box tests: start the built `sundial` binary on 127.0.0.1 port 0
//! with a temporary data directory, talk to it, stop it (SIGTERM) or kill it (SIGKILL).
//! Every wait has a deadline; dropping a [`Daemon`] kills its process.

pub mod checker;
pub mod flood;
pub mod workload;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use sundial_wire::{Client, ClientOptions};

/// One frame written by hand, for clients that bypass the client library: the length,
/// then `magic`, `version`, the request id and `payload` as the wire protocol lays
/// them out (bad-input cases pass a wrong magic or version).
pub fn raw_frame(magic: &[u8; 2], version: u16, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + payload.len());
    v.extend_from_slice(&((12 + payload.len()) as u32).to_be_bytes());
    v.extend_from_slice(magic);
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// The built `sundial` binary, next to the test executable's `deps` directory.
/// `cargo test --workspace` builds it; alone, run `cargo build -p sundial` first.
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let b = dir.join("sundial");
    assert!(
        b.exists(),
        "{} is missing: run `cargo build -p sundial` (cargo test --workspace does)",
        b.display()
    );
    b
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    /// Protocol address.
    pub addr: String,
    /// `http://host:port/metrics`.
    pub metrics_url: String,
    /// The RocketMQ gRPC address, when it is on.
    pub grpc_addr: Option<String>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `sundial serve` on `data_dir` with extra flags; waits (≤ 30 s) until it
    /// prints its addresses.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// Like [`Daemon::start`] on a given protocol address (to restart on the same port).
    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Daemon {
        let log = data_dir.with_extension(format!("log-{}", rand::random::<u32>()));
        let mut child = serve_command(data_dir, listen, extra, &log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sundial serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            // Keep draining so the daemon never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "sundial serve did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        // "sundial listening on ADDR, metrics on URL"
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let metrics_url = line
            .split("metrics on ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_string();
        let grpc_addr = line.split("grpc on ").nth(1).map(|r| r.trim().to_string());
        Daemon {
            child: Some(child),
            addr,
            metrics_url,
            grpc_addr,
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    /// Starts `sundial serve` and SIGKILLs it `after` the spawn, whatever it was doing
    /// (opening the store, recovering, binding): a kill during start-up.
    pub fn kill_during_startup(data_dir: &Path, listen: &str, extra: &[&str], after: Duration) {
        let log = data_dir.with_extension(format!("log-{}", rand::random::<u32>()));
        let mut child = serve_command(data_dir, listen, extra, &log)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sundial serve");
        std::thread::sleep(after);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&log);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends SIGTERM and waits (≤ 30 s) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_child(&mut child, Duration::from_secs(30))
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client connected to the daemon.
    pub async fn client(&self) -> Client {
        Client::connect(&self.addr, ClientOptions::default())
            .await
            .expect("connect to the daemon")
    }

    /// Runs `sundial ARGS --addr ADDR`; returns (exit status, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = Command::new(bin())
            .args(args)
            .args(["--addr", &self.addr])
            .output()
            .expect("run the sundial cli");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Sets an engine failpoint (`off` clears it); needs a build with `failpoints`.
    pub fn failpoint(&self, name: &str, actions: &str) {
        let url = self
            .metrics_url
            .replace("/metrics", &format!("/fail/{name}"));
        match http_request("PUT", &url, actions) {
            Ok((200, _)) => {}
            other => panic!("setting failpoint {name}={actions}: {other:?}"),
        }
    }

    /// The value of one series (`name` or `name{labels}` exactly) at a fresh scrape.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.scrape(), series)
    }

    /// `GET /metrics`, as text.
    pub fn scrape(&self) -> String {
        http_get(&self.metrics_url)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `sundial serve` on `data_dir` and `listen`, metrics on a free port, stderr to `log`.
fn serve_command(data_dir: &Path, listen: &str, extra: &[&str], log: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args([
        "serve",
        "--listen",
        listen,
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .args(extra);
    // The gRPC port on a free port of its own, unless the test chose; off for tests of
    // a token-protected native port that give no RocketMQ credentials.
    if !extra.contains(&"--grpc-listen") {
        let off = extra.contains(&"--token") && !extra.contains(&"--rmq-access-key");
        c.args(["--grpc-listen", if off { "off" } else { "127.0.0.1:0" }]);
    }
    c.env("SUNDIAL_LOG_LEVEL", "info")
        // The filesystem is the host's, shared with whatever else runs there: at the
        // default 0.90 a host disk that happens to be 90 % full would refuse the tests'
        // sends. Tests of the disk guard pass their own budget as a flag, which wins.
        .env("SUNDIAL_DISK_HIGH_RATIO", "0.995")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    c
}

fn wait_child(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of one series (`name` or `name{labels}` exactly) in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A minimal HTTP GET for the metrics endpoint (the body, or panics on failure).
pub fn http_get(url: &str) -> String {
    try_http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A minimal HTTP/1.0 GET (1.0, so no chunked answers): the body of a 200 answer.
pub fn try_http_get(url: &str) -> Result<String, String> {
    match http_request("GET", url, "")? {
        (200, body) => Ok(body),
        (status, _) => Err(format!("answered {status}")),
    }
}

/// A minimal HTTP/1.0 request: (status, body).
pub fn http_request(method: &str, url: &str, body: &str) -> Result<(u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or("not an http url")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "{method} /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {status_line:?}"))?;
    Ok((status, body.to_string()))
}

/// Polls `f` every 20 ms until it returns `Some` or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts the peer closes the connection within `limit`, reading whatever comes.
pub async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was not closed within {limit:?}"),
        }
    }
}
