//! The engine's in-memory state: topics, groups, cursors and exact counters. It is
//! owned by the writer thread (behind a mutex so readers can take snapshots) and every
//! change to it is persisted in the same WriteBatch as the data it describes, so reopen
//! restores it with a few point reads instead of a scan.

use crate::error::{Error, Result};
use crate::store::keys::{self, GroupId, TopicId};
use crate::types::{GroupInfo, MessageId, TagFilter, TopicInfo, TopicKind};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Exact per-topic counters, persisted with the topic record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicCounters {
    /// Next ready-log offset to assign (= messages that ever became Ready).
    pub ready_end: u64,
    /// Offsets below this were purged under disk pressure.
    pub head: u64,
    /// Messages waiting in the timer index.
    pub timing: u64,
    /// Accepted sends.
    pub sent: u64,
    /// Recalled Timing messages.
    pub recalled: u64,
    /// Ready messages dropped under disk pressure (`drop-oldest`).
    pub dropped: u64,
    /// Ready messages deleted under disk pressure after every group acked them.
    pub purged: u64,
    /// Largest stored message record of the topic, in bytes: a receive whose
    /// `max_messages` of these fit its byte budget need not look at each record's size.
    pub max_record_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    pub id: TopicId,
    pub name: String,
    pub kind: TopicKind,
    pub created_ms: u64,
    pub counters: TopicCounters,
}

/// Exact per-group cursor and counters, persisted with the group record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupCursor {
    /// Next ready-log offset never handed to this group.
    pub next_offset: u64,
    /// Delivered and invisible.
    pub inflight: u64,
    /// Invisible time passed, waiting to be delivered again.
    pub retry: u64,
    /// Acked.
    pub acked: u64,
    /// Moved to the dead-letter topic.
    pub dead_lettered: u64,
    /// Deliveries with attempt > 1.
    pub redelivered: u64,
    /// Skipped by the filter.
    pub skipped: u64,
    /// Every visibility-index entry below `(t, offset)` has been processed by expiry.
    pub expired_to: (u64, u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    pub id: GroupId,
    pub topic: TopicId,
    pub name: String,
    pub filter: String,
    pub created_ms: u64,
    pub cursor: GroupCursor,
}

/// Engine-wide persisted state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct EngineRecord {
    pub next_seq: u64,
    pub last_id_hi: u64,
    pub next_topic_id: TopicId,
    pub next_group_id: GroupId,
    /// The timer pump's lower bound: every timer key below `(ms, id)` has been moved.
    pub watermark: (u64, u128),
    /// The largest time the engine has read from its clock; it never goes back.
    pub last_now: u64,
    /// Deliveries before their delivery time (must stay 0).
    pub early_deliveries: u64,
}

#[derive(Clone)]
pub(crate) struct GroupState {
    pub rec: GroupRecord,
    pub filter: TagFilter,
    /// Earliest visibility-index entry not yet processed by expiry, if known.
    pub next_visible: Option<u64>,
    /// No entry of the group's visibility index is visible before this time (0: not
    /// known), so a receive before it has no retries to look for. Set by a receive's
    /// scan of the index, lowered by every new entry (`consume::note_visible`);
    /// deletions leave it low, which only costs a scan.
    pub no_entry_before: u64,
}

#[derive(Clone)]
pub(crate) struct TopicState {
    pub rec: TopicRecord,
    pub groups: HashMap<String, GroupId>,
}

/// What memory keeps of the store: the topic, group and engine records, and hints
/// derived from the indexes. A round the store refuses reads it back from the store
/// (`reload_state`) instead of keeping a copy of it per round.
#[derive(Default)]
pub(crate) struct State {
    pub engine: EngineRecord,
    /// `(w, t)`: every message with `deliver_at < w` was Ready by time `t`. Kept in
    /// its own record, written only when a checkpoint is added.
    pub checkpoints: Arc<Vec<(u64, u64)>>,
    dirty_checkpoints: bool,
    pub topic_ids: HashMap<String, TopicId>,
    pub topics: HashMap<TopicId, TopicState>,
    pub groups: HashMap<GroupId, GroupState>,
    /// Earliest due time in the timer index, if known (may be early, never late).
    pub next_timer_due: Option<u64>,
    dirty_topics: HashSet<TopicId>,
    dirty_groups: HashSet<GroupId>,
    /// The topic and the group marked dirty last: marking the same one again (a burst's
    /// rounds do it once per message) is a compare instead of a set insert. Cleared
    /// whenever the sets are drained or lose a member.
    last_dirty_topic: Option<TopicId>,
    last_dirty_group: Option<GroupId>,
    dirty_engine: bool,
    pub(crate) deleted_meta: Vec<Vec<u8>>,
}

/// A meta record to write (`Some`) or delete (`None`).
pub(crate) type MetaChange = (Vec<u8>, Option<Vec<u8>>);

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map_err(|e| Error::Internal(format!("encode: {e}")))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(what: &str, v: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(v, bincode::config::standard())
        .map(|(x, _)| x)
        .map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

impl State {
    pub fn topic_by_name(&self, name: &str) -> Result<&TopicState> {
        self.topic_ids
            .get(name)
            .and_then(|id| self.topics.get(id))
            .ok_or_else(|| Error::TopicNotFound(name.to_string()))
    }

    pub fn topic_mut(&mut self, id: TopicId) -> Option<&mut TopicState> {
        if self.last_dirty_topic != Some(id) {
            self.dirty_topics.insert(id);
            self.last_dirty_topic = Some(id);
        }
        self.topics.get_mut(&id)
    }

    pub fn group_mut(&mut self, id: GroupId) -> Option<&mut GroupState> {
        if self.last_dirty_group != Some(id) {
            self.dirty_groups.insert(id);
            self.last_dirty_group = Some(id);
        }
        self.groups.get_mut(&id)
    }

    pub fn checkpoints_mut(&mut self) -> &mut Vec<(u64, u64)> {
        self.dirty_checkpoints = true;
        Arc::make_mut(&mut self.checkpoints)
    }

    pub fn engine_mut(&mut self) -> &mut EngineRecord {
        self.dirty_engine = true;
        &mut self.engine
    }

    /// A fresh 64-bit value from the engine's sequence (ids' low half, receipt nonces).
    pub fn next_seq(&mut self) -> u64 {
        let e = self.engine_mut();
        e.next_seq += 1;
        e.next_seq
    }

    /// The next message id: high half the send time (never decreasing), low half the
    /// sequence, so ids strictly increase in send order even if the clock stalls.
    pub fn next_message_id(&mut self, now: u64) -> MessageId {
        let lo = self.next_seq();
        let e = self.engine_mut();
        e.last_id_hi = e.last_id_hi.max(now);
        MessageId(((e.last_id_hi as u128) << 64) | lo as u128)
    }

    /// Every changed record as `(meta key, Some(value))`, deletions as `(key, None)`.
    pub fn take_dirty(&mut self) -> Result<Vec<MetaChange>> {
        let mut out = Vec::new();
        (self.last_dirty_topic, self.last_dirty_group) = (None, None);
        for k in self.deleted_meta.drain(..) {
            out.push((k, None));
        }
        for id in self.dirty_topics.drain() {
            if let Some(t) = self.topics.get(&id) {
                out.push((keys::topic_meta(&t.rec.name), Some(encode(&t.rec)?)));
            }
        }
        for id in self.dirty_groups.drain() {
            if let Some(g) = self.groups.get(&id) {
                out.push((keys::group_meta(id).to_vec(), Some(encode(&g.rec)?)));
            }
        }
        if self.dirty_checkpoints {
            self.dirty_checkpoints = false;
            out.push((
                keys::CHECKPOINTS_META.to_vec(),
                Some(encode(&*self.checkpoints)?),
            ));
        }
        if self.dirty_engine {
            self.dirty_engine = false;
            out.push((keys::ENGINE_META.to_vec(), Some(encode(&self.engine)?)));
        }
        Ok(out)
    }

    pub fn add_topic(&mut self, rec: TopicRecord) {
        self.topic_ids.insert(rec.name.clone(), rec.id);
        self.dirty_topics.insert(rec.id);
        self.topics.insert(
            rec.id,
            TopicState {
                rec,
                groups: HashMap::default(),
            },
        );
    }

    pub fn add_group(&mut self, rec: GroupRecord) -> Result<()> {
        let filter = TagFilter::parse(&rec.filter)?;
        if let Some(t) = self.topics.get_mut(&rec.topic) {
            t.groups.insert(rec.name.clone(), rec.id);
        }
        self.dirty_groups.insert(rec.id);
        self.groups.insert(
            rec.id,
            GroupState {
                rec,
                filter,
                next_visible: None,
                no_entry_before: 0,
            },
        );
        Ok(())
    }

    pub fn remove_topic(&mut self, id: TopicId) -> Vec<GroupId> {
        let Some(t) = self.topics.remove(&id) else {
            return Vec::new();
        };
        self.topic_ids.remove(&t.rec.name);
        self.dirty_topics.remove(&id);
        (self.last_dirty_topic, self.last_dirty_group) = (None, None);
        self.deleted_meta.push(keys::topic_meta(&t.rec.name));
        let groups: Vec<GroupId> = t.groups.values().copied().collect();
        for g in &groups {
            self.groups.remove(g);
            self.dirty_groups.remove(g);
            self.deleted_meta.push(keys::group_meta(*g).to_vec());
        }
        groups
    }

    pub fn topic_info(&self, t: &TopicState) -> TopicInfo {
        TopicInfo {
            name: t.rec.name.clone(),
            kind: t.rec.kind,
            created_ms: t.rec.created_ms,
        }
    }

    pub fn group_info(&self, g: &GroupState) -> GroupInfo {
        let topic = self
            .topics
            .get(&g.rec.topic)
            .map(|t| t.rec.name.clone())
            .unwrap_or_default();
        GroupInfo {
            name: g.rec.name.clone(),
            topic,
            filter: g.rec.filter.clone(),
            created_ms: g.rec.created_ms,
        }
    }

    /// Earliest time any background work (timer or expiry) is due.
    pub fn next_due(&self) -> Option<u64> {
        let groups = self.groups.values().filter_map(|g| g.next_visible).min();
        match (self.next_timer_due, groups) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
