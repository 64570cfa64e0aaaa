//! Topics and consumer groups: creation, deletion, offsets.

use crate::error::{Error, Result};
use crate::inflight;
use crate::ready_log;
use crate::state::{GroupCursor, GroupRecord, TopicCounters, TopicRecord};
use crate::store::families::READY;
use crate::store::keys::{self, GroupId, TopicId};
use crate::store::records;
use crate::store::Read;
use crate::types::{validate_name, GroupInfo, GroupStart, TagFilter, TopicInfo, TopicKind};
use crate::writer::Ctx;

/// Creates a topic; `TopicExists` if the name is taken.
pub(crate) fn create_topic(ctx: &mut Ctx<'_>, name: &str, kind: TopicKind) -> Result<TopicInfo> {
    validate_name("topic", name)?;
    if ctx.st.topic_ids.contains_key(name) {
        return Err(Error::TopicExists(name.to_string()));
    }
    add_topic(ctx, name, kind)?;
    Ok(TopicInfo {
        name: name.to_string(),
        kind,
        created_ms: ctx.now,
    })
}

/// Adds a topic record under a fresh id (no name checks: callers do them).
pub(crate) fn add_topic(ctx: &mut Ctx<'_>, name: &str, kind: TopicKind) -> Result<TopicId> {
    let id = ctx.st.engine.next_topic_id;
    ctx.st.engine_mut().next_topic_id = id
        .checked_add(1)
        .ok_or_else(|| Error::BadRequest("topic ids exhausted".into()))?;
    ctx.st.add_topic(TopicRecord {
        id,
        name: name.to_string(),
        kind,
        created_ms: ctx.now,
        counters: TopicCounters::default(),
    });
    Ok(id)
}

/// Deletes a topic, its groups and its ready log. Its Timing messages are dropped by
/// the pump when they come due; its message records age out with retention.
pub(crate) fn delete_topic(ctx: &mut Ctx<'_>, name: &str) -> Result<()> {
    let id = ctx.st.topic_by_name(name)?.rec.id;
    let groups = ctx.st.remove_topic(id);
    ready_log::delete_range(ctx, id, 0, u64::MAX)?;
    for g in groups {
        inflight::clear_group(ctx, g, 0)?;
    }
    Ok(())
}

/// Returns the group's id, creating it (at `start`) if it does not exist.
pub(crate) fn ensure_group(
    ctx: &mut Ctx<'_>,
    topic: TopicId,
    name: &str,
    start: GroupStart,
    filter: Option<&str>,
) -> Result<GroupId> {
    validate_name("group", name)?;
    let t = ctx
        .st
        .topics
        .get(&topic)
        .ok_or_else(|| Error::TopicNotFound(format!("#{topic}")))?;
    if let Some(&g) = t.groups.get(name) {
        if let Some(f) = filter {
            let parsed = TagFilter::parse(f)?;
            if let Some(gs) = ctx.st.group_mut(g) {
                gs.rec.filter = parsed.to_string();
                gs.filter = parsed;
            }
        }
        return Ok(g);
    }
    let filter = TagFilter::parse(filter.unwrap_or("*"))?;
    let offset = match start {
        GroupStart::Latest => t.rec.counters.ready_end,
        GroupStart::Earliest => t.rec.counters.head,
    };
    let id = ctx.st.engine.next_group_id;
    ctx.st.engine_mut().next_group_id = id
        .checked_add(1)
        .ok_or_else(|| Error::BadRequest("group ids exhausted".into()))?;
    ctx.st.add_group(GroupRecord {
        id,
        topic,
        name: name.to_string(),
        filter: filter.to_string(),
        created_ms: ctx.now,
        cursor: GroupCursor {
            next_offset: offset,
            ..GroupCursor::default()
        },
    })?;
    Ok(id)
}

/// Creates (or updates the filter of) a group.
pub(crate) fn create_group(
    ctx: &mut Ctx<'_>,
    topic: &str,
    group: &str,
    start: GroupStart,
    filter: Option<&str>,
) -> Result<GroupInfo> {
    let tid = ctx.st.topic_by_name(topic)?.rec.id;
    let g = ensure_group(ctx, tid, group, start, filter)?;
    let gs = ctx
        .st
        .groups
        .get(&g)
        .ok_or_else(|| Error::NotFound(format!("group {group}")))?;
    Ok(ctx.st.group_info(gs))
}

/// First offset in `[head, end)` whose message became Ready at or after `ts`
/// (ready times never decrease along the log, so a binary search finds it).
fn first_offset_at(ctx: &Ctx<'_>, topic: TopicId, head: u64, end: u64, ts: u64) -> Result<u64> {
    let (mut lo, mut hi) = (head, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // A missing entry was removed by retention or purge: it is older than `ts`
        // if anything is, because removal goes oldest first.
        let at_or_after = match ctx.get(READY, keys::ready(topic, mid))? {
            Some(v) => records::ready_at(&v).is_some_and(|r| r >= ts),
            None => false,
        };
        if at_or_after {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Resets a group to the first message that became Ready at or after `to_ms`; returns
/// the new offset. Everything before it counts as consumed, everything from it on is
/// delivered again; outstanding receipts of the group become stale.
pub(crate) fn reset_offset(ctx: &mut Ctx<'_>, topic: &str, group: &str, to_ms: u64) -> Result<u64> {
    let t = ctx.st.topic_by_name(topic)?;
    let (tid, head, end) = (t.rec.id, t.rec.counters.head, t.rec.counters.ready_end);
    let gid = *t
        .groups
        .get(group)
        .ok_or_else(|| Error::NotFound(format!("group {group:?} of topic {topic:?}")))?;
    let offset = first_offset_at(ctx, tid, head, end, to_ms)?;
    inflight::clear_group(ctx, gid, offset)?;
    let now = ctx.now;
    if let Some(g) = ctx.st.group_mut(gid) {
        let c = &mut g.rec.cursor;
        c.next_offset = offset;
        c.inflight = 0;
        c.retry = 0;
        c.expired_to = (now, 0);
        g.next_visible = None;
    }
    ctx.ready_changed = true;
    Ok(offset)
}
