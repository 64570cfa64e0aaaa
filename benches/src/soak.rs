//! `sundial-bench soak`: grows the number of pending messages step by step and samples
//! the daemon's resident memory and disk bytes after each step, to show memory stays
//! flat however many messages wait.

use crate::daemon::{rss_of, start_daemon, sundial_bin};
use crate::load::{connect, progress, runtime, send_pipelined, Pipeline};
use crate::queue::Producer;
use indicatif::ProgressBar;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sundial_wire::{now_ms, Client, TopicType};

/// Arguments of `sundial-bench soak`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Pending messages to reach.
    #[arg(long, default_value_t = 50_000_000)]
    pending: u64,
    /// Messages per step (a sample after each).
    #[arg(long, default_value_t = 1_000_000)]
    step: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// The `sundial` binary (default: next to this one).
    #[arg(long)]
    sundial: Option<PathBuf>,
    /// Data directory (a temporary one by default; 50M messages of 256 random bytes need
    /// about 17 GB, of compressible ones about 6 GB).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Sample {
    pending: u64,
    rss_mib: f64,
    disk_mib: f64,
    memtables_mib: f64,
    block_cache_mib: f64,
    pinned_mib: f64,
    table_readers_mib: f64,
    step_sends_per_s: f64,
}

/// Sends `n` messages split over `clients`, each keeping 8 batches of 512 in flight.
async fn send_step(
    n: u64,
    body: &[u8],
    due: i64,
    clients: &[Client],
    bar: &ProgressBar,
) -> Result<(), String> {
    let per = n / clients.len() as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in clients.iter().enumerate() {
        let k = if i == 0 {
            n - per * (clients.len() as u64 - 1)
        } else {
            per
        };
        let (p, body, bar) = (
            Producer::Sundial(c.clone(), "soak".into()),
            body.to_vec(),
            bar.clone(),
        );
        tasks.spawn(async move {
            send_pipelined(
                &p,
                k,
                &body,
                due,
                Pipeline {
                    batch: 512,
                    inflight: 8,
                },
                None,
                Some(&bar),
            )
            .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

pub fn run(a: Args) -> Result<(), String> {
    let rt = runtime()?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("data"));
    let d = start_daemon(&sundial_bin(&a.sundial)?, &dir)?;
    let pid = d.pid();
    let samples = rt.block_on(async {
        let c = connect(&d.addr).await?;
        c.create_topic("soak", TopicType::Delay)
            .await
            .map_err(|e| e.to_string())?;
        let mut clients = Vec::new();
        for _ in 0..a.producers.max(1) {
            clients.push(connect(&d.addr).await?);
        }
        // Due in 23 hours: within the default max delay, long after the run.
        let due = now_ms() + 23 * 3_600_000;
        let body = vec![b's'; a.body];
        let mut samples = Vec::new();
        let mut pending = 0;
        let bar = progress(a.pending, "scheduling", a.json);
        while pending < a.pending {
            let n = a.step.min(a.pending - pending);
            let t = Instant::now();
            send_step(n, &body, due, &clients, &bar).await?;
            let rate = n as f64 / t.elapsed().as_secs_f64();
            pending += n;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let s = c.stats().await.map_err(|e| e.to_string())?;
            if s.timing_total != pending {
                return Err(format!(
                    "{} pending, the daemon counts {}",
                    pending, s.timing_total
                ));
            }
            let mib = |b: u64| b as f64 / 1048576.0;
            let sample = Sample {
                pending,
                rss_mib: mib(rss_of(pid)),
                disk_mib: mib(s.disk_bytes),
                memtables_mib: mib(s.families.iter().map(|f| f.memtable_bytes).sum()),
                block_cache_mib: mib(s.block_cache_bytes),
                pinned_mib: mib(s.block_cache_pinned_bytes),
                table_readers_mib: mib(s.table_readers_bytes),
                step_sends_per_s: rate,
            };
            if !a.json {
                // Printed even when the bar is hidden (output not a terminal), where the
                // bar's own println would drop the line.
                let line = format!(
                    "{:>11} pending  RSS {:>6.1} MiB (memtables {:>5.1}, block cache {:>5.1}, pinned {:>5.1}, table readers {:>5.1})  disk {:>8.1} MiB  {:>7.0} sends/s",
                    sample.pending,
                    sample.rss_mib,
                    sample.memtables_mib,
                    sample.block_cache_mib,
                    sample.pinned_mib,
                    sample.table_readers_mib,
                    sample.disk_mib,
                    sample.step_sends_per_s
                );
                bar.suspend(|| println!("{line}"));
            }
            samples.push(sample);
        }
        bar.finish_and_clear();
        Ok::<_, String>(samples)
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&samples).map_err(|e| e.to_string())?
        );
    } else if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let max = samples.iter().map(|s| s.rss_mib).fold(0.0, f64::max);
        println!(
            "RSS at {} pending: {:.1} MiB; at {} pending: {:.1} MiB; max {:.1} MiB",
            first.pending, first.rss_mib, last.pending, last.rss_mib, max
        );
    }
    Ok(())
}
