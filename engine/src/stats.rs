//! Exact counters and storage figures, read without scanning the store.

use crate::Shared;

/// Hooks for the daemon's metrics; every method has a no-op default.
pub trait Observer: Send + Sync + 'static {
    /// A message of `topic` became Ready `lateness_ms` after its delivery time.
    fn ready(&self, _topic: &str, _lateness_ms: u64) {}

    /// `count` messages of `topic` became Ready `lateness_ms` after their delivery time
    /// (what a burst reports: one call per run of equal figures).
    fn ready_many(&self, topic: &str, lateness_ms: u64, count: u64) {
        for _ in 0..count {
            self.ready(topic, lateness_ms);
        }
    }

    /// One WAL sync succeeded and took `took`: the wait every durable answer of the
    /// rounds it covers shares. Called on the syncer thread after each sync.
    fn wal_synced(&self, _took: std::time::Duration) {}
}

/// Counters of one consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Ready messages not yet handed to the group.
    pub backlog: u64,
    /// Delivered and invisible.
    pub inflight: u64,
    /// Invisible time passed, waiting for redelivery.
    pub retry: u64,
    /// Acks so far (cumulative: retention and offset resets do not undo them).
    pub acked: u64,
    /// Messages moved to the dead-letter topic so far (cumulative).
    pub dead_lettered: u64,
    /// Deliveries with attempt > 1.
    pub redelivered: u64,
    /// Skipped by the group's filter.
    pub skipped: u64,
    /// The group's cursor in the ready log.
    pub next_offset: u64,
}

/// Counters of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    /// The topic's name.
    pub name: String,
    /// Its message type.
    pub kind: crate::TopicKind,
    /// Messages waiting for their delivery time.
    pub timing: u64,
    /// Messages that ever became Ready (the ready log's end offset).
    pub ready_total: u64,
    /// Accepted sends.
    pub sent: u64,
    /// Recalled before delivery.
    pub recalled: u64,
    /// Deleted under disk pressure after every group acked them.
    pub purged: u64,
    /// Dropped under disk pressure (`drop-oldest`).
    pub dropped: u64,
    /// Its consumer groups.
    pub groups: Vec<GroupStats>,
}

/// RocksDB figures for one column family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyStats {
    /// The family's name.
    pub name: String,
    /// Bytes in SST files.
    pub sst_bytes: u64,
    /// Bytes in memtables.
    pub memtable_bytes: u64,
    /// Estimated keys.
    pub estimated_keys: u64,
    /// Bytes compaction still has to rewrite.
    pub pending_compaction_bytes: u64,
}

/// Everything `stats` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Per topic.
    pub topics: Vec<TopicStats>,
    /// Messages waiting in the timer index, all topics.
    pub timing_total: u64,
    /// Deliveries before their delivery time (must stay 0).
    pub early_deliveries: u64,
    /// Per column family.
    pub families: Vec<FamilyStats>,
    /// Bytes of the data directory's files.
    pub disk_bytes: u64,
    /// The configured disk budget, if any.
    pub disk_high_watermark_bytes: Option<u64>,
    /// The configured filesystem fill ratio where disk pressure starts (used when no
    /// budget is set).
    pub disk_high_ratio: f64,
    /// `(used, total)` bytes of the filesystem holding the data directory.
    pub filesystem: Option<(u64, u64)>,
    /// Whether sends are refused for lack of space.
    pub storage_full: bool,
    /// Whether RocksDB has stopped writes.
    pub write_stopped: bool,
    /// RocksDB's delayed write rate (0 when writes are not slowed).
    pub delayed_write_rate: u64,
    /// Whether the engine refuses writes after a storage failure.
    pub poisoned: bool,
    /// Compactions running now.
    pub running_compactions: u64,
    /// Memtable flushes running now.
    pub running_flushes: u64,
    /// Bytes in the shared block cache (data, index and filter blocks).
    pub block_cache_bytes: u64,
    /// Bytes of the block cache pinned by readers (may exceed its capacity).
    pub block_cache_pinned_bytes: u64,
    /// Bytes of table readers held outside the block cache, all families.
    pub table_readers_bytes: u64,
    /// Whether the `messages` family compresses its tables (off while the stored
    /// records would not shrink enough for RocksDB to keep them compressed).
    pub body_compression: bool,
    /// Compressed / raw size of recent samples of the stored records (LZ4), if any.
    pub body_compression_ratio: Option<f64>,
    /// Writer rounds that waited for the memtables to shrink below their budget
    /// (flushes behind the writes), and the seconds they waited in all.
    pub memtable_waits: u64,
    /// See `memtable_waits`.
    pub memtable_wait_seconds: f64,
}

/// The exact counters alone: no RocksDB property and no directory listing, cheap
/// enough to read as often as a caller likes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Per topic.
    pub topics: Vec<TopicStats>,
    /// Messages waiting in the timer index, all topics.
    pub timing_total: u64,
    /// Deliveries before their delivery time (must stay 0).
    pub early_deliveries: u64,
}

pub(crate) fn counters(sh: &Shared) -> Counters {
    let (topics, early) = {
        let st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut topics: Vec<TopicStats> = st
            .topics
            .values()
            .map(|t| {
                let c = &t.rec.counters;
                let mut groups: Vec<GroupStats> = t
                    .groups
                    .values()
                    .filter_map(|g| st.groups.get(g))
                    .map(|g| {
                        let k = &g.rec.cursor;
                        GroupStats {
                            name: g.rec.name.clone(),
                            backlog: c.ready_end.saturating_sub(k.next_offset.max(c.head)),
                            inflight: k.inflight,
                            retry: k.retry,
                            acked: k.acked,
                            dead_lettered: k.dead_lettered,
                            redelivered: k.redelivered,
                            skipped: k.skipped,
                            next_offset: k.next_offset,
                        }
                    })
                    .collect();
                groups.sort_by(|a, b| a.name.cmp(&b.name));
                TopicStats {
                    name: t.rec.name.clone(),
                    kind: t.rec.kind,
                    timing: c.timing,
                    ready_total: c.ready_end,
                    sent: c.sent,
                    recalled: c.recalled,
                    purged: c.purged,
                    dropped: c.dropped,
                    groups,
                }
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        (topics, st.engine.early_deliveries)
    };
    Counters {
        timing_total: topics.iter().map(|t| t.timing).sum(),
        topics,
        early_deliveries: early,
    }
}

pub(crate) fn stats(sh: &Shared) -> Stats {
    let Counters {
        topics,
        timing_total,
        early_deliveries: early,
    } = counters(sh);
    let prop = |cf: crate::store::families::Family, name: &str| -> u64 {
        sh.store
            .cf(cf)
            .ok()
            .and_then(|h| sh.store.db.property_int_value_cf(h, name).ok().flatten())
            .unwrap_or(0)
    };
    let families = crate::store::families::ALL
        .iter()
        .map(|&f| FamilyStats {
            name: f.name().to_string(),
            sst_bytes: prop(f, "rocksdb.total-sst-files-size"),
            memtable_bytes: prop(f, "rocksdb.size-all-mem-tables"),
            estimated_keys: prop(f, "rocksdb.estimate-num-keys"),
            pending_compaction_bytes: prop(f, "rocksdb.estimate-pending-compaction-bytes"),
        })
        .collect();
    let dbprop = |name: &str| {
        sh.store
            .db
            .property_int_value(name)
            .ok()
            .flatten()
            .unwrap_or(0)
    };
    Stats {
        timing_total,
        topics,
        early_deliveries: early,
        families,
        disk_bytes: crate::disk::dir_bytes(&sh.path),
        disk_high_watermark_bytes: sh.config.disk_high_watermark_bytes,
        disk_high_ratio: sh.config.disk_high_ratio,
        filesystem: crate::disk::fs_usage(&sh.path),
        storage_full: sh.storage_full.load(std::sync::atomic::Ordering::SeqCst),
        write_stopped: dbprop("rocksdb.is-write-stopped") != 0,
        delayed_write_rate: dbprop("rocksdb.actual-delayed-write-rate"),
        poisoned: sh.poisoned().is_some(),
        running_compactions: dbprop("rocksdb.num-running-compactions"),
        running_flushes: dbprop("rocksdb.num-running-flushes"),
        // The cache is shared: any family reports it whole.
        block_cache_bytes: prop(crate::store::families::META, "rocksdb.block-cache-usage"),
        block_cache_pinned_bytes: prop(
            crate::store::families::META,
            "rocksdb.block-cache-pinned-usage",
        ),
        table_readers_bytes: crate::store::families::ALL
            .iter()
            .map(|&f| prop(f, "rocksdb.estimate-table-readers-mem"))
            .sum(),
        body_compression: sh.compression.compressing(),
        body_compression_ratio: sh.compression.ratio(),
        memtable_waits: sh.memtable_waits.count(),
        memtable_wait_seconds: sh.memtable_waits.seconds(),
    }
}
