//! Producers and consumers that write what the daemon told them to a [`History`], for
//! the crash loop and the failpoint tests. They ride out a daemon that dies and comes
//! back: a failed call is retried with new messages (the failed ones are only
//! `Attempt`s), until they are told to stop.

use crate::checker::{Event, History};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_wire::{now_ms, Client, ClientOptions, OutgoingMessage, ReceiveOptions};

/// How long a drain waits without receiving anything, once everything is due, before
/// it gives up (and the checker reports what is missing as lost).
pub const STALLED: Duration = Duration::from_secs(20);

/// Calls that failed, by kind, for the report.
#[derive(Default)]
pub struct Failures {
    /// Connection trouble or timeouts (a dead or restarting daemon).
    pub retryable: AtomicU64,
    /// Typed refusals by a running daemon.
    pub refused: AtomicU64,
}

/// Where to send and how.
#[derive(Clone)]
pub struct Target {
    /// Daemon address (the same across restarts).
    pub addr: String,
    /// Topic (MIXED or DELAY).
    pub topic: String,
    /// The shared history.
    pub history: Arc<History>,
    /// Failed calls.
    pub failures: Arc<Failures>,
}

impl Target {
    async fn client(&self) -> Client {
        let opts = ClientOptions {
            request_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        };
        // Connecting is retried inside each call after this; a first failure is fine.
        loop {
            match Client::connect(&self.addr, opts.clone()).await {
                Ok(c) => return c,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn failed(&self, e: &sundial_wire::ClientError) {
        let counter = if e.is_retryable() {
            &self.failures.retryable
        } else {
            &self.failures.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A delivery time: 15 % in the past (up to 10 s), 60 % within 2 s, 25 % up to a
/// minute but never after `latest_ms`, so a run can drain everything when it ends.
pub fn random_deliver_at(rng: &mut impl Rng, latest_ms: i64) -> i64 {
    let now = now_ms();
    let d = match rng.random_range(0..100) {
        0..15 => -rng.random_range(0..10_000),
        15..75 => rng.random_range(0..2_000),
        _ => rng.random_range(0..60_000),
    };
    (now + d).min(latest_ms.max(now))
}

/// Sends batches of 1–8 messages with random delivery times until `stop`; each body is
/// `p{id}-{n}`. Logs `Attempt`s before and `Sent`s after each answer.
pub async fn produce(t: Target, id: u32, stop: Arc<AtomicBool>, latest_ms: i64) {
    let c = t.client().await;
    let mut rng = StdRng::from_os_rng();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let k = rng.random_range(1..=8);
        let mut batch = Vec::with_capacity(k);
        let mut tried = Vec::with_capacity(k);
        for _ in 0..k {
            n += 1;
            let token = format!("p{id}-{n}");
            let at = random_deliver_at(&mut rng, latest_ms);
            batch.push(OutgoingMessage::new(t.topic.clone(), token.clone()).deliver_at(at));
            tried.push(Event::Attempt { token });
        }
        t.history.log(&tried);
        match c.send_batch(batch).await {
            Ok(results) => {
                let mut sent = Vec::new();
                for (r, attempt) in results.into_iter().zip(&tried) {
                    let Event::Attempt { token } = attempt else {
                        continue;
                    };
                    match r {
                        Ok(r) => sent.push(Event::Sent {
                            token: token.clone(),
                            id: r.message_id,
                            deliver_at_ms: r.deliver_at_ms,
                        }),
                        Err(_) => {
                            t.failures.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                t.history.log(&sent);
            }
            Err(e) => {
                t.failed(&e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// How a consumer behaves.
#[derive(Clone, Copy)]
pub struct ConsumeMode {
    /// Share of deliveries acked (the rest are left to be redelivered).
    pub ack_percent: u32,
    /// Invisible duration of each receive.
    pub invisible: Duration,
}

/// Receives and acks in `group` until `stop` is set, or, when `drain` is set, until
/// the group has received every acknowledged send, or nothing came for [`STALLED`]
/// once every delivery time has passed; never after `deadline`.
pub async fn consume(
    t: Target,
    group: String,
    mode: ConsumeMode,
    stop: Arc<AtomicBool>,
    drain: bool,
    deadline: Instant,
) {
    let c = t.client().await;
    let mut rng = StdRng::from_os_rng();
    let o = ReceiveOptions {
        max_messages: if drain { 256 } else { 32 },
        invisible: mode.invisible,
        wait: Duration::from_millis(300),
        ..ReceiveOptions::default()
    };
    let mut progress = Instant::now();
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) || (drain && t.history.missing(&group) == 0) {
            return;
        }
        let all_due = now_ms() as u64 > t.history.max_deliver_at();
        if drain && all_due && progress.elapsed() > STALLED {
            return;
        }
        let request_seq = t.history.next_seq();
        let got = match c.receive(&t.topic, &group, &o).await {
            Ok(g) => g,
            Err(e) => {
                t.failed(&e);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let received_ms = now_ms() as u64;
        if !got.is_empty() {
            progress = Instant::now();
        }
        let mut events = Vec::with_capacity(got.len());
        let mut receipts = Vec::new();
        let mut ids = Vec::new();
        for m in got {
            events.push(Event::Received {
                group: group.clone(),
                token: String::from_utf8_lossy(&m.body).into_owned(),
                id: m.message_id.clone(),
                deliver_at_ms: m.deliver_at_ms,
                attempt: m.delivery_attempt,
                request_seq,
                received_ms,
            });
            if rng.random_range(0..100) < mode.ack_percent {
                receipts.push(m.receipt_handle);
                ids.push(m.message_id);
            }
        }
        t.history.log(&events);
        if receipts.is_empty() {
            continue;
        }
        match c.ack(&t.topic, &group, receipts).await {
            Ok(results) => {
                let seq = t.history.next_seq();
                let acked: Vec<Event> = results
                    .into_iter()
                    .zip(ids)
                    .filter_map(|(r, id)| {
                        r.ok().map(|()| Event::Acked {
                            group: group.clone(),
                            id,
                            seq,
                        })
                    })
                    .collect();
                t.history.log(&acked);
            }
            Err(e) => t.failed(&e),
        }
    }
}

/// Producers and live consumers running until [`Running::stop`].
pub struct Running {
    stop_producers: Arc<AtomicBool>,
    stop_consumers: Arc<AtomicBool>,
    producers: Vec<tokio::task::JoinHandle<()>>,
    consumers: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts `producers` producers with delivery times up to `latest_ms`, and `consumers`
/// consumers in `group` that ack 90 % and leave the rest to come back after 1 s.
pub fn start(t: &Target, producers: u32, group: &str, consumers: usize, latest_ms: i64) -> Running {
    let stop_producers = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let mode = ConsumeMode {
        ack_percent: 90,
        invisible: Duration::from_secs(1),
    };
    let far = Instant::now() + Duration::from_secs(3_600);
    Running {
        producers: (0..producers)
            .map(|p| tokio::spawn(produce(t.clone(), p, stop_producers.clone(), latest_ms)))
            .collect(),
        consumers: (0..consumers)
            .map(|_| {
                let c = consume(
                    t.clone(),
                    group.to_string(),
                    mode,
                    stop_consumers.clone(),
                    false,
                    far,
                );
                tokio::spawn(c)
            })
            .collect(),
        stop_producers,
        stop_consumers,
    }
}

impl Running {
    /// Stops the producers, then the consumers (each within 30 s).
    pub async fn stop(self) {
        self.stop_producers.store(true, Ordering::Relaxed);
        for p in self.producers {
            tokio::time::timeout(Duration::from_secs(30), p)
                .await
                .expect("a producer stops")
                .expect("a producer ends without panicking");
        }
        self.stop_consumers.store(true, Ordering::Relaxed);
        for c in self.consumers {
            tokio::time::timeout(Duration::from_secs(30), c)
                .await
                .expect("a consumer stops")
                .expect("a consumer ends without panicking");
        }
    }
}

/// Drains every group with two consumers each that ack everything, until each group
/// has received every acknowledged send or stalls (see [`consume`]).
pub async fn drain(t: &Target, groups: &[&str]) {
    // A bound for a run gone wrong; a drain ends long before by itself.
    let deadline = Instant::now() + Duration::from_secs(1_800);
    let mode = ConsumeMode {
        ack_percent: 100,
        invisible: Duration::from_secs(5),
    };
    let never = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for g in groups.iter().flat_map(|g| [g, g]) {
        let c = consume(
            t.clone(),
            g.to_string(),
            mode,
            never.clone(),
            true,
            deadline,
        );
        tasks.push(tokio::spawn(c));
    }
    for task in tasks {
        task.await.expect("a drain ends without panicking");
    }
}
