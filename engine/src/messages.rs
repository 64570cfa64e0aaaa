//! Message records: each body stored once (`messages`: id ‖ 0), with its lookup-key
//! index entries (`keys`). The only code that writes or deletes them, apart from the
//! retention filters and the purge of Ready data.

use crate::error::Result;
use crate::store::families::{KEYS, MESSAGES};
use crate::store::keys::{self, TopicId};
use crate::store::records::{self, MessageBody};
use crate::store::Read;
use crate::types::MessageId;
use crate::writer::Ctx;

/// Writes a message's record, due at `deliver_at_ms`, and its key index entries.
pub(crate) fn put(
    ctx: &mut Ctx<'_>,
    tid: TopicId,
    id: MessageId,
    deliver_at_ms: u64,
    m: &MessageBody,
) -> Result<()> {
    let len = ctx.put_encoded(MESSAGES, keys::message(id), |v| {
        records::encode_message_into(v, deliver_at_ms, m)
    })?;
    note_record_size(ctx, tid, len);
    if ctx.sh.compression.offer(ctx.last_encoded()) {
        ctx.sh.maintenance_wake.kick();
    }
    for k in &m.keys {
        ctx.put(
            KEYS,
            keys::key_index(tid, k, id),
            deliver_at_ms.to_be_bytes(),
        )?;
    }
    Ok(())
}

/// Keeps the topic's largest record size (see `TopicCounters::max_record_bytes`).
fn note_record_size(ctx: &mut Ctx<'_>, tid: TopicId, len: usize) {
    if let Some(t) = ctx.st.topic_mut(tid) {
        let c = &mut t.rec.counters;
        c.max_record_bytes = c.max_record_bytes.max(len as u64);
    }
}

/// The stored record of message `id`, if retention has not removed it.
pub(crate) fn get(r: &impl Read, id: MessageId) -> Result<Option<MessageBody>> {
    match r.get(MESSAGES, keys::message(id))? {
        Some(v) => Ok(Some(records::decode_message(&v)?.1)),
        None => Ok(None),
    }
}

/// Deletes message `id` of topic `tid` and its key index entries.
pub(crate) fn delete(
    ctx: &mut Ctx<'_>,
    tid: TopicId,
    id: MessageId,
    msg_keys: &[String],
) -> Result<()> {
    ctx.delete(MESSAGES, keys::message(id))?;
    for k in msg_keys {
        ctx.delete(KEYS, keys::key_index(tid, k, id))?;
    }
    Ok(())
}

/// Deletes message `id`'s record and its location (Ready data purged under disk
/// pressure, or a Timing message of a deleted topic). Key index entries age out with
/// retention.
pub(crate) fn delete_record(ctx: &mut Ctx<'_>, id: MessageId) -> Result<()> {
    ctx.delete(MESSAGES, keys::message(id))?;
    ctx.delete(MESSAGES, keys::location(id))
}
