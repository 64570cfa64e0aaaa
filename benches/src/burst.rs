//! `sundial-bench burst`: N messages due in the same millisecond, then messages due 1 ms
//! after them; due → first Ready, due → all Ready, due → all received and acked by K
//! consumers in each of G groups, and how late the messages after the burst are.

use crate::load::{connect, print_report, runtime, send_pipelined, Target, TargetArgs};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sundial_wire::{now_ms, ReceiveOptions, StartFrom, TopicType};

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
    #[command(flatten)]
    target: TargetArgs,
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
    machine: String,
    messages: u64,
    after: u64,
    body_bytes: usize,
    groups: usize,
    consumers_per_group: usize,
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
}

pub fn run(a: Args) -> Result<(), String> {
    let rt = runtime()?;
    let target = Target::open(&a.target)?;
    let r = rt.block_on(burst(&target.addr, &a))?;
    print_report(a.json, &r, print_table)?;
    if r.early > 0 || r.lost > 0 {
        return Err(format!("{} early, {} lost", r.early, r.lost));
    }
    Ok(())
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn print_table(r: &Report) {
    println!("machine: {}", r.machine);
    println!(
        "{} messages due in one millisecond ({} B), {} after it; {} group(s) x {} consumers",
        r.messages, r.body_bytes, r.after, r.groups, r.consumers_per_group
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

async fn burst(addr: &str, a: &Args) -> Result<Report, String> {
    let c = connect(addr).await?;
    let topic = format!("burst-{}", now_ms());
    c.create_topic(&topic, TopicType::Delay)
        .await
        .map_err(|e| e.to_string())?;
    let groups: Vec<Arc<GroupState>> = (0..a.groups.max(1))
        .map(|i| {
            Arc::new(GroupState {
                name: format!("g{i}"),
                seen: Mutex::new(HashSet::new()),
                duplicates: AtomicU64::new(0),
                done_at_ms: AtomicU64::new(0),
            })
        })
        .collect();
    for g in &groups {
        c.create_group(&topic, &g.name, StartFrom::Latest, None)
            .await
            .map_err(|e| e.to_string())?;
    }
    let total = a.messages + a.after;
    let start = now_ms();
    let lead = a.lead_ms.unwrap_or(3_000 + a.messages * 8 / 1_000) as i64;
    let due = start + lead;

    // Schedule: the burst, then the messages due right after it.
    let mut producers = tokio::task::JoinSet::new();
    let per = a.messages / a.producers.max(1) as u64;
    for p in 0..a.producers.max(1) {
        let n = if p == 0 {
            a.messages - per * (a.producers.max(1) as u64 - 1)
        } else {
            per
        };
        let (addr, topic) = (addr.to_string(), topic.clone());
        let (batch, body) = (a.batch, vec![b'x'; a.body]);
        producers.spawn(async move {
            let c = connect(&addr).await?;
            send_pipelined(&c, &topic, n, &body, due, batch, 8).await
        });
    }
    let mut sent = 0;
    while let Some(r) = producers.join_next().await {
        sent += r.map_err(|e| e.to_string())??;
    }
    sent += send_pipelined(&c, &topic, a.after, &vec![b'a'; a.body], due + 1, 512, 1).await?;
    let send_s = (now_ms() - start) as f64 / 1000.0;
    if now_ms() >= due {
        return Err(format!(
            "scheduling took {send_s:.1} s, past the due time; raise --lead-ms above {lead}"
        ));
    }

    // Watch Ready progress through the topic's exact counters.
    let ready_times = Arc::new(Mutex::new((None::<i64>, None::<i64>)));
    let watcher = {
        let (c, topic, rt) = (c.clone(), topic.clone(), ready_times.clone());
        tokio::spawn(async move {
            let deadline = due + 120_000;
            while now_ms() < deadline {
                if let Ok(t) = c.show_topic(&topic).await {
                    let now = now_ms();
                    let mut r = rt.lock().unwrap_or_else(|p| p.into_inner());
                    if t.ready_total > 0 && r.0.is_none() {
                        r.0 = Some(now);
                    }
                    if t.ready_total >= total {
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
            let (addr, topic, g) = (addr.to_string(), topic.clone(), g.clone());
            let (early, after_lateness, after_ready) =
                (early.clone(), after_lateness.clone(), after_ready.clone());
            let max = a.receive_max;
            consumers.spawn(async move {
                let c = connect(&addr).await?;
                let o = ReceiveOptions {
                    max_messages: max,
                    invisible: Duration::from_secs(120),
                    wait: Duration::from_secs(1),
                    ..ReceiveOptions::default()
                };
                let deadline = due + 180_000;
                loop {
                    if g.seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64 >= total
                        || now_ms() > deadline
                    {
                        return Ok::<(), String>(());
                    }
                    let got = c
                        .receive(&topic, &g.name, &o)
                        .await
                        .map_err(|e| e.to_string())?;
                    if got.is_empty() {
                        continue;
                    }
                    let now = now_ms();
                    let mut receipts = Vec::with_capacity(got.len());
                    {
                        let mut seen = g.seen.lock().unwrap_or_else(|p| p.into_inner());
                        for m in &got {
                            if (now as u64) < m.deliver_at_ms {
                                early.fetch_add(1, Ordering::Relaxed);
                            }
                            let id = u128::from_str_radix(&m.message_id, 16).unwrap_or(0);
                            if !seen.insert(id) {
                                g.duplicates.fetch_add(1, Ordering::Relaxed);
                            }
                            receipts.push(m.receipt_handle.clone());
                        }
                    }
                    let late: Vec<i64> = got
                        .iter()
                        .filter(|m| m.deliver_at_ms as i64 == due + 1)
                        .map(|m| {
                            after_ready.fetch_max(
                                m.ready_at_ms.saturating_sub(m.deliver_at_ms),
                                Ordering::Relaxed,
                            );
                            now - m.deliver_at_ms as i64
                        })
                        .collect();
                    if !late.is_empty() {
                        after_lateness
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(late);
                    }
                    for r in c
                        .ack(&topic, &g.name, receipts)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        r.map_err(|e| e.to_string())?;
                    }
                    if g.seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64 >= total {
                        g.done_at_ms.fetch_max(now_ms() as u64, Ordering::Relaxed);
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
    Ok(Report {
        machine: crate::engine::machine(),
        messages: a.messages,
        after: a.after,
        body_bytes: a.body,
        groups: groups.len(),
        consumers_per_group: a.consumers.max(1),
        send_s,
        sends_per_s: sent as f64 / send_s.max(1e-9),
        due_to_first_ready_ms: first.map(|t| (t - due) as f64),
        due_to_all_ready_ms: all.map(|t| (t - due) as f64),
        after_lateness_max_ms: late.last().map(|v| *v as f64),
        after_lateness_p50_ms: late.get(late.len() / 2).map(|v| *v as f64),
        after_ready_lateness_max_ms: (!late.is_empty())
            .then(|| after_ready.load(Ordering::Relaxed) as f64),
        early: early.load(Ordering::Relaxed),
        lost: per_group.iter().map(|g| g.lost).sum(),
        per_group,
    })
}
