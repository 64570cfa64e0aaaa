//! The clients the gRPC port knows: which have a Telemetry stream open (a client is alive
//! while it has one), and the deliveries of `auto_renew` receives (push consumers), kept
//! invisible while their client is alive.
//!
//! A renewed delivery gets a new receipt from the engine each time; the client keeps the
//! one it was given, so the table maps that handle to the current one. Nothing here is
//! stored: after a restart renewals stop and the deliveries expire as usual (at least
//! once), and an ack with the old handle is refused as stale.

use crate::broker::Broker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sundial_engine::{Error, ReceiptHandle};
use tokio::time::Instant;

/// How long an auto-renewed delivery is made invisible at a time, by default.
pub const RENEW_LEASE: Duration = Duration::from_secs(60);
/// Most deliveries renewed at once; beyond, deliveries keep their first lease only.
const MAX_RENEWALS: usize = 1 << 20;

/// A delivery kept invisible for its client.
#[derive(Debug, Clone)]
struct Renewal {
    client: String,
    topic: String,
    group: String,
    /// The receipt the engine knows now.
    current: ReceiptHandle,
    renew_at: Instant,
}

/// Every client and renewal of the gRPC port.
pub struct Sessions {
    /// The invisible time of an auto-renew delivery; renewed when a third is left.
    lease: Duration,
    /// Open Telemetry streams per client id.
    alive: Mutex<HashMap<String, usize>>,
    /// By the receipt the client was given.
    renewals: Mutex<HashMap<String, Renewal>>,
}

/// A client's open Telemetry stream; the client stops being alive when its last drops.
pub struct Presence {
    sessions: Arc<Sessions>,
    client: String,
}

impl Drop for Presence {
    fn drop(&mut self) {
        let mut alive = lock(&self.sessions.alive);
        if let Some(n) = alive.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                alive.remove(&self.client);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(RENEW_LEASE)
    }
}

impl Sessions {
    /// Sessions whose auto-renew deliveries are kept invisible `lease` at a time.
    pub fn new(lease: Duration) -> Self {
        Sessions {
            lease,
            alive: Mutex::default(),
            renewals: Mutex::default(),
        }
    }

    /// The invisible time of an auto-renew delivery.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// When a lease taken now is renewed: when a third of it is left.
    fn renew_at(&self) -> Instant {
        Instant::now() + self.lease * 2 / 3
    }

    /// Marks `client` alive while the returned guard lives.
    pub fn open(self: &Arc<Self>, client: &str) -> Presence {
        *lock(&self.alive).entry(client.to_string()).or_default() += 1;
        Presence {
            sessions: self.clone(),
            client: client.to_string(),
        }
    }

    /// Whether `client` has a Telemetry stream open.
    #[cfg(test)]
    pub fn is_alive(&self, client: &str) -> bool {
        lock(&self.alive).contains_key(client)
    }

    /// Clients with a Telemetry stream open.
    pub fn clients(&self) -> usize {
        lock(&self.alive).len()
    }

    /// Deliveries being renewed.
    pub fn renewing(&self) -> usize {
        lock(&self.renewals).len()
    }

    /// Keeps a delivery invisible while `client` is alive.
    pub fn renew(&self, client: &str, topic: &str, group: &str, receipt: &ReceiptHandle) {
        let mut r = lock(&self.renewals);
        if r.len() >= MAX_RENEWALS {
            return;
        }
        r.insert(
            receipt.to_string(),
            Renewal {
                client: client.to_string(),
                topic: topic.to_string(),
                group: group.to_string(),
                current: *receipt,
                renew_at: self.renew_at(),
            },
        );
    }

    /// The receipt the engine knows for the one a client sent; `BadReceiptHandle` when
    /// the text is not one.
    pub fn current(&self, receipt: &str) -> Result<ReceiptHandle, Error> {
        if let Some(r) = lock(&self.renewals).get(receipt) {
            return Ok(r.current);
        }
        receipt.parse()
    }

    /// Stops renewing a delivery the client settled.
    pub fn settled(&self, receipt: &str) {
        lock(&self.renewals).remove(receipt);
    }

    /// Renews every lease that is due whose client is alive, and forgets those whose
    /// client is gone (their lease then runs out as usual). Returns how many it renewed.
    pub async fn renew_due(&self, broker: &Broker, op: &'static str) -> usize {
        let now = Instant::now();
        let due: Vec<(String, Renewal)> = {
            let alive = lock(&self.alive);
            let mut r = lock(&self.renewals);
            r.retain(|_, v| alive.contains_key(&v.client));
            r.iter()
                .filter(|(_, v)| v.renew_at <= now)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut renewed = 0;
        for (given, v) in due {
            let got = broker
                .change_invisible(op, v.topic, v.group, v.current, self.lease)
                .await;
            let mut r = lock(&self.renewals);
            match got {
                Ok(new) => {
                    renewed += 1;
                    // Settled in the meantime: the entry is gone and stays gone.
                    if let Some(e) = r.get_mut(&given) {
                        e.current = new;
                        e.renew_at = self.renew_at();
                    }
                }
                // Acked, expired or dead-lettered by another path: nothing to keep.
                Err(Error::BadReceiptHandle(_)) | Err(Error::NotFound(_)) => {
                    r.remove(&given);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing an auto-renew delivery failed");
                }
            }
        }
        renewed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_alive_while_a_stream_is_open() {
        let s = Arc::new(Sessions::default());
        let a = s.open("c1");
        let b = s.open("c1");
        assert!(s.is_alive("c1"));
        drop(a);
        assert!(s.is_alive("c1"));
        drop(b);
        assert!(!s.is_alive("c1"));
        assert_eq!(s.clients(), 0);
    }

    #[test]
    fn a_renewal_maps_the_given_receipt_until_settled() {
        let s = Sessions::default();
        let handle = |nonce| ReceiptHandle {
            group: 1,
            offset: 2,
            nonce,
        };
        let (r1, r2, other) = (handle(1), handle(2), handle(3));
        let given = r1.to_string();
        s.renew("c1", "t", "g", &r1);
        assert_eq!(s.current(&given).ok(), Some(r1));
        assert_eq!(s.current(&other.to_string()).ok(), Some(other));
        assert!(matches!(s.current("r1"), Err(Error::BadReceiptHandle(_))));
        lock(&s.renewals).get_mut(&given).unwrap().current = r2;
        assert_eq!(s.current(&given).ok(), Some(r2));
        s.settled(&given);
        assert_eq!(s.current(&given).ok(), Some(r1));
        assert_eq!(s.renewing(), 0);
    }
}
