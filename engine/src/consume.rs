//! Consumption: receive, ack, nack and change_invisible_duration (SPEC §4).

use crate::error::{Error, Result};
use crate::failpoints;
use crate::inflight;
use crate::inflight::{entry_record, is_retry, remove_inflight};
use crate::redeliver::dead_letter;
use crate::store::families::{INFLIGHT, MESSAGES, READY};
use crate::store::keys::{self, GroupId};
use crate::store::records::{self, Finished, Inflight, Lease};
use crate::store::Read;
use crate::topics::ensure_group;
use crate::types::{GroupStart, MessageId, ReceiptHandle, ReceiveRequest, TagFilter};
use crate::writer::Ctx;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::time::Duration;

/// Shortest allowed invisible duration.
pub const MIN_INVISIBLE: Duration = Duration::from_millis(100);
/// Longest allowed invisible duration.
pub const MAX_INVISIBLE: Duration = Duration::from_secs(12 * 3600);
/// Most messages one receive returns.
pub const MAX_RECEIVE: usize = 1024;
/// Most non-matching entries one receive skips before it returns what it has.
const SKIP_BUDGET: usize = 16 * 1024;
/// Receives of at most this many new messages without a filter read the ready log by
/// point reads (see `receive`).
const POINT_READS: usize = 4;

/// One message handed out by the writer; the body is read after the commit.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub id: MessageId,
    pub attempt: u32,
    pub receipt: ReceiptHandle,
    pub ready_at_ms: u64,
    pub deliver_at_ms: u64,
}

fn invisible_ms(d: Duration) -> Result<u64> {
    if d < MIN_INVISIBLE || d > MAX_INVISIBLE {
        return Err(Error::BadInvisibleDuration(
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        ));
    }
    Ok(d.as_millis() as u64)
}

/// Hands out up to `max_messages`: retries first (oldest first), then new messages
/// from the group's cursor that match the filter.
pub(crate) fn receive(ctx: &mut Ctx<'_>, req: &ReceiveRequest) -> Result<Vec<Delivery>> {
    let inv = invisible_ms(req.invisible_duration)?;
    if req.max_messages == 0 || req.max_messages > MAX_RECEIVE {
        return Err(Error::BadRequest(format!(
            "max_messages must be 1..={MAX_RECEIVE}"
        )));
    }
    let call_filter = req.filter.as_deref().map(TagFilter::parse).transpose()?;
    let t = ctx.st.topic_by_name(&req.topic)?;
    let (tid, head, end) = (t.rec.id, t.rec.counters.head, t.rec.counters.ready_end);
    // Sizes need checking only if `max_messages` of the largest record could overflow
    // the budget (0: not known, check).
    let largest = t.rec.counters.max_record_bytes as usize;
    let budget = req
        .max_bytes
        .filter(|&b| largest == 0 || largest.saturating_mul(req.max_messages) > b);
    let g = ensure_group(ctx, tid, &req.group, GroupStart::Latest, None)?;
    let now = ctx.now;
    let visible_at = now.saturating_add(inv);
    let max_attempts = ctx.sh.config.max_delivery_attempts;
    let mut out = Vec::new();
    // Bytes of stored messages handed out so far, against `req.max_bytes`.
    let mut bytes = 0usize;
    let mut fits = |ctx: &Ctx<'_>, id: MessageId, handed: usize| -> Result<bool> {
        let Some(budget) = budget else {
            return Ok(true);
        };
        let len = ctx.value_len(MESSAGES, keys::message(id))?.unwrap_or(0);
        if handed > 0 && bytes.saturating_add(len) > budget {
            return Ok(false);
        }
        bytes = bytes.saturating_add(len);
        Ok(true)
    };

    // Retries: entries whose invisible time has passed, oldest first. An expired
    // lease found here becomes ordinary records first; a second scan sees them. The
    // scan is skipped while the group is known to have no entry visible yet.
    let (lo, group_end) = keys::visible_range(g);
    let known_clear = ctx
        .st
        .groups
        .get(&g)
        .is_some_and(|gs| gs.no_entry_before > now);
    let mut full = false;
    // The earliest entry left in the index (u64::MAX: none), when a scan shows that
    // none visible by now is left.
    let mut learned = None;
    for pass in 0..2 {
        if known_clear {
            break;
        }
        let mut converted = false;
        // Whether a visible entry stays in the index after this pass.
        let mut left = false;
        let mut later = None;
        // One row more than can be handed out: the first one not visible yet, if any.
        let limit = req.max_messages + 1;
        let rows = ctx.scan(INFLIGHT, &lo, &group_end, limit)?;
        let scanned = rows.len();
        for (k, v) in rows {
            let Some((t, offset)) = keys::parse_visible(&k) else {
                continue;
            };
            if t > now {
                later = Some(t);
                break;
            }
            if out.len() >= req.max_messages {
                left = true;
                break;
            }
            let Some(rec) = entry_record(ctx, g, (&k, &v), &mut converted)? else {
                continue;
            };
            let Some(rv) = ctx.get(READY, keys::ready(tid, offset))? else {
                // Retention or disk pressure removed it: nothing left to deliver.
                remove_inflight(ctx, g, offset, &rec)?;
                continue;
            };
            if rec.attempt >= max_attempts {
                dead_letter(ctx, g, offset, &rec, false)?;
                continue;
            }
            let entry = records::decode_ready(&rv)?;
            if call_filter
                .as_ref()
                .is_some_and(|f| !f.matches(entry.tag()))
            {
                // Not for this call's filter: it stays waiting for a matching receive.
                left = true;
                continue;
            }
            if !fits(ctx, rec.id, out.len())? {
                full = true;
                left = true;
                break;
            }
            let retry = is_retry(ctx, g, &rec, offset);
            inflight::delete_entry(ctx, &k)?;
            let d = hand_out(
                ctx,
                g,
                offset,
                rec.id,
                rec.attempt + 1,
                visible_at,
                entry.ready_at_ms,
                entry.deliver_at_ms,
            )?;
            if let Some(gs) = ctx.st.group_mut(g) {
                let c = &mut gs.rec.cursor;
                if retry {
                    c.retry = c.retry.saturating_sub(1);
                    c.inflight += 1;
                }
                c.redelivered += 1;
            }
            out.push(d);
        }
        learned = if converted || left {
            None
        } else {
            later.or((scanned < limit).then_some(u64::MAX))
        };
        if pass > 0 || !converted || full || out.len() >= req.max_messages {
            break;
        }
    }
    if let (Some(t), Some(gs)) = (learned, ctx.st.groups.get_mut(&g)) {
        // Entries written since the scan (this receive's own) lower it again below.
        gs.no_entry_before = t;
    }

    // New messages from the cursor.
    let cursor = ctx
        .st
        .groups
        .get(&g)
        .map_or(end, |gs| gs.rec.cursor.next_offset)
        .max(head);
    let mut next = cursor;
    if out.len() < req.max_messages && cursor < end {
        let want = req.max_messages - out.len();
        let filter = match &call_filter {
            Some(f) => f.clone(),
            None => ctx
                .st
                .groups
                .get(&g)
                .map_or(TagFilter::All, |gs| gs.filter.clone()),
        };
        let (mut taken, mut skipped, mut exhausted) = (0usize, 0u64, true);
        let mut run: Option<inflight::Run> = None;
        let hi = keys::ready(tid, end);
        let all = matches!(filter, TagFilter::All);
        // Without a filter every row is taken: read no more rows than wanted.
        let chunk = if all { want } else { want.clamp(32, 1024) };
        let mut on_row = |ctx: &mut Ctx<'_>, k: &[u8], v: &[u8]| -> Result<bool> {
            if taken == want || skipped as usize >= SKIP_BUDGET {
                exhausted = false;
                return Ok(false);
            }
            let Some((_, offset)) = keys::parse_ready(k) else {
                return Ok(true);
            };
            let entry = records::decode_ready(v)?;
            if !filter.matches(entry.tag()) {
                next = offset + 1;
                skipped += 1;
                return Ok(true);
            }
            if !fits(ctx, entry.id, out.len())? {
                exhausted = false;
                return Ok(false);
            }
            next = offset + 1;
            // Consecutive offsets share one lease; a gap (a skipped tag) starts another.
            if run.as_ref().is_some_and(|r| r.end != offset) {
                if let Some(r) = run.take() {
                    r.close(ctx, g, visible_at)?;
                }
            }
            let r = match &mut run {
                Some(r) => r,
                None => run.insert(inflight::Run::start(ctx, offset, entry.id)),
            };
            r.end = offset + 1;
            r.ready_at_ms = r.ready_at_ms.max(entry.ready_at_ms);
            let receipt = ReceiptHandle {
                group: g,
                offset,
                nonce: r.nonce,
            };
            if let Some(gs) = ctx.st.group_mut(g) {
                gs.rec.cursor.inflight += 1;
            }
            out.push(Delivery {
                id: entry.id,
                attempt: 1,
                receipt,
                ready_at_ms: entry.ready_at_ms,
                deliver_at_ms: entry.deliver_at_ms,
            });
            taken += 1;
            if taken == want {
                exhausted = false;
                return Ok(false);
            }
            Ok(true)
        };
        // A few rows without a filter: point reads of the next offsets (the ready log is
        // dense but for what retention removed) cost less than an iterator. A missing
        // row, or more rows, leave the rest to the walk.
        let mut from = cursor;
        let mut stopped = false;
        if all && want <= POINT_READS {
            while from < end {
                let k = keys::ready(tid, from);
                let Some(v) = ctx.get(READY, k)? else {
                    break;
                };
                from += 1;
                if !on_row(ctx, &k, &v)? {
                    stopped = true;
                    break;
                }
            }
        }
        if !stopped && from < end {
            ctx.walk(READY, &keys::ready(tid, from), &hi, chunk, &mut on_row)?;
        }
        if let Some(r) = run.take() {
            r.close(ctx, g, visible_at)?;
        }
        if exhausted && taken < want {
            // Nothing more below `end`: gaps left by retention are skipped too.
            next = end;
        }
        if let Some(gs) = ctx.st.group_mut(g) {
            gs.rec.cursor.skipped += skipped;
        }
    }
    if next != cursor
        || ctx
            .st
            .groups
            .get(&g)
            .is_some_and(|gs| gs.rec.cursor.next_offset < head)
    {
        if let Some(gs) = ctx.st.group_mut(g) {
            gs.rec.cursor.next_offset = next.max(gs.rec.cursor.next_offset);
        }
    }
    let early = out.iter().filter(|d| d.deliver_at_ms > now).count() as u64;
    if early > 0 {
        tracing::error!(early, "messages delivered before their delivery time");
        ctx.st.engine_mut().early_deliveries += early;
    }
    if !out.is_empty() {
        note_visible(ctx, g, visible_at);
    }
    Ok(out)
}

/// Writes an inflight record and its index entry; returns the delivery.
#[allow(clippy::too_many_arguments)]
fn hand_out(
    ctx: &mut Ctx<'_>,
    g: GroupId,
    offset: u64,
    id: MessageId,
    attempt: u32,
    visible_at_ms: u64,
    ready_at_ms: u64,
    deliver_at_ms: u64,
) -> Result<Delivery> {
    let nonce = ctx.st.next_seq();
    let rec = Inflight {
        id,
        attempt,
        visible_at_ms,
        nonce,
        ready_at_ms,
    };
    inflight::put_record(ctx, g, offset, &rec)?;
    Ok(Delivery {
        id,
        attempt,
        receipt: ReceiptHandle {
            group: g,
            offset,
            nonce,
        },
        ready_at_ms,
        deliver_at_ms,
    })
}

/// Tells the pump about a new visibility time (it may be the earliest), and later
/// receives that an entry becomes visible at `t`. Every new visibility entry is noted
/// here except those an expired lease turns into, which keep the lease's own time.
fn note_visible(ctx: &mut Ctx<'_>, g: GroupId, t: u64) {
    let mut kick = false;
    if let Some(gs) = ctx.st.groups.get_mut(&g) {
        gs.no_entry_before = gs.no_entry_before.min(t);
        if gs.next_visible.is_none_or(|n| t < n) {
            gs.next_visible = Some(t);
            kick = true;
        }
    }
    ctx.kick_pump |= kick;
}

/// What a receipt names: a delivery with its own inflight record, or an offset of a
/// lease (the lease's first offset and record).
enum Held {
    Own(Inflight),
    Leased(u64, Lease),
}

/// What an ack call read ahead for its receipts: receipts of one receive name
/// consecutive offsets, so two range scans replace two point reads per receipt.
#[derive(Default)]
struct Lookahead {
    /// The group and the offsets `[lo, hi)` read ahead.
    span: Option<(GroupId, u64, u64)>,
    /// Own inflight records in the span, by offset − lo (the span is at most four
    /// times the receipts, so a dense table beats hashing each offset).
    own: Vec<Option<Inflight>>,
    /// Offsets in the span with an ack entry, by offset − lo.
    finished: Vec<bool>,
    /// The lease found last.
    lease: Option<(GroupId, u64, Lease)>,
    /// Offsets in the span this call has settled, by offset − lo.
    settled: Vec<bool>,
}

impl Lookahead {
    /// Reads ahead for `receipts` of group `g` when their offsets are dense enough.
    fn read(ctx: &Ctx<'_>, g: GroupId, receipts: &[ReceiptHandle]) -> Result<Lookahead> {
        let offsets: Vec<u64> = receipts
            .iter()
            .filter(|r| r.group == g)
            .map(|r| r.offset)
            .collect();
        let (Some(&lo), Some(&hi)) = (offsets.iter().min(), offsets.iter().max()) else {
            return Ok(Lookahead::default());
        };
        let hi = hi.saturating_add(1);
        let n = offsets.len() as u64;
        if n < 8 || hi - lo > 4 * n {
            return Ok(Lookahead::default());
        }
        let limit = (hi - lo) as usize;
        let mut own = vec![None; limit];
        for (k, v) in ctx.scan(
            INFLIGHT,
            &keys::inflight(g, lo),
            &keys::inflight(g, hi),
            limit,
        )? {
            let at = keys::parse_inflight(&k).and_then(|o| o.checked_sub(lo));
            if let Some(slot) = at.and_then(|i| own.get_mut(i as usize)) {
                *slot = Some(records::decode_inflight(&v)?);
            }
        }
        let mut finished = vec![false; limit];
        for o in inflight::finished_in(ctx, g, lo, hi)? {
            if let Some(slot) = o.checked_sub(lo).and_then(|i| finished.get_mut(i as usize)) {
                *slot = true;
            }
        }
        Ok(Lookahead {
            span: Some((g, lo, hi)),
            own,
            finished,
            lease: None,
            settled: vec![false; limit],
        })
    }

    /// The index of `offset` in the span's tables, if the span covers it.
    fn slot(&self, g: GroupId, offset: u64) -> Option<usize> {
        self.span
            .filter(|&(sg, lo, hi)| sg == g && lo <= offset && offset < hi)
            .map(|(_, lo, _)| (offset - lo) as usize)
    }
}

/// The id receipts of `group` on `topic` carry.
fn receipt_group(ctx: &Ctx<'_>, topic: &str, group: &str) -> Result<GroupId> {
    let t = ctx.st.topic_by_name(topic)?;
    t.groups.get(group).copied().ok_or_else(|| {
        Error::BadReceiptHandle(format!("group {group:?} has no deliveries on {topic:?}"))
    })
}

/// Finds the live delivery a receipt names, for group `g` (`group` on `topic`).
fn resolve(
    ctx: &Ctx<'_>,
    (g, topic, group): (GroupId, &str, &str),
    r: ReceiptHandle,
    ahead: &mut Lookahead,
) -> Result<(ReceiptHandle, Held)> {
    if g != r.group {
        return Err(Error::BadReceiptHandle(format!(
            "receipt belongs to another topic or group than {topic:?}/{group:?}"
        )));
    }
    let stale = || {
        Error::BadReceiptHandle(
            "stale receipt: the message was delivered again or its receipt was replaced".into(),
        )
    };
    let gone = || Error::BadReceiptHandle("no such delivery (already acked, or reset)".into());
    let slot = ahead.slot(r.group, r.offset);
    let own = if let Some(i) = slot {
        ahead.own.get(i).copied().flatten()
    } else {
        ctx.get(INFLIGHT, keys::inflight(r.group, r.offset))?
            .map(|v| records::decode_inflight(&v))
            .transpose()?
    };
    if let Some(rec) = own {
        if rec.nonce != r.nonce {
            return Err(stale());
        }
        return Ok((r, Held::Own(rec)));
    }
    let found = match ahead.lease {
        Some((cg, first, l)) if cg == r.group && first <= r.offset && r.offset < l.end => {
            Some((first, l))
        }
        _ => inflight::covering(ctx, r.group, r.offset)?,
    };
    let Some((first, l)) = found else {
        return Err(gone());
    };
    ahead.lease = Some((r.group, first, l));
    if l.nonce != r.nonce {
        return Err(stale());
    }
    let finished = if let Some(i) = slot {
        ahead.finished.get(i).copied().unwrap_or(false)
    } else {
        inflight::is_finished(ctx, r.group, r.offset)?
    };
    if finished {
        return Err(gone());
    }
    Ok((r, Held::Leased(first, l)))
}

/// Acks each receipt; each succeeds or fails on its own.
pub(crate) fn ack(
    ctx: &mut Ctx<'_>,
    topic: &str,
    group: &str,
    receipts: &[ReceiptHandle],
) -> Result<Vec<Result<()>>> {
    if failpoints::fires(failpoints::ACK_WRITE) {
        return Err(failpoints::injected(failpoints::ACK_WRITE));
    }
    let mut seen = HashSet::default();
    let g = receipt_group(ctx, topic, group);
    let mut ahead = match g {
        Ok(g) => Lookahead::read(ctx, g, receipts)?,
        Err(_) => Lookahead::default(),
    };
    let mut out = Vec::with_capacity(receipts.len());
    let mut leased = LeasedAcks::default();
    for &r in receipts {
        out.push(g.clone().and_then(|g| {
            ack_one(
                ctx,
                (g, topic, group),
                r,
                &mut seen,
                &mut ahead,
                &mut leased,
            )
        }));
    }
    leased.write(ctx)?;
    Ok(out)
}

/// The leased offsets one ack call acked, written when the call ends: a lease of more
/// than one offset whose every offset is among them gets one ack entry for the run (a
/// receive of 1,024 settled by one ack writes one entry, not 1,024), the others one
/// entry per offset.
#[derive(Default)]
struct LeasedAcks {
    /// `(group, lease's first offset, lease, its offsets acked)`, in the call's order.
    leases: Vec<(GroupId, u64, Lease, Vec<u64>)>,
    /// Where each `(group, first)` is in `leases`.
    at: HashMap<(GroupId, u64), usize>,
}

impl LeasedAcks {
    fn add(&mut self, g: GroupId, first: u64, lease: Lease, offset: u64) {
        // Receipts of one lease usually come together: the last lease needs no lookup.
        let i = match self.leases.last() {
            Some(&(lg, lf, ..)) if (lg, lf) == (g, first) => self.leases.len() - 1,
            _ => *self.at.entry((g, first)).or_insert_with(|| {
                self.leases.push((g, first, lease, Vec::new()));
                self.leases.len() - 1
            }),
        };
        if let Some((.., offsets)) = self.leases.get_mut(i) {
            offsets.push(offset);
        }
    }

    fn write(self, ctx: &mut Ctx<'_>) -> Result<()> {
        for (g, first, lease, offsets) in self.leases {
            let len = lease.end.saturating_sub(first);
            // A lease of one offset (receives make none now, but a store written
            // before may hold them) keeps the plain entry and is deleted when its
            // invisible time ends.
            if len > 1 && offsets.len() as u64 == len {
                inflight::finish_lease(ctx, g, first, &lease)?;
                continue;
            }
            for offset in offsets {
                inflight::finish(ctx, g, offset, Finished::Acked, lease.ready_at_ms)?;
            }
        }
        Ok(())
    }
}

fn ack_one(
    ctx: &mut Ctx<'_>,
    named: (GroupId, &str, &str),
    receipt: ReceiptHandle,
    seen: &mut HashSet<(GroupId, u64)>,
    ahead: &mut Lookahead,
    leased: &mut LeasedAcks,
) -> Result<()> {
    let (r, held) = resolve(ctx, named, receipt, ahead)?;
    let twice = match ahead.slot(r.group, r.offset) {
        Some(i) => ahead
            .settled
            .get_mut(i)
            .is_some_and(|done| std::mem::replace(done, true)),
        None => !seen.insert((r.group, r.offset)),
    };
    if twice {
        return Err(Error::BadReceiptHandle(
            "receipt given twice in one call".into(),
        ));
    }
    match held {
        Held::Own(rec) => {
            remove_inflight(ctx, r.group, r.offset, &rec)?;
            inflight::finish(ctx, r.group, r.offset, Finished::Acked, rec.ready_at_ms)?;
        }
        Held::Leased(first, l) => {
            // Settled by an ack entry written when the call ends (see `LeasedAcks`).
            inflight::uncount_leased(ctx, r.group, first, &l);
            leased.add(r.group, first, l, r.offset);
        }
    }
    if let Some(gs) = ctx.st.group_mut(r.group) {
        gs.rec.cursor.acked += 1;
    }
    Ok(())
}

/// The inflight record a receipt names, taken out of the group's counts (and its lease
/// or the index) so the caller can give it a new visibility or dead-letter it.
fn take(
    ctx: &mut Ctx<'_>,
    topic: &str,
    group: &str,
    r: ReceiptHandle,
) -> Result<(ReceiptHandle, Inflight)> {
    let g = receipt_group(ctx, topic, group)?;
    let (r, held) = resolve(ctx, (g, topic, group), r, &mut Lookahead::default())?;
    match held {
        Held::Own(rec) => {
            remove_inflight(ctx, r.group, r.offset, &rec)?;
            Ok((r, rec))
        }
        Held::Leased(first, l) => inflight::detach(ctx, r.group, r.offset, first, &l)?
            .map(|rec| (r, rec))
            .ok_or_else(|| Error::BadReceiptHandle("the message is no longer retained".into())),
    }
}

/// Makes a delivery visible again after the retry backoff for its attempt (or sends
/// it to the dead-letter topic when it has no attempts left).
pub(crate) fn nack(
    ctx: &mut Ctx<'_>,
    topic: &str,
    group: &str,
    receipt: ReceiptHandle,
) -> Result<()> {
    let (r, rec) = take(ctx, topic, group, receipt)?;
    let cfg = &ctx.sh.config;
    if rec.attempt >= cfg.max_delivery_attempts {
        return dead_letter(ctx, r.group, r.offset, &rec, true);
    }
    let idx = (rec.attempt as usize).saturating_sub(1);
    let backoff = cfg
        .retry_backoff
        .get(idx)
        .or(cfg.retry_backoff.last())
        .copied()
        .unwrap_or(Duration::from_secs(10));
    let at = ctx.now.saturating_add(backoff.as_millis() as u64);
    replace_visibility(ctx, r, &rec, at)?;
    Ok(())
}

/// Moves a delivery to the dead-letter topic at once, whatever its attempt (what a
/// client asks for when it gives up on a message itself).
pub(crate) fn dead_letter_now(
    ctx: &mut Ctx<'_>,
    topic: &str,
    group: &str,
    receipt: ReceiptHandle,
) -> Result<()> {
    let (r, rec) = take(ctx, topic, group, receipt)?;
    dead_letter(ctx, r.group, r.offset, &rec, true)
}

/// Moves a delivery's visibility to `now + d` and returns its new receipt.
pub(crate) fn change_invisible(
    ctx: &mut Ctx<'_>,
    topic: &str,
    group: &str,
    receipt: ReceiptHandle,
    d: Duration,
) -> Result<ReceiptHandle> {
    let inv = invisible_ms(d)?;
    let (r, rec) = take(ctx, topic, group, receipt)?;
    let at = ctx.now.saturating_add(inv);
    replace_visibility(ctx, r, &rec, at)
}

/// Gives a delivery taken with [`take`] a new record visible at `at`, and a new receipt.
fn replace_visibility(
    ctx: &mut Ctx<'_>,
    r: ReceiptHandle,
    rec: &Inflight,
    at: u64,
) -> Result<ReceiptHandle> {
    let nonce = ctx.st.next_seq();
    let new = Inflight {
        visible_at_ms: at,
        nonce,
        ..*rec
    };
    inflight::put_record(ctx, r.group, r.offset, &new)?;
    if let Some(gs) = ctx.st.group_mut(r.group) {
        gs.rec.cursor.inflight += 1;
    }
    note_visible(ctx, r.group, at);
    Ok(ReceiptHandle {
        group: r.group,
        offset: r.offset,
        nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn receipts_print_as_40_hex_digits_and_parse_back() {
        for (group, offset, nonce) in [
            (0, 0, 0),
            (7, 1 << 40, 0xdead_beef),
            (u32::MAX, u64::MAX, u64::MAX),
        ] {
            let r = ReceiptHandle {
                group,
                offset,
                nonce,
            };
            let s = r.to_string();
            assert_eq!(s, format!("{group:08x}{offset:016x}{nonce:016x}"));
            assert_eq!(ReceiptHandle::from_str(&s).unwrap(), r);
            assert_eq!(ReceiptHandle::from_str(&s.to_uppercase()).unwrap(), r);
            // One byte just outside each digit range, in each part.
            for at in [0, 7, 8, 23, 24, 39] {
                for c in ['/', ':', '@', 'G', '`', 'g', 'é'] {
                    let mut bad = s.clone();
                    bad.replace_range(at..at + 1, &c.to_string());
                    assert!(ReceiptHandle::from_str(&bad).is_err(), "{bad:?}");
                }
            }
        }
        for bad in ["", "zz", &"0".repeat(39), &"g".repeat(40), &"0".repeat(41)] {
            assert!(
                matches!(
                    ReceiptHandle::from_str(bad),
                    Err(Error::BadReceiptHandle(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn message_ids_print_as_32_hex_digits() {
        for v in [0u128, 1, 0xabc, u128::MAX, 1_700_000_000_000u128 << 64 | 42] {
            assert_eq!(MessageId(v).to_string(), format!("{v:032x}"));
            assert_eq!(MessageId(v).hex(), format!("{v:032x}"));
        }
    }
}
