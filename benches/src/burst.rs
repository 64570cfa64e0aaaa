//! `sundial-bench burst`: N messages due in the same millisecond, then messages due 1 ms
//! after them; due → first Ready, due → all Ready, due → all received and acked by K
//! consumers in each of G groups, and how late the messages after the burst are.

use crate::daemon::{start_daemon, sundial_bin};
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sundial_wire::{
    now_ms, Client, ClientOptions, OutgoingMessage, ReceiveOptions, StartFrom, TopicType,
};

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
    /// The `sundial` binary (default: next to this one).
    #[arg(long)]
    sundial: Option<PathBuf>,
    /// Use a running daemon instead of starting one.
    #[arg(long)]
    addr: Option<String>,
    /// Data directory for the daemon started here (a temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (_daemon, addr) = match &a.addr {
        Some(addr) => (None, addr.clone()),
        None => {
            let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("data"));
            let d = start_daemon(&sundial_bin(&a.sundial)?, &dir)?;
            let addr = d.addr.clone();
            (Some(d), addr)
        }
    };
    let r = rt.block_on(burst(&addr, &a))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
        );
    } else {
        print_table(&r);
    }
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

async fn connect(addr: &str) -> Result<Client, String> {
    Client::connect(addr, ClientOptions::default())
        .await
        .map_err(|e| e.to_string())
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
    let sent = Arc::new(AtomicU64::new(0));
    let mut producers = tokio::task::JoinSet::new();
    let per = a.messages / a.producers.max(1) as u64;
    for p in 0..a.producers.max(1) {
        let n = if p == 0 {
            a.messages - per * (a.producers.max(1) as u64 - 1)
        } else {
            per
        };
        let (addr, topic, sent) = (addr.to_string(), topic.clone(), sent.clone());
        let (batch, body) = (a.batch.max(1), vec![b'x'; a.body]);
        producers.spawn(async move {
            let c = connect(&addr).await?;
            let mut running = tokio::task::JoinSet::new();
            let mut queued = 0u64;
            while queued < n || !running.is_empty() {
                while queued < n && running.len() < 8 {
                    let k = batch.min((n - queued) as usize);
                    let msgs: Vec<_> = (0..k)
                        .map(|_| OutgoingMessage::new(topic.clone(), body.clone()).deliver_at(due))
                        .collect();
                    let c = c.clone();
                    running.spawn(async move { c.send_batch(msgs).await });
                    queued += k as u64;
                }
                if let Some(r) = running.join_next().await {
                    let v = r.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
                    for x in v {
                        x.map_err(|e| e.to_string())?;
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = producers.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    let after: Vec<_> = (0..a.after)
        .map(|_| OutgoingMessage::new(topic.clone(), vec![b'a'; a.body]).deliver_at(due + 1))
        .collect();
    for chunk in after.chunks(512) {
        for r in c
            .send_batch(chunk.to_vec())
            .await
            .map_err(|e| e.to_string())?
        {
            r.map_err(|e| e.to_string())?;
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
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
        sends_per_s: sent.load(Ordering::Relaxed) as f64 / send_s.max(1e-9),
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
