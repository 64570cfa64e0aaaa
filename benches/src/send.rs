//! `sundial-bench send`: maximum-rate durable scheduling through the daemon with
//! pipelined producers over loopback, next to the raw RocksDB ceiling measured in the
//! same run and, with `--peer redis`, the same workload against a Redis delay queue.

use crate::daemon::{rss_of, start_daemon, start_echo, sundial_bin};
use crate::engine::machine;
use crate::load::{
    micros_histogram, print_comparison, print_report, progress, runtime, send_pipelined, Pipeline,
    Row,
};
use crate::queue::{redis_connect, Producer, Queue};
use crate::raw;
use crate::redis_peer::{Fsync, PeerArgs, RedisServer};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sundial_wire::now_ms;

/// Arguments of `sundial-bench send`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Messages per measured run.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Messages per batch send (1 sends one message per request).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Requests each producer keeps in flight on its connection.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Also measure single-message sends (batch 1) with this many in flight per
    /// producer; 0 skips it.
    #[arg(long, default_value_t = 256)]
    single_inflight: usize,
    /// Messages for the single-message run.
    #[arg(long, default_value_t = 200_000)]
    single_messages: u64,
    /// The `sundial` binary (default: next to this one).
    #[arg(long)]
    sundial: Option<PathBuf>,
    /// Use a daemon already running here instead of starting one (the raw ceiling then
    /// shares its disk, so the ratio is indicative only).
    #[arg(long)]
    addr: Option<String>,
    /// The running daemon's RocketMQ gRPC address (with --addr).
    #[arg(long)]
    grpc_addr: Option<String>,
    /// Skip the gRPC side (by default the same sends also go over the daemon's
    /// RocketMQ 5 gRPC port, in the same run).
    #[arg(long)]
    no_grpc: bool,
    /// Skip the echo front end (by default the single sends also run against a front
    /// end that decodes each request and answers it without an engine: the path's own
    /// ceiling on this machine, over each protocol).
    #[arg(long)]
    no_echo: bool,
    /// Rounds; each rate is the median, latencies are over all rounds.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Directory for the stores (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    peer: PeerArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// One queue's figures.
#[derive(Serialize, Debug)]
struct Side {
    queue: String,
    sends_per_s: f64,
    mb_per_s: f64,
    request_latency_ms_p50: f64,
    request_latency_ms_p99: f64,
    request_latency_ms_p999: f64,
    request_latency_ms_max: f64,
    /// One message per request (`--single-inflight` in flight per producer).
    single_sends_per_s: Option<f64>,
    single_request_latency_ms_p50: Option<f64>,
    single_request_latency_ms_p99: Option<f64>,
    /// Resident memory of the server with the run's messages pending.
    rss_mib: Option<f64>,
    /// Data bytes per pending message, where the server counts them (Redis).
    bytes_per_pending: Option<f64>,
}

#[derive(Serialize, Debug)]
struct Report {
    machine: String,
    rounds: usize,
    messages: u64,
    body_bytes: usize,
    /// `random` or `compressible`.
    bodies: &'static str,
    producers: usize,
    batch: usize,
    inflight: usize,
    raw_synced_puts_per_s: f64,
    sundial: Side,
    ratio_to_raw: f64,
    single_sends_per_s: Option<f64>,
    single_ratio_to_raw: Option<f64>,
    /// The same sends over the RocketMQ 5 gRPC port.
    grpc: Option<Side>,
    /// gRPC single sends / native single sends.
    grpc_single_ratio_to_native: Option<f64>,
    /// Single sends against the echo front end (no engine), native and gRPC.
    echo: Option<Echo>,
    peers: Vec<Side>,
}

/// The path's ceiling: the same single sends answered by the echo front end.
#[derive(Serialize, Debug)]
struct Echo {
    single_sends_per_s: f64,
    single_request_latency_ms_p50: f64,
    /// sundial's native single sends / this.
    sundial_ratio: Option<f64>,
    grpc_single_sends_per_s: Option<f64>,
    grpc_single_request_latency_ms_p50: Option<f64>,
    /// sundial's gRPC single sends / the gRPC echo's.
    grpc_ratio: Option<f64>,
}

/// What one side measured over the rounds.
struct Runs {
    took: Vec<Duration>,
    latency: Histogram<u64>,
    single_took: Vec<Duration>,
    single_latency: Histogram<u64>,
    rss: Vec<u64>,
    used: Vec<u64>,
}

impl Runs {
    fn new() -> Result<Runs, String> {
        Ok(Runs {
            took: vec![],
            latency: micros_histogram()?,
            single_took: vec![],
            single_latency: micros_histogram()?,
            rss: vec![],
            used: vec![],
        })
    }

    /// The median single-send rate over the rounds and the single sends' p50 (ms).
    fn single(&mut self, n: u64) -> Result<(f64, f64), String> {
        let took = median(&mut self.single_took).ok_or("no rounds")?;
        Ok((
            n as f64 / took.as_secs_f64(),
            self.single_latency.value_at_quantile(0.5) as f64 / 1000.0,
        ))
    }

    fn side(&mut self, queue: &str, n: u64, single_n: u64, body: usize) -> Result<Side, String> {
        let took = median(&mut self.took).ok_or("no rounds")?;
        let rate = n as f64 / took.as_secs_f64();
        let single = median(&mut self.single_took).map(|t| single_n as f64 / t.as_secs_f64());
        let (h, hs) = (&self.latency, &self.single_latency);
        let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
        let qs = |x: f64| single.map(|_| hs.value_at_quantile(x) as f64 / 1000.0);
        Ok(Side {
            queue: queue.to_string(),
            sends_per_s: rate,
            mb_per_s: rate * body as f64 / 1e6,
            request_latency_ms_p50: q(0.5),
            request_latency_ms_p99: q(0.99),
            request_latency_ms_p999: q(0.999),
            request_latency_ms_max: h.max() as f64 / 1000.0,
            single_sends_per_s: single,
            single_request_latency_ms_p50: qs(0.5),
            single_request_latency_ms_p99: qs(0.99),
            rss_mib: median(&mut self.rss).map(|b| b as f64 / 1048576.0),
            bytes_per_pending: median(&mut self.used).map(|b| b as f64 / n as f64),
        })
    }
}

fn median<T: Ord + Copy>(v: &mut [T]) -> Option<T> {
    v.sort();
    v.get(v.len() / 2).copied()
}

/// Sends `n` messages due in an hour from `a.producers` connections to `q`, each with
/// `inflight` requests of `batch` in flight; returns the elapsed time.
async fn sends(
    q: &Queue,
    n: u64,
    a: &Args,
    batch: usize,
    inflight: usize,
    latency: &mut Histogram<u64>,
) -> Result<Duration, String> {
    let per = n / a.producers as u64;
    let mut producers = Vec::new();
    for _ in 0..a.producers {
        producers.push(q.producer().await?);
    }
    let bar = progress(n, "sending", a.json);
    let start = Instant::now();
    let due = now_ms() + 3_600_000;
    let mut tasks = tokio::task::JoinSet::new();
    for p in producers {
        let (body, bar) = (vec![b'x'; a.body], bar.clone());
        let mut h = micros_histogram()?;
        tasks.spawn(async move {
            send_pipelined(
                &p,
                per,
                &body,
                due,
                Pipeline { batch, inflight },
                Some(&mut h),
                Some(&bar),
            )
            .await
            .map(|_| h)
        });
    }
    while let Some(r) = tasks.join_next().await {
        latency
            .add(r.map_err(|e| e.to_string())??)
            .map_err(|e| e.to_string())?;
    }
    let took = start.elapsed();
    bar.finish_and_clear();
    Ok(took)
}

/// Batched sends, then (unless `--single-inflight 0`) one message per request, into
/// `runs`; returns how many messages were sent.
async fn round(q: &Queue, a: &Args, n: u64, runs: &mut Runs) -> Result<u64, String> {
    runs.took
        .push(sends(q, n, a, a.batch, a.inflight, &mut runs.latency).await?);
    let m = single_count(a);
    if m == 0 {
        return Ok(n);
    }
    runs.single_took
        .push(sends(q, m, a, 1, a.single_inflight, &mut runs.single_latency).await?);
    Ok(n + m)
}

fn single_count(a: &Args) -> u64 {
    if a.single_inflight == 0 {
        return 0;
    }
    a.single_messages / a.producers as u64 * a.producers as u64
}

/// One round against the daemon at `addr` (over gRPC at `grpc` when given); checks the
/// stored count.
async fn sundial_round(
    addr: &str,
    grpc: Option<&str>,
    a: &Args,
    n: u64,
    runs: &mut Runs,
) -> Result<(), String> {
    let q = match grpc {
        None => Queue::sundial(addr, "send", &[]).await?,
        Some(g) => Queue::grpc(addr, g, "send-grpc", &[]).await?,
    };
    let expect = round(&q, a, n, runs).await?;
    let probe = match &q {
        Queue::Grpc { topic, admin, .. } => Some((admin.clone(), topic.clone())),
        _ => match q.producer().await? {
            Producer::Sundial(c, topic) => Some((c, topic)),
            _ => None,
        },
    };
    if let Some((c, topic)) = probe {
        let stored = c.show_topic(&topic).await.map_err(|e| e.to_string())?;
        if stored.sent != expect || stored.timing != expect {
            return Err(format!(
                "the daemon stored {} of {expect} sends",
                stored.timing
            ));
        }
    }
    Ok(())
}

/// Single sends against the echo front end at `addr` (and over gRPC at `grpc`).
async fn echo_round(
    addr: &str,
    grpc: Option<&str>,
    a: &Args,
    native: &mut Runs,
    over_grpc: &mut Runs,
) -> Result<(), String> {
    let m = single_count(a);
    let q = Queue::Sundial {
        addr: addr.to_string(),
        topic: "echo".into(),
    };
    native
        .single_took
        .push(sends(&q, m, a, 1, a.single_inflight, &mut native.single_latency).await?);
    if let Some(g) = grpc {
        let q = Queue::Grpc {
            grpc: g.to_string(),
            topic: "echo".into(),
            admin: crate::load::connect(addr).await?,
            next_id: Default::default(),
        };
        over_grpc.single_took.push(
            sends(
                &q,
                m,
                a,
                1,
                a.single_inflight,
                &mut over_grpc.single_latency,
            )
            .await?,
        );
    }
    Ok(())
}

/// One round against Redis in `fsync` mode; checks the stored count.
async fn redis_round(a: &Args, n: u64, fsync: Fsync, runs: &mut Runs) -> Result<(), String> {
    let server = RedisServer::start(&a.peer.redis_server, fsync).await?;
    let before = server.used_memory().await?;
    let q = Queue::redis(&server, "send").await?;
    let expect = round(&q, a, n, runs).await?;
    let used = server.used_memory().await?;
    runs.used.push(used.saturating_sub(before) * n / expect);
    runs.rss.push(server.rss());
    if let Queue::Redis { key, .. } = &q {
        let mut c = redis_connect(&server.url()).await?;
        let stored: u64 = redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        if stored != expect {
            return Err(format!("Redis stored {stored} of {expect} sends"));
        }
    }
    Ok(())
}

pub fn run(a: Args) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let base = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let bin = sundial_bin(&a.sundial)?;
    let rt = runtime()?;
    let n = a.messages / a.producers as u64 * a.producers as u64;
    let peers: Vec<Fsync> = match a.peer.peer {
        Some(_) => a.peer.peer_fsync.clone(),
        None => vec![],
    };
    let mut raws = vec![];
    let mut sundial = Runs::new()?;
    let mut grpc = Runs::new()?;
    let mut grpc_ran = false;
    let echo = if a.no_echo || single_count(&a) == 0 {
        None
    } else {
        Some(start_echo(a.body)?)
    };
    let mut echo_native = Runs::new()?;
    let mut echo_grpc = Runs::new()?;
    let mut peer_runs = peers
        .iter()
        .map(|_| Runs::new())
        .collect::<Result<Vec<_>, _>>()?;
    for round in 0..a.repeat.max(1) {
        let dir = base.join(format!("round-{round}"));
        if !a.json {
            eprintln!("round {}: raw synced puts, sundial, peers", round + 1);
        }
        raws.push(raw::synced_puts(
            &dir.join("raw"),
            n,
            a.body,
            a.batch,
            a.producers,
        )?);
        match &a.addr {
            Some(addr) => {
                rt.block_on(sundial_round(addr, None, &a, n, &mut sundial))?;
                if let Some(g) = a.grpc_addr.as_deref().filter(|_| !a.no_grpc) {
                    rt.block_on(sundial_round(addr, Some(g), &a, n, &mut grpc))?;
                    grpc_ran = true;
                }
            }
            None => {
                let d = start_daemon(&bin, &dir.join("daemon"))?;
                rt.block_on(sundial_round(&d.addr, None, &a, n, &mut sundial))?;
                sundial.rss.push(rss_of(d.pid()));
                drop(d);
                if !a.no_grpc {
                    // A daemon of its own, so both protocols start from an empty store.
                    let d = start_daemon(&bin, &dir.join("daemon-grpc"))?;
                    let g = d.grpc_addr.clone().ok_or("the daemon has no gRPC port")?;
                    rt.block_on(sundial_round(&d.addr, Some(&g), &a, n, &mut grpc))?;
                    grpc.rss.push(rss_of(d.pid()));
                    grpc_ran = true;
                }
            }
        }
        for (fsync, runs) in peers.iter().zip(peer_runs.iter_mut()) {
            rt.block_on(redis_round(&a, n, *fsync, runs))?;
        }
        if let Some(e) = &echo {
            let grpc = e.grpc_addr.as_deref().filter(|_| !a.no_grpc);
            rt.block_on(echo_round(
                &e.addr,
                grpc,
                &a,
                &mut echo_native,
                &mut echo_grpc,
            ))?;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let raw = median(&mut raws).ok_or("no rounds")?;
    let raw_rate = n as f64 / raw.as_secs_f64();
    let m = single_count(&a);
    let sundial = sundial.side("sundial", n, m, a.body)?;
    let single_rate = sundial.single_sends_per_s;
    let grpc = if grpc_ran {
        Some(grpc.side("sundial grpc", n, m, a.body)?)
    } else {
        None
    };
    let grpc_single_ratio_to_native = match (&grpc, single_rate) {
        (Some(g), Some(s)) => g.single_sends_per_s.map(|x| x / s),
        _ => None,
    };
    let echo = match echo {
        None => None,
        Some(_) => {
            let native = echo_native.single(m)?;
            let grpc_echo = grpc_ran.then(|| echo_grpc.single(m)).transpose()?;
            Some(Echo {
                single_sends_per_s: native.0,
                single_request_latency_ms_p50: native.1,
                sundial_ratio: single_rate.map(|s| s / native.0),
                grpc_single_sends_per_s: grpc_echo.map(|g| g.0),
                grpc_single_request_latency_ms_p50: grpc_echo.map(|g| g.1),
                grpc_ratio: match (&grpc, grpc_echo) {
                    (Some(g), Some(e)) => g.single_sends_per_s.map(|s| s / e.0),
                    _ => None,
                },
            })
        }
    };
    let r = Report {
        machine: machine(),
        rounds: a.repeat.max(1),
        messages: n,
        body_bytes: a.body,
        bodies: crate::bodies::kind().name(),
        producers: a.producers,
        batch: a.batch,
        inflight: a.inflight,
        raw_synced_puts_per_s: raw_rate,
        ratio_to_raw: sundial.sends_per_s / raw_rate,
        sundial,
        single_sends_per_s: single_rate,
        single_ratio_to_raw: single_rate.map(|s| s / raw_rate),
        grpc,
        grpc_single_ratio_to_native,
        echo,
        peers: peers
            .iter()
            .zip(peer_runs.iter_mut())
            .map(|(f, runs)| runs.side(&format!("redis {}", f.name()), n, m, a.body))
            .collect::<Result<_, _>>()?,
    };
    print_report(a.json, &r, |r| print_table(r, a.single_inflight))
}

fn print_table(r: &Report, single_inflight: usize) {
    println!("machine: {}; medians of {} rounds", r.machine, r.rounds);
    println!(
        "{} messages of {} B ({} bodies): {} producers x {} requests of {} in flight",
        r.messages, r.body_bytes, r.bodies, r.producers, r.inflight, r.batch
    );
    println!("{:<44} {:>12} {:>7}", "figure", "msg/s", "ratio");
    println!(
        "{:<44} {:>12.0} {:>7}",
        "raw RocksDB synced batched puts (ceiling)", r.raw_synced_puts_per_s, "1.00"
    );
    println!(
        "{:<44} {:>12.0} {:>7.2}",
        "sundial durable sends (batched)", r.sundial.sends_per_s, r.ratio_to_raw
    );
    if let (Some(s), Some(q)) = (r.single_sends_per_s, r.single_ratio_to_raw) {
        println!(
            "{:<44} {:>12.0} {:>7.2}",
            format!("sundial single sends, {single_inflight} in flight"),
            s,
            q
        );
    }
    if let Some(q) = r.grpc_single_ratio_to_native {
        println!(
            "{:<44} {:>12} {:>7.2}",
            "gRPC single sends / native single sends", "", q
        );
    }
    if let Some(e) = &r.echo {
        println!(
            "{:<44} {:>12.0} {:>7}",
            "echo front end, single sends (path ceiling)", e.single_sends_per_s, "1.00"
        );
        if let Some(q) = e.sundial_ratio {
            println!(
                "{:<44} {:>12} {:>7.2}",
                "sundial single sends / echo", "", q
            );
        }
        if let Some(g) = e.grpc_single_sends_per_s {
            println!(
                "{:<44} {:>12.0} {:>7}",
                "gRPC echo front end, single sends", g, "1.00"
            );
        }
        if let Some(q) = e.grpc_ratio {
            println!(
                "{:<44} {:>12} {:>7.2}",
                "sundial gRPC single sends / gRPC echo", "", q
            );
        }
        println!(
            "echo request latency p50: {:.2} ms native{}",
            e.single_request_latency_ms_p50,
            e.grpc_single_request_latency_ms_p50
                .map(|g| format!(", {g:.2} ms gRPC"))
                .unwrap_or_default()
        );
    }
    let mut queues = vec![&r.sundial];
    queues.extend(r.grpc.iter());
    queues.extend(r.peers.iter());
    let row = |figure: &str, decimals: usize, f: &dyn Fn(&Side) -> Option<f64>| Row {
        figure: figure.to_string(),
        values: queues.iter().map(|s| f(s)).collect(),
        decimals,
    };
    let rows = [
        row("durable sends, batched (msg/s)", 0, &|s| {
            Some(s.sends_per_s)
        }),
        row("bodies (MB/s)", 1, &|s| Some(s.mb_per_s)),
        row("request latency p50 (ms)", 2, &|s| {
            Some(s.request_latency_ms_p50)
        }),
        row("request latency p99 (ms)", 2, &|s| {
            Some(s.request_latency_ms_p99)
        }),
        row("request latency p99.9 (ms)", 2, &|s| {
            Some(s.request_latency_ms_p999)
        }),
        row("request latency max (ms)", 2, &|s| {
            Some(s.request_latency_ms_max)
        }),
        row("one message per request (msg/s)", 0, &|s| {
            s.single_sends_per_s
        }),
        row("  its request latency p50 (ms)", 2, &|s| {
            s.single_request_latency_ms_p50
        }),
        row("  its request latency p99 (ms)", 2, &|s| {
            s.single_request_latency_ms_p99
        }),
        row("server RSS, run pending (MiB)", 1, &|s| s.rss_mib),
        row("data bytes per pending message", 0, &|s| {
            s.bytes_per_pending
        }),
    ];
    println!();
    let names: Vec<&str> = queues.iter().map(|s| s.queue.as_str()).collect();
    print_comparison(&names, &rows);
}
