//! Every key encoding, in one place. All integers are big-endian so that RocksDB's
//! bytewise order equals the order of the tuples they encode.

use crate::types::MessageId;

/// Topic ids are assigned at creation and never reused.
pub type TopicId = u32;
/// Group ids are assigned at creation and never reused.
pub type GroupId = u32;

/// `timer`: `deliver_at_ms ‖ msg_id`, so due messages come out of one range scan.
pub fn timer(deliver_at_ms: u64, id: MessageId) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&deliver_at_ms.to_be_bytes());
    k[8..].copy_from_slice(&id.to_bytes());
    k
}

/// Splits a `timer` key.
pub fn parse_timer(k: &[u8]) -> Option<(u64, MessageId)> {
    if k.len() != 24 {
        return None;
    }
    let t = u64::from_be_bytes(k[..8].try_into().ok()?);
    let id = MessageId::from_bytes(k[8..24].try_into().ok()?);
    Some((t, id))
}

/// `messages`: the message record, keyed by id.
pub fn message(id: MessageId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..16].copy_from_slice(&id.to_bytes());
    k[16] = 0;
    k
}

/// `messages`: where a Ready message sits in its topic's ready log.
pub fn location(id: MessageId) -> [u8; 17] {
    let mut k = message(id);
    k[16] = 1;
    k
}

/// `runs`: a run of consecutive ready-log offsets one pump step filled for one topic,
/// keyed by its first message's timer key: `0xff ‖ topic ‖ deliver_at ‖ id`. (Stores
/// written before the `runs` family kept these in `messages`, where no record key
/// starts with `0xff` since message ids begin with a millisecond time; opening one
/// moves them.)
pub fn run(topic: TopicId, deliver_at_ms: u64, id: MessageId) -> [u8; 29] {
    let mut k = [0u8; 29];
    k[0] = 0xff;
    k[1..5].copy_from_slice(&topic.to_be_bytes());
    k[5..13].copy_from_slice(&deliver_at_ms.to_be_bytes());
    k[13..].copy_from_slice(&id.to_bytes());
    k
}

/// The prefix of every run of one topic.
pub fn run_prefix(topic: TopicId) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = 0xff;
    k[1..].copy_from_slice(&topic.to_be_bytes());
    k
}

/// `ready`: `topic ‖ offset`.
pub fn ready(topic: TopicId, offset: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&topic.to_be_bytes());
    k[4..].copy_from_slice(&offset.to_be_bytes());
    k
}

/// The offset in a `ready` key.
pub fn parse_ready(k: &[u8]) -> Option<(TopicId, u64)> {
    if k.len() != 12 {
        return None;
    }
    Some((
        u32::from_be_bytes(k[..4].try_into().ok()?),
        u64::from_be_bytes(k[4..12].try_into().ok()?),
    ))
}

const INFLIGHT_RECORD: u8 = b'i';
const INFLIGHT_VISIBLE: u8 = b'v';
const INFLIGHT_LEASE: u8 = b'l';

/// `tag ‖ group ‖ offset`: the layout of inflight records and leases.
fn group_offset(tag: u8, group: GroupId, offset: u64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = tag;
    k[1..5].copy_from_slice(&group.to_be_bytes());
    k[5..].copy_from_slice(&offset.to_be_bytes());
    k
}

/// The offset in a [`group_offset`] key with `tag`.
fn parse_group_offset(tag: u8, k: &[u8]) -> Option<u64> {
    if k.len() != 13 || k[0] != tag {
        return None;
    }
    Some(u64::from_be_bytes(k[5..13].try_into().ok()?))
}

/// `inflight`: a group's delivery state of one ready-log offset.
pub fn inflight(group: GroupId, offset: u64) -> [u8; 13] {
    group_offset(INFLIGHT_RECORD, group, offset)
}

/// The offset in an `inflight` record key.
pub fn parse_inflight(k: &[u8]) -> Option<u64> {
    parse_group_offset(INFLIGHT_RECORD, k)
}

/// `inflight`: the per-group index ordered by the time each becomes visible again.
pub fn visible(group: GroupId, visible_at_ms: u64, offset: u64) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = INFLIGHT_VISIBLE;
    k[1..5].copy_from_slice(&group.to_be_bytes());
    k[5..13].copy_from_slice(&visible_at_ms.to_be_bytes());
    k[13..].copy_from_slice(&offset.to_be_bytes());
    k
}

/// Splits a visibility-index key into `(visible_at_ms, offset)`.
pub fn parse_visible(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 21 || k[0] != INFLIGHT_VISIBLE {
        return None;
    }
    Some((
        u64::from_be_bytes(k[5..13].try_into().ok()?),
        u64::from_be_bytes(k[13..21].try_into().ok()?),
    ))
}

/// `inflight`: a lease, the first delivery of a run of consecutive offsets one receive
/// handed out together, keyed by the run's first offset.
pub fn lease(group: GroupId, first: u64) -> [u8; 13] {
    group_offset(INFLIGHT_LEASE, group, first)
}

/// The first offset in a lease key.
pub fn parse_lease(k: &[u8]) -> Option<u64> {
    parse_group_offset(INFLIGHT_LEASE, k)
}

/// The first key of a group's leases and the first key after them.
pub fn lease_range(group: GroupId) -> ([u8; 13], [u8; 13]) {
    (lease(group, 0), group_end(INFLIGHT_LEASE, group))
}

/// The first key of a group's inflight records and the first key after them.
pub fn inflight_range(group: GroupId) -> ([u8; 13], [u8; 13]) {
    (inflight(group, 0), group_end(INFLIGHT_RECORD, group))
}

/// The first key of a group's visibility index and the first key after it.
pub fn visible_range(group: GroupId) -> ([u8; 21], [u8; 21]) {
    let mut end = [0u8; 21];
    end[..13].copy_from_slice(&group_end(INFLIGHT_VISIBLE, group));
    (visible(group, 0, 0), end)
}

fn group_end(tag: u8, group: GroupId) -> [u8; 13] {
    let mut k = [0u8; 13];
    match group.checked_add(1) {
        Some(g) => {
            k[0] = tag;
            k[1..5].copy_from_slice(&g.to_be_bytes());
        }
        None => k[0] = tag + 1,
    }
    k
}

/// `acked`: `group ‖ offset` for acks (and dead letters) of one group.
pub fn acked(group: GroupId, offset: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4..].copy_from_slice(&offset.to_be_bytes());
    k
}

/// The offset in an `acked` key.
pub fn parse_acked(k: &[u8]) -> Option<u64> {
    if k.len() != 12 {
        return None;
    }
    Some(u64::from_be_bytes(k[4..12].try_into().ok()?))
}

/// `keys`: `topic ‖ len(key) ‖ key ‖ msg_id`, for lookup by key.
pub fn key_index(topic: TopicId, key: &str, id: MessageId) -> Vec<u8> {
    let mut k = key_index_prefix(topic, key);
    k.extend_from_slice(&id.to_bytes());
    k
}

/// The prefix shared by every index entry of one key in one topic.
pub fn key_index_prefix(topic: TopicId, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + key.len() + 16);
    k.extend_from_slice(&topic.to_be_bytes());
    k.extend_from_slice(&(key.len() as u16).to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// `meta`: a topic record, by name.
pub fn topic_meta(name: &str) -> Vec<u8> {
    let mut k = b"T".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// `meta`: prefix of every topic record.
pub(crate) const TOPIC_META_PREFIX: &[u8] = b"T";

/// `meta`: a group record, by id.
pub fn group_meta(group: GroupId) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = b'G';
    k[1..].copy_from_slice(&group.to_be_bytes());
    k
}

/// `meta`: prefix of every group record.
pub(crate) const GROUP_META_PREFIX: &[u8] = b"G";

/// `meta`: the engine-wide record (id sequence, pump watermark, clock).
pub(crate) const ENGINE_META: &[u8] = b"E";

/// `meta`: the retention checkpoints.
pub(crate) const CHECKPOINTS_META: &[u8] = b"C";

/// Smallest key strictly greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn timer_key_order_is_tuple_order(a in any::<(u64, u128)>(), b in any::<(u64, u128)>()) {
            let ka = timer(a.0, MessageId(a.1));
            let kb = timer(b.0, MessageId(b.1));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(parse_timer(&ka), Some((a.0, MessageId(a.1))));
        }

        #[test]
        fn ready_key_order_is_tuple_order(a in any::<(u32, u64)>(), b in any::<(u32, u64)>()) {
            prop_assert_eq!(ready(a.0, a.1).cmp(&ready(b.0, b.1)), a.cmp(&b));
            prop_assert_eq!(parse_ready(&ready(a.0, a.1)), Some(a));
        }

        #[test]
        fn visible_key_order_is_tuple_order(a in any::<(u32, u64, u64)>(), b in any::<(u32, u64, u64)>()) {
            let ka = visible(a.0, a.1, a.2);
            let kb = visible(b.0, b.1, b.2);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(parse_visible(&ka), Some((a.1, a.2)));
            let (lo, hi) = visible_range(a.0);
            prop_assert!(lo[..] <= ka[..] && ka[..] < hi[..]);
        }

        #[test]
        fn inflight_and_acked_order_is_tuple_order(a in any::<(u32, u64)>(), b in any::<(u32, u64)>()) {
            prop_assert_eq!(inflight(a.0, a.1).cmp(&inflight(b.0, b.1)), a.cmp(&b));
            prop_assert_eq!(acked(a.0, a.1).cmp(&acked(b.0, b.1)), a.cmp(&b));
            let (lo, hi) = inflight_range(a.0);
            let k = inflight(a.0, a.1);
            prop_assert!(lo[..] <= k[..] && k[..] < hi[..]);
            prop_assert_eq!(parse_inflight(&k), Some(a.1));
        }

        #[test]
        fn run_key_order_is_tuple_order(a in any::<(u32, u64, u128)>(), b in any::<(u32, u64, u128)>()) {
            let ka = run(a.0, a.1, MessageId(a.2));
            let kb = run(b.0, b.1, MessageId(b.2));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert!(ka.starts_with(&run_prefix(a.0)));
            prop_assert!(ka[..] > message(MessageId(u128::MAX >> 8))[..]);
        }

        #[test]
        fn key_index_groups_by_key(t in any::<u32>(), k1 in "[a-z]{0,8}", k2 in "[a-z]{0,8}", id in any::<u128>()) {
            let e = key_index(t, &k1, MessageId(id));
            prop_assert!(e.starts_with(&key_index_prefix(t, &k1)));
            if k1 != k2 {
                prop_assert!(!e.starts_with(&key_index_prefix(t, &k2)));
            }
        }

        #[test]
        fn prefix_end_bounds_the_prefix(p in proptest::collection::vec(any::<u8>(), 1..6), tail in proptest::collection::vec(any::<u8>(), 0..6)) {
            let mut k = p.clone();
            k.extend_from_slice(&tail);
            prop_assert!(k < prefix_end(&p));
        }
    }
}
