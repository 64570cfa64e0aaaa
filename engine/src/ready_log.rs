//! A topic's ready log (`ready`: topic ‖ offset), shared by every group of the topic:
//! where a message is once it is Ready. Offsets are dense and increase; each group
//! reads the log from its own cursor. The only code that appends to it.

use crate::error::Result;
use crate::store::families::{MESSAGES, READY, RUNS};
use crate::store::keys::{self, TopicId};
use crate::store::records::{self, Location};
use crate::types::MessageId;
use crate::writer::Ctx;

/// Appends a message to its topic's ready log. `locate`: also write its location
/// record (the pump writes one run record per step and topic instead).
pub(crate) fn append(
    ctx: &mut Ctx<'_>,
    topic: TopicId,
    id: MessageId,
    deliver_at_ms: u64,
    tag: &[u8],
    locate: bool,
) -> Result<u64> {
    let now = ctx.now;
    let Some(t) = ctx.st.topic_mut(topic) else {
        return Ok(u64::MAX);
    };
    let offset = t.rec.counters.ready_end;
    t.rec.counters.ready_end += 1;
    let mut buf = [0u8; 256];
    if let Some(v) = records::encode_ready_into(&mut buf, now, deliver_at_ms, id, tag) {
        ctx.put(READY, keys::ready(topic, offset), v)?;
    } else {
        let v = records::encode_ready(now, deliver_at_ms, id, tag);
        ctx.put(READY, keys::ready(topic, offset), v)?;
    }
    if locate {
        let loc = Location {
            deliver_at_ms,
            topic,
            offset,
            ready_at_ms: now,
        };
        ctx.put(MESSAGES, keys::location(id), records::encode_location(&loc))?;
    }
    ctx.ready_changed = true;
    if ctx.sh.config_observer().is_some() {
        ctx.readied.push((topic, now.saturating_sub(deliver_at_ms)));
    }
    Ok(offset)
}

/// A run being built: first timer key, first offset, count, last timer key.
pub(crate) type RunBuilder = ((u64, MessageId), u64, u32, (u64, MessageId));

/// Writes the location record of a run of messages one pump step made Ready together
/// (instead of one location record per message).
pub(crate) fn put_run(
    ctx: &mut Ctx<'_>,
    topic: TopicId,
    first: (u64, MessageId),
    run: &records::Run,
) -> Result<()> {
    ctx.put(
        RUNS,
        keys::run(topic, first.0, first.1),
        records::encode_run(run),
    )
}

/// Deletes offsets `[from, to)` of topic `topic`'s log (`to = u64::MAX`: the whole log).
pub(crate) fn delete_range(ctx: &mut Ctx<'_>, topic: TopicId, from: u64, to: u64) -> Result<()> {
    ctx.delete_range(READY, keys::ready(topic, from), keys::ready(topic, to))?;
    if to == u64::MAX {
        ctx.delete(READY, keys::ready(topic, u64::MAX))?;
    }
    Ok(())
}
