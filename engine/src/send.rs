//! Send: the delivery-time rules of SPEC §2 and the write of a new message.

use crate::disk::DiskGuard;
use crate::error::{Error, Result};
use crate::messages;
use crate::ready_log;
use crate::store::families::KEYS;
use crate::store::keys;
use crate::store::records::{self, MessageBody};
use crate::store::Read;
use crate::timer;
use crate::types::{
    validate_tag, Config, MessageId, NewMessage, OverMaxDelay, SendReceipt, StoragePolicy,
    TopicKind,
};
use crate::writer::Ctx;
use std::sync::atomic::Ordering;

/// Earliest accepted absolute time: 2000-01-01. Anything smaller is almost surely a
/// relative delay or a unit mistake, and is refused rather than delivered at once.
pub const MIN_DELIVER_AT_MS: i64 = 946_684_800_000;
/// Latest accepted absolute time: the end of year 9999.
pub const MAX_DELIVER_AT_MS: i64 = 253_402_300_799_999;

/// The outcome of the delivery-time rules for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// When the message becomes Ready.
    pub deliver_at_ms: u64,
    /// Whether that differs from what was asked.
    pub adjusted: bool,
    /// Whether it is Ready at once (no timer entry).
    pub immediate: bool,
}

/// Applies SPEC §2 to a requested time at `now`.
pub fn effective_time(requested: Option<i64>, now: u64, cfg: &Config) -> Result<Effective> {
    let Some(req) = requested else {
        return Ok(Effective {
            deliver_at_ms: now,
            adjusted: false,
            immediate: true,
        });
    };
    if req < 0 {
        return Err(Error::BadDeliveryTime(format!("{req} is negative")));
    }
    if !(MIN_DELIVER_AT_MS..=MAX_DELIVER_AT_MS).contains(&req) {
        return Err(Error::BadDeliveryTime(format!(
            "{req} is not a plausible Unix time in milliseconds (accepted: {MIN_DELIVER_AT_MS}..={MAX_DELIVER_AT_MS})"
        )));
    }
    let req = req as u64;
    let p = cfg.precision_ms.max(1);
    let rounded = req
        .div_ceil(p)
        .checked_mul(p)
        .ok_or_else(|| Error::BadDeliveryTime(format!("{req} overflows when rounded to {p} ms")))?;
    if rounded <= now {
        return Ok(Effective {
            deliver_at_ms: now,
            adjusted: now != req,
            immediate: true,
        });
    }
    let max_delay = u64::try_from(cfg.max_delay.as_millis()).unwrap_or(u64::MAX);
    let limit = now.saturating_add(max_delay);
    if rounded > limit {
        return match cfg.over_max_delay {
            OverMaxDelay::DeliverNow => Ok(Effective {
                deliver_at_ms: now,
                adjusted: true,
                immediate: true,
            }),
            OverMaxDelay::Reject => Err(Error::BadDeliveryTime(format!(
                "{req} is {} ms ahead; max_delay is {max_delay} ms",
                rounded.saturating_sub(now)
            ))),
        };
    }
    Ok(Effective {
        deliver_at_ms: rounded,
        adjusted: rounded != req,
        immediate: false,
    })
}

/// Parses a recall handle.
pub(crate) fn parse_recall_handle(h: &str) -> Result<(u64, MessageId)> {
    let bad = || {
        Error::BadRequest(format!(
            "recall handle {h:?} is not 48 hexadecimal characters"
        ))
    };
    if h.len() != 48 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let t = u64::from_str_radix(&h[..16], 16).map_err(|_| bad())?;
    let id = h[16..].parse::<MessageId>().map_err(|_| bad())?;
    Ok((t, id))
}

fn check_message(m: &NewMessage, cfg: &Config) -> Result<()> {
    if m.body.len() > cfg.max_body_bytes {
        return Err(Error::MessageTooLarge {
            size: m.body.len(),
            limit: cfg.max_body_bytes,
        });
    }
    if let Some(t) = &m.tag {
        validate_tag(t)?;
    }
    if m.keys.len() > 32 {
        return Err(Error::BadRequest("at most 32 keys per message".into()));
    }
    for k in &m.keys {
        if k.is_empty() || k.len() > 1024 {
            return Err(Error::BadRequest(format!(
                "key {k:?} must be 1..=1024 bytes"
            )));
        }
    }
    let props: usize = m.properties.iter().map(|(k, v)| k.len() + v.len()).sum();
    if m.properties.len() > 128 || props > 64 * 1024 {
        return Err(Error::BadRequest(
            "at most 128 properties and 64 KiB of them".into(),
        ));
    }
    Ok(())
}

fn check_kind(topic: &str, kind: TopicKind, delay: bool) -> Result<()> {
    let why = match (kind, delay) {
        (TopicKind::Normal, true) => "a message with a delivery time needs a DELAY or MIXED topic",
        (TopicKind::Delay, false) => {
            "a message without a delivery time needs a NORMAL or MIXED topic"
        }
        _ => return Ok(()),
    };
    Err(Error::TopicTypeMismatch {
        topic: topic.to_string(),
        kind: kind.to_string(),
        why: why.to_string(),
    })
}

/// Sends a batch; each message succeeds or fails on its own.
pub(crate) fn send_batch(
    ctx: &mut Ctx<'_>,
    msgs: Vec<NewMessage>,
) -> Result<Vec<Result<SendReceipt>>> {
    let out = send_batch_once(ctx, msgs, None)?;
    Ok(out.into_iter().map(|r| r.map(|(r, _)| r)).collect())
}

/// How sends named by their clients are told apart (see [`Engine::submit_send_once`]).
///
/// [`Engine::submit_send_once`]: crate::Engine::submit_send_once
#[derive(Debug, Clone, Copy)]
pub(crate) struct Once<'a> {
    /// The property that holds the client's id; the id is also one of the keys.
    pub property: &'a str,
    /// How long an id is remembered, in ms.
    pub window_ms: u64,
}

/// Sends a batch, each message on its own; with `once`, a message whose client id was
/// stored within the window (in an earlier round or earlier in this one) is not stored
/// again and gets the first one's receipt, marked `true`.
pub(crate) fn send_batch_once(
    ctx: &mut Ctx<'_>,
    msgs: Vec<NewMessage>,
    once: Option<Once<'_>>,
) -> Result<Vec<Result<(SendReceipt, bool)>>> {
    let sh = ctx.sh;
    let mut out = Vec::with_capacity(msgs.len());
    // Every stored record lands here; growing it by doubling copied each one again.
    ctx.spent.reserve(msgs.len());
    for m in msgs {
        if let Some(once) = once {
            if let Some(first) = sent_before(ctx, &m, once)? {
                out.push(Ok((first, true)));
                continue;
            }
        }
        if !sh.storage_full.load(Ordering::SeqCst)
            && !sh.disk_guard.charge(DiskGuard::cost(m.body.len()))
        {
            // Measure again now rather than at the next pass; meanwhile, under
            // `reject`, refuse as the pass would, and under `drop-oldest` let the pass
            // make room.
            sh.maintenance_wake.kick();
            if sh.config.storage_policy == StoragePolicy::Reject {
                sh.set_storage_full(
                    "sends since the last disk measurement would pass the high watermark".into(),
                );
            }
        }
        if sh.storage_full.load(Ordering::SeqCst) {
            out.push(Err(Error::StorageFull(sh.storage_full_reason())));
        } else {
            out.push(send_one(ctx, m).map(|r| (r, false)));
        }
    }
    Ok(out)
}

/// The receipt of the message stored with `m`'s client id within the window, if any:
/// found through the key index (the id is one of the keys) and confirmed by the id
/// property, so a user key that happens to equal an id is not taken for it.
fn sent_before(ctx: &Ctx<'_>, m: &NewMessage, once: Once<'_>) -> Result<Option<SendReceipt>> {
    let Some(client_id) = m.properties.get(once.property) else {
        return Ok(None);
    };
    if once.window_ms == 0 {
        return Ok(None);
    }
    let Ok(t) = ctx.st.topic_by_name(&m.topic) else {
        // The send reports the missing topic.
        return Ok(None);
    };
    let prefix = keys::key_index_prefix(t.rec.id, client_id);
    // Each stored copy of an id is one entry; more than a few means it was reused on
    // purpose, long apart, and the newest is the one to compare.
    let rows = ctx.scan(KEYS, &prefix, &keys::prefix_end(&prefix), 64)?;
    for (k, v) in rows.iter().rev() {
        let Some(id) = k
            .get(prefix.len()..)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(MessageId::from_bytes)
        else {
            continue;
        };
        let Some(body) = messages::get(ctx, id)? else {
            continue;
        };
        if body.properties.get(once.property) != Some(client_id) {
            continue;
        }
        if ctx.now.saturating_sub(body.born_ms) >= once.window_ms {
            // Ids grow with time: every older copy is older still.
            return Ok(None);
        }
        let deliver_at_ms = <[u8; 8]>::try_from(&v[..])
            .map(u64::from_be_bytes)
            .unwrap_or(body.born_ms);
        return Ok(Some(SendReceipt {
            message_id: id,
            deliver_at_ms,
            adjusted: body.adjusted,
        }));
    }
    Ok(None)
}

/// Writes one message: its record, then a timer entry or (due now) its place in the
/// ready log.
fn send_one(ctx: &mut Ctx<'_>, m: NewMessage) -> Result<SendReceipt> {
    let cfg = &ctx.sh.config;
    check_message(&m, cfg)?;
    let t = ctx.st.topic_by_name(&m.topic)?;
    check_kind(&m.topic, t.rec.kind, m.deliver_at_ms.is_some())?;
    let tid = t.rec.id;
    let eff = effective_time(m.deliver_at_ms, ctx.now, cfg)?;
    let id = ctx.st.next_message_id(ctx.now);
    let NewMessage {
        topic,
        tag,
        keys: msg_keys,
        properties,
        body,
        deliver_at_ms,
    } = m;
    let rec = MessageBody {
        topic,
        tag,
        keys: msg_keys,
        properties,
        body,
        born_ms: ctx.now,
        requested_ms: deliver_at_ms,
        adjusted: eff.adjusted,
    };
    messages::put(ctx, tid, id, eff.deliver_at_ms, &rec)?;
    let tag = rec.tag.as_deref();
    if eff.immediate {
        ready_log::append(
            ctx,
            tid,
            id,
            eff.deliver_at_ms,
            tag.unwrap_or("").as_bytes(),
            true,
        )?;
    } else {
        let mut buf = [0u8; 256];
        match records::encode_timer_into(&mut buf, tid, tag) {
            Some(v) => timer::add(ctx, tid, eff.deliver_at_ms, id, v)?,
            None => timer::add(ctx, tid, eff.deliver_at_ms, id, &timer::entry(tid, tag))?,
        }
    }
    if let Some(t) = ctx.st.topic_mut(tid) {
        t.rec.counters.sent += 1;
    }
    ctx.spent.push(rec);
    Ok(SendReceipt {
        message_id: id,
        deliver_at_ms: eff.deliver_at_ms,
        adjusted: eff.adjusted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::recall_handle;

    #[test]
    fn a_recall_handle_is_the_time_and_the_id_in_hex_and_parses_back() {
        for (t, id) in [
            (0u64, 0u128),
            (1_700_000_000_123, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            (u64::MAX, u128::MAX),
        ] {
            let h = recall_handle(t, MessageId(id));
            assert_eq!(h, format!("{t:016x}{id:032x}"));
            assert_eq!(parse_recall_handle(&h).expect("parses"), (t, MessageId(id)));
        }
    }
}
