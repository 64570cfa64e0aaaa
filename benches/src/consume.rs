//! `sundial-bench consume`: consumers that settle each message on its own, as RocketMQ's
//! SimpleConsumer does: every request receives one message and the next acks it. N
//! messages are made Ready first (due at once); C consumers then take them one by one.
//! Reported: messages/s, receive and ack latency, duplicates and losses; side by side
//! over sundial's gRPC port, against the echo front end (the path's ceiling: the same
//! receives and acks answered without an engine) and against the Redis peer's one-by-one
//! pops (a pop is final there: one request per message instead of two).

use crate::daemon::start_echo;
use crate::load::{
    finish, micros_histogram, progress, runtime, send_pipelined, Outcome, Pipeline, Row, Target,
    TargetArgs,
};
use crate::queue::Queue;
use crate::redis_peer::{PeerArgs, RedisServer};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sundial_wire::now_ms;

/// Arguments of `sundial-bench consume`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Messages to consume.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// Consumers, each with its own connection, each settling one message at a time.
    #[arg(long, default_value_t = 64)]
    consumers: usize,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    peer: PeerArgs,
    /// Skip the echo front end (by default the same consumers also run against a front
    /// end that answers each receive and ack without an engine: the path's ceiling).
    #[arg(long)]
    no_echo: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug, Default)]
struct Report {
    queue: String,
    messages: u64,
    consumers: usize,
    /// Messages received and settled per second.
    consumed_per_s: f64,
    receive_ms_p50: f64,
    receive_ms_p99: f64,
    /// Ack latency (none on the Redis peer: a pop is final).
    ack_ms_p50: Option<f64>,
    ack_ms_p99: Option<f64>,
    duplicates: u64,
    lost: u64,
}

impl Outcome for Report {
    fn queue(&self) -> &str {
        &self.queue
    }
    fn early_lost(&self) -> (u64, u64) {
        (0, self.lost)
    }
}

pub fn run(a: Args) -> Result<(), String> {
    let rt = runtime()?;
    let target = Target::open(&a.target)?;
    let g = vec!["g".to_string()];
    let mut reports = vec![rt.block_on(async {
        let q = Queue::sundial(&target.addr, "consume", &g).await?;
        fill(&q, "sundial", &a).await?;
        consume(&q, "sundial", &a, true).await
    })?];
    if let Some(grpc) = &target.grpc {
        reports.push(rt.block_on(async {
            let q = Queue::grpc(&target.addr, grpc, "consume-grpc", &g).await?;
            fill(&q, "sundial grpc", &a).await?;
            consume(&q, "sundial grpc", &a, true).await
        })?);
    }
    drop(target);
    if !a.no_echo {
        let echo = start_echo(a.body)?;
        reports.push(rt.block_on(async {
            let q = Queue::Sundial {
                addr: echo.addr.clone(),
                topic: "echo".into(),
            };
            // Nothing to fill: the echo makes its messages up.
            consume(&q, "echo", &a, true).await
        })?);
    }
    if a.peer.peer.is_some() {
        for fsync in &a.peer.peer_fsync {
            reports.push(rt.block_on(async {
                let server = RedisServer::start(&a.peer.redis_server, *fsync).await?;
                let q = Queue::redis(&server, "consume").await?;
                let name = format!("redis {}", fsync.name());
                fill(&q, &name, &a).await?;
                consume(&q, &name, &a, false).await
            })?);
        }
    }
    finish(a.json, &reports, print_table, comparison)
}

/// Consumes `a.messages` (made Ready by [`fill`], or made up by the echo) one request
/// at a time from `a.consumers` connections (`acks`: settle each one).
async fn consume(q: &Queue, name: &str, a: &Args, acks: bool) -> Result<Report, String> {
    let n = a.messages;
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let bar = progress(n, "consuming one by one", a.json);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..a.consumers.max(1) {
        let mut c = q.consumer("g", Duration::from_secs(60)).await?;
        let (seen, bar) = (seen.clone(), bar.clone());
        tasks.spawn(async move {
            let (mut rh, mut ah) = (micros_histogram()?, micros_histogram()?);
            let mut dups = 0u64;
            loop {
                if seen.lock().map_err(|_| "poisoned")?.len() as u64 >= n {
                    break;
                }
                let t = Instant::now();
                let got = c.take(1, Duration::from_millis(200)).await?;
                let _ = rh.record((t.elapsed().as_micros() as u64).max(1));
                if got.is_empty() {
                    // Drained: the others hold the rest.
                    if seen.lock().map_err(|_| "poisoned")?.len() as u64 >= n {
                        break;
                    }
                    continue;
                }
                if acks {
                    let t = Instant::now();
                    c.settle(&got).await?;
                    let _ = ah.record((t.elapsed().as_micros() as u64).max(1));
                }
                let mut s = seen.lock().map_err(|_| "poisoned")?;
                for m in &got {
                    if !s.insert(m.id) {
                        dups += 1;
                    }
                }
                bar.inc(got.len() as u64);
            }
            Ok::<_, String>((rh, ah, dups))
        });
    }
    let (mut rh, mut ah, mut dups) = (micros_histogram()?, micros_histogram()?, 0);
    while let Some(r) = tokio::time::timeout(Duration::from_secs(300), tasks.join_next())
        .await
        .map_err(|_| format!("{name}: consumers still running after 300 s"))?
    {
        let (r1, a1, d1) = r.map_err(|e| e.to_string())??;
        rh.add(r1).map_err(|e| e.to_string())?;
        ah.add(a1).map_err(|e| e.to_string())?;
        dups += d1;
    }
    let took = start.elapsed();
    bar.finish_and_clear();
    let got = seen.lock().map_err(|_| "poisoned")?.len() as u64;
    let q = |h: &Histogram<u64>, x: f64| h.value_at_quantile(x) as f64 / 1000.0;
    Ok(Report {
        queue: name.to_string(),
        messages: n,
        consumers: a.consumers,
        consumed_per_s: got as f64 / took.as_secs_f64(),
        receive_ms_p50: q(&rh, 0.5),
        receive_ms_p99: q(&rh, 0.99),
        ack_ms_p50: acks.then(|| q(&ah, 0.5)),
        ack_ms_p99: acks.then(|| q(&ah, 0.99)),
        duplicates: dups,
        lost: n.saturating_sub(got),
    })
}

/// Schedules `a.messages` due now on `q` and waits until all are Ready.
async fn fill(q: &Queue, name: &str, a: &Args) -> Result<(), String> {
    let n = a.messages;
    let p = q.producer().await?;
    send_pipelined(
        &p,
        n,
        &vec![b'c'; a.body],
        now_ms() as i64,
        Pipeline {
            batch: 256,
            inflight: 8,
        },
        None,
        None,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while q.ready_total(&p).await? < n {
        if Instant::now() > deadline {
            return Err(format!(
                "{name}: not all {n} messages became Ready in 120 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "{}: {} messages, {} consumers, one receive + one ack per message",
        r.queue, r.messages, r.consumers
    );
    println!(
        "{:.0} msg/s; receive p50 {:.2} ms p99 {:.2} ms; ack p50 {} p99 {}; duplicates {}, lost {}",
        r.consumed_per_s,
        r.receive_ms_p50,
        r.receive_ms_p99,
        r.ack_ms_p50.map_or("-".into(), |v| format!("{v:.2} ms")),
        r.ack_ms_p99.map_or("-".into(), |v| format!("{v:.2} ms")),
        r.duplicates,
        r.lost
    );
}

fn comparison(rs: &[Report]) -> Vec<Row> {
    let row = |figure: &str, decimals: usize, f: &dyn Fn(&Report) -> Option<f64>| Row {
        figure: figure.to_string(),
        values: rs.iter().map(f).collect(),
        decimals,
    };
    vec![
        row("consumed one by one (msg/s)", 0, &|r| {
            Some(r.consumed_per_s)
        }),
        row("receive latency p50 (ms)", 2, &|r| Some(r.receive_ms_p50)),
        row("receive latency p99 (ms)", 2, &|r| Some(r.receive_ms_p99)),
        row("ack latency p50 (ms)", 2, &|r| r.ack_ms_p50),
    ]
}
