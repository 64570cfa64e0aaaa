//! `sundial-bench steady`: open-loop scheduling at a fixed rate with delays spread over a
//! range, consumers receiving and acking; delivery lateness (receive time − deliver_at)
//! percentiles from an HDR histogram, early and lost counts.
//!
//! Open loop: each batch has an intended send time on a fixed schedule and its delivery
//! times are computed from that schedule, so a stalled send does not hide lateness
//! (no coordinated omission).

use crate::load::{finish, runtime, Outcome, Row, Target, TargetArgs};
use crate::queue::Queue;
use crate::redis_peer::{PeerArgs, RedisServer};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use sundial_wire::now_ms;

/// Arguments of `sundial-bench steady`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Messages scheduled (and, once the delays have ramped up, due) per second.
    #[arg(long, default_value_t = 50_000)]
    rate: u64,
    /// Seconds of scheduling.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Shortest delay in ms.
    #[arg(long, default_value_t = 1_000)]
    min_delay_ms: u64,
    /// Longest delay in ms.
    #[arg(long, default_value_t = 5_000)]
    max_delay_ms: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// Producers (each sends every `producers`-th batch of the schedule).
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Consumers in the one group.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Messages per receive.
    #[arg(long, default_value_t = 512)]
    receive_max: u32,
    /// Each consumer sends a batch's acks and takes its next batch at the same time,
    /// with at most one batch of acks outstanding, as a push consumer or an application
    /// that acks from another task does. By default a consumer waits for each ack
    /// before it receives again.
    #[arg(long)]
    ack_ahead: bool,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    peer: PeerArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Report {
    queue: String,
    machine: String,
    rate: u64,
    seconds: u64,
    delay_ms: (u64, u64),
    acks_ahead: bool,
    scheduled: u64,
    received: u64,
    duplicates: u64,
    lost: u64,
    early: u64,
    send_behind_max_ms: u64,
    lateness_ms_p50: f64,
    lateness_ms_p90: f64,
    lateness_ms_p99: f64,
    lateness_ms_p999: f64,
    lateness_ms_max: f64,
    /// When the message late by the max was received: Unix ms, to match with the
    /// daemon's log.
    lateness_max_at_unix_ms: u64,
    /// When the schedule started, Unix ms.
    start_unix_ms: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn run(a: Args) -> Result<(), String> {
    let rt = runtime()?;
    let target = Target::open(&a.target)?;
    let mut reports = vec![rt.block_on(async {
        let q = Queue::sundial(&target.addr, "steady", &["g".to_string()]).await?;
        steady(&q, "sundial", &a).await
    })?];
    if let Some(grpc) = &target.grpc {
        reports.push(rt.block_on(async {
            let q = Queue::grpc(&target.addr, grpc, "steady-grpc", &["g".to_string()]).await?;
            steady(&q, "sundial grpc", &a).await
        })?);
    }
    // The daemon stops before the peer runs, so each has the machine to itself.
    drop(target);
    if a.peer.peer.is_some() {
        for fsync in &a.peer.peer_fsync {
            reports.push(rt.block_on(async {
                let server = RedisServer::start(&a.peer.redis_server, *fsync).await?;
                let q = Queue::redis(&server, "steady").await?;
                steady(&q, &format!("redis {}", fsync.name()), &a).await
            })?);
        }
    }
    finish(a.json, &reports, print_table, comparison)
}

fn print_table(r: &Report) {
    println!("{}, machine: {}", r.queue, r.machine);
    println!(
        "{} msg/s for {} s, delays {}..{} ms: {} scheduled, {} received{}",
        r.rate,
        r.seconds,
        r.delay_ms.0,
        r.delay_ms.1,
        r.scheduled,
        r.received,
        if r.acks_ahead {
            "; each consumer acks one batch while taking the next"
        } else {
            ""
        }
    );
    println!(
        "lateness (receive - deliver_at) ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        r.lateness_ms_p50, r.lateness_ms_p90, r.lateness_ms_p99, r.lateness_ms_p999, r.lateness_ms_max
    );
    println!(
        "the message late by the max was received {:.1} s after the schedule's start (Unix ms {})",
        r.lateness_max_at_unix_ms.saturating_sub(r.start_unix_ms) as f64 / 1000.0,
        r.lateness_max_at_unix_ms
    );
    println!(
        "early {}  lost {}  duplicates {}  producers at most {} ms behind schedule",
        r.early, r.lost, r.duplicates, r.send_behind_max_ms
    );
}

/// The lateness figures, one row each, for the side-by-side table.
fn comparison(rs: &[Report]) -> Vec<Row> {
    let row = |figure: &str, f: &dyn Fn(&Report) -> f64| Row {
        figure: figure.to_string(),
        values: rs.iter().map(|r| Some(f(r))).collect(),
        decimals: 2,
    };
    vec![
        row("lateness p50 (ms)", &|r| r.lateness_ms_p50),
        row("lateness p90 (ms)", &|r| r.lateness_ms_p90),
        row("lateness p99 (ms)", &|r| r.lateness_ms_p99),
        row("lateness p99.9 (ms)", &|r| r.lateness_ms_p999),
        row("lateness max (ms)", &|r| r.lateness_ms_max),
        row("producers behind schedule, max (ms)", &|r| {
            r.send_behind_max_ms as f64
        }),
    ]
}

async fn steady(q: &Queue, queue: &str, a: &Args) -> Result<Report, String> {
    // The schedule: one batch every 10 ms.
    let tick_ms = 10u64;
    let per_tick = (a.rate * tick_ms / 1000).max(1);
    let ticks = a.seconds * 1000 / tick_ms;
    let start = now_ms() as u64 + 200;
    let scheduled = Arc::new(AtomicU64::new(0));
    let behind = Arc::new(AtomicU64::new(0));
    let producers = a.producers.max(1) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..producers {
        let (scheduled, behind) = (scheduled.clone(), behind.clone());
        let c = q.producer().await?;
        let (body, span) = (
            vec![b's'; a.body],
            a.max_delay_ms.saturating_sub(a.min_delay_ms) + 1,
        );
        let min_delay = a.min_delay_ms;
        tasks.spawn(async move {
            let body: std::sync::Arc<[u8]> = body.into();
            let mut inflight = tokio::task::JoinSet::new();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ p;
            for t in (p..ticks).step_by(producers as usize) {
                let intended = start + t * tick_ms;
                let now = now_ms() as u64;
                if now < intended {
                    tokio::time::sleep(Duration::from_millis(intended - now)).await;
                } else {
                    behind.fetch_max(now - intended, Ordering::Relaxed);
                }
                let at: Vec<i64> = (0..per_tick)
                    .map(|_| {
                        // xorshift: cheap spread of delays.
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (intended + min_delay + seed % span) as i64
                    })
                    .collect();
                let (c, body) = (c.clone(), body.clone());
                inflight.spawn(async move { c.schedule(&at, &body).await });
                while inflight.len() > 16 {
                    if let Some(r) = inflight.join_next().await {
                        scheduled.fetch_add(r.map_err(|e| e.to_string())??, Ordering::Relaxed);
                    }
                }
            }
            while let Some(r) = inflight.join_next().await {
                scheduled.fetch_add(r.map_err(|e| e.to_string())??, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        });
    }
    let end_of_schedule = start + ticks * tick_ms;
    let last_due = end_of_schedule + a.max_delay_ms;
    // The lateness histogram, and (lateness µs, received at µs) of the message late by
    // the max.
    let hist = Arc::new(Mutex::new((
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| e.to_string())?,
        (0u64, 0u64),
    )));
    // Sized up front: growing a set of a million ids rehashes it under the lock every
    // consumer takes, a pause that would be measured as lateness.
    let seen = Arc::new(Mutex::new(HashSet::<u128>::with_capacity(
        (a.rate * a.seconds) as usize,
    )));
    let (early, dups) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut consumers = tokio::task::JoinSet::new();
    for _ in 0..a.consumers.max(1) {
        let (hist, seen, early, dups, scheduled) = (
            hist.clone(),
            seen.clone(),
            early.clone(),
            dups.clone(),
            scheduled.clone(),
        );
        let (max, ahead) = (a.receive_max, a.ack_ahead);
        let mut c = q.consumer("g", Duration::from_secs(60)).await?;
        consumers.spawn(async move {
            // The batch of acks on its way, when acks go ahead.
            let mut acking: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
            // Drain: until every scheduled message was seen after the last due time,
            // or 60 s past it.
            loop {
                let now = now_ms() as u64;
                let done = now > last_due
                    && seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
                        >= scheduled.load(Ordering::Relaxed);
                if done || now > last_due + 60_000 {
                    if let Some(h) = acking.take() {
                        h.await.map_err(|e| e.to_string())??;
                    }
                    return Ok::<(), String>(());
                }
                let got = c.take(max, Duration::from_millis(500)).await?;
                if let Some(h) = acking.take() {
                    h.await.map_err(|e| e.to_string())??;
                }
                if got.is_empty() {
                    continue;
                }
                let at = now_us();
                {
                    let mut guard = hist.lock().unwrap_or_else(|p| p.into_inner());
                    let (h, w) = &mut *guard;
                    let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                    for m in &got {
                        let due_us = m.deliver_at_ms * 1000;
                        if at < due_us {
                            early.fetch_add(1, Ordering::Relaxed);
                        }
                        let late = at.saturating_sub(due_us).max(1);
                        let _ = h.record(late);
                        if late > w.0 {
                            *w = (late, at);
                        }
                        if !s.insert(m.id) {
                            dups.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if ahead {
                    acking = Some(tokio::spawn(c.settle_owned(got)));
                } else {
                    c.settle(&got).await?;
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    while let Some(r) = consumers.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    let guard = hist.lock().unwrap_or_else(|p| p.into_inner());
    let (h, &(_, worst_at_us)) = (&guard.0, &guard.1);
    let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
    let received = seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
    let sched = scheduled.load(Ordering::Relaxed);
    Ok(Report {
        queue: queue.to_string(),
        machine: crate::engine::machine(),
        rate: a.rate,
        seconds: a.seconds,
        delay_ms: (a.min_delay_ms, a.max_delay_ms),
        acks_ahead: a.ack_ahead,
        scheduled: sched,
        received,
        duplicates: dups.load(Ordering::Relaxed),
        lost: sched.saturating_sub(received),
        early: early.load(Ordering::Relaxed),
        send_behind_max_ms: behind.load(Ordering::Relaxed),
        lateness_ms_p50: q(0.5),
        lateness_ms_p90: q(0.9),
        lateness_ms_p99: q(0.99),
        lateness_ms_p999: q(0.999),
        lateness_ms_max: h.max() as f64 / 1000.0,
        lateness_max_at_unix_ms: worst_at_us / 1000,
        start_unix_ms: start,
    })
}

impl Outcome for Report {
    fn queue(&self) -> &str {
        &self.queue
    }
    fn early_lost(&self) -> (u64, u64) {
        (self.early, self.lost)
    }
}
