//! Handing freed heap memory back to the system.
//!
//! RocksDB allocates each memtable in 1 MiB blocks and frees them all when the memtable
//! has been flushed. glibc's malloc serves such blocks from its heaps once it has seen
//! one freed, and keeps what is freed there until `malloc_trim`. At 400k sends a second
//! the memtables fill and free well over 100 MiB a second, so with a trim once a second
//! the daemon's RSS swung by that much above what it used, and the tops of the swings
//! went past the 300 MiB target. The daemon therefore watches the memtables' total
//! (one atomic read in RocksDB's write buffer manager) every [`TICK`] and trims as soon
//! as it has fallen by [`FREED`] from its high since the last trim, and once a second
//! in any case for everything else.

use std::time::Duration;

/// How often the memtables' total is read.
pub const TICK: Duration = Duration::from_millis(50);

/// A fall of the memtables' total, from its high since the last trim, that trims at once.
pub const FREED: usize = 8 << 20;

/// Ticks between trims when the memtables free nothing.
const TICKS_PER_TRIM: u32 = 20;

/// Decides, tick by tick, when to trim.
#[derive(Debug, Default)]
pub struct TrimPolicy {
    high: usize,
    since: u32,
}

impl TrimPolicy {
    /// Takes the memtables' total at this tick; true when the heap should be trimmed now.
    pub fn tick(&mut self, memtables: usize) -> bool {
        self.since += 1;
        self.high = self.high.max(memtables);
        if self.high - memtables >= FREED || self.since >= TICKS_PER_TRIM {
            self.high = memtables;
            self.since = 0;
            return true;
        }
        false
    }
}

/// Gives the system back the memory glibc's malloc holds free. It takes a few
/// milliseconds; run it off the async threads.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain libc call with no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn trims_once_a_second_while_memtables_only_grow() {
        let mut p = TrimPolicy::default();
        let trims: Vec<u32> = (1..=60).filter(|&t| p.tick(t as usize * MIB)).collect();
        assert_eq!(trims, vec![20, 40, 60]);
    }

    #[test]
    fn trims_as_soon_as_a_flushed_memtable_is_freed() {
        let mut p = TrimPolicy::default();
        assert!(!p.tick(100 * MIB));
        assert!(!p.tick(120 * MIB));
        // 7 MiB below the high: not yet.
        assert!(!p.tick(113 * MIB));
        // 64 MiB freed by a flush.
        assert!(p.tick(56 * MIB));
        // The high starts again from what is left.
        assert!(!p.tick(50 * MIB));
        assert!(p.tick(48 * MIB));
    }

    #[test]
    fn a_trim_restarts_the_second() {
        let mut p = TrimPolicy::default();
        for _ in 0..10 {
            assert!(!p.tick(40 * MIB));
        }
        assert!(p.tick(20 * MIB));
        for _ in 0..19 {
            assert!(!p.tick(20 * MIB));
        }
        assert!(p.tick(20 * MIB));
    }
}
