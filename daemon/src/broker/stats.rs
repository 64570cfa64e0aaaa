//! Counters and storage figures for `stats`, shared by askers within a short window.

use super::Broker;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use sundial_engine::{Error, Stats};

/// How long a stats report is reused. Stats read every family's properties and walk
/// the data directory; a client asking in a loop would otherwise take a core from
/// everyone else. Concurrent askers wait for one computation and share it.
const FRESH: Duration = Duration::from_millis(250);

/// What `stats` reports: the engine's figures and the daemon's own.
#[derive(Debug, Clone)]
pub struct Report {
    /// The engine's counters and storage figures.
    pub engine: Stats,
    /// Open client connections.
    pub connections: u64,
    /// Seconds since the broker started.
    pub uptime_s: u64,
}

impl Broker {
    /// Counters and storage figures (at most [`FRESH`] old).
    pub async fn stats(&self, op: &'static str) -> Result<Report, Error> {
        self.measured(op, async {
            let mut cached = self.stats.lock().await;
            if let Some((at, r)) = cached.as_ref() {
                if at.elapsed() < FRESH {
                    return Ok(r.clone());
                }
            }
            let r = Report {
                engine: self.blocking(|e| Ok(e.stats())).await?,
                connections: self.live.connections.load(Ordering::Relaxed),
                uptime_s: self.started.elapsed().as_secs(),
            };
            *cached = Some((Instant::now(), r.clone()));
            Ok(r)
        })
        .await
    }
}
