//! Keeping the memtables inside their budget.
//!
//! All families' memtables share one budget (RocksDB's write buffer manager). RocksDB
//! starts flushing when the mutable memtables reach 7/8 of it, but on two busy cores
//! the flushes can fall behind a writer at full rate, and the memtables waiting for
//! them then held well over the budget (every family may keep four). RocksDB's own
//! remedy, stalling writes at the budget, waits for memory without regard to a failed
//! flush: with the disk full, the writer would hang until there is room, where it
//! should refuse its round with `StorageFull`. So the writer waits itself, before
//! writing a round, while the memtables hold the whole budget, and for at most
//! [`MOST`]; then it writes anyway, and a failed flush answers that write with its
//! error. Once a write has been refused for lack of space the writer does not wait
//! again until a write succeeds, so a full disk's refusals come at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest one round waits for the memtables to shrink.
pub(crate) const MOST: Duration = Duration::from_secs(1);

/// How often a waiting writer looks again.
const POLL: Duration = Duration::from_millis(1);

/// What the writer's waits have cost, for the metrics.
#[derive(Debug, Default)]
pub(crate) struct Waits {
    count: AtomicU64,
    micros: AtomicU64,
}

impl Waits {
    /// Rounds that waited.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Time waited in all, in seconds.
    pub fn seconds(&self) -> f64 {
        self.micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Waits while `usage()` is at `budget` or above, up to `most`; returns the time
    /// waited (zero when there was room) and counts it.
    pub fn wait(&self, usage: impl Fn() -> usize, budget: usize, most: Duration) -> Duration {
        if usage() < budget {
            return Duration::ZERO;
        }
        let start = Instant::now();
        while usage() >= budget && start.elapsed() < most {
            std::thread::sleep(POLL);
        }
        let waited = start.elapsed();
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(
            u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn no_wait_and_no_count_below_the_budget() {
        let w = Waits::default();
        assert_eq!(w.wait(|| 99, 100, MOST), Duration::ZERO);
        assert_eq!(w.count(), 0);
        assert_eq!(w.seconds(), 0.0);
    }

    #[test]
    fn waits_until_a_flush_frees_memory() {
        let w = Waits::default();
        let polls = Cell::new(0u32);
        // Over the budget for the first five looks, then a flush frees a memtable.
        let usage = || {
            polls.set(polls.get() + 1);
            if polls.get() <= 5 {
                200
            } else {
                40
            }
        };
        let waited = w.wait(usage, 100, Duration::from_secs(10));
        assert!(waited >= POLL * 4, "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert_eq!(polls.get(), 6);
        assert_eq!(w.count(), 1);
        assert!(w.seconds() > 0.0);
    }

    #[test]
    fn gives_up_after_the_longest_wait() {
        let w = Waits::default();
        let most = Duration::from_millis(30);
        let waited = w.wait(|| 500, 100, most);
        assert!(waited >= most, "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert_eq!(w.count(), 1);
    }
}
