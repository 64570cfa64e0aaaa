//! Maintenance: the periodic pass that moves the retention horizon and handles disk
//! pressure (SPEC §5), run by its own thread every `maintenance_interval` and on
//! demand ([`crate::Engine::maintain`]).

use crate::disk;
use crate::error::{Error, Result};
use crate::pump;
use crate::retention;
use crate::store::families;
use crate::types::StoragePolicy;
use crate::writer::{self, PoisonOnPanic};
use crate::Shared;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What one maintenance pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Message records due before this time are past retention.
    pub retention_horizon_ms: u64,
    /// Bytes of the data directory after the pass.
    pub disk_bytes: u64,
    /// Whether the disk was over its high watermark when the pass started.
    pub over_watermark: bool,
    /// Ready messages deleted because every group had finished with them.
    pub purged: u64,
    /// Ready messages dropped under `drop-oldest`.
    pub dropped: u64,
    /// Whether sends are now refused with `StorageFull`.
    pub storage_full: bool,
}

/// One maintenance pass; see [`Engine::maintain`].
pub(crate) fn maintain(sh: &Arc<Shared>) -> Result<MaintenanceReport> {
    crate::compression::apply(sh);
    match writer::submit(sh, false, pump::tick).wait() {
        // A full file system refuses the pump's round too; the pass still measures the
        // disk, which is what lifts the refusal once there is room.
        Ok(_) | Err(Error::StorageFull(_)) => {}
        Err(e) => return Err(e),
    }
    let (now, cps) = {
        let st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
        (st.engine.last_now, st.checkpoints.clone())
    };
    sh.horizon.update(now, &cps);
    let mut report = MaintenanceReport {
        retention_horizon_ms: sh.horizon.deliver_before_ms.load(Ordering::SeqCst),
        ..MaintenanceReport::default()
    };
    let over = || disk::marks(disk::disk_level(sh).as_ref());
    let first = disk::disk_level(sh);
    let (is_over, below_low) = disk::marks(first.as_ref());
    report.over_watermark = is_over;
    // Refusing sends between the marks frees room too, or refusals would last until
    // the store crossed the high mark again, which refused sends never make it do.
    let refusing = sh.storage_full.load(Ordering::SeqCst) && !below_low;
    let freeing = is_over || refusing;
    if freeing {
        let mut ranges = Vec::new();
        for _ in 0..10_000 {
            let p =
                writer::submit(sh, true, |ctx| retention::purge_acked(ctx, 64 * 1024)).wait()?;
            report.purged += p.rows;
            ranges.extend(p.ranges);
            if p.rows == 0 {
                break;
            }
        }
        reclaim(sh, &ranges)?;
        if over().0 && sh.config.storage_policy == StoragePolicy::DropOldest {
            // Drop in steps of a tenth of the Ready data (at least 16 Ki messages),
            // reclaiming only the ranges each step deleted, until under the watermark.
            let ready: u64 = {
                let st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
                st.topics
                    .values()
                    .map(|t| t.rec.counters.ready_end - t.rec.counters.head)
                    .sum()
            };
            let step = (ready / 10).max(16 * 1024);
            for _ in 0..1_000 {
                let p = writer::submit(sh, true, move |ctx| retention::drop_oldest(ctx, step))
                    .wait()?;
                report.dropped += p.rows;
                reclaim(sh, &p.ranges)?;
                if p.rows == 0 || !over().0 {
                    break;
                }
            }
        }
    }
    // One measurement decides the refusals and gives the send guard its headroom: the
    // first, unless deleting changed the store since.
    let level = if freeing { disk::disk_level(sh) } else { first };
    let (still_over, below_low) = disk::marks(level.as_ref());
    let used = disk::dir_bytes(&sh.path);
    if still_over {
        let why = format!(
            "data directory uses {used} bytes (plus memtables to flush), over the high watermark; acked data was deleted and it was not enough"
        );
        sh.set_storage_full(why);
    } else if below_low {
        sh.storage_full.store(false, Ordering::SeqCst);
    }
    report.disk_bytes = used;
    report.storage_full = sh.storage_full.load(Ordering::SeqCst);
    sh.disk_guard.measured(level.map(|l| l.headroom()));
    Ok(report)
}

/// Flushes the memtables, then compacts only the key ranges a purge deleted, so the
/// deleted bytes leave the disk without rewriting the whole store.
fn reclaim(sh: &Shared, ranges: &[(families::Family, Vec<u8>, Vec<u8>)]) -> Result<()> {
    for f in families::ALL {
        let cf = sh.store.cf(f)?;
        sh.store.db.flush_cf(cf)?;
    }
    for (f, lo, hi) in ranges {
        let cf = sh.store.cf(*f)?;
        sh.store
            .db
            .compact_range_cf(cf, Some(lo.as_slice()), Some(hi.as_slice()));
    }
    Ok(())
}

pub(crate) fn maintenance_loop(sh: Arc<Shared>) {
    let _dart = PoisonOnPanic::new(&sh, "maintenance");
    loop {
        sh.maintenance_wake
            .wait(Some(sh.config.maintenance_interval));
        if sh.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = maintain(&sh) {
            if sh.shutdown.load(Ordering::SeqCst) {
                return;
            }
            tracing::warn!(error = %e, "maintenance pass failed");
        }
    }
}
