//! The engine benchmark: durable sends and a same-millisecond burst.

use crate::{raw, rss};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_engine::{
    Clock, Config, Engine, ManualClock, NewMessage, Pending, SendReceipt, SystemClock, TopicKind,
};

/// Arguments of `sundial-bench engine`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Messages for the send throughput runs.
    #[arg(long, default_value_t = 1_000_000)]
    send_messages: u64,
    /// Messages due in the same millisecond for the burst runs.
    #[arg(long, default_value_t = 1_000_000)]
    burst_messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Messages per batch.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Batches each producer keeps in flight.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// Directory for the stores (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Run only the engine send part (for profiling).
    #[arg(long)]
    only_engine_send: bool,
    /// Run only the engine burst part (for profiling).
    #[arg(long)]
    only_engine_burst: bool,
    /// The engine's pump step (messages moved per atomic batch).
    #[arg(long, default_value_t = 4096)]
    pump_step: usize,
    /// Rounds; each figure is the median over them.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Report {
    machine: String,
    rounds: usize,
    send_messages: u64,
    body_bytes: usize,
    producers: usize,
    raw_synced_puts_per_s: f64,
    engine_sends_per_s: f64,
    send_ratio: f64,
    burst_messages: u64,
    raw_move_s: f64,
    raw_move_per_s: f64,
    engine_first_ready_ms: f64,
    engine_all_ready_s: f64,
    engine_burst_per_s: f64,
    burst_ratio: f64,
    rss_before_burst_mib: f64,
    rss_max_during_burst_mib: f64,
    rss_after_burst_mib: f64,
}

pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown cpu".into());
    format!("{cpus} cores, {model}")
}

/// Sends `n` copies of `body` due at `due` to `topic` in batches of `batch`, keeping
/// `inflight` batches in flight; returns how many sends failed.
fn pipelined_sends(
    e: &Engine,
    topic: &str,
    n: u64,
    body: &[u8],
    due: i64,
    batch: usize,
    inflight: usize,
) -> u64 {
    let mut pending = std::collections::VecDeque::new();
    let mut failed = 0u64;
    let mut check = |p: Pending<Vec<sundial_engine::Result<SendReceipt>>>| {
        failed += match p.wait() {
            Ok(v) => v.iter().filter(|r| r.is_err()).count() as u64,
            Err(_) => 1,
        }
    };
    let mut sent = 0u64;
    while sent < n {
        let k = batch.min((n - sent) as usize);
        let msgs: Vec<NewMessage> = (0..k)
            .map(|_| NewMessage {
                topic: topic.into(),
                body: crate::bodies::body(body),
                deliver_at_ms: Some(due),
                ..NewMessage::default()
            })
            .collect();
        pending.push_back(e.submit_send_batch(msgs));
        sent += k as u64;
        if pending.len() >= inflight {
            if let Some(p) = pending.pop_front() {
                check(p);
            }
        }
    }
    for p in pending {
        check(p);
    }
    failed
}

fn engine_sends(path: &std::path::Path, a: &Args) -> Result<Duration, String> {
    let e = Engine::open(path, Config::default()).map_err(|e| e.to_string())?;
    e.create_topic("bench", TopicKind::Delay)
        .map_err(|e| e.to_string())?;
    let per = a.send_messages / a.producers as u64;
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..a.producers {
        let (e, failed) = (e.clone(), failed.clone());
        let (batch, inflight, body) = (a.batch, a.inflight, a.body);
        threads.push(std::thread::spawn(move || {
            let due = SystemClock.now_ms() as i64 + 3_600_000;
            let f = pipelined_sends(&e, "bench", per, &vec![b'x'; body], due, batch, inflight);
            failed.fetch_add(f, Ordering::Relaxed);
        }));
    }
    for t in threads {
        t.join().map_err(|_| "producer panicked")?;
    }
    let took = start.elapsed();
    let f = failed.load(Ordering::Relaxed);
    if f > 0 {
        return Err(format!("{f} sends failed"));
    }
    if e.stats().timing_total != per * a.producers as u64 {
        return Err("engine did not store every send".into());
    }
    Ok(took)
}

struct Burst {
    first_ready: Duration,
    all_ready: Duration,
    rss_before: u64,
    rss_max: u64,
    rss_after: u64,
}

fn engine_burst(path: &std::path::Path, a: &Args) -> Result<Burst, String> {
    let t0 = 1_700_000_000_000u64;
    let clock = ManualClock::new(t0);
    let cfg = Config {
        clock: clock.clone(),
        pump_step: a.pump_step,
        ..Config::default()
    };
    let e = Engine::open(path, cfg).map_err(|e| e.to_string())?;
    e.create_topic("burst", TopicKind::Delay)
        .map_err(|e| e.to_string())?;
    let due = (t0 + 1_000) as i64;
    let failed = pipelined_sends(
        &e,
        "burst",
        a.burst_messages,
        &vec![b'x'; a.body],
        due,
        1024,
        8,
    );
    if failed > 0 {
        return Err(format!("{failed} burst sends failed"));
    }
    if e.stats().timing_total != a.burst_messages {
        return Err("burst not fully stored".into());
    }
    // Let the sends' flushes, compactions and page-cache writeback finish first: the
    // raw move it is compared with starts on a quiet store too.
    settle_disk();
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(120) {
        let s = e.stats();
        let pending: u64 = s.families.iter().map(|f| f.pending_compaction_bytes).sum();
        if s.running_compactions == 0 && s.running_flushes == 0 && pending == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    settle_disk();
    let rss_before = rss::rss_bytes();
    let sampler = rss::Sampler::start();
    let mut signal = e.ready_signal();
    signal.mark_unchanged();
    let start = Instant::now();
    clock.set(t0 + 1_000); // the background pump wakes and starts moving
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if first.is_none() && signal.has_changed().unwrap_or(false) {
            first = Some(start.elapsed());
        }
        if e.counters().timing_total == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err("burst did not finish in 10 minutes".into());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let all = start.elapsed();
    let rss_max = sampler.stop();
    let ready = e.stats().topics.iter().map(|t| t.ready_total).sum::<u64>();
    if ready != a.burst_messages {
        return Err(format!("only {ready} of {} became Ready", a.burst_messages));
    }
    Ok(Burst {
        first_ready: first.unwrap_or(all),
        all_ready: all,
        rss_before,
        rss_max,
        rss_after: rss::rss_bytes(),
    })
}

/// Writes back dirty pages (the `sync` command) before a timed phase.
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

pub fn run(a: Args) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let base = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    if a.only_engine_send {
        let took = engine_sends(&base.join("engine-send"), &a)?;
        println!(
            "engine sends/s: {:.0}",
            a.send_messages as f64 / took.as_secs_f64()
        );
        return Ok(());
    }
    if a.only_engine_burst {
        let b = engine_burst(&base.join("engine-burst"), &a)?;
        println!(
            "engine burst: all Ready in {:.3} s, first after {:.1} ms",
            b.all_ready.as_secs_f64(),
            b.first_ready.as_secs_f64() * 1e3
        );
        return Ok(());
    }
    let n = a.send_messages / a.producers as u64 * a.producers as u64;
    let (mut raw_sends, mut eng_sends, mut raw_moves, mut bursts) =
        (vec![], vec![], vec![], vec![]);
    for round in 0..a.repeat.max(1) {
        // Interleaved, each in a fresh directory, so drift on a shared machine hits
        // both sides alike; medians are reported.
        let dir = base.join(format!("round-{round}"));
        eprintln!(
            "round {}: raw synced puts, engine sends, raw move, engine burst",
            round + 1
        );
        raw_sends.push(raw::synced_puts(
            &dir.join("raw-send"),
            n,
            a.body,
            a.batch,
            a.producers,
        )?);
        eng_sends.push(engine_sends(&dir.join("engine-send"), &a)?);
        raw_moves.push(raw::batched_move(
            &dir.join("raw-move"),
            a.burst_messages,
            4096,
        )?);
        bursts.push(engine_burst(&dir.join("engine-burst"), &a)?);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (raw_send, eng_send, raw_move) = (
        median(&mut raw_sends),
        median(&mut eng_sends),
        median(&mut raw_moves),
    );
    bursts.sort_by_key(|b| b.all_ready);
    let burst = bursts.swap_remove(bursts.len() / 2);
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    let r = Report {
        machine: machine(),
        rounds: a.repeat.max(1),
        send_messages: n,
        body_bytes: a.body,
        producers: a.producers,
        raw_synced_puts_per_s: rate(n, raw_send),
        engine_sends_per_s: rate(n, eng_send),
        send_ratio: raw_send.as_secs_f64() / eng_send.as_secs_f64(),
        burst_messages: a.burst_messages,
        raw_move_s: raw_move.as_secs_f64(),
        raw_move_per_s: rate(a.burst_messages, raw_move),
        engine_first_ready_ms: burst.first_ready.as_secs_f64() * 1000.0,
        engine_all_ready_s: burst.all_ready.as_secs_f64(),
        engine_burst_per_s: rate(a.burst_messages, burst.all_ready),
        burst_ratio: raw_move.as_secs_f64() / burst.all_ready.as_secs_f64(),
        rss_before_burst_mib: mib(burst.rss_before),
        rss_max_during_burst_mib: mib(burst.rss_max),
        rss_after_burst_mib: mib(burst.rss_after),
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!("machine: {}; medians of {} rounds", r.machine, r.rounds);
    println!(
        "{:<44} {:>14} {:>14} {:>7}",
        "figure", "sundial", "raw RocksDB", "ratio"
    );
    println!(
        "{:<44} {:>14.0} {:>14.0} {:>7.2}",
        format!(
            "durable sends/s ({} B {}, {} producers)",
            r.body_bytes,
            crate::bodies::kind().name(),
            r.producers
        ),
        r.engine_sends_per_s,
        r.raw_synced_puts_per_s,
        r.send_ratio
    );
    println!(
        "{:<44} {:>14.3} {:>14.3} {:>7.2}",
        format!("{} same-ms messages to Ready (s)", r.burst_messages),
        r.engine_all_ready_s,
        r.raw_move_s,
        r.burst_ratio
    );
    println!(
        "{:<44} {:>14.1}",
        "burst: due -> first Ready (ms)", r.engine_first_ready_ms
    );
    println!(
        "{:<44} {:>14}",
        "RSS before / max during / after burst (MiB)",
        format!(
            "{:.0} / {:.0} / {:.0}",
            r.rss_before_burst_mib, r.rss_max_during_burst_mib, r.rss_after_burst_mib
        )
    );
    Ok(())
}
