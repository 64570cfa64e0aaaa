//! The timer pump: moves due messages from the timer index to their topic's ready log.
//!
//! It sleeps until the earliest due time (no polling tick) and is woken when an earlier
//! message arrives. Each step moves at most `pump_step` entries in one atomic batch, so a
//! burst of a million messages due in the same millisecond starts flowing at once and
//! other work interleaves between steps. Scans are bounded below by a persisted
//! watermark (every key under it has been moved) and above by `now + 1`, and moved keys
//! are removed with SingleDelete (a step that moved many, with one range deletion up to
//! the new watermark), so scans never wade through old tombstones.

use crate::error::Result;
use crate::failpoints;
use crate::messages;
use crate::ready_log;
use crate::redeliver;
use crate::store::families::TIMER;
use crate::store::keys::{self, TopicId};
use crate::store::records::{self};
use crate::timer;
use crate::types::MessageId;
use crate::writer::{self, Ctx};
use crate::Shared;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// What one pump step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Messages moved from Timing to Ready.
    pub promoted: u64,
    /// Inflight entries whose invisible time ran out (now waiting for redelivery).
    pub expired: u64,
    /// Messages moved to a dead-letter topic.
    pub dead_lettered: u64,
    /// Whether more work is due right now.
    pub more: bool,
}

/// Timer entries read at a time while moving them.
const WALK_CHUNK: usize = 1024;
/// A step that moves at least this many entries removes them with one range deletion
/// instead of a SingleDelete each. Fewer stay single: a range tombstone costs every
/// later read of the timer family a little until compaction drops it, so there is at
/// most one per this many moved entries.
const RANGE_DELETE_MIN: usize = 1024;

/// Moves up to `max` due timer entries to Ready.
pub(crate) fn promote(ctx: &mut Ctx<'_>, max: usize) -> Result<(u64, bool)> {
    let now = ctx.now;
    let (wm_ms, wm_id) = ctx.st.engine.watermark;
    let lower = keys::timer(wm_ms, MessageId(wm_id));
    let upper = keys::timer(now.saturating_add(1), MessageId(0));
    if lower >= upper {
        return Ok((0, false));
    }
    let mut moved = 0usize;
    let mut last = None;
    // The keys moved, deleted one by one after the walk unless there are enough for a
    // range deletion.
    let mut moved_keys: Vec<[u8; 24]> = Vec::new();
    // Per topic: (first timer key, first offset, count, last timer key).
    let mut runs: rustc_hash::FxHashMap<TopicId, ready_log::RunBuilder> = Default::default();
    ctx.walk(TIMER, &lower, &upper, max.min(WALK_CHUNK), |ctx, k, v| {
        if moved >= max {
            return Ok(false);
        }
        moved += 1;
        let Some((t, id)) = keys::parse_timer(k) else {
            tracing::warn!("skipping malformed timer key");
            timer::remove_key(ctx, k)?;
            return Ok(true);
        };
        match records::decode_timer(v) {
            Ok((topic, tag)) if ctx.st.topics.contains_key(&topic) => {
                let offset = ready_log::append(ctx, topic, id, t, tag, false)?;
                let r = runs.entry(topic).or_insert(((t, id), offset, 0, (t, id)));
                r.2 += 1;
                r.3 = (t, id);
                if let Some(ts) = ctx.st.topic_mut(topic) {
                    ts.rec.counters.timing = ts.rec.counters.timing.saturating_sub(1);
                }
            }
            _ => {
                // Its topic was deleted (or the entry is unreadable): nothing can receive it.
                messages::delete_record(ctx, id)?;
            }
        }
        if moved_keys.len() < RANGE_DELETE_MIN {
            moved_keys.push(keys::timer(t, id));
        }
        last = Some((t, id));
        Ok(true)
    })?;
    for (topic, (first, first_offset, count, last)) in runs {
        let run = records::Run {
            last_deliver_at_ms: last.0,
            first_offset,
            count,
            ready_at_ms: now,
            last_id: last.1,
        };
        ready_log::put_run(ctx, topic, first, &run)?;
    }
    let more = moved >= max;
    let new_wm = match (more, last) {
        (true, Some((t, id))) => match id.0.checked_add(1) {
            Some(next) => (t, next),
            None => (t + 1, 0),
        },
        _ => (now.saturating_add(1), 0),
    };
    if moved_keys.len() >= RANGE_DELETE_MIN {
        // Every key in [lower, new watermark) was just moved: timer keys are only
        // written above the engine's time, which the watermark never passes, so none can
        // appear below it later.
        ctx.delete_range(TIMER, &lower, &keys::timer(new_wm.0, MessageId(new_wm.1)))?;
    } else {
        for k in &moved_keys {
            timer::remove_key(ctx, k)?;
        }
    }
    if new_wm > ctx.st.engine.watermark {
        ctx.st.engine_mut().watermark = new_wm;
    }
    ctx.st.next_timer_due = if more {
        Some(now)
    } else {
        timer::next_due(ctx, ctx.st.engine.watermark)?
    };
    record_checkpoint(ctx);
    Ok((moved as u64, more))
}

/// Notes "everything due before the watermark was Ready by now", which is what lets
/// retention count from Ready time without a per-message ready-time lookup.
fn record_checkpoint(ctx: &mut Ctx<'_>) {
    let now = ctx.now;
    let w = ctx.st.engine.watermark.0;
    let every = ctx.sh.checkpoint_every_ms();
    let retention = ctx.sh.retention_ms();
    let cps = &ctx.st.checkpoints;
    if cps
        .last()
        .is_some_and(|&(lw, lt)| lw == w || now < lt + every)
    {
        return;
    }
    let cps = ctx.st.checkpoints_mut();
    cps.push((w, now));
    // Keep the newest checkpoint that is already past retention and all later ones.
    let expired = cps
        .iter()
        .filter(|&&(_, t)| t.saturating_add(retention) < now)
        .count();
    if expired > 1 {
        cps.drain(..expired - 1);
    }
}

/// Most promotion steps in one pump job, and the time they may take together: when a
/// burst is due, the pump gets this much of each writer round instead of one step, so
/// consumers' jobs in the same rounds do not slow the burst to their pace.
const STEPS_PER_TICK: usize = 8;
const TICK_BUDGET: Duration = Duration::from_millis(4);

/// One pump job: promotion steps (each its own atomic batch) while more is due, within
/// a bound, then due inflight expiries.
pub(crate) fn tick(ctx: &mut Ctx<'_>) -> Result<TickReport> {
    if failpoints::fires(failpoints::PUMP_MOVE) {
        return Err(failpoints::injected(failpoints::PUMP_MOVE));
    }
    let step = ctx.sh.config.pump_step.max(1);
    let started = std::time::Instant::now();
    let (mut promoted, mut more_timers) = (0, true);
    for _ in 0..STEPS_PER_TICK {
        let (n, more) = promote(ctx, step)?;
        promoted += n;
        more_timers = more;
        if !more || started.elapsed() >= TICK_BUDGET {
            break;
        }
    }
    let (expired, dead, more_expiry) = redeliver::expire_due(ctx, step)?;
    Ok(TickReport {
        promoted,
        expired,
        dead_lettered: dead,
        more: more_timers || more_expiry,
    })
}

/// The background pump: sleep until the next due time, then step until idle.
pub(crate) fn run(sh: Arc<Shared>) {
    let _dart = writer::PoisonOnPanic::new(&sh, "pump");
    let clock = sh.config.clock.clone();
    loop {
        if sh.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let now = clock.now_ms();
        let due = sh
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_due();
        match due {
            Some(d) if d <= now => {
                let r = writer::submit(&sh, false, tick).wait();
                if let Err(e) = r {
                    if sh.shutdown.load(Ordering::SeqCst) {
                        return;
                    }
                    tracing::error!(error = %e, "timer pump step failed");
                    sh.pump_wake.wait(Some(Duration::from_millis(200)));
                }
            }
            Some(d) => sh.pump_wake.wait(clock.sleep_hint(d)),
            None => sh
                .pump_wake
                .wait(clock.sleep_hint(now.saturating_add(60_000))),
        }
    }
}
