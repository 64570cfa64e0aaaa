//! `sundial-bench restart`: with N messages pending, SIGKILL the daemon, start it again,
//! and time until it serves (handshake answered) and until the first message that came
//! due during the outage is received; then drain those and count early and lost.

use crate::daemon::{start_daemon, sundial_bin};
use crate::load::{connect, print_report, progress, runtime, send_pipelined, Pipeline};
use crate::queue::Producer;
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sundial_wire::{now_ms, OutgoingMessage, ReceiveOptions, StartFrom, TopicType};

/// Arguments of `sundial-bench restart`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Messages pending (due in an hour) when the daemon is killed.
    #[arg(long, default_value_t = 1_000_000)]
    pending: u64,
    /// Messages that come due while the daemon is down.
    #[arg(long, default_value_t = 1_000)]
    overdue: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// The `sundial` binary (default: next to this one).
    #[arg(long)]
    sundial: Option<PathBuf>,
    /// Data directory (a temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Report {
    machine: String,
    pending: u64,
    overdue: u64,
    disk_bytes_at_kill: u64,
    start_to_serving_ms: f64,
    start_to_first_overdue_ms: f64,
    overdue_received: u64,
    early: u64,
    lost: u64,
}

pub fn run(a: Args) -> Result<(), String> {
    let rt = runtime()?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("data"));
    let bin = sundial_bin(&a.sundial)?;
    let mut d = start_daemon(&bin, &dir)?;
    let body = vec![b'r'; a.body];
    let (due, overdue_ids, disk) = rt.block_on(async {
        let c = connect(&d.addr).await?;
        c.create_topic("restart", TopicType::Delay)
            .await
            .map_err(|e| e.to_string())?;
        c.create_group("restart", "g", StartFrom::Earliest, None)
            .await
            .map_err(|e| e.to_string())?;
        let far = now_ms() + 3_600_000;
        let bar = progress(a.pending, "scheduling", a.json);
        let p = Producer::Sundial(c.clone(), "restart".into());
        send_pipelined(
            &p,
            a.pending,
            &body,
            far,
            Pipeline {
                batch: 512,
                inflight: 8,
            },
            None,
            Some(&bar),
        )
        .await?;
        bar.finish_and_clear();
        // Due half a second after the kill.
        let due = now_ms() + 500;
        let mut ids = HashSet::new();
        let msgs: Vec<_> = (0..a.overdue)
            .map(|_| OutgoingMessage::new("restart", crate::bodies::body(&body)).deliver_at(due))
            .collect();
        for chunk in msgs.chunks(512) {
            for r in c
                .send_batch(chunk.to_vec())
                .await
                .map_err(|e| e.to_string())?
            {
                ids.insert(r.map_err(|e| e.to_string())?.message_id);
            }
        }
        let disk = c.stats().await.map_err(|e| e.to_string())?.disk_bytes;
        Ok::<_, String>((due, ids, disk))
    })?;
    drop(d); // SIGKILL
    while now_ms() < due + 500 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    d = start_daemon(&bin, &dir)?;
    let report = rt.block_on(async {
        let c = connect(&d.addr).await?;
        let serving = start.elapsed();
        let o = ReceiveOptions {
            max_messages: 1024,
            wait: Duration::from_secs(5),
            ..ReceiveOptions::default()
        };
        let mut first = None;
        let (mut seen, mut early) = (HashSet::new(), 0u64);
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < overdue_ids.len() && Instant::now() < deadline {
            let got = c
                .receive("restart", "g", &o)
                .await
                .map_err(|e| e.to_string())?;
            if !got.is_empty() && first.is_none() {
                first = Some(start.elapsed());
            }
            let now = now_ms() as u64;
            let mut receipts = Vec::new();
            for m in got {
                if now < m.deliver_at_ms {
                    early += 1;
                }
                seen.insert(m.message_id);
                receipts.push(m.receipt_handle);
            }
            if !receipts.is_empty() {
                c.ack("restart", "g", receipts)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let lost = overdue_ids.difference(&seen).count() as u64;
        Ok::<_, String>(Report {
            machine: crate::engine::machine(),
            pending: a.pending,
            overdue: a.overdue,
            disk_bytes_at_kill: disk,
            start_to_serving_ms: serving.as_secs_f64() * 1e3,
            start_to_first_overdue_ms: first.map_or(f64::NAN, |f| f.as_secs_f64() * 1e3),
            overdue_received: seen.len() as u64,
            early,
            lost,
        })
    })?;
    print_report(a.json, &report, |report| {
        println!("machine: {}", report.machine);
        println!(
            "{} pending ({} MB on disk) and {} due during the outage; SIGKILL, then start:",
            report.pending,
            report.disk_bytes_at_kill / 1_000_000,
            report.overdue
        );
        println!(
            "  start -> serving (handshake answered): {:.0} ms",
            report.start_to_serving_ms
        );
        println!(
            "  start -> first overdue message received: {:.0} ms",
            report.start_to_first_overdue_ms
        );
        println!(
            "  overdue received {} of {}, early {}, lost {}",
            report.overdue_received, report.overdue, report.early, report.lost
        );
    })?;
    if report.early > 0 || report.lost > 0 {
        return Err(format!("{} early, {} lost", report.early, report.lost));
    }
    Ok(())
}
