//! `sundial-bench burst`: N messages due in the same millisecond, then messages due 1 ms
//! after them; due → first Ready, due → all Ready, due → all received and acked by K
//! consumers in each of G groups, and how late the messages after the burst are.

use crate::load::{
    finish, progress, runtime, send_pipelined, Outcome, Pipeline, Row, Target, TargetArgs,
};
use crate::queue::Queue;
use crate::redis_peer::{PeerArgs, RedisServer};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sundial_wire::now_ms;

/// Arguments of `sundial-bench burst`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Messages due in the same millisecond.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Messages due 1 ms after the burst (their lateness is reported).
    #[arg(long, default_value_t = 1_000)]
    after: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// Consumer groups (each receives every message).
    #[arg(long, default_value_t = 1)]
    groups: usize,
    /// Consumers per group, each with its own connection.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Messages per receive.
    #[arg(long, default_value_t = 1024)]
    receive_max: u32,
    /// Producers scheduling the burst.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Messages per batch send.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Time from the start of sending to the due time; by default 3 s plus 8 µs per
    /// message (the sends must be done before it).
    #[arg(long)]
    lead_ms: Option<u64>,
    /// Each consumer sends a batch's acks and takes its next batch at the same time, with
    /// at most one batch of acks outstanding; a message still counts as acked only once
    /// its ack is answered. By default a consumer waits for each ack before it receives
    /// again.
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

#[derive(Serialize, Debug, Default)]
struct GroupReport {
    group: String,
    received: u64,
    duplicates: u64,
    lost: u64,
    due_to_all_acked_ms: Option<f64>,
}

#[derive(Serialize, Debug, Default)]
struct Report {
    queue: String,
    machine: String,
    messages: u64,
    after: u64,
    body_bytes: usize,
    groups: usize,
    consumers_per_group: usize,
    acks_ahead: bool,
    send_s: f64,
    sends_per_s: f64,
    due_to_first_ready_ms: Option<f64>,
    due_to_all_ready_ms: Option<f64>,
    after_lateness_max_ms: Option<f64>,
    after_lateness_p50_ms: Option<f64>,
    after_ready_lateness_max_ms: Option<f64>,
    early: u64,
    lost: u64,
    per_group: Vec<GroupReport>,
}

/// One group's progress, shared by its consumers.
struct GroupState {
    name: String,
    seen: Mutex<HashSet<u128>>,
    duplicates: AtomicU64,
    done_at_ms: AtomicU64,
    /// Messages the group must receive: the burst and those after it.
    total: u64,
}

impl GroupState {
    /// Called when a batch's acks are answered: once every message was received, the
    /// last such answer is the moment the group is done.
    fn note_settled(&self) {
        if self.seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64 >= self.total {
            self.done_at_ms
                .fetch_max(now_ms() as u64, Ordering::Relaxed);
        }
    }
}

pub fn run(a: Args) -> Result<(), String> {
    let rt = runtime()?;
    let target = Target::open(&a.target)?;
    let mut reports = vec![rt.block_on(async {
        let q = Queue::sundial(&target.addr, "burst", &group_names(&a)).await?;
        burst(&q, "sundial", &a).await
    })?];
    if let Some(grpc) = &target.grpc {
        reports.push(rt.block_on(async {
            let q = Queue::grpc(&target.addr, grpc, "burst-grpc", &group_names(&a)).await?;
            burst(&q, "sundial grpc", &a).await
        })?);
    }
    // The daemon stops before the peer runs, so each has the machine to itself.
    drop(target);
    if a.peer.peer.is_some() {
        // A Redis list has no consumer groups: the peer runs with one.
        let one = Args {
            groups: 1,
            ..a.clone()
        };
        for fsync in &a.peer.peer_fsync {
            reports.push(rt.block_on(async {
                let server = RedisServer::start(&a.peer.redis_server, *fsync).await?;
                let q = Queue::redis(&server, "burst").await?;
                burst(&q, &format!("redis {}", fsync.name()), &one).await
            })?);
        }
    }
    finish(a.json, &reports, print_table, comparison)
}

fn group_names(a: &Args) -> Vec<String> {
    (0..a.groups.max(1)).map(|i| format!("g{i}")).collect()
}

/// The figures the targets name, one row each, for the side-by-side table.
fn comparison(rs: &[Report]) -> Vec<Row> {
    let row = |figure: &str, decimals: usize, f: &dyn Fn(&Report) -> Option<f64>| Row {
        figure: figure.to_string(),
        values: rs.iter().map(f).collect(),
        decimals,
    };
    vec![
        row("durable scheduling (msg/s)", 0, &|r| Some(r.sends_per_s)),
        row("due -> first Ready (ms)", 1, &|r| r.due_to_first_ready_ms),
        row("due -> all Ready (ms)", 1, &|r| r.due_to_all_ready_ms),
        row("due -> all received (and acked), group 1 (ms)", 1, &|r| {
            r.per_group.first().and_then(|g| g.due_to_all_acked_ms)
        }),
        row("due + 1 ms messages: received late p50 (ms)", 1, &|r| {
            r.after_lateness_p50_ms
        }),
        row("due + 1 ms messages: received late max (ms)", 1, &|r| {
            r.after_lateness_max_ms
        }),
    ]
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn print_table(r: &Report) {
    println!("{}, machine: {}", r.queue, r.machine);
    println!(
        "{} messages due in one millisecond ({} B), {} after it; {} group(s) x {} consumers{}",
        r.messages,
        r.body_bytes,
        r.after,
        r.groups,
        r.consumers_per_group,
        if r.acks_ahead {
            ", each acking one batch while taking the next"
        } else {
            ""
        }
    );
    println!("{:<52} {:>12}", "figure", "value");
    println!(
        "{:<52} {:>12.0}",
        "durable scheduling (msg/s)", r.sends_per_s
    );
    println!(
        "{:<52} {:>12}",
        "due -> first Ready (ms)",
        ms(r.due_to_first_ready_ms)
    );
    println!(
        "{:<52} {:>12}",
        "due -> all Ready (ms)",
        ms(r.due_to_all_ready_ms)
    );
    for g in &r.per_group {
        println!(
            "{:<52} {:>12}",
            format!("due -> all received and acked, group {} (ms)", g.group),
            ms(g.due_to_all_acked_ms)
        );
    }
    println!(
        "{:<52} {:>12}",
        "messages due 1 ms after: Ready lateness max (ms)",
        ms(r.after_ready_lateness_max_ms)
    );
    println!(
        "{:<52} {:>12}",
        "messages due 1 ms after: received late p50 / max (ms)",
        format!(
            "{} / {}",
            ms(r.after_lateness_p50_ms),
            ms(r.after_lateness_max_ms)
        )
    );
    println!("{:<52} {:>12}", "early deliveries", r.early);
    println!("{:<52} {:>12}", "lost (receipted, never received)", r.lost);
    let dups: u64 = r.per_group.iter().map(|g| g.duplicates).sum();
    println!("{:<52} {:>12}", "duplicates (redelivered)", dups);
}

async fn burst(q: &Queue, queue: &str, a: &Args) -> Result<Report, String> {
    let probe = q.producer().await?;
    let groups: Vec<Arc<GroupState>> = group_names(a)
        .into_iter()
        .map(|name| {
            Arc::new(GroupState {
                name,
                // Sized up front: growing a set of a million ids rehashes it under the
                // lock every consumer takes, a pause measured as delivery time.
                seen: Mutex::new(HashSet::with_capacity((a.messages + a.after) as usize)),
                duplicates: AtomicU64::new(0),
                done_at_ms: AtomicU64::new(0),
                total: a.messages + a.after,
            })
        })
        .collect();
    let total = a.messages + a.after;
    let start = now_ms();
    let lead = a.lead_ms.unwrap_or(3_000 + a.messages * 8 / 1_000) as i64;
    let due = start + lead;

    // Schedule: the burst, then the messages due right after it.
    let bar = progress(total, "scheduling", a.json);
    let mut producers = tokio::task::JoinSet::new();
    let per = a.messages / a.producers.max(1) as u64;
    for i in 0..a.producers.max(1) {
        let n = if i == 0 {
            a.messages - per * (a.producers.max(1) as u64 - 1)
        } else {
            per
        };
        let p = q.producer().await?;
        let (batch, body, bar) = (a.batch, vec![b'x'; a.body], bar.clone());
        producers.spawn(async move {
            send_pipelined(
                &p,
                n,
                &body,
                due,
                Pipeline { batch, inflight: 8 },
                None,
                Some(&bar),
            )
            .await
        });
    }
    let mut sent = 0;
    while let Some(r) = producers.join_next().await {
        sent += r.map_err(|e| e.to_string())??;
    }
    let after_body = vec![b'a'; a.body];
    sent += send_pipelined(
        &probe,
        a.after,
        &after_body,
        due + 1,
        Pipeline {
            batch: 512,
            inflight: 1,
        },
        None,
        Some(&bar),
    )
    .await?;
    bar.finish_and_clear();
    let send_s = (now_ms() - start) as f64 / 1000.0;
    if now_ms() >= due {
        return Err(format!(
            "scheduling took {send_s:.1} s, past the due time; raise --lead-ms above {lead}"
        ));
    }

    // Watch Ready progress through the topic's exact counters.
    let ready_times = Arc::new(Mutex::new((None::<i64>, None::<i64>)));
    let watcher = {
        let (q, rt) = (q.clone(), ready_times.clone());
        tokio::spawn(async move {
            let deadline = due + 120_000;
            while now_ms() < deadline {
                if let Ok(ready) = q.ready_total(&probe).await {
                    let now = now_ms();
                    let mut r = rt.lock().unwrap_or_else(|p| p.into_inner());
                    if ready > 0 && r.0.is_none() {
                        r.0 = Some(now);
                    }
                    if ready >= total {
                        r.1 = Some(now);
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // Consumers, long-polling before the due time.
    let early = Arc::new(AtomicU64::new(0));
    let after_lateness = Arc::new(Mutex::new(Vec::<i64>::new()));
    let after_ready = Arc::new(AtomicU64::new(0));
    let mut consumers = tokio::task::JoinSet::new();
    for g in &groups {
        for _ in 0..a.consumers.max(1) {
            let g = g.clone();
            let (early, after_lateness, after_ready) =
                (early.clone(), after_lateness.clone(), after_ready.clone());
            let (max, ahead) = (a.receive_max, a.ack_ahead);
            let mut c = q.consumer(&g.name, Duration::from_secs(120)).await?;
            consumers.spawn(async move {
                let deadline = due + 180_000;
                // The batch of acks on its way, when acks go ahead.
                let mut acking: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
                loop {
                    if g.seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64 >= total
                        || now_ms() > deadline
                    {
                        if let Some(h) = acking.take() {
                            h.await.map_err(|e| e.to_string())??;
                        }
                        return Ok::<(), String>(());
                    }
                    let got = c.take(max, Duration::from_secs(1)).await?;
                    if let Some(h) = acking.take() {
                        h.await.map_err(|e| e.to_string())??;
                    }
                    if got.is_empty() {
                        continue;
                    }
                    let now = now_ms();
                    {
                        let mut seen = g.seen.lock().unwrap_or_else(|p| p.into_inner());
                        for m in &got {
                            if (now as u64) < m.deliver_at_ms {
                                early.fetch_add(1, Ordering::Relaxed);
                            }
                            if !seen.insert(m.id) {
                                g.duplicates.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    let late: Vec<i64> = got
                        .iter()
                        .filter(|m| m.deliver_at_ms as i64 == due + 1)
                        .map(|m| {
                            if let Some(r) = m.ready_at_ms {
                                after_ready.fetch_max(
                                    r.saturating_sub(m.deliver_at_ms),
                                    Ordering::Relaxed,
                                );
                            }
                            now - m.deliver_at_ms as i64
                        })
                        .collect();
                    if !late.is_empty() {
                        after_lateness
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(late);
                    }
                    if ahead {
                        // The task itself notes when its acks were answered, so a long
                        // poll after the last batch does not delay the figure.
                        let (settle, g) = (c.settle_owned(got), g.clone());
                        acking = Some(tokio::spawn(async move {
                            settle.await?;
                            g.note_settled();
                            Ok(())
                        }));
                    } else {
                        c.settle(&got).await?;
                        g.note_settled();
                    }
                }
            });
        }
    }
    while let Some(r) = consumers.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    let _ = watcher.await;
    let (first, all) = *ready_times.lock().unwrap_or_else(|p| p.into_inner());
    let mut late = after_lateness
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    late.sort_unstable();
    let per_group: Vec<GroupReport> = groups
        .iter()
        .map(|g| {
            let received = g.seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
            let done = g.done_at_ms.load(Ordering::Relaxed);
            GroupReport {
                group: g.name.clone(),
                received,
                duplicates: g.duplicates.load(Ordering::Relaxed),
                lost: total.saturating_sub(received),
                due_to_all_acked_ms: (done > 0).then(|| (done as i64 - due) as f64),
            }
        })
        .collect();
    let ready_known = matches!(q, Queue::Sundial { .. });
    Ok(Report {
        queue: queue.to_string(),
        machine: crate::engine::machine(),
        messages: a.messages,
        after: a.after,
        body_bytes: a.body,
        groups: groups.len(),
        consumers_per_group: a.consumers.max(1),
        acks_ahead: a.ack_ahead,
        send_s,
        sends_per_s: sent as f64 / send_s.max(1e-9),
        due_to_first_ready_ms: first.map(|t| (t - due) as f64),
        due_to_all_ready_ms: all.map(|t| (t - due) as f64),
        after_lateness_max_ms: late.last().map(|v| *v as f64),
        after_lateness_p50_ms: late.get(late.len() / 2).map(|v| *v as f64),
        after_ready_lateness_max_ms: (ready_known && !late.is_empty())
            .then(|| after_ready.load(Ordering::Relaxed) as f64),
        early: early.load(Ordering::Relaxed),
        lost: per_group.iter().map(|g| g.lost).sum(),
        per_group,
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
