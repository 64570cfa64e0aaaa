//! Inflight deliveries and acks: the only code that writes the `inflight` and `acked`
//! families' records and visibility entries.
//!
//! An inflight record (`i group ‖ offset`) says a delivery is invisible to its group
//! until `visible_at`; its visibility entry (`v group ‖ t ‖ offset`) orders the
//! expiries. An ack entry (`acked`: group ‖ offset) says the group is done with it.
//!
//! Leases: the first delivery of a run of two or more consecutive offsets that one
//! receive hands to a group is one inflight record (`l group ‖ first`) and one
//! visibility entry (marked [`MARKER`]), not two per message (a run of one is an
//! ordinary record). A burst of a million messages received 1,024 at
//! a time then writes about two thousand records instead of two million, and an ack is
//! one write (its ack entry) instead of three. One ack call that settles a whole lease
//! writes one ack entry for the run (its value holds the run's end) and deletes the
//! lease and its visibility entry: see [`finish_lease`] and [`finished_how`].
//!
//! An offset of a lease is settled once it has an ack entry (acked or dead-lettered) or
//! an inflight record of its own: a nack or a changed invisible time detaches it from
//! the lease. When the lease's invisible time passes, the offsets still unsettled
//! become ordinary inflight records at attempt 1 with the same visibility time and
//! receipts (see [`convert`]), and the usual expiry and redelivery take over.

use crate::error::Result;
use crate::failpoints;
use crate::store::families::{ACKED, INFLIGHT, READY};
use crate::store::keys::{self, GroupId};
use crate::store::records::{self, Finished, Inflight, Lease};
use crate::store::Read;
use crate::types::MessageId;
use crate::writer::Ctx;
use std::collections::HashSet;

/// The value of a lease's visibility entry (an ordinary entry's value is empty).
pub(crate) const MARKER: &[u8] = b"l";

/// Whether a visibility entry's value marks a lease.
pub(crate) fn is_marker(v: &[u8]) -> bool {
    v == MARKER
}

/// A run being handed out by one receive.
#[derive(Debug)]
pub(crate) struct Run {
    pub first: u64,
    pub end: u64,
    pub nonce: u64,
    pub ready_at_ms: u64,
    /// The message at `first`.
    pub first_id: MessageId,
}

impl Run {
    /// Starts a run at `offset` (message `id`) with a fresh nonce.
    pub fn start(ctx: &mut Ctx<'_>, offset: u64, id: MessageId) -> Run {
        Run {
            first: offset,
            end: offset,
            nonce: ctx.st.next_seq(),
            ready_at_ms: 0,
            first_id: id,
        }
    }

    /// Writes the lease and its visibility entry; a run of one offset gets an ordinary
    /// inflight record instead (with the same nonce, so its receipt is the same). An ack
    /// then finds it with one read and deletes it with its entry, where a lease would
    /// have needed three reads and stayed until its invisible time ended, to be read
    /// and deleted then: a consumer that receives one message per request (the
    /// official SimpleConsumer) leaves nothing behind to expire.
    pub fn close(self, ctx: &mut Ctx<'_>, g: GroupId, visible_at_ms: u64) -> Result<()> {
        if self.end == self.first + 1 && !failpoints::fires(failpoints::LEASE_OF_ONE) {
            let rec = Inflight {
                id: self.first_id,
                attempt: 1,
                visible_at_ms,
                nonce: self.nonce,
                ready_at_ms: self.ready_at_ms,
            };
            return put_record(ctx, g, self.first, &rec);
        }
        let lease = Lease {
            end: self.end,
            visible_at_ms,
            nonce: self.nonce,
            ready_at_ms: self.ready_at_ms,
        };
        ctx.put(
            INFLIGHT,
            keys::lease(g, self.first),
            records::encode_lease(&lease),
        )?;
        ctx.put(
            INFLIGHT,
            keys::visible(g, visible_at_ms, self.first),
            MARKER,
        )
    }
}

/// The lease whose run holds `offset`, as `(first, lease)`.
pub(crate) fn covering(r: &impl Read, g: GroupId, offset: u64) -> Result<Option<(u64, Lease)>> {
    // Leases do not overlap, so one that starts at `offset` is the one: a point read
    // finds it without the reverse seek below.
    if let Some(v) = r.get(INFLIGHT, keys::lease(g, offset))? {
        let lease = records::decode_lease(&v)?;
        return Ok((offset < lease.end).then_some((offset, lease)));
    }
    let (lo, _) = keys::lease_range(g);
    let hi = keys::lease(g, offset.saturating_add(1));
    let Some((k, v)) = r.last_in(INFLIGHT, &lo, &hi)? else {
        return Ok(None);
    };
    let (Some(first), lease) = (keys::parse_lease(&k), records::decode_lease(&v)?) else {
        return Ok(None);
    };
    Ok((offset < lease.end).then_some((first, lease)))
}

/// Whether `offset` of group `g` has an ack entry (acked or dead-lettered).
pub(crate) fn is_finished(r: &impl Read, g: GroupId, offset: u64) -> Result<bool> {
    Ok(r.get(ACKED, keys::acked(g, offset))?.is_some())
}

/// Takes `offset` out of its lease (before a nack or a changed invisible time): fixes
/// the counters as if its inflight record were removed and returns that record, or
/// `None` when retention already removed the message.
pub(crate) fn detach(
    ctx: &mut Ctx<'_>,
    g: GroupId,
    offset: u64,
    first: u64,
    lease: &Lease,
) -> Result<Option<Inflight>> {
    let Some(tid) = ctx.st.groups.get(&g).map(|gs| gs.rec.topic) else {
        return Ok(None);
    };
    let Some(v) = ctx.get(READY, keys::ready(tid, offset))? else {
        // Left in the lease: its expiry takes it out of the counts.
        return Ok(None);
    };
    let entry = records::decode_ready(&v)?;
    uncount_leased(ctx, g, first, lease);
    Ok(Some(first_delivery(&entry, lease, lease.visible_at_ms)))
}

/// Takes one offset of the lease starting at `first` out of the group's inflight (or
/// retry) count.
pub(crate) fn uncount_leased(ctx: &mut Ctx<'_>, g: GroupId, first: u64, lease: &Lease) {
    let retry = is_retry_at(ctx, g, lease.visible_at_ms, first);
    uncount(ctx, g, retry);
}

/// The inflight record of a leased offset: its first delivery, invisible until
/// `visible_at_ms`.
fn first_delivery(entry: &records::ReadyEntry<'_>, lease: &Lease, visible_at_ms: u64) -> Inflight {
    Inflight {
        id: entry.id,
        attempt: 1,
        visible_at_ms,
        nonce: lease.nonce,
        ready_at_ms: entry.ready_at_ms,
    }
}

/// The first offset of group `g`'s oldest lease that still has an unsettled offset.
/// Leases found settled on the way are deleted (at most `max` of them; past that the
/// next lease counts as unsettled): acked leases would otherwise hold back the purge of
/// acked data until their invisible time ends.
pub(crate) fn first_unsettled(ctx: &mut Ctx<'_>, g: GroupId, max: usize) -> Result<Option<u64>> {
    let (from, hi) = keys::lease_range(g);
    let leases = ctx.scan(INFLIGHT, &from, &hi, max.saturating_add(1))?;
    for (i, (k, v)) in leases.iter().enumerate() {
        let Some(first) = keys::parse_lease(k) else {
            return Ok(None);
        };
        if i == max {
            return Ok(Some(first));
        }
        let lease = records::decode_lease(v)?;
        if settled(ctx, g, first, &lease)?.len() as u64 != lease.end - first {
            return Ok(Some(first));
        }
        // Deleted in this job's batch; the walk goes on over the rows already read.
        ctx.delete(INFLIGHT, keys::lease(g, first))?;
        ctx.delete(INFLIGHT, keys::visible(g, lease.visible_at_ms, first))?;
    }
    Ok(None)
}

/// The offsets in `[lo, hi)` of group `g` that have an ack entry (acked or
/// dead-lettered).
pub(crate) fn finished_in(ctx: &Ctx<'_>, g: GroupId, lo: u64, hi: u64) -> Result<HashSet<u64>> {
    let limit = hi.saturating_sub(lo) as usize;
    Ok(ctx
        .scan(ACKED, &keys::acked(g, lo), &keys::acked(g, hi), limit)?
        .iter()
        .filter_map(|(k, _)| keys::parse_acked(k))
        .collect())
}

/// The offsets of a lease that are settled: acked, dead-lettered or detached.
fn settled(ctx: &Ctx<'_>, g: GroupId, first: u64, lease: &Lease) -> Result<HashSet<u64>> {
    let mut settled = finished_in(ctx, g, first, lease.end)?;
    for (k, _) in ctx.scan(
        INFLIGHT,
        &keys::inflight(g, first),
        &keys::inflight(g, lease.end),
        lease.end.saturating_sub(first) as usize,
    )? {
        if let Some(o) = keys::parse_inflight(&k) {
            settled.insert(o);
        }
    }
    Ok(settled)
}

/// What [`convert`] made of a lease whose visibility entry is `(t, first)`.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    /// The record of the first offset, if it was unsettled: it now owns the entry.
    pub first: Option<Inflight>,
    /// Whether other offsets got records and entries (after `(t, first)`, so a scan
    /// must look again to see them).
    pub others: bool,
}

/// Turns an expired lease into ordinary inflight records: each unsettled offset gets
/// one at attempt 1, visible at `t`, with the lease's nonce (so its receipt still
/// works), and an entry in the visibility index; the lease is deleted. A stale entry
/// (no such lease at `t`) is deleted.
pub(crate) fn convert(ctx: &mut Ctx<'_>, g: GroupId, first: u64, t: u64) -> Result<Converted> {
    let entry_key = keys::visible(g, t, first);
    let lease = match ctx.get(INFLIGHT, keys::lease(g, first))? {
        Some(v) => records::decode_lease(&v)?,
        None => {
            ctx.delete(INFLIGHT, entry_key)?;
            return Ok(Converted::default());
        }
    };
    if lease.visible_at_ms != t {
        ctx.delete(INFLIGHT, entry_key)?;
        return Ok(Converted::default());
    }
    let Some(tid) = ctx.st.groups.get(&g).map(|gs| gs.rec.topic) else {
        return Ok(Converted::default());
    };
    let n = lease.end.saturating_sub(first) as usize;
    let settled = settled(ctx, g, first, &lease)?;
    let ready = ctx.scan(
        READY,
        &keys::ready(tid, first),
        &keys::ready(tid, lease.end),
        n,
    )?;
    let mut out = Converted::default();
    let mut present = HashSet::new();
    for (k, v) in &ready {
        let Some((_, offset)) = keys::parse_ready(k) else {
            continue;
        };
        present.insert(offset);
        if settled.contains(&offset) {
            continue;
        }
        let entry = records::decode_ready(v)?;
        let rec = first_delivery(&entry, &lease, t);
        ctx.put(
            INFLIGHT,
            keys::inflight(g, offset),
            records::encode_inflight(&rec),
        )?;
        if offset == first {
            ctx.put(INFLIGHT, entry_key, [])?;
            out.first = Some(rec);
        } else {
            ctx.put(INFLIGHT, keys::visible(g, t, offset), [])?;
            out.others = true;
        }
    }
    // Unsettled offsets whose messages retention removed will never be delivered or
    // acked: they leave the inflight count here.
    let retry = is_retry_at(ctx, g, t, first);
    for offset in first..lease.end {
        if !settled.contains(&offset) && !present.contains(&offset) {
            uncount(ctx, g, retry);
        }
    }
    if out.first.is_none() {
        ctx.delete(INFLIGHT, entry_key)?;
    }
    ctx.delete(INFLIGHT, keys::lease(g, first))?;
    Ok(out)
}

/// The live inflight record a visibility entry `(t, offset)` stands for: an ordinary
/// entry's record if it is still visible at `t`, or the first record of an expired
/// lease after [`convert`] (which sets `converted` when it made others). Stale
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
    if is_marker(v) {
        let c = convert(ctx, g, offset, t)?;
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
pub(crate) fn next_visible(r: &impl Read, g: GroupId, from: (u64, u64)) -> Result<Option<u64>> {
    let lower = keys::visible(g, from.0, from.1);
    let (_, upper) = keys::visible_range(g);
    let first = r.scan(INFLIGHT, &lower, &upper, 1)?;
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

/// Writes delivery `rec` of `offset` to group `g`: its inflight record and its entry
/// in the visibility index (replacing any earlier record of the offset).
pub(crate) fn put_record(ctx: &mut Ctx<'_>, g: GroupId, offset: u64, rec: &Inflight) -> Result<()> {
    ctx.put(
        INFLIGHT,
        keys::inflight(g, offset),
        records::encode_inflight(rec),
    )?;
    ctx.put(INFLIGHT, keys::visible(g, rec.visible_at_ms, offset), [])
}

/// Deletes a visibility entry by its key (stale, or taken by a redelivery).
pub(crate) fn delete_entry(ctx: &mut Ctx<'_>, entry_key: &[u8]) -> Result<()> {
    ctx.delete(INFLIGHT, entry_key)
}

/// Records that group `g` is done with `offset` (acked or dead-lettered): final.
pub(crate) fn finish(
    ctx: &mut Ctx<'_>,
    g: GroupId,
    offset: u64,
    how: Finished,
    ready_at_ms: u64,
) -> Result<()> {
    ctx.put(
        ACKED,
        keys::acked(g, offset),
        records::encode_acked(how, ready_at_ms),
    )
}

/// Records that one call acked every offset of the lease starting at `first`, a lease
/// of more than one offset: one ack entry for the whole run, and the lease and its
/// visibility entry are deleted, since nothing of it is left to expire. The caller has
/// taken each offset out of the counts.
pub(crate) fn finish_lease(ctx: &mut Ctx<'_>, g: GroupId, first: u64, lease: &Lease) -> Result<()> {
    let v = records::encode_acked_run(Finished::Acked, lease.ready_at_ms, lease.end);
    ctx.put(ACKED, keys::acked(g, first), v)?;
    ctx.delete(INFLIGHT, keys::lease(g, first))?;
    ctx.delete(INFLIGHT, keys::visible(g, lease.visible_at_ms, first))
}

/// How group `g` finished with `offset`, if it did: its own ack entry, or a run entry
/// of a lease acked whole that covers it.
pub(crate) fn finished_how(r: &impl Read, g: GroupId, offset: u64) -> Result<Option<Finished>> {
    if let Some(v) = r.get(ACKED, keys::acked(g, offset))? {
        return records::decode_acked(&v).map(Some);
    }
    run_covering(r, g, offset)?
        .map(|(_, v)| records::decode_acked(&v))
        .transpose()
}

/// The run entry `(first, value)` below `offset` that covers it, if any.
fn run_covering(r: &impl Read, g: GroupId, offset: u64) -> Result<Option<(u64, Box<[u8]>)>> {
    let Some((k, v)) = r.last_in(ACKED, &keys::acked(g, 0), &keys::acked(g, offset))? else {
        return Ok(None);
    };
    let Some(first) = keys::parse_acked(&k) else {
        return Ok(None);
    };
    Ok((records::acked_end(first, &v)? > offset).then_some((first, v)))
}

/// Deletes a group's inflight records, leases and visibility index, and its ack
/// entries from `from_offset` (a deleted group, or an offset reset); a run entry that
/// starts below `from_offset` and reaches past it is cut short there.
pub(crate) fn clear_group(ctx: &mut Ctx<'_>, g: GroupId, from_offset: u64) -> Result<()> {
    if let Some((first, v)) = run_covering(ctx, g, from_offset)? {
        let how = records::decode_acked(&v)?;
        let ready_at = records::ready_at(&v).unwrap_or(0);
        let cut = records::encode_acked_run(how, ready_at, from_offset);
        ctx.put(ACKED, keys::acked(g, first), cut)?;
    }
    let (lo, hi) = keys::inflight_range(g);
    ctx.delete_range(INFLIGHT, lo, hi)?;
    let (lo, hi) = keys::visible_range(g);
    ctx.delete_range(INFLIGHT, lo, hi)?;
    let (lo, hi) = keys::lease_range(g);
    ctx.delete_range(INFLIGHT, lo, hi)?;
    ctx.delete_range(ACKED, keys::acked(g, from_offset), keys::acked(g, u64::MAX))?;
    ctx.delete(ACKED, keys::acked(g, u64::MAX))?;
    Ok(())
}
