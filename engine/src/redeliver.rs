//! Inflight expiry and dead letters.
//!
//! An inflight entry whose invisible time ends becomes a retry: it waits in the group's
//! visibility index until a receive hands it out again with attempt + 1. An entry that
//! already had `max_delivery_attempts` deliveries goes to `%DLQ%<group>` instead.

use crate::error::Result;
use crate::inflight;
use crate::messages;
use crate::ready_log;
use crate::store::families::INFLIGHT;
use crate::store::keys::{self, GroupId};
use crate::store::records::{Finished, Inflight};
use crate::store::Read;
use crate::types::TopicKind;
use crate::writer::Ctx;

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
        let Some(rec) = inflight::entry_record(ctx, g, (k, v), &mut converted)? else {
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
    let next = inflight::next_visible(ctx, g, to)?;
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
        inflight::remove_inflight(ctx, g, offset, rec)?;
    }
    inflight::finish(ctx, g, offset, Finished::DeadLettered, rec.ready_at_ms)?;
    let Some(gs) = ctx.st.group_mut(g) else {
        return Ok(());
    };
    gs.rec.cursor.dead_lettered += 1;
    let group_name = gs.rec.name.clone();
    let dlq = format!("%DLQ%{group_name}");
    let Some(mut body) = messages::get(ctx, rec.id)? else {
        tracing::warn!(message_id = %rec.id, "dead letter without a stored body (retention removed it)");
        return Ok(());
    };
    let tid = match ctx.st.topic_ids.get(&dlq) {
        Some(&t) => t,
        None => crate::topics::add_topic(ctx, &dlq, TopicKind::Normal)?,
    };
    let origin = std::mem::replace(&mut body.topic, dlq);
    for (k, v) in [
        ("DLQ_ORIGIN_TOPIC", origin),
        ("DLQ_ORIGIN_MESSAGE_ID", rec.id.to_string()),
        ("DLQ_ORIGIN_GROUP", group_name),
        ("DLQ_DELIVERY_ATTEMPTS", rec.attempt.to_string()),
    ] {
        body.properties.insert(k.into(), v);
    }
    // The copy is a new message of the dead-letter topic, Ready at once.
    let now = ctx.now;
    body.born_ms = now;
    body.requested_ms = None;
    body.adjusted = false;
    let id = ctx.st.next_message_id(now);
    messages::put(ctx, tid, id, now, &body)?;
    let tag = body.tag.as_deref().unwrap_or("").as_bytes();
    ready_log::append(ctx, tid, id, now, tag, true)?;
    if let Some(t) = ctx.st.topic_mut(tid) {
        t.rec.counters.sent += 1;
    }
    Ok(())
}
