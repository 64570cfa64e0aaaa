//! What the daemon scenarios share: the runtime, the daemon they talk to (started here
//! or already running), connections, pipelined sends, and printing a report.

use crate::daemon::{start_daemon, sundial_bin, Daemon};
use serde::Serialize;
use std::path::PathBuf;
use sundial_wire::{Client, ClientOptions, OutgoingMessage};

/// Where a scenario finds its daemon.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// The `sundial` binary (default: next to this one).
    #[arg(long)]
    pub sundial: Option<PathBuf>,
    /// Use a running daemon instead of starting one.
    #[arg(long)]
    pub addr: Option<String>,
    /// Data directory for the daemon started here (a temporary one by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The daemon a scenario talks to; one started here stops when this is dropped.
pub struct Target {
    pub addr: String,
    _daemon: Option<Daemon>,
    _tmp: tempfile::TempDir,
}

impl Target {
    pub fn open(a: &TargetArgs) -> Result<Target, String> {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        if let Some(addr) = &a.addr {
            return Ok(Target {
                addr: addr.clone(),
                _daemon: None,
                _tmp: tmp,
            });
        }
        let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("data"));
        let d = start_daemon(&sundial_bin(&a.sundial)?, &dir)?;
        Ok(Target {
            addr: d.addr.clone(),
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

/// Sends `n` copies of `body` to `topic` due at `deliver_at`, in requests of `batch`
/// messages (1: single sends), keeping `inflight` requests in flight on `c`. Fails on
/// the first refused send; returns how many were sent.
pub async fn send_pipelined(
    c: &Client,
    topic: &str,
    n: u64,
    body: &[u8],
    deliver_at: i64,
    batch: usize,
    inflight: usize,
) -> Result<u64, String> {
    let mut running = tokio::task::JoinSet::new();
    let (mut queued, mut sent) = (0u64, 0u64);
    while queued < n || !running.is_empty() {
        while queued < n && running.len() < inflight.max(1) {
            let k = batch.max(1).min((n - queued) as usize);
            let mut msgs: Vec<_> = (0..k)
                .map(|_| OutgoingMessage::new(topic, body.to_vec()).deliver_at(deliver_at))
                .collect();
            let c = c.clone();
            running.spawn(async move {
                if msgs.len() == 1 {
                    let m = msgs.pop().ok_or("no message")?;
                    c.send(m).await.map(|_| 1).map_err(|e| e.to_string())
                } else {
                    let v = c.send_batch(msgs).await.map_err(|e| e.to_string())?;
                    for r in &v {
                        r.as_ref().map_err(|e| e.to_string())?;
                    }
                    Ok::<u64, String>(v.len() as u64)
                }
            });
            queued += k as u64;
        }
        if let Some(r) = running.join_next().await {
            sent += r.map_err(|e| e.to_string())??;
        }
    }
    Ok(sent)
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
