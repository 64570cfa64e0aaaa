//! Retention (SPEC §5): compaction filters remove what is past retention.
//!
//! Retention counts from the moment a message became Ready. Ready-log and ack entries
//! carry their ready time, so their compaction filters compare it directly. A message
//! record carries only its effective delivery time; the pump's checkpoints say "every
//! message due before `w` was Ready by `t`", so the newest checkpoint with
//! `t + retention < now` gives a delivery-time horizon below which every record is
//! past retention. Timing messages are always above the pump's watermark, hence above
//! the horizon: no filter can remove them.

use crate::failpoints;
use crate::store::records;
use rocksdb::{compaction_filter::Decision, Options};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the compaction filters need to know, updated by maintenance.
#[derive(Debug)]
pub(crate) struct Horizon {
    /// The engine's time at the last update.
    pub now_ms: AtomicU64,
    /// Message records with a delivery time below this are past retention.
    pub deliver_before_ms: AtomicU64,
    /// The retention period.
    pub retention_ms: u64,
}

impl Horizon {
    pub fn new(retention_ms: u64) -> Self {
        Horizon {
            now_ms: AtomicU64::new(0),
            deliver_before_ms: AtomicU64::new(0),
            retention_ms,
        }
    }

    fn ready_expired(&self, ready_at: u64) -> bool {
        ready_at.saturating_add(self.retention_ms) < self.now_ms.load(Ordering::Relaxed)
    }

    fn deliver_expired(&self, deliver_at: u64) -> bool {
        deliver_at < self.deliver_before_ms.load(Ordering::Relaxed)
    }

    /// Updates the horizon from the pump's checkpoints.
    pub fn update(&self, now: u64, checkpoints: &[(u64, u64)]) {
        let h = horizon(now, self.retention_ms, checkpoints);
        self.now_ms.store(now, Ordering::SeqCst);
        self.deliver_before_ms.fetch_max(h, Ordering::SeqCst);
    }
}

/// The delivery-time horizon: the largest `w` of a checkpoint whose `t` is past retention.
pub(crate) fn horizon(now: u64, retention_ms: u64, checkpoints: &[(u64, u64)]) -> u64 {
    checkpoints
        .iter()
        .filter(|&&(_, t)| t.saturating_add(retention_ms) < now)
        .map(|&(w, _)| w)
        .max()
        .unwrap_or(0)
}

/// Removes an expired entry, unless the compaction-filter failpoint fires: then, as
/// when anything is unclear, the entry is kept.
fn decide(expired: bool) -> Decision {
    if expired && !failpoints::fires(failpoints::COMPACTION_FILTER) {
        Decision::Remove
    } else {
        Decision::Keep
    }
}

/// For `messages` and `runs`, whose values start with a delivery time.
pub(crate) fn install_message_filter(o: &mut Options, name: &str, h: Arc<Horizon>) {
    o.set_compaction_filter(name, move |_, _k: &[u8], v: &[u8]| {
        decide(matches!(records::message_deliver_at(v), Some(t) if h.deliver_expired(t)))
    });
}

/// For `ready` and `acked`, whose values start with the time the message became Ready.
pub(crate) fn install_ready_at_filter(o: &mut Options, name: &str, h: Arc<Horizon>) {
    o.set_compaction_filter(name, move |_, _k: &[u8], v: &[u8]| {
        decide(matches!(records::ready_at(v), Some(t) if h.ready_expired(t)))
    });
}

pub(crate) fn install_keys_filter(o: &mut Options, h: Arc<Horizon>) {
    o.set_compaction_filter("sundial-keys-retention", move |_, _k: &[u8], v: &[u8]| {
        decide(matches!(v.try_into().map(u64::from_be_bytes), Ok(t) if h.deliver_expired(t)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_uses_only_checkpoints_past_retention() {
        let cps = [(100, 1_000), (200, 2_000), (300, 3_000)];
        assert_eq!(horizon(1_500, 1_000, &cps), 0);
        assert_eq!(horizon(2_001, 1_000, &cps), 100);
        assert_eq!(horizon(3_001, 1_000, &cps), 200);
        assert_eq!(horizon(10_000, 1_000, &cps), 300);
        assert_eq!(horizon(10_000, 1_000, &[]), 0);
    }
}
