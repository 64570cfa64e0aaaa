//! Disk pressure measurements: where the store stands against its high watermark, and
//! the guard that charges sends against the headroom between two measurements.

use crate::store::families;
use crate::Shared;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the store stands against the disk high watermark. Memtables count as bytes
/// their flush will write: until then their data is on disk once (in the WAL), and
/// for a moment after the flush twice.
pub(crate) struct DiskLevel {
    /// Bytes used (the data directory, or the whole filesystem), plus memtables.
    pub used: u64,
    /// The high watermark in the same terms.
    pub limit: u64,
}

impl DiskLevel {
    pub fn over(&self) -> bool {
        self.used > self.limit
    }

    /// Under the low watermark (90 % of the high one), where refusals end.
    pub fn below_low(&self) -> bool {
        self.used < self.limit / 10 * 9
    }

    pub fn headroom(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// (over the high mark, under the low mark); an unknown level counts as low.
pub(crate) fn marks(level: Option<&DiskLevel>) -> (bool, bool) {
    level.map_or((false, true), |l| (l.over(), l.below_low()))
}

/// The store's level: against the configured budget for the data directory, or else
/// against `disk_high_ratio` of its filesystem (`None` when that cannot be read).
pub(crate) fn disk_level(sh: &Shared) -> Option<DiskLevel> {
    let mem: u64 = families::ALL
        .iter()
        .filter_map(|&f| sh.store.cf(f).ok())
        .filter_map(|h| {
            sh.store
                .db
                .property_int_value_cf(h, "rocksdb.size-all-mem-tables")
                .ok()
                .flatten()
        })
        .sum();
    match sh.config.disk_high_watermark_bytes {
        Some(limit) => Some(DiskLevel {
            used: dir_bytes(&sh.path) + mem,
            limit,
        }),
        None => match fs_usage(&sh.path) {
            Some((used, total)) if total > 0 => Some(DiskLevel {
                used: used + mem,
                limit: (total as f64 * sh.config.disk_high_ratio) as u64,
            }),
            _ => None,
        },
    }
}

/// Keeps sends from filling the disk between two maintenance passes: each pass
/// measures the headroom, and sends are charged against it as they are accepted.
/// Without this, a producer at full rate could write the filesystem full in the
/// seconds between passes, and a failed write stops the store.
pub(crate) struct DiskGuard {
    /// Headroom at the last measurement (`u64::MAX`: unknown, unlimited).
    allowance: AtomicU64,
    /// Bytes charged since.
    charged: AtomicU64,
}

impl Default for DiskGuard {
    fn default() -> Self {
        DiskGuard {
            allowance: AtomicU64::new(u64::MAX),
            charged: AtomicU64::new(0),
        }
    }
}

impl DiskGuard {
    /// Bytes one message is charged: twice its size (the WAL now, an SST after the
    /// flush) plus its records and index entries.
    pub fn cost(body_len: usize) -> u64 {
        2 * (body_len as u64 + 512)
    }

    /// A new measurement.
    pub fn measured(&self, headroom: Option<u64>) {
        self.charged.store(0, Ordering::SeqCst);
        self.allowance
            .store(headroom.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Charges `bytes`; `false` (and nothing charged) when they do not fit.
    pub fn charge(&self, bytes: u64) -> bool {
        let allowance = self.allowance.load(Ordering::SeqCst);
        let before = self.charged.fetch_add(bytes, Ordering::SeqCst);
        if before.saturating_add(bytes) > allowance {
            self.charged.fetch_sub(bytes, Ordering::SeqCst);
            return false;
        }
        true
    }
}

/// Bytes used by the files of the data directory (SSTs, WAL, manifest).
pub(crate) fn dir_bytes(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// `(used, total)` bytes of the filesystem holding `path`.
pub(crate) fn fs_usage(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes into the zeroed struct we pass and reads the
    // NUL-terminated path; both live for the duration of the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    let total = s.f_blocks as u64 * frsize;
    let avail = s.f_bavail as u64 * frsize;
    Some((total.saturating_sub(avail), total))
}
