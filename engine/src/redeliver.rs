//! Inflight expiry and dead letters.
//!
//! An inflight entry whose invisible time ends becomes a retry: it waits in the group's
//! visibility index until a receive hands it out again with attempt + 1. An entry that
//! already had `max_delivery_attempts` deliveries goes to `%DLQ%<group>` instead.

use crate::error::Result;
use crate::families::{ACKED, INFLIGHT, MESSAGES};
use crate::keys::{self, GroupId};
use crate::lease;
use crate::records::{self, Finished, Inflight};
use crate::send::send_one;
use crate::types::{NewMessage, TopicKind};
use crate::writer::Ctx;
use crate::Shared;

/// Processes expired visibility entries of every group that has some due; returns
/// `(expired, dead_lettered, more)`.
pub(crate) fn expire_due(ctx: &mut Ctx<'_>, max: usize) -> Result<(u64, u64, bool)> {
    let now = ctx.now;
    let due: Vec<GroupId> = ctx
        .st
        .groups
        .iter()
        .filter(|(_, g)| g.next_visible.is_some_and(|t| t <= now))
        .map(|(&id, _)| id)
        .collect();
    let (mut expired, mut dead, mut more) = (0, 0, false);
    for g in due {
        ctx.prepare_read()?;
        let (e, d, m) = expire_group(ctx, g, max)?;
        expired += e;
        dead += d;
        more |= m;
    }
    Ok((expired, dead, more))
}

fn expire_group(ctx: &mut Ctx<'_>, g: GroupId, max: usize) -> Result<(u64, u64, bool)> {
    let now = ctx.now;
    let Some(gs) = ctx.st.groups.get(&g) else {
        return Ok((0, 0, false));
    };
    let from = gs.rec.cursor.expired_to;
    let lower = keys::visible(g, from.0, from.1);
    let upper = keys::visible(g, now.saturating_add(1), 0);
    let entries = ctx.scan(INFLIGHT, &lower, &upper, max)?;
    let max_attempts = ctx.sh.config.max_delivery_attempts;
    let (mut expired, mut dead) = (0, 0);
    let mut last = None;
    // Whether expired leases gave records whose entries this scan has not seen.
    let mut converted = false;
    for (k, v) in &entries {
        if converted {
            // The new entries sort right after the lease's: the next pass starts
            // there, so each is counted once, in order.
            break;
        }
        let Some((t, offset)) = keys::parse_visible(k) else {
            continue;
        };
        last = Some((t, offset));
        let Some(rec) = entry_record(ctx, g, (k, v), &mut converted)? else {
            continue;
        };
        if rec.attempt >= max_attempts {
            dead_letter(ctx, g, offset, &rec, false)?;
            dead += 1;
        } else {
            if let Some(gs) = ctx.st.group_mut(g) {
                gs.rec.cursor.inflight = gs.rec.cursor.inflight.saturating_sub(1);
                gs.rec.cursor.retry += 1;
            }
            expired += 1;
        }
    }
    let more = entries.len() >= max || converted;
    let to = match (more, last) {
        (true, Some((t, o))) => (t, o + 1),
        _ => (now.saturating_add(1), 0),
    };
    let next = next_visible(ctx.sh, g, to)?;
    if let Some(gs) = ctx.st.group_mut(g) {
        if to > gs.rec.cursor.expired_to {
            gs.rec.cursor.expired_to = to;
        }
        gs.next_visible = if more { Some(now) } else { next };
    }
    if expired > 0 || dead > 0 {
        ctx.ready_changed = true;
    }
    Ok((expired, dead, more))
}

/// The live inflight record a visibility entry `(t, offset)` stands for: an ordinary
/// entry's record if it is still visible at `t`, or the first record of an expired
/// lease after [`lease::convert`] (which sets `converted` when it made others). Stale
/// entries are deleted.
pub(crate) fn entry_record(
    ctx: &mut Ctx<'_>,
    g: GroupId,
    (k, v): (&[u8], &[u8]),
    converted: &mut bool,
) -> Result<Option<Inflight>> {
    let Some((t, offset)) = keys::parse_visible(k) else {
        return Ok(None);
    };
    if lease::is_marker(v) {
        let c = lease::convert(ctx, g, offset, t)?;
        *converted |= c.others;
        return Ok(c.first);
    }
    let Some(v) = ctx.get(INFLIGHT, keys::inflight(g, offset))? else {
        ctx.delete(INFLIGHT, k)?;
        return Ok(None);
    };
    let rec = records::decode_inflight(&v)?;
    if rec.visible_at_ms != t {
        ctx.delete(INFLIGHT, k)?;
        return Ok(None);
    }
    Ok(Some(rec))
}

/// The first visibility time at or after `from` in group `g`'s index.
pub(crate) fn next_visible(sh: &Shared, g: GroupId, from: (u64, u64)) -> Result<Option<u64>> {
    let lower = keys::visible(g, from.0, from.1);
    let (_, upper) = keys::visible_range(g);
    let first = sh.scan(INFLIGHT, &lower, &upper, 1)?;
    Ok(first
        .first()
        .and_then(|(k, _)| keys::parse_visible(k))
        .map(|(t, _)| t))
}

/// Whether a visibility entry counts as a retry (expired and processed) for the group.
pub(crate) fn is_retry(ctx: &Ctx<'_>, g: GroupId, rec: &Inflight, offset: u64) -> bool {
    is_retry_at(ctx, g, rec.visible_at_ms, offset)
}

/// Whether the visibility entry `(visible_at_ms, offset)` was already processed by
/// expiry (so what it holds counts as a retry, not as inflight).
pub(crate) fn is_retry_at(ctx: &Ctx<'_>, g: GroupId, visible_at_ms: u64, offset: u64) -> bool {
    ctx.st
        .groups
        .get(&g)
        .is_some_and(|gs| (visible_at_ms, offset) < gs.rec.cursor.expired_to)
}

/// Takes one delivery out of the group's inflight (or retry) count.
pub(crate) fn uncount(ctx: &mut Ctx<'_>, g: GroupId, retry: bool) {
    if let Some(gs) = ctx.st.group_mut(g) {
        let c = &mut gs.rec.cursor;
        if retry {
            c.retry = c.retry.saturating_sub(1);
        } else {
            c.inflight = c.inflight.saturating_sub(1);
        }
    }
}

/// Removes a group's inflight record and its index entry, fixing the counters.
pub(crate) fn remove_inflight(
    ctx: &mut Ctx<'_>,
    g: GroupId,
    offset: u64,
    rec: &Inflight,
) -> Result<()> {
    let retry = is_retry(ctx, g, rec, offset);
    ctx.delete(INFLIGHT, keys::inflight(g, offset))?;
    ctx.delete(INFLIGHT, keys::visible(g, rec.visible_at_ms, offset))?;
    uncount(ctx, g, retry);
    Ok(())
}

/// Moves a message to `%DLQ%<group>`: a copy with the origin in its properties, Ready
/// at once; the group's record of the original says DeadLettered.
pub(crate) fn dead_letter(
    ctx: &mut Ctx<'_>,
    g: GroupId,
    offset: u64,
    rec: &Inflight,
    already_removed: bool,
) -> Result<()> {
    if !already_removed {
        remove_inflight(ctx, g, offset, rec)?;
    }
    ctx.put(
        ACKED,
        keys::acked(g, offset),
        records::encode_acked(Finished::DeadLettered, rec.ready_at_ms),
    )?;
    let Some(gs) = ctx.st.group_mut(g) else {
        return Ok(());
    };
    gs.rec.cursor.dead_lettered += 1;
    let group_name = gs.rec.name.clone();
    let dlq = format!("%DLQ%{group_name}");
    let Some(v) = ctx.get(MESSAGES, keys::message(rec.id))? else {
        tracing::warn!(message_id = %rec.id, "dead letter without a stored body (retention removed it)");
        return Ok(());
    };
    let (_, mut body) = records::decode_message(&v)?;
    let tid = match ctx.st.topic_ids.get(&dlq) {
        Some(&t) => t,
        None => crate::topics::add_topic(ctx, &dlq, TopicKind::Normal)?,
    };
    body.properties
        .insert("DLQ_ORIGIN_TOPIC".into(), body.topic.clone());
    body.properties
        .insert("DLQ_ORIGIN_MESSAGE_ID".into(), rec.id.to_string());
    body.properties
        .insert("DLQ_ORIGIN_GROUP".into(), group_name);
    body.properties
        .insert("DLQ_DELIVERY_ATTEMPTS".into(), rec.attempt.to_string());
    let copy = NewMessage {
        topic: dlq,
        tag: body.tag,
        keys: body.keys,
        properties: body.properties,
        body: body.body,
        deliver_at_ms: None,
    };
    send_one(ctx, copy, Some(tid))?;
    Ok(())
}
