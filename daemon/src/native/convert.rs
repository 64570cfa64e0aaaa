//! Wire types to engine types and back, field by field.

use crate::broker::Report;
use sundial_engine::{
    GroupMessageState, GroupStart, MessageState, MessageView, NewMessage, ReceiptHandle,
    ReceivedMessage, SendReceipt, TopicKind, TopicStats,
};
use sundial_wire::{
    Delivery, FamilyCounts, GroupCounts, GroupInfo, GroupState, MessageInfo, OutgoingMessage, Sent,
    StartFrom, StatsReport, TopicCounts, TopicInfo, TopicType,
};

/// A topic type as the engine names it.
pub fn topic_kind(t: TopicType) -> TopicKind {
    match t {
        TopicType::Normal => TopicKind::Normal,
        TopicType::Delay => TopicKind::Delay,
        TopicType::Mixed => TopicKind::Mixed,
    }
}

/// Where a new group starts, as the engine names it.
pub fn group_start(f: StartFrom) -> GroupStart {
    match f {
        StartFrom::Latest => GroupStart::Latest,
        StartFrom::Earliest => GroupStart::Earliest,
    }
}

/// A message to send, for the engine.
pub fn new_message(m: OutgoingMessage) -> NewMessage {
    NewMessage {
        topic: m.topic,
        tag: m.tag,
        keys: m.keys,
        properties: m.properties,
        body: m.body,
        deliver_at_ms: m.deliver_at_ms,
    }
}

/// A send receipt, for the wire.
pub fn receipt(r: SendReceipt) -> Sent {
    Sent {
        id: r.message_id.0,
        deliver_at_ms: r.deliver_at_ms,
        adjusted: r.adjusted,
    }
}

/// A received message, for the wire (the topic is the receive's).
pub fn delivered(m: ReceivedMessage) -> Delivery {
    Delivery {
        id: m.message_id.0,
        tag: m.tag,
        keys: m.keys,
        properties: m.properties,
        body: m.body,
        deliver_at_ms: m.deliver_at_ms,
        ready_at_ms: m.ready_at_ms,
        delivery_attempt: m.delivery_attempt,
        receipt: wire_handle(m.receipt_handle),
    }
}

/// A receipt handle, for the engine.
pub fn handle(h: sundial_wire::ReceiptHandle) -> ReceiptHandle {
    ReceiptHandle {
        group: h.group,
        offset: h.offset,
        nonce: h.nonce,
    }
}

/// A receipt handle, for the wire.
pub fn wire_handle(h: ReceiptHandle) -> sundial_wire::ReceiptHandle {
    sundial_wire::ReceiptHandle {
        group: h.group,
        offset: h.offset,
        nonce: h.nonce,
    }
}

/// A topic, for the wire.
pub fn topic_info(t: sundial_engine::TopicInfo) -> TopicInfo {
    TopicInfo {
        name: t.name,
        message_type: t.kind.to_string(),
        created_ms: t.created_ms,
    }
}

/// A group, for the wire.
pub fn group_info(g: sundial_engine::GroupInfo) -> GroupInfo {
    GroupInfo {
        group: g.name,
        topic: g.topic,
        filter: g.filter,
        created_ms: g.created_ms,
    }
}

/// A topic's counters and its groups', for the wire.
pub fn topic_counts(t: TopicStats) -> TopicCounts {
    TopicCounts {
        topic: t.name,
        message_type: t.kind.to_string(),
        timing: t.timing,
        ready_total: t.ready_total,
        sent: t.sent,
        recalled: t.recalled,
        purged: t.purged,
        dropped: t.dropped,
        groups: t
            .groups
            .into_iter()
            .map(|g| GroupCounts {
                group: g.name,
                ready: g.backlog,
                inflight: g.inflight,
                retry: g.retry,
                acked: g.acked,
                dead_lettered: g.dead_lettered,
                redelivered: g.redelivered,
                skipped: g.skipped,
                next_offset: g.next_offset,
            })
            .collect(),
    }
}

/// One message's state, per group, for the wire.
pub fn message_info(v: MessageView) -> MessageInfo {
    let (state, ready_at_ms) = match v.state {
        MessageState::Timing => ("Timing", None),
        MessageState::Ready { ready_at_ms } => ("Ready", Some(ready_at_ms)),
    };
    MessageInfo {
        message_id: v.message_id.hex(),
        topic: v.topic,
        tag: v.tag,
        keys: v.keys,
        properties: v.properties,
        body_bytes: v.body_len as u64,
        born_ms: v.born_ms,
        deliver_at_ms: v.deliver_at_ms,
        adjusted: v.adjusted,
        state: state.into(),
        ready_at_ms,
        groups: v
            .groups
            .into_iter()
            .map(|(group, s)| {
                let (state, attempt, visible_at_ms) = match s {
                    GroupMessageState::Ready => ("Ready", None, None),
                    GroupMessageState::Inflight {
                        attempt,
                        visible_at_ms,
                    } => ("Inflight", Some(attempt), Some(visible_at_ms)),
                    GroupMessageState::Retry { attempt } => ("Retry", Some(attempt), None),
                    GroupMessageState::Acked => ("Acked", None, None),
                    GroupMessageState::DeadLettered => ("DeadLettered", None, None),
                    GroupMessageState::Skipped => ("Skipped", None, None),
                };
                GroupState {
                    group,
                    state: state.into(),
                    attempt,
                    visible_at_ms,
                }
            })
            .collect(),
    }
}

/// A stats report, for the wire.
pub fn stats_report(r: Report) -> StatsReport {
    let s = r.engine;
    StatsReport {
        topics: s.topics.into_iter().map(topic_counts).collect(),
        timing_total: s.timing_total,
        early_deliveries: s.early_deliveries,
        families: s
            .families
            .into_iter()
            .map(|f| FamilyCounts {
                family: f.name,
                sst_bytes: f.sst_bytes,
                memtable_bytes: f.memtable_bytes,
                estimated_keys: f.estimated_keys,
                pending_compaction_bytes: f.pending_compaction_bytes,
            })
            .collect(),
        disk_bytes: s.disk_bytes,
        disk_high_watermark_bytes: s.disk_high_watermark_bytes,
        disk_high_ratio: s.disk_high_ratio,
        filesystem_used_bytes: s.filesystem.map(|f| f.0),
        filesystem_size_bytes: s.filesystem.map(|f| f.1),
        storage_full: s.storage_full,
        write_stopped: s.write_stopped,
        poisoned: s.poisoned,
        block_cache_bytes: s.block_cache_bytes,
        block_cache_pinned_bytes: s.block_cache_pinned_bytes,
        table_readers_bytes: s.table_readers_bytes,
        connections: r.connections,
        uptime_s: r.uptime_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's and the wire's receipt handles are two types with two text forms
    /// (the wire crate cannot use the engine's): a handle keeps its numbers through the
    /// conversion both ways, and both sides print the same text and read each other's.
    #[test]
    fn receipt_handles_convert_and_print_alike() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases = vec![(0, 0, 0), (u32::MAX, u64::MAX, u64::MAX), (1, 2, 3)];
        cases.extend((0..1000).map(|_| (next() as u32, next() >> (next() % 64), next())));
        for (group, offset, nonce) in cases {
            let e = ReceiptHandle {
                group,
                offset,
                nonce,
            };
            let w = wire_handle(e);
            assert_eq!(handle(w), e);
            assert_eq!(e.to_string(), w.to_string());
            let text = e.to_string();
            assert_eq!(text.parse::<sundial_wire::ReceiptHandle>().ok(), Some(w));
            assert_eq!(w.to_string().parse::<ReceiptHandle>().ok(), Some(e));
            assert_eq!(text.to_uppercase().parse::<ReceiptHandle>().ok(), Some(e));
        }
    }
}
