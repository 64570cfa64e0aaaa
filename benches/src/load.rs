//! What the daemon scenarios share: the runtime, the daemon they talk to (started here
//! or already running), connections, pipelined sends, and printing a report.

use crate::daemon::{start_daemon, sundial_bin, Daemon};
use crate::queue::Producer;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use sundial_wire::{Client, ClientOptions};

/// Where a scenario finds its daemon.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// The `sundial` binary (default: next to this one).
    #[arg(long)]
    pub sundial: Option<PathBuf>,
    /// Use a running daemon instead of starting one.
    #[arg(long)]
    pub addr: Option<String>,
    /// The running daemon's RocketMQ gRPC address (with --addr).
    #[arg(long)]
    pub grpc_addr: Option<String>,
    /// Skip the gRPC side (by default each scenario also runs over the daemon's
    /// RocketMQ 5 gRPC port, in the same run).
    #[arg(long)]
    pub no_grpc: bool,
    /// Data directory for the daemon started here (a temporary one by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The daemon a scenario talks to; one started here stops when this is dropped.
pub struct Target {
    pub addr: String,
    /// The gRPC address, unless `--no-grpc` (or none was given with `--addr`).
    pub grpc: Option<String>,
    _daemon: Option<Daemon>,
    _tmp: tempfile::TempDir,
}

impl Target {
    pub fn open(a: &TargetArgs) -> Result<Target, String> {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        if let Some(addr) = &a.addr {
            return Ok(Target {
                addr: addr.clone(),
                grpc: a.grpc_addr.clone().filter(|_| !a.no_grpc),
                _daemon: None,
                _tmp: tmp,
            });
        }
        let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("data"));
        let d = start_daemon(&sundial_bin(&a.sundial)?, &dir)?;
        Ok(Target {
            addr: d.addr.clone(),
            grpc: d.grpc_addr.clone().filter(|_| !a.no_grpc),
            _daemon: Some(d),
            _tmp: tmp,
        })
    }
}

/// The client side's runtime: two workers, like the machine.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

pub async fn connect(addr: &str) -> Result<Client, String> {
    Client::connect(addr, ClientOptions::default())
        .await
        .map_err(|e| e.to_string())
}

/// How a producer sends: `batch` messages per request, `inflight` requests at once.
#[derive(Clone, Copy, Debug)]
pub struct Pipeline {
    pub batch: usize,
    pub inflight: usize,
}

/// Sends `n` copies of `body` due at `deliver_at` through `p`, in requests of `batch`
/// messages (1: single sends), keeping `inflight` requests in flight. Records each
/// request's latency in microseconds into `latency` and advances `bar`. Fails on the
/// first refused send; returns how many were sent.
///
/// The requests in flight are `inflight` lanes polled together in the caller's task,
/// each sending its next request when its last one is answered: no task is spawned per
/// request, so the load generator's own cost per request (a task's allocation and the
/// copies of its future) does not take the two cores from the queue under test.
pub async fn send_pipelined(
    p: &Producer,
    n: u64,
    body: &[u8],
    deliver_at: i64,
    Pipeline { batch, inflight }: Pipeline,
    latency: Option<&mut Histogram<u64>>,
    bar: Option<&ProgressBar>,
) -> Result<u64, String> {
    let batch = batch.max(1) as u64;
    // Messages not yet claimed by a lane.
    let left = AtomicU64::new(n);
    let claim = || {
        left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
            (l > 0).then(|| l - l.min(batch))
        })
        .map_or(0, |l| l.min(batch) as usize)
    };
    // One histogram for all lanes (they run in this task, so its lock is never
    // contended); a histogram per lane would be hundreds of KiB each.
    let latency = std::sync::Mutex::new(latency);
    let lane = || async {
        let mut sent = 0u64;
        let mut at = Vec::new();
        loop {
            let k = claim();
            if k == 0 {
                break;
            }
            at.clear();
            at.resize(k, deliver_at);
            let t = Instant::now();
            let done = p.schedule(&at, body).await?;
            sent += done;
            if let Some(h) = latency
                .lock()
                .map_err(|_| "latency histogram poisoned")?
                .as_deref_mut()
            {
                let _ = h.record((t.elapsed().as_micros() as u64).max(1));
            }
            if let Some(b) = bar {
                b.inc(done);
            }
        }
        Ok::<_, String>(sent)
    };
    let lanes = futures_util::future::try_join_all((0..inflight.max(1)).map(|_| lane())).await?;
    Ok(lanes.iter().sum())
}

/// A histogram of microseconds, up to an hour.
pub fn micros_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| e.to_string())
}

/// A progress bar on stderr for a long phase (hidden when `quiet` or not a terminal).
pub fn progress(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(what.to_string());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>24} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Prints `r` as one JSON object, or the readable form.
pub fn print_report<T: Serialize>(json: bool, r: &T, human: impl FnOnce(&T)) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).map_err(|e| e.to_string())?
        );
    } else {
        human(r);
    }
    Ok(())
}

/// One figure measured on sundial (first value) and on each peer.
pub struct Row {
    pub figure: String,
    pub values: Vec<Option<f64>>,
    pub decimals: usize,
}

/// Prints `rows` with a column per queue (sundial first) and, for each peer, the ratio
/// sundial / peer.
pub fn print_comparison(queues: &[&str], rows: &[Row]) {
    let fmt = |v: Option<f64>, d: usize| v.map_or("-".into(), |v| format!("{v:.d$}"));
    print!(
        "{:<44} {:>12}",
        "figure",
        queues.first().copied().unwrap_or("sundial")
    );
    for q in queues.iter().skip(1) {
        print!(" {:>16} {:>9}", q, "ratio");
    }
    println!();
    for r in rows {
        let first = r.values.first().copied().flatten();
        print!("{:<44} {:>12}", r.figure, fmt(first, r.decimals));
        for v in r.values.iter().skip(1) {
            let ratio = match (first, *v) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
                _ => "-".into(),
            };
            print!(" {:>16} {:>9}", fmt(*v, r.decimals), ratio);
        }
        println!();
    }
    if queues.len() > 1 {
        println!(
            "ratio = sundial / peer: above 1 is better for rates, below 1 for times and sizes"
        );
    }
}

/// What every scenario's report says about correctness, and which queue it measured.
pub trait Outcome {
    fn queue(&self) -> &str;
    /// Early deliveries and lost messages.
    fn early_lost(&self) -> (u64, u64);
}

/// Prints sundial's report (and the peers', then the side-by-side `comparison`), and
/// fails if any side delivered early or lost a message.
pub fn finish<R: Serialize + Outcome>(
    json: bool,
    reports: &[R],
    table: fn(&R),
    comparison: fn(&[R]) -> Vec<Row>,
) -> Result<(), String> {
    if let [one] = reports {
        print_report(json, one, table)?;
    } else {
        print_report(json, &reports, |rs| {
            for r in rs.iter() {
                table(r);
                println!();
            }
            let names: Vec<&str> = rs.iter().map(|r| r.queue()).collect();
            print_comparison(&names, &comparison(rs));
        })?;
    }
    let (early, lost) = reports.iter().fold((0, 0), |(e, l), r| {
        let (re, rl) = r.early_lost();
        (e + re, l + rl)
    });
    if early > 0 || lost > 0 {
        return Err(format!("{early} early, {lost} lost"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message is sent once, in requests of at most `batch`, whatever the number
    /// of lanes against the messages.
    #[test]
    fn pipelined_sends_send_each_message_once_in_requests_of_the_batch() {
        let rt = runtime().expect("runtime");
        rt.block_on(async {
            let (addr, echo) = crate::echo::native_here().await.expect("echo");
            let p = Producer::Sundial(connect(&addr).await.expect("connect"), "t".into());
            let mut before = 0;
            // (messages, batch, lanes): a last short batch, more lanes than requests,
            // single sends, nothing to send.
            for (n, batch, inflight) in [(1_000, 7, 16), (10, 4, 64), (300, 1, 32), (0, 8, 4)] {
                let mut h = micros_histogram().expect("histogram");
                let sent = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    send_pipelined(
                        &p,
                        n,
                        b"body",
                        1,
                        Pipeline { batch, inflight },
                        Some(&mut h),
                        None,
                    ),
                )
                .await
                .expect("sends within 30 s")
                .expect("sends");
                assert_eq!(sent, n, "{n} in batches of {batch}, {inflight} lanes");
                assert_eq!(echo.handed_out() - before, n, "messages the echo took");
                assert_eq!(
                    h.len(),
                    n.div_ceil(batch as u64),
                    "requests, one latency each"
                );
                before = echo.handed_out();
            }
        });
    }
}
