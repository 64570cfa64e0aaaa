//! Recall and reschedule of Timing messages.

use crate::error::{Error, Result};
use crate::families::{KEYS, MESSAGES, TIMER};
use crate::keys;
use crate::pump::append_ready;
use crate::records;
use crate::send::{effective_time, parse_recall_handle, recall_handle};
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
    ctx.prepare_read()?;
    let tv = ctx
        .get(TIMER, keys::timer(t, id))?
        .ok_or_else(|| not_timing(id))?;
    let (tid, _) = records::decode_timer(&tv)?;
    let mv = ctx.get(MESSAGES, keys::message(id))?;
    let msg_keys = match &mv {
        Some(v) => records::decode_message(v)?.1.keys,
        None => Vec::new(),
    };
    ctx.single_delete(TIMER, keys::timer(t, id))?;
    ctx.delete(MESSAGES, keys::message(id))?;
    for k in &msg_keys {
        ctx.delete(KEYS, keys::key_index(tid, k, id))?;
    }
    if let Some(ts) = ctx.st.topic_mut(tid) {
        ts.rec.counters.timing = ts.rec.counters.timing.saturating_sub(1);
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
    ctx.prepare_read()?;
    let tv = ctx
        .get(TIMER, keys::timer(t, id))?
        .ok_or_else(|| not_timing(id))?;
    let (tid, tag) = records::decode_timer(&tv)?;
    let tag = tag.to_vec();
    let mv = ctx
        .get(MESSAGES, keys::message(id))?
        .ok_or_else(|| Error::Corrupt(format!("timer entry of {id} without its message")))?;
    let (_, mut m) = records::decode_message(&mv)?;
    let eff = effective_time(Some(deliver_at_ms), ctx.now, &ctx.sh.config)?;
    m.requested_ms = Some(deliver_at_ms);
    m.adjusted = eff.adjusted;
    ctx.single_delete(TIMER, keys::timer(t, id))?;
    crate::send::put_message(ctx, tid, id, eff.deliver_at_ms, &m)?;
    if eff.immediate {
        append_ready(ctx, tid, id, eff.deliver_at_ms, &tag, true)?;
        if let Some(ts) = ctx.st.topic_mut(tid) {
            ts.rec.counters.timing = ts.rec.counters.timing.saturating_sub(1);
        }
    } else {
        ctx.put(TIMER, keys::timer(eff.deliver_at_ms, id), &tv)?;
        if ctx.st.next_timer_due.is_none_or(|d| eff.deliver_at_ms < d) {
            ctx.st.next_timer_due = Some(eff.deliver_at_ms);
            ctx.kick_pump = true;
        }
    }
    Ok(SendReceipt {
        message_id: id,
        recall_handle: recall_handle(eff.deliver_at_ms, id),
        deliver_at_ms: eff.deliver_at_ms,
        adjusted: eff.adjusted,
    })
}
