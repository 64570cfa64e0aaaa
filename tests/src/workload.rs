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
/// the group has received every acknowledged send or `deadline` passes.
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
        max_messages: 32,
        invisible: mode.invisible,
        wait: Duration::from_millis(300),
        ..ReceiveOptions::default()
    };
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) || (drain && t.history.missing(&group) == 0) {
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
