//! Column family names and their per-family options, in one place.
//!
//! | family     | key                                   | value                         |
//! |------------|---------------------------------------|-------------------------------|
//! | `meta`     | `T`name, `G`group id, `E`             | topic, group, engine records  |
//! | `messages` | id ‖ 0 (record), id ‖ 1 (location)  | the body, stored once; where it became Ready |
//! | `timer`    | deliver_at_ms ‖ id                    | topic id ‖ tag                |
//! | `ready`    | topic id ‖ offset                     | ready_at, deliver_at, id, tag |
//! | `inflight` | `i` group ‖ offset, `v` group ‖ t ‖ off | attempt, visible_at, nonce  |
//! | `acked`    | group ‖ offset                        | acked or dead-lettered (and, for a lease acked whole, the run's end) |
//! | `keys`     | topic ‖ len ‖ key ‖ id                | deliver_at                    |
//! | `runs`     | `0xff` topic ‖ t ‖ id (first of a pump step's run) | its offsets, when Ready |
//!
//! Message ids begin with the time they were given, so `messages` is written in key
//! order but for deletions: its memtables flush to tables that do not overlap, which
//! compaction moves down a level without rewriting them (the bodies are the bulk of
//! what is stored). The runs one pump step writes name messages sent seconds or days
//! earlier; kept in `messages`, they made every table span up to the runs' `0xff` keys
//! and every compaction of it rewrite all its bodies.

use crate::store::filters::{self, Horizon};
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options};
use std::sync::Arc;

/// A column family, by its index in [`ALL`]; writers keep handles in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Family(pub usize);

impl Family {
    /// The family's RocksDB name.
    pub fn name(self) -> &'static str {
        NAMES[self.0]
    }
}

/// Topic, group and engine records.
pub(crate) const META: Family = Family(0);
/// Message records: each body once.
pub(crate) const MESSAGES: Family = Family(1);
/// The time-ordered index of Timing messages.
pub(crate) const TIMER: Family = Family(2);
/// Per-topic ready logs.
pub(crate) const READY: Family = Family(3);
/// Per-group inflight records and their visibility index.
pub(crate) const INFLIGHT: Family = Family(4);
/// Per-group acks above the group's cursor.
pub(crate) const ACKED: Family = Family(5);
/// Lookup by key.
pub(crate) const KEYS: Family = Family(6);
/// Where the messages one pump step made Ready went in their topic's ready log.
pub(crate) const RUNS: Family = Family(7);

/// How many families there are.
pub(crate) const COUNT: usize = 8;

const NAMES: [&str; COUNT] = [
    "meta", "messages", "timer", "ready", "inflight", "acked", "keys", "runs",
];

/// Every family, in creation order.
pub(crate) const ALL: [Family; COUNT] = [META, MESSAGES, TIMER, READY, INFLIGHT, ACKED, KEYS, RUNS];

/// The length of the key prefix under which a family's keys are mostly written in
/// order (a topic's ready log, a group's inflight records and acks, message ids,
/// delivery times sent close together), if
/// any. The memtable remembers where its last insert under each prefix went and starts
/// the next search there, instead of from the top of the skip list: in a burst, the
/// writer's time went mostly to those searches.
fn insert_hint_prefix(f: Family) -> Option<usize> {
    match f {
        READY | ACKED | TIMER => Some(4),
        INFLIGHT | RUNS => Some(5),
        MESSAGES => Some(1),
        _ => None,
    }
}

/// The descriptors to open the database with; retention filters share `horizon`, and
/// every family shares one block cache so memory stays bounded however much is stored.
pub(crate) fn descriptors(
    horizon: &Arc<Horizon>,
    retention_secs: u64,
    cache: &Cache,
) -> Result<Vec<ColumnFamilyDescriptor>, rocksdb::Error> {
    ALL.iter()
        .map(|&f| {
            let mut o = Options::default();
            if let Some(n) = insert_hint_prefix(f) {
                // The C API has no setter for this option, so it goes through the
                // options-string parser, which makes new options: first, because
                // the new ones would not keep what Rust owns (the compaction filters).
                o = o.get_options_from_string(format!(
                    "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{n}"
                ))?;
            }
            o.set_write_buffer_size(64 << 20);
            o.set_max_write_buffer_number(4);
            if matches!(f, INFLIGHT | ACKED) {
                // An ack looks up records that are mostly not there (its own inflight
                // record when a lease holds it, an ack entry): a whole-key bloom filter
                // in each memtable answers those misses without a skip-list search. It
                // lives in the memtable's arena, inside the write-buffer budget.
                o.set_memtable_whole_key_filtering(true);
                o.set_memtable_prefix_bloom_ratio(0.02);
            }
            let mut t = BlockBasedOptions::default();
            t.set_block_cache(cache);
            t.set_cache_index_and_filter_blocks(true);
            t.set_pin_l0_filter_and_index_blocks_in_cache(true);
            o.set_block_based_table_factory(&t);
            match f {
                MESSAGES => {
                    // Bodies are read whole and rarely: bigger blocks make the index
                    // (kept in the block cache, one entry per block) 4x smaller, so
                    // memory stays flat with tens of millions of messages waiting.
                    let mut t = BlockBasedOptions::default();
                    t.set_block_cache(cache);
                    t.set_cache_index_and_filter_blocks(true);
                    t.set_pin_l0_filter_and_index_blocks_in_cache(true);
                    t.set_block_size(16 << 10);
                    o.set_block_based_table_factory(&t);
                    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
                    filters::install_message_filter(
                        &mut o,
                        "sundial-messages-retention",
                        horizon.clone(),
                    );
                }
                READY => filters::install_ready_at_filter(
                    &mut o,
                    "sundial-ready-retention",
                    horizon.clone(),
                ),
                ACKED => filters::install_ready_at_filter(
                    &mut o,
                    "sundial-acked-retention",
                    horizon.clone(),
                ),
                KEYS => filters::install_keys_filter(&mut o, horizon.clone()),
                // A run's value starts like a message record's, with the delivery
                // time of its last message: it expires with the messages it names.
                RUNS => filters::install_message_filter(
                    &mut o,
                    "sundial-runs-retention",
                    horizon.clone(),
                ),
                _ => {}
            }
            if f != META && f != TIMER {
                // Compaction filters only see data that is compacted; periodic
                // compaction makes sure old files are visited within a retention period.
                o.set_periodic_compaction_seconds(retention_secs.clamp(3600, 30 * 86400));
            }
            Ok(ColumnFamilyDescriptor::new(f.name(), o))
        })
        .collect()
}
