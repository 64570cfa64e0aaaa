//! Disk pressure (SPEC §5): deleting Ready data every group has finished with, and
//! under `drop-oldest` the oldest Ready data. Retention itself is done by compaction
//! filters (`store::filters`).

use crate::error::Result;
use crate::inflight;
use crate::messages;
use crate::ready_log;
use crate::store::families::{Family, MESSAGES, READY};
use crate::store::keys::{self, GroupId, TopicId};
use crate::store::records;
use crate::store::Read;
use crate::types::MessageId;
use crate::writer::Ctx;

/// The lowest offset a group still needs: its oldest inflight record or lease, or its
/// cursor.
fn group_low(ctx: &mut Ctx<'_>, g: GroupId) -> Result<u64> {
    let cursor = ctx
        .st
        .groups
        .get(&g)
        .map_or(0, |gs| gs.rec.cursor.next_offset);
    let (lo, hi) = keys::inflight_range(g);
    let first = ctx.scan(crate::store::families::INFLIGHT, &lo, &hi, 1)?;
    let inflight = first.first().and_then(|(k, _)| keys::parse_inflight(k));
    let leased = inflight::first_unsettled(ctx, g, 64)?;
    Ok([inflight, leased]
        .into_iter()
        .flatten()
        .fold(cursor, u64::min))
}

/// What a purge deleted, and the key ranges compaction should visit to reclaim it.
#[derive(Debug, Default)]
pub(crate) struct Purged {
    pub rows: u64,
    pub ranges: Vec<(Family, Vec<u8>, Vec<u8>)>,
}

impl Purged {
    fn add(&mut self, other: Purged) {
        self.rows += other.rows;
        self.ranges.extend(other.ranges);
    }
}

/// The first offset in `[from, to)` that still has a ready entry (retention may have
/// removed a long run of them), or `to`.
fn first_live(ctx: &Ctx<'_>, tid: TopicId, from: u64, to: u64) -> Result<u64> {
    let first = ctx.scan(READY, &keys::ready(tid, from), &keys::ready(tid, to), 1)?;
    Ok(first
        .first()
        .and_then(|(k, _)| keys::parse_ready(k))
        .map_or(to, |(_, o)| o))
}

/// Deletes the ready-log range `[from, to)` of a topic and its message records.
fn purge_range(ctx: &mut Ctx<'_>, tid: TopicId, from: u64, to: u64) -> Result<Purged> {
    let rows = ctx.scan(
        READY,
        &keys::ready(tid, from),
        &keys::ready(tid, to),
        usize::MAX,
    )?;
    let (mut lo, mut hi) = (None::<MessageId>, None::<MessageId>);
    for (_, v) in &rows {
        let e = records::decode_ready(v)?;
        messages::delete_record(ctx, e.id)?;
        lo = Some(lo.map_or(e.id, |l| l.min(e.id)));
        hi = Some(hi.map_or(e.id, |h| h.max(e.id)));
    }
    ready_log::delete_range(ctx, tid, from, to)?;
    if let Some(t) = ctx.st.topic_mut(tid) {
        t.rec.counters.head = to;
    }
    let mut ranges = vec![(
        READY,
        keys::ready(tid, from).to_vec(),
        keys::ready(tid, to).to_vec(),
    )];
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let end = keys::prefix_end(&hi.to_bytes());
        ranges.push((MESSAGES, lo.to_bytes().to_vec(), end));
    }
    Ok(Purged {
        rows: rows.len() as u64,
        ranges,
    })
}

/// Deletes up to `max` Ready messages that every group of their topic has finished
/// with, oldest first.
pub(crate) fn purge_acked(ctx: &mut Ctx<'_>, max: u64) -> Result<Purged> {
    let topics: Vec<(TopicId, u64, Vec<GroupId>)> = ctx
        .st
        .topics
        .values()
        .filter(|t| !t.groups.is_empty())
        .map(|t| {
            (
                t.rec.id,
                t.rec.counters.head,
                t.groups.values().copied().collect(),
            )
        })
        .collect();
    let mut total = Purged::default();
    for (tid, head, groups) in topics {
        let mut low = u64::MAX;
        for g in groups {
            low = low.min(group_low(ctx, g)?);
        }
        if low <= head || total.rows >= max {
            continue;
        }
        // Skip what retention already removed without spending the budget on it.
        let from = first_live(ctx, tid, head, low)?;
        let to = low.min(from.saturating_add(max - total.rows));
        let p = purge_range(ctx, tid, from, to)?;
        if let Some(t) = ctx.st.topic_mut(tid) {
            t.rec.counters.purged += p.rows;
        }
        total.add(p);
    }
    Ok(total)
}

/// Deletes up to `max` of the oldest Ready messages whatever their groups did
/// (policy `drop-oldest`); Timing messages are never touched.
pub(crate) fn drop_oldest(ctx: &mut Ctx<'_>, max: u64) -> Result<Purged> {
    let mut oldest: Option<(u64, TopicId, u64, u64)> = None;
    let topics: Vec<(TopicId, u64, u64)> = ctx
        .st
        .topics
        .values()
        .filter(|t| t.rec.counters.head < t.rec.counters.ready_end)
        .map(|t| (t.rec.id, t.rec.counters.head, t.rec.counters.ready_end))
        .collect();
    for (tid, head, end) in topics {
        let first = ctx.scan(READY, &keys::ready(tid, head), &keys::ready(tid, end), 1)?;
        let Some((k, v)) = first.first() else {
            // Retention emptied it: nothing to drop here.
            continue;
        };
        let (Some((_, from)), Some(at)) = (keys::parse_ready(k), records::ready_at(v)) else {
            continue;
        };
        if oldest.is_none_or(|(a, ..)| at < a) {
            oldest = Some((at, tid, from, end));
        }
    }
    let Some((_, tid, from, end)) = oldest else {
        return Ok(Purged::default());
    };
    let to = end.min(from.saturating_add(max.max(1)));
    let p = purge_range(ctx, tid, from, to)?;
    if let Some(t) = ctx.st.topic_mut(tid) {
        t.rec.counters.dropped += p.rows;
    }
    Ok(p)
}
