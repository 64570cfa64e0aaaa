//! Recall and reschedule of Timing messages.

use crate::error::{Error, Result};
use crate::messages;
use crate::ready_log;
use crate::send::{effective_time, parse_recall_handle};
use crate::store::records;
use crate::timer;
use crate::types::SendReceipt;
use crate::writer::Ctx;

fn not_timing(id: impl std::fmt::Display) -> Error {
    Error::NotFound(format!(
        "message {id} is not waiting for its delivery time (already Ready, recalled, or unknown)"
    ))
}

/// Cancels a Timing message: it will never be delivered.
pub(crate) fn recall(ctx: &mut Ctx<'_>, handle: &str) -> Result<()> {
    let (t, id) = parse_recall_handle(handle)?;
    let tv = timer::get(ctx, t, id)?.ok_or_else(|| not_timing(id))?;
    let (tid, _) = records::decode_timer(&tv)?;
    let msg_keys = messages::get(ctx, id)?.map(|m| m.keys).unwrap_or_default();
    timer::remove(ctx, tid, t, id)?;
    messages::delete(ctx, tid, id, &msg_keys)?;
    if let Some(ts) = ctx.st.topic_mut(tid) {
        ts.rec.counters.recalled += 1;
    }
    Ok(())
}

/// Moves a Timing message to a new delivery time (same rules as a send); returns the
/// new receipt, whose recall handle replaces the old one.
pub(crate) fn reschedule(
    ctx: &mut Ctx<'_>,
    handle: &str,
    deliver_at_ms: i64,
) -> Result<SendReceipt> {
    let (t, id) = parse_recall_handle(handle)?;
    let tv = timer::get(ctx, t, id)?.ok_or_else(|| not_timing(id))?;
    let (tid, tag) = records::decode_timer(&tv)?;
    let tag = tag.to_vec();
    let mut m = messages::get(ctx, id)?
        .ok_or_else(|| Error::Corrupt(format!("timer entry of {id} without its message")))?;
    let eff = effective_time(Some(deliver_at_ms), ctx.now, &ctx.sh.config)?;
    m.requested_ms = Some(deliver_at_ms);
    m.adjusted = eff.adjusted;
    timer::remove(ctx, tid, t, id)?;
    messages::put(ctx, tid, id, eff.deliver_at_ms, &m)?;
    if eff.immediate {
        ready_log::append(ctx, tid, id, eff.deliver_at_ms, &tag, true)?;
    } else {
        timer::add(ctx, tid, eff.deliver_at_ms, id, &tv)?;
    }
    Ok(SendReceipt {
        message_id: id,
        deliver_at_ms: eff.deliver_at_ms,
        adjusted: eff.adjusted,
    })
}
