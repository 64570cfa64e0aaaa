//! The timer index (`timer`: `deliver_at_ms` big-endian ‖ message id → topic ‖ tag):
//! where a message waits while it is Timing. Keys sort by delivery time, so the pump
//! reads what is due as one bounded range scan. The only code that writes the index.

use crate::error::Result;
use crate::store::families::TIMER;
use crate::store::keys::{self, TopicId};
use crate::store::records;
use crate::store::Read;
use crate::types::MessageId;
use crate::writer::Ctx;

/// Makes message `id` of topic `tid` wait until `deliver_at_ms`; `value` is its entry
/// (from [`records::encode_timer`]).
pub(crate) fn add(
    ctx: &mut Ctx<'_>,
    tid: TopicId,
    deliver_at_ms: u64,
    id: MessageId,
    value: &[u8],
) -> Result<()> {
    ctx.put(TIMER, keys::timer(deliver_at_ms, id), value)?;
    if let Some(t) = ctx.st.topic_mut(tid) {
        t.rec.counters.timing += 1;
    }
    if ctx.st.next_timer_due.is_none_or(|d| deliver_at_ms < d) {
        ctx.st.next_timer_due = Some(deliver_at_ms);
        ctx.kick_pump = true;
    }
    Ok(())
}

/// The entry of message `id` waiting until `deliver_at_ms`, if it is still Timing.
pub(crate) fn get(r: &impl Read, deliver_at_ms: u64, id: MessageId) -> Result<Option<Vec<u8>>> {
    r.get(TIMER, keys::timer(deliver_at_ms, id))
}

/// Takes message `id` of topic `tid` out of the index (recalled, rescheduled).
pub(crate) fn remove(
    ctx: &mut Ctx<'_>,
    tid: TopicId,
    deliver_at_ms: u64,
    id: MessageId,
) -> Result<()> {
    remove_key(ctx, &keys::timer(deliver_at_ms, id))?;
    if let Some(t) = ctx.st.topic_mut(tid) {
        t.rec.counters.timing = t.rec.counters.timing.saturating_sub(1);
    }
    Ok(())
}

/// Deletes one timer key (the pump, for each entry it moved, counts on its own). Keys
/// are put once and never overwritten, so SingleDelete leaves no tombstone behind.
pub(crate) fn remove_key(ctx: &mut Ctx<'_>, k: &[u8]) -> Result<()> {
    ctx.single_delete(TIMER, k)
}

/// The due time of the first entry at or above the pump's watermark.
pub(crate) fn next_due(r: &impl Read, watermark: (u64, u128)) -> Result<Option<u64>> {
    let lower = keys::timer(watermark.0, MessageId(watermark.1));
    let first = r.scan(TIMER, &lower, &[0xff; 25], 1)?;
    Ok(first
        .first()
        .and_then(|(k, _)| keys::parse_timer(k))
        .map(|(t, _)| t))
}

/// The entry value for a message of topic `tid` with `tag`.
pub(crate) fn entry(tid: TopicId, tag: Option<&str>) -> Vec<u8> {
    records::encode_timer(tid, tag)
}
