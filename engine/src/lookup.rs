//! `message show` and `message find`: read-only views that never scan the store.

use crate::error::{Error, Result};
use crate::inflight;
use crate::store::families::{INFLIGHT, KEYS, MESSAGES, READY, RUNS, TIMER};
use crate::store::keys::{self, TopicId};
use crate::store::records::{self, Finished, Location};
use crate::store::Read;
use crate::types::{GroupMessageState, MessageId, MessageState, MessageView};
use crate::Shared;
use rocksdb::ReadOptions;

/// Most ids one find returns.
pub const MAX_FIND: usize = 1000;

pub(crate) fn show(sh: &Shared, id: MessageId) -> Result<MessageView> {
    let v = sh
        .store
        .get(MESSAGES, keys::message(id))?
        .ok_or_else(|| Error::NotFound(format!("message {id}")))?;
    let (deliver_at_ms, m) = records::decode_message(&v)?;
    let mut view = MessageView {
        message_id: id,
        topic: m.topic,
        tag: m.tag,
        keys: m.keys,
        properties: m.properties,
        body_len: m.body.len(),
        born_ms: m.born_ms,
        deliver_at_ms,
        adjusted: m.adjusted,
        state: MessageState::Timing,
        groups: Vec::new(),
    };
    let loc = match sh.store.get(MESSAGES, keys::location(id))? {
        Some(lv) => records::decode_location(&lv)?,
        None => {
            if sh
                .store
                .get(TIMER, keys::timer(deliver_at_ms, id))?
                .is_some()
            {
                return Ok(view);
            }
            let topic = {
                let st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
                st.topic_by_name(&view.topic).map(|t| t.rec.id)
            };
            let found = match topic {
                Ok(t) => locate_in_run(sh, t, deliver_at_ms, id)?,
                Err(_) => None,
            };
            found
                .ok_or_else(|| Error::NotFound(format!("message {id} is being moved or deleted")))?
        }
    };
    view.state = MessageState::Ready {
        ready_at_ms: loc.ready_at_ms,
    };
    // Snapshot the groups' cursors, then read their records without the lock.
    let groups: Vec<(crate::store::keys::GroupId, String, u64, (u64, u64))> = {
        let st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = st.topics.get(&loc.topic) else {
            return Ok(view);
        };
        let mut gs: Vec<_> = t
            .groups
            .values()
            .filter_map(|g| st.groups.get(g))
            .map(|g| {
                (
                    g.rec.id,
                    g.rec.name.clone(),
                    g.rec.cursor.next_offset,
                    g.rec.cursor.expired_to,
                )
            })
            .collect();
        gs.sort_by(|a, b| a.1.cmp(&b.1));
        gs
    };
    let now = sh.config.clock.now_ms();
    for (g, name, cursor, expired_to) in groups {
        let state = if let Some(iv) = sh.store.get(INFLIGHT, keys::inflight(g, loc.offset))? {
            let r = records::decode_inflight(&iv)?;
            handed_out(r.attempt, (r.visible_at_ms, loc.offset), expired_to, now)
        } else if let Some(how) = inflight::finished_how(&sh.store, g, loc.offset)? {
            match how {
                Finished::Acked => GroupMessageState::Acked,
                Finished::DeadLettered => GroupMessageState::DeadLettered,
            }
        } else if let Some((first, l)) = inflight::covering(&sh.store, g, loc.offset)? {
            handed_out(1, (l.visible_at_ms, first), expired_to, now)
        } else if loc.offset >= cursor {
            GroupMessageState::Ready
        } else {
            GroupMessageState::Skipped
        };
        view.groups.push((name, state));
    }
    Ok(view)
}

/// A handed-out message's state, by its entry in the group's visibility index
/// (visible_at, offset): waiting for redelivery once its invisible time has ended (or
/// the expiry pass has gone past the entry), else inflight.
fn handed_out(
    attempt: u32,
    (visible_at_ms, offset): (u64, u64),
    expired_to: (u64, u64),
    now: u64,
) -> GroupMessageState {
    if (visible_at_ms, offset) < expired_to || visible_at_ms <= now {
        GroupMessageState::Retry { attempt }
    } else {
        GroupMessageState::Inflight {
            attempt,
            visible_at_ms,
        }
    }
}

/// Finds a message the pump moved: the run record at or before its timer key names
/// the step's offsets, and the message is one of them.
fn locate_in_run(
    sh: &Shared,
    topic: TopicId,
    deliver_at_ms: u64,
    id: MessageId,
) -> Result<Option<Location>> {
    let prefix = keys::run_prefix(topic);
    let mut ro = ReadOptions::default();
    ro.set_iterate_lower_bound(prefix.to_vec());
    ro.set_iterate_upper_bound(keys::prefix_end(&prefix));
    let mut it = sh.store.db.raw_iterator_cf_opt(sh.store.cf(RUNS)?, ro);
    it.seek_for_prev(keys::run(topic, deliver_at_ms, id));
    let run = match (it.valid(), it.value()) {
        (true, Some(v)) => records::decode_run(v)?,
        _ => {
            it.status()?;
            return Ok(None);
        }
    };
    drop(it);
    if (deliver_at_ms, id) > (run.last_deliver_at_ms, run.last_id) {
        return Ok(None);
    }
    let end = run.first_offset.saturating_add(u64::from(run.count));
    let mut offset = None;
    sh.store.visit(
        READY,
        &keys::ready(topic, run.first_offset),
        &keys::ready(topic, end),
        |k, v| {
            if records::decode_ready(v)?.id == id {
                offset = keys::parse_ready(k).map(|(_, o)| o);
                return Ok(false);
            }
            Ok(true)
        },
    )?;
    Ok(offset.map(|offset| Location {
        deliver_at_ms,
        topic,
        offset,
        ready_at_ms: run.ready_at_ms,
    }))
}

pub(crate) fn find(sh: &Shared, topic: &str, key: &str) -> Result<Vec<MessageId>> {
    let tid = {
        let st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
        st.topic_by_name(topic)?.rec.id
    };
    let prefix = keys::key_index_prefix(tid, key);
    let rows = sh
        .store
        .scan(KEYS, &prefix, &keys::prefix_end(&prefix), MAX_FIND)?;
    let ids: Vec<MessageId> = rows
        .iter()
        .filter_map(|(k, _)| k.get(prefix.len()..)?.try_into().ok())
        .map(MessageId::from_bytes)
        .collect();
    // Index entries can outlive their message by a compaction; report live ones only.
    let mut live = Vec::with_capacity(ids.len());
    for id in ids {
        if sh.store.get(MESSAGES, keys::message(id))?.is_some() {
            live.push(id);
        }
    }
    Ok(live)
}
