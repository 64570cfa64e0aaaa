//! Durable sends through the daemon over loopback, next to the raw RocksDB ceiling
//! measured in the same run.

use crate::load::{connect, runtime, send_pipelined};
use crate::{engine::machine, raw};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use sundial_wire::{now_ms, TopicType};

/// Arguments of `sundial-bench daemon`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Messages per measured run.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Messages per batch send (1 sends one message per request).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Requests each producer keeps in flight on its connection.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Also measure single-message sends (batch 1) with this many in flight per
    /// producer; 0 skips it.
    #[arg(long, default_value_t = 256)]
    single_inflight: usize,
    /// Messages for the single-message run.
    #[arg(long, default_value_t = 200_000)]
    single_messages: u64,
    /// The `sundial` binary (default: next to this one).
    #[arg(long)]
    sundial: Option<PathBuf>,
    /// Use a daemon already running here instead of starting one (no raw ceiling then
    /// shares its disk, so the ratio is indicative only).
    #[arg(long)]
    addr: Option<String>,
    /// Rounds; each figure is the median.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Directory for the stores (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Report {
    machine: String,
    rounds: usize,
    messages: u64,
    body_bytes: usize,
    producers: usize,
    batch: usize,
    inflight: usize,
    raw_synced_puts_per_s: f64,
    daemon_sends_per_s: f64,
    daemon_mb_per_s: f64,
    ratio: f64,
    single_sends_per_s: Option<f64>,
    single_ratio: Option<f64>,
}

pub struct Daemon {
    child: Child,
    pub addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sundial serve` on 127.0.0.1 port 0 with `data`; returns once it listens.
pub fn start_daemon(bin: &Path, data: &Path) -> Result<Daemon, String> {
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data)
        .env("SUNDIAL_LOG_LEVEL", "warn")
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
    Ok(Daemon { child, addr })
}

/// Sends `n` messages from `producers` connections, `inflight` requests of `batch`
/// each in flight per connection; returns the elapsed time.
async fn sends(
    addr: &str,
    topic: &str,
    n: u64,
    a: &Args,
    batch: usize,
    inflight: usize,
) -> Result<Duration, String> {
    let per = n / a.producers as u64;
    let mut clients = Vec::new();
    for _ in 0..a.producers {
        clients.push(connect(addr).await?);
    }
    let start = Instant::now();
    let due = now_ms() + 3_600_000;
    let mut tasks = tokio::task::JoinSet::new();
    for c in clients {
        let (topic, body) = (topic.to_string(), vec![b'x'; a.body]);
        tasks.spawn(
            async move { send_pipelined(&c, &topic, per, &body, due, batch, inflight).await },
        );
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(start.elapsed())
}

async fn measure(
    addr: &str,
    round: usize,
    a: &Args,
) -> Result<(Duration, Option<Duration>), String> {
    let c = connect(addr).await?;
    let topic = format!("bench-{round}-{}", now_ms());
    c.create_topic(&topic, TopicType::Delay)
        .await
        .map_err(|e| e.to_string())?;
    let n = a.messages / a.producers as u64 * a.producers as u64;
    let batched = sends(addr, &topic, n, a, a.batch, a.inflight).await?;
    let mut expect = n;
    let single = if a.single_inflight > 0 {
        let m = a.single_messages / a.producers as u64 * a.producers as u64;
        expect += m;
        Some(sends(addr, &topic, m, a, 1, a.single_inflight).await?)
    } else {
        None
    };
    let stored = c.show_topic(&topic).await.map_err(|e| e.to_string())?;
    if stored.sent != expect || stored.timing != expect {
        return Err(format!(
            "the daemon stored {} of {expect} sends",
            stored.timing
        ));
    }
    Ok((batched, single))
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

pub fn run(a: Args) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let base = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let bin = sundial_bin(&a.sundial)?;
    let rt = runtime()?;
    let n = a.messages / a.producers as u64 * a.producers as u64;
    let (mut raws, mut batched, mut singles) = (vec![], vec![], vec![]);
    for round in 0..a.repeat.max(1) {
        let dir = base.join(format!("round-{round}"));
        eprintln!("round {}: raw synced puts, daemon sends", round + 1);
        raws.push(raw::synced_puts(
            &dir.join("raw"),
            n,
            a.body,
            a.batch,
            a.producers,
        )?);
        let (b, s) = match &a.addr {
            Some(addr) => rt.block_on(measure(addr, round, &a))?,
            None => {
                let d = start_daemon(&bin, &dir.join("daemon"))?;
                let r = rt.block_on(measure(&d.addr, round, &a));
                drop(d);
                r?
            }
        };
        batched.push(b);
        if let Some(s) = s {
            singles.push(s);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied()
    };
    let raw = median(&mut raws).ok_or("no rounds")?;
    let b = median(&mut batched).ok_or("no rounds")?;
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    let raw_rate = rate(n, raw);
    let m = a.single_messages / a.producers as u64 * a.producers as u64;
    let single = median(&mut singles).map(|s| rate(m, s));
    let r = Report {
        machine: machine(),
        rounds: a.repeat.max(1),
        messages: n,
        body_bytes: a.body,
        producers: a.producers,
        batch: a.batch,
        inflight: a.inflight,
        raw_synced_puts_per_s: raw_rate,
        daemon_sends_per_s: rate(n, b),
        daemon_mb_per_s: rate(n, b) * a.body as f64 / 1e6,
        ratio: rate(n, b) / raw_rate,
        single_sends_per_s: single,
        single_ratio: single.map(|s| s / raw_rate),
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!("machine: {}; medians of {} rounds", r.machine, r.rounds);
    println!("{:<58} {:>12} {:>7}", "figure", "msg/s", "ratio");
    println!(
        "{:<58} {:>12.0} {:>7}",
        "raw RocksDB synced batched puts (ceiling)", r.raw_synced_puts_per_s, "1.00"
    );
    println!(
        "{:<58} {:>12.0} {:>7.2}",
        format!(
            "daemon durable sends: {} producers x {} batches of {} in flight",
            r.producers, r.inflight, r.batch
        ),
        r.daemon_sends_per_s,
        r.ratio
    );
    if let (Some(s), Some(q)) = (r.single_sends_per_s, r.single_ratio) {
        println!(
            "{:<58} {:>12.0} {:>7.2}",
            format!(
                "daemon durable sends: {} producers x {} single sends in flight",
                r.producers, a.single_inflight
            ),
            s,
            q
        );
    }
    println!(
        "{:<58} {:>12.1}",
        "daemon MB/s of bodies (batched)", r.daemon_mb_per_s
    );
    Ok(())
}
