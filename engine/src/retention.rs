//! Retention and disk pressure (SPEC §5).
//!
//! Retention counts from the moment a message became Ready. Ready-log and ack entries
//! carry their ready time, so their compaction filters compare it directly. A message
//! record carries only its effective delivery time; the pump's checkpoints say "every
//! message due before `w` was Ready by `t`", so the newest checkpoint with
//! `t + retention < now` gives a delivery-time horizon below which every record is
//! past retention. Timing messages are always above the pump's watermark, hence above
//! the horizon: no filter can remove them.

use crate::error::Result;
use crate::failpoints;
use crate::families::{Family, MESSAGES, READY};
use crate::keys::{self, GroupId, TopicId};
use crate::lease;
use crate::records;
use crate::types::MessageId;
use crate::writer::Ctx;
use crate::Shared;
use rocksdb::{compaction_filter::Decision, Options};
use std::path::Path;
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

pub(crate) fn install_message_filter(o: &mut Options, h: Arc<Horizon>) {
    o.set_compaction_filter(
        "sundial-messages-retention",
        move |_, _k: &[u8], v: &[u8]| {
            decide(matches!(records::message_deliver_at(v), Some(t) if h.deliver_expired(t)))
        },
    );
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
    let mem: u64 = crate::families::ALL
        .iter()
        .filter_map(|&f| sh.cf(f).ok())
        .filter_map(|h| {
            sh.db
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

/// The lowest offset a group still needs: its oldest inflight record or lease, or its
/// cursor.
fn group_low(ctx: &mut Ctx<'_>, g: GroupId) -> Result<u64> {
    let cursor = ctx
        .st
        .groups
        .get(&g)
        .map_or(0, |gs| gs.rec.cursor.next_offset);
    let (lo, hi) = keys::inflight_range(g);
    let first = ctx.scan(crate::families::INFLIGHT, &lo, &hi, 1)?;
    let inflight = first.first().and_then(|(k, _)| keys::parse_inflight(k));
    let leased = lease::first_unsettled(ctx, g, 64)?;
    Ok([inflight, leased]
        .into_iter()
        .flatten()
        .fold(cursor, u64::min))
}

/// What a purge deleted, and the key ranges compaction should visit to reclaim it.
#[derive(Debug, Default)]
pub(crate) struct Purged {
    pub rows: u64,
    pub ranges: Vec<(Family, Vec<u8>, Vec<u8>)>,
}

impl Purged {
    fn add(&mut self, other: Purged) {
        self.rows += other.rows;
        self.ranges.extend(other.ranges);
    }
}

/// The first offset in `[from, to)` that still has a ready entry (retention may have
/// removed a long run of them), or `to`.
fn first_live(ctx: &Ctx<'_>, tid: TopicId, from: u64, to: u64) -> Result<u64> {
    let first = ctx.scan(READY, &keys::ready(tid, from), &keys::ready(tid, to), 1)?;
    Ok(first
        .first()
        .and_then(|(k, _)| keys::parse_ready(k))
        .map_or(to, |(_, o)| o))
}

/// Deletes the ready-log range `[from, to)` of a topic and its message records.
fn purge_range(ctx: &mut Ctx<'_>, tid: TopicId, from: u64, to: u64) -> Result<Purged> {
    let rows = ctx.scan(
        READY,
        &keys::ready(tid, from),
        &keys::ready(tid, to),
        usize::MAX,
    )?;
    let (mut lo, mut hi) = (None::<MessageId>, None::<MessageId>);
    for (_, v) in &rows {
        let e = records::decode_ready(v)?;
        ctx.delete(MESSAGES, keys::message(e.id))?;
        ctx.delete(MESSAGES, keys::location(e.id))?;
        lo = Some(lo.map_or(e.id, |l| l.min(e.id)));
        hi = Some(hi.map_or(e.id, |h| h.max(e.id)));
    }
    ctx.delete_range(READY, keys::ready(tid, from), keys::ready(tid, to))?;
    if let Some(t) = ctx.st.topic_mut(tid) {
        t.rec.counters.head = to;
    }
    let mut ranges = vec![(
        READY,
        keys::ready(tid, from).to_vec(),
        keys::ready(tid, to).to_vec(),
    )];
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let end = keys::prefix_end(&hi.to_bytes());
        ranges.push((MESSAGES, lo.to_bytes().to_vec(), end));
    }
    Ok(Purged {
        rows: rows.len() as u64,
        ranges,
    })
}

/// Deletes up to `max` Ready messages that every group of their topic has finished
/// with, oldest first.
pub(crate) fn purge_acked(ctx: &mut Ctx<'_>, max: u64) -> Result<Purged> {
    ctx.prepare_read()?;
    let topics: Vec<(TopicId, u64, Vec<GroupId>)> = ctx
        .st
        .topics
        .values()
        .filter(|t| !t.groups.is_empty())
        .map(|t| {
            (
                t.rec.id,
                t.rec.counters.head,
                t.groups.values().copied().collect(),
            )
        })
        .collect();
    let mut total = Purged::default();
    for (tid, head, groups) in topics {
        let mut low = u64::MAX;
        for g in groups {
            low = low.min(group_low(ctx, g)?);
        }
        if low <= head || total.rows >= max {
            continue;
        }
        // Skip what retention already removed without spending the budget on it.
        let from = first_live(ctx, tid, head, low)?;
        let to = low.min(from.saturating_add(max - total.rows));
        let p = purge_range(ctx, tid, from, to)?;
        if let Some(t) = ctx.st.topic_mut(tid) {
            t.rec.counters.purged += p.rows;
        }
        total.add(p);
    }
    Ok(total)
}

/// Deletes up to `max` of the oldest Ready messages whatever their groups did
/// (policy `drop-oldest`); Timing messages are never touched.
pub(crate) fn drop_oldest(ctx: &mut Ctx<'_>, max: u64) -> Result<Purged> {
    ctx.prepare_read()?;
    let mut oldest: Option<(u64, TopicId, u64, u64)> = None;
    let topics: Vec<(TopicId, u64, u64)> = ctx
        .st
        .topics
        .values()
        .filter(|t| t.rec.counters.head < t.rec.counters.ready_end)
        .map(|t| (t.rec.id, t.rec.counters.head, t.rec.counters.ready_end))
        .collect();
    for (tid, head, end) in topics {
        let first = ctx.scan(READY, &keys::ready(tid, head), &keys::ready(tid, end), 1)?;
        let Some((k, v)) = first.first() else {
            // Retention emptied it: nothing to drop here.
            continue;
        };
        let (Some((_, from)), Some(at)) = (keys::parse_ready(k), records::ready_at(v)) else {
            continue;
        };
        if oldest.is_none_or(|(a, ..)| at < a) {
            oldest = Some((at, tid, from, end));
        }
    }
    let Some((_, tid, from, end)) = oldest else {
        return Ok(Purged::default());
    };
    let to = end.min(from.saturating_add(max.max(1)));
    let p = purge_range(ctx, tid, from, to)?;
    if let Some(t) = ctx.st.topic_mut(tid) {
        t.rec.counters.dropped += p.rows;
    }
    Ok(p)
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
