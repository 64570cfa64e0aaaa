//! Column family names and their per-family options, in one place.
//!
//! | family     | key                                   | value                         |
//! |------------|---------------------------------------|-------------------------------|
//! | `meta`     | `T`name, `G`group id, `E`             | topic, group, engine records  |
//! | `messages` | id ‖ 0 (record), id ‖ 1 (location)    | the body, stored once         |
//! | `timer`    | deliver_at_ms ‖ id                    | topic id ‖ tag                |
//! | `ready`    | topic id ‖ offset                     | ready_at, deliver_at, id, tag |
//! | `inflight` | `i` group ‖ offset, `v` group ‖ t ‖ off | attempt, visible_at, nonce  |
//! | `acked`    | group ‖ offset                        | acked or dead-lettered        |
//! | `keys`     | topic ‖ len ‖ key ‖ id                | deliver_at                    |

use crate::retention::{self, Horizon};
use rocksdb::{ColumnFamilyDescriptor, Options};
use std::sync::Arc;

/// Topic, group and engine records.
pub(crate) const META: &str = "meta";
/// Message records: each body once.
pub(crate) const MESSAGES: &str = "messages";
/// The time-ordered index of Timing messages.
pub(crate) const TIMER: &str = "timer";
/// Per-topic ready logs.
pub(crate) const READY: &str = "ready";
/// Per-group inflight records and their visibility index.
pub(crate) const INFLIGHT: &str = "inflight";
/// Per-group acks above the group's cursor.
pub(crate) const ACKED: &str = "acked";
/// Lookup by key.
pub(crate) const KEYS: &str = "keys";

/// Every family, in creation order.
pub(crate) const ALL: [&str; 7] = [META, MESSAGES, TIMER, READY, INFLIGHT, ACKED, KEYS];

/// The descriptors to open the database with; retention filters share `horizon`.
pub(crate) fn descriptors(
    horizon: &Arc<Horizon>,
    retention_secs: u64,
) -> Vec<ColumnFamilyDescriptor> {
    ALL.iter()
        .map(|name| {
            let mut o = Options::default();
            o.set_write_buffer_size(64 << 20);
            o.set_max_write_buffer_number(4);
            match *name {
                MESSAGES => {
                    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
                    retention::install_message_filter(&mut o, horizon.clone());
                }
                READY => retention::install_ready_filter(&mut o, horizon.clone()),
                ACKED => retention::install_acked_filter(&mut o, horizon.clone()),
                KEYS => retention::install_keys_filter(&mut o, horizon.clone()),
                _ => {}
            }
            if *name != META && *name != TIMER {
                // Compaction filters only see data that is compacted; periodic
                // compaction makes sure old files are visited within a retention period.
                o.set_periodic_compaction_seconds(retention_secs.clamp(3600, 30 * 86400));
            }
            ColumnFamilyDescriptor::new(*name, o)
        })
        .collect()
}
