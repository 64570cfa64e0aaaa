//! Floods against a running daemon, shared by the `floods` test (debug build, which
//! checks behaviour) and `sundial-bench flood` (release build, which measures): 2,000
//! idle connections, a client that writes requests and never reads the answers, and
//! producers at full rate, all at once, while a well-behaved client (send a message
//! due now, receive it, ack it) times its round trips before and during the floods.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_wire::{
    encode, Client, ClientOptions, Hello, OutgoingMessage, Producer, ReceiveOptions, Request,
    StartFrom, TopicType, PROTOCOL_VERSION,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// What to flood with.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    /// Idle connections, each past its handshake.
    pub idle: usize,
    /// Producers at full rate, one batch in flight each.
    pub producers: usize,
    /// Messages per producer batch (256-byte bodies).
    pub batch: usize,
    /// Round trips timed before and again during the floods.
    pub round_trips: usize,
}

impl Default for FloodOptions {
    fn default() -> Self {
        FloodOptions {
            idle: 2_000,
            producers: 4,
            batch: 256,
            round_trips: 300,
        }
    }
}

/// What a flood run measured.
pub struct FloodReport {
    /// Round trips without floods, sorted.
    pub unloaded: Vec<Duration>,
    /// Round trips during the floods, sorted.
    pub loaded: Vec<Duration>,
    /// Messages per second the flooding producers got acknowledged meanwhile.
    pub flood_msgs_per_s: f64,
    /// Idle connections opened (and held to the end).
    pub idle: Vec<Client>,
    /// Requests the never-reading client managed to write.
    pub deaf_requests: u64,
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn quantile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

impl FloodReport {
    /// The loaded quantile over the unloaded one.
    pub fn ratio(&self, p: f64) -> f64 {
        quantile(&self.loaded, p).as_secs_f64() / quantile(&self.unloaded, p).as_secs_f64()
    }

    /// One line for logs and notes.
    pub fn summary(&self) -> String {
        let ms = |v: &[Duration], p| quantile(v, p).as_secs_f64() * 1e3;
        format!(
            "unloaded p50 {:.2} ms p99 {:.2} ms; under floods p50 {:.2} ms p99 {:.2} ms \
             ({:.1}× / {:.1}×); flooding producers {:.0} msg/s; {} idle connections; the \
             never-reading client wrote {} requests",
            ms(&self.unloaded, 0.5),
            ms(&self.unloaded, 0.99),
            ms(&self.loaded, 0.5),
            ms(&self.loaded, 0.99),
            self.ratio(0.5),
            self.ratio(0.99),
            self.flood_msgs_per_s,
            self.idle.len(),
            self.deaf_requests
        )
    }
}

/// Round trips of the well-behaved client: send (due now), receive, ack; sorted.
async fn round_trips(c: &Client, n: usize) -> Result<Vec<Duration>, String> {
    let o = ReceiveOptions {
        max_messages: 1,
        wait: Duration::from_secs(5),
        ..ReceiveOptions::default()
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let sent = c
            .send(OutgoingMessage::new("calm", format!("{i}")))
            .await
            .map_err(|e| e.to_string())?;
        let got = c
            .receive("calm", "calm", &o)
            .await
            .map_err(|e| e.to_string())?;
        match got.first() {
            Some(m) if m.message_id == sent.message_id => {}
            other => return Err(format!("round trip {i} received {other:?}")),
        }
        let acks = c
            .ack("calm", "calm", vec![got[0].receipt_handle])
            .await
            .map_err(|e| e.to_string())?;
        if let Some(Err(e)) = acks.first() {
            return Err(format!("ack: {e:?}"));
        }
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

/// One frame, written by hand (the never-reading client has no client library).
fn frame(id: u64, req: &Request) -> Result<Vec<u8>, String> {
    let payload = encode(req).map_err(|e| e.to_string())?;
    Ok(crate::raw_frame(b"SD", PROTOCOL_VERSION, id, &payload))
}

/// Times round trips from a thread and runtime of their own, so the flood's clients in
/// this process do not delay the well-behaved one's tasks: a real flood comes from
/// other processes.
async fn timed_apart(addr: &str, n: usize) -> Result<Vec<Duration>, String> {
    let addr = addr.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(async {
                    let c = Client::connect(&addr, ClientOptions::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    round_trips(&c, 20).await?; // warm up
                    round_trips(&c, n).await
                })
            });
        let _ = tx.send(r);
    });
    rx.await.map_err(|_| "the timing thread died".to_string())?
}

/// Creates a topic, or finds it there.
async fn ensure_topic(c: &Client, name: &str) -> Result<(), String> {
    match c.create_topic(name, TopicType::Normal).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == "TopicExists" => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the floods against `addr` (topics `calm` and `flood` are created if missing).
pub async fn run(addr: &str, o: &FloodOptions) -> Result<FloodReport, String> {
    let c = Client::connect(addr, ClientOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    ensure_topic(&c, "calm").await?;
    ensure_topic(&c, "flood").await?;
    match c
        .create_group("calm", "calm", StartFrom::Latest, None)
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == "TopicExists" || e.code() == "BadRequest" => {}
        Err(e) => return Err(e.to_string()),
    }
    let unloaded = timed_apart(addr, o.round_trips).await?;

    let mut idle = Vec::with_capacity(o.idle);
    for i in 0..o.idle {
        let c = Client::connect(addr, ClientOptions::default())
            .await
            .map_err(|e| format!("idle connection {i}: {e}"))?;
        idle.push(c);
    }
    let stop = Arc::new(AtomicBool::new(false));

    // Writes stats requests as fast as it can and never reads: once the daemon stops
    // reading, its writes stall; the daemon may also close it for not reading.
    let deaf_written = Arc::new(AtomicU64::new(0));
    let hello = frame(
        0,
        &Request::Hello(Hello {
            version: PROTOCOL_VERSION,
            token: None,
            client: "never-reads".into(),
        }),
    )?;
    let mut requests = Vec::new();
    for i in 1..=64 {
        requests.extend(frame(i, &Request::Stats)?);
    }
    let deaf = {
        let (addr, stop, written) = (addr.to_string(), stop.clone(), deaf_written.clone());
        tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return;
            };
            if s.write_all(&hello).await.is_err() {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                let w = s.write_all(&requests);
                match tokio::time::timeout(Duration::from_millis(200), w).await {
                    Ok(Ok(())) => {
                        written.fetch_add(64, Ordering::Relaxed);
                    }
                    Ok(Err(_)) => return,
                    Err(_) => {}
                }
            }
        })
    };

    let flood_sent = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for _ in 0..o.producers {
        let (addr, stop, sent, batch) =
            (addr.to_string(), stop.clone(), flood_sent.clone(), o.batch);
        producers.push(tokio::spawn(async move {
            let c = Client::connect(&addr, ClientOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            let p = Producer::new(c);
            while !stop.load(Ordering::Relaxed) {
                let msgs = (0..batch)
                    .map(|_| OutgoingMessage::new("flood", vec![7u8; 256]))
                    .collect();
                let n = p.send_batch(msgs).await.map_err(|e| e.to_string())?.len();
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let before = flood_sent.load(Ordering::Relaxed);
    let loaded = timed_apart(addr, o.round_trips).await;
    let flood_msgs_per_s =
        (flood_sent.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.await.map_err(|e| e.to_string())??;
    }
    deaf.abort();
    Ok(FloodReport {
        unloaded,
        loaded: loaded?,
        flood_msgs_per_s,
        idle,
        deaf_requests: deaf_written.load(Ordering::Relaxed),
    })
}

/// Raises this process's soft limit on open files to its hard limit: 2,000 idle
/// connections need more descriptors than a common default of 1,024.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid resource and a struct we own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}
