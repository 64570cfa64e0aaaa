//! Value encodings. Fixed-layout headers come first so compaction filters can read the
//! one field they need without decoding the rest.

use crate::error::{Error, Result};
use crate::store::keys::TopicId;
use crate::types::MessageId;
use std::collections::BTreeMap;

const VERSION: u8 = 1;

fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_string())
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The variable part of a message record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageBody {
    pub topic: String,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub born_ms: u64,
    pub requested_ms: Option<i64>,
    pub adjusted: bool,
}

/// `messages` record: `[version][deliver_at_ms][meta length u32][bincode meta][body]`,
/// the metadata in bincode's form written by `meta::encode_into`. The body is copied as
/// raw bytes, not serialized element by element. Appended to `v` (a buffer the writer
/// reuses).
pub(crate) fn encode_message_into(
    v: &mut Vec<u8>,
    deliver_at_ms: u64,
    m: &MessageBody,
) -> Result<()> {
    let start = v.len();
    v.reserve(13 + 64 + m.topic.len() + m.body.len());
    v.push(VERSION);
    v.extend_from_slice(&deliver_at_ms.to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    super::meta::encode_into(
        v,
        &m.topic,
        m.tag.as_deref(),
        &m.keys,
        &m.properties,
        m.born_ms,
        m.requested_ms,
        m.adjusted,
    );
    let n = u32::try_from(v.len() - start - 13)
        .map_err(|_| Error::BadRequest("message metadata too large".into()))?;
    v[start + 9..start + 13].copy_from_slice(&n.to_be_bytes());
    v.extend_from_slice(&m.body);
    Ok(())
}

/// Splits a `messages` record into its delivery time, metadata bytes and body bytes.
fn split_message(v: &[u8]) -> Result<(u64, &[u8], &[u8])> {
    if v.first() != Some(&VERSION) {
        return Err(corrupt("message record version"));
    }
    let t = u64_at(v, 1).ok_or_else(|| corrupt("message record header"))?;
    let n = u32_at(v, 9).ok_or_else(|| corrupt("message record header"))? as usize;
    let meta = v
        .get(13..13 + n)
        .ok_or_else(|| corrupt("message record length"))?;
    Ok((t, meta, &v[13 + n..]))
}

/// Decodes a `messages` record into `(deliver_at_ms, body)`.
pub(crate) fn decode_message(v: &[u8]) -> Result<(u64, MessageBody)> {
    let (t, meta, body) = split_message(v)?;
    let m = super::meta::decode(meta, true).ok_or_else(|| corrupt("message record metadata"))?;
    Ok((
        t,
        MessageBody {
            topic: m.topic.unwrap_or_default(),
            tag: m.tag,
            keys: m.keys,
            properties: m.properties,
            body: body.to_vec(),
            born_ms: m.born_ms,
            requested_ms: m.requested_ms,
            adjusted: m.adjusted,
        },
    ))
}

/// What a delivery needs of a `messages` record: the tag, keys, properties, body and
/// birth time (the receiver knows the topic, which is not copied out).
pub(crate) struct Deliverable {
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub born_ms: u64,
}

/// Decodes a `messages` record for a delivery (the topic, which the receiver knows, is
/// skipped).
pub(crate) fn decode_deliverable(v: &[u8]) -> Result<Deliverable> {
    let (_, meta, body) = split_message(v)?;
    let m = super::meta::decode(meta, false).ok_or_else(|| corrupt("message record metadata"))?;
    Ok(Deliverable {
        tag: m.tag,
        keys: m.keys,
        properties: m.properties,
        body: body.to_vec(),
        born_ms: m.born_ms,
    })
}

/// The effective delivery time stored in a `messages` value (record or location).
pub(crate) fn message_deliver_at(v: &[u8]) -> Option<u64> {
    if v.first() != Some(&VERSION) {
        return None;
    }
    u64_at(v, 1)
}

/// Where a Ready message is: its topic's log and offset, and when it became Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub deliver_at_ms: u64,
    pub topic: TopicId,
    pub offset: u64,
    pub ready_at_ms: u64,
}

pub(crate) fn encode_location(l: &Location) -> [u8; 29] {
    let mut v = [0u8; 29];
    v[0] = VERSION;
    v[1..9].copy_from_slice(&l.deliver_at_ms.to_be_bytes());
    v[9..13].copy_from_slice(&l.topic.to_be_bytes());
    v[13..21].copy_from_slice(&l.offset.to_be_bytes());
    v[21..29].copy_from_slice(&l.ready_at_ms.to_be_bytes());
    v
}

pub(crate) fn decode_location(v: &[u8]) -> Result<Location> {
    let bad = || corrupt("location record");
    if v.len() != 29 || v[0] != VERSION {
        return Err(bad());
    }
    Ok(Location {
        deliver_at_ms: u64_at(v, 1).ok_or_else(bad)?,
        topic: u32_at(v, 9).ok_or_else(bad)?,
        offset: u64_at(v, 13).ok_or_else(bad)?,
        ready_at_ms: u64_at(v, 21).ok_or_else(bad)?,
    })
}

/// Where one pump step put `count` messages of one topic: consecutive offsets from
/// `first_offset`, in timer order up to `(last_deliver_at_ms, last_id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub last_deliver_at_ms: u64,
    pub first_offset: u64,
    pub count: u32,
    pub ready_at_ms: u64,
    pub last_id: MessageId,
}

/// `[version][last deliver_at][first offset][count][ready_at][last id]`; the header
/// matches message records so the retention filter reads both alike.
pub(crate) fn encode_run(r: &Run) -> [u8; 45] {
    let mut v = [0u8; 45];
    v[0] = VERSION;
    v[1..9].copy_from_slice(&r.last_deliver_at_ms.to_be_bytes());
    v[9..17].copy_from_slice(&r.first_offset.to_be_bytes());
    v[17..21].copy_from_slice(&r.count.to_be_bytes());
    v[21..29].copy_from_slice(&r.ready_at_ms.to_be_bytes());
    v[29..45].copy_from_slice(&r.last_id.to_bytes());
    v
}

pub(crate) fn decode_run(v: &[u8]) -> Result<Run> {
    let bad = || corrupt("run record");
    if v.len() != 45 || v[0] != VERSION {
        return Err(bad());
    }
    Ok(Run {
        last_deliver_at_ms: u64_at(v, 1).ok_or_else(bad)?,
        first_offset: u64_at(v, 9).ok_or_else(bad)?,
        count: u32_at(v, 17).ok_or_else(bad)?,
        ready_at_ms: u64_at(v, 21).ok_or_else(bad)?,
        last_id: MessageId::from_bytes(v[29..45].try_into().map_err(|_| bad())?),
    })
}

/// `timer` value: `topic ‖ tag`, all the pump needs to write the ready entry.
pub(crate) fn encode_timer(topic: TopicId, tag: Option<&str>) -> Vec<u8> {
    let tag = tag.unwrap_or("").as_bytes();
    let mut v = Vec::with_capacity(4 + tag.len());
    v.extend_from_slice(&topic.to_be_bytes());
    v.extend_from_slice(tag);
    v
}

/// Like [`encode_timer`] into `buf`; `None` when it does not fit.
pub(crate) fn encode_timer_into<'b>(
    buf: &'b mut [u8],
    topic: TopicId,
    tag: Option<&str>,
) -> Option<&'b [u8]> {
    let tag = tag.unwrap_or("").as_bytes();
    let out = buf.get_mut(..4 + tag.len())?;
    out[..4].copy_from_slice(&topic.to_be_bytes());
    out[4..].copy_from_slice(tag);
    Some(out)
}

pub(crate) fn decode_timer(v: &[u8]) -> Result<(TopicId, &[u8])> {
    let t = u32_at(v, 0).ok_or_else(|| corrupt("timer value"))?;
    Ok((t, &v[4..]))
}

/// A ready-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadyEntry<'a> {
    pub ready_at_ms: u64,
    pub deliver_at_ms: u64,
    pub id: MessageId,
    /// Empty when the message has no tag.
    pub tag: &'a [u8],
}

impl ReadyEntry<'_> {
    pub fn tag(&self) -> Option<&[u8]> {
        (!self.tag.is_empty()).then_some(self.tag)
    }
}

pub(crate) fn encode_ready(
    ready_at_ms: u64,
    deliver_at_ms: u64,
    id: MessageId,
    tag: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + tag.len());
    v.extend_from_slice(&ready_at_ms.to_be_bytes());
    v.extend_from_slice(&deliver_at_ms.to_be_bytes());
    v.extend_from_slice(&id.to_bytes());
    v.extend_from_slice(tag);
    v
}

/// Like [`encode_ready`] into `buf`; `None` when it does not fit.
pub(crate) fn encode_ready_into<'b>(
    buf: &'b mut [u8],
    ready_at_ms: u64,
    deliver_at_ms: u64,
    id: MessageId,
    tag: &[u8],
) -> Option<&'b [u8]> {
    let n = 32 + tag.len();
    let out = buf.get_mut(..n)?;
    out[..8].copy_from_slice(&ready_at_ms.to_be_bytes());
    out[8..16].copy_from_slice(&deliver_at_ms.to_be_bytes());
    out[16..32].copy_from_slice(&id.to_bytes());
    out[32..].copy_from_slice(tag);
    Some(out)
}

pub(crate) fn decode_ready(v: &[u8]) -> Result<ReadyEntry<'_>> {
    let bad = || corrupt("ready entry");
    Ok(ReadyEntry {
        ready_at_ms: u64_at(v, 0).ok_or_else(bad)?,
        deliver_at_ms: u64_at(v, 8).ok_or_else(bad)?,
        id: MessageId::from_bytes(
            v.get(16..32)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ),
        tag: &v[32..],
    })
}

/// The `ready_at_ms` at the head of a ready-log value.
pub(crate) fn ready_at(v: &[u8]) -> Option<u64> {
    u64_at(v, 0)
}

/// One group's delivery state of one ready-log offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inflight {
    pub id: MessageId,
    pub attempt: u32,
    pub visible_at_ms: u64,
    pub nonce: u64,
    pub ready_at_ms: u64,
}

/// A run of consecutive ready-log offsets one receive handed to a group together, each
/// at attempt 1: one record instead of one per message. An offset of the run is settled
/// once it has an ack entry or an inflight record of its own (after a nack, a changed
/// invisible time or expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    /// One past the run's last offset.
    pub end: u64,
    pub visible_at_ms: u64,
    /// Shared by the run's receipts.
    pub nonce: u64,
    /// The latest time any message of the run became Ready (kept with its acks, so
    /// retention keeps them at least as long as the messages).
    pub ready_at_ms: u64,
}

pub(crate) fn encode_lease(l: &Lease) -> [u8; 32] {
    let mut v = [0u8; 32];
    v[..8].copy_from_slice(&l.end.to_be_bytes());
    v[8..16].copy_from_slice(&l.visible_at_ms.to_be_bytes());
    v[16..24].copy_from_slice(&l.nonce.to_be_bytes());
    v[24..32].copy_from_slice(&l.ready_at_ms.to_be_bytes());
    v
}

pub(crate) fn decode_lease(v: &[u8]) -> Result<Lease> {
    let bad = || corrupt("lease record");
    if v.len() != 32 {
        return Err(bad());
    }
    Ok(Lease {
        end: u64_at(v, 0).ok_or_else(bad)?,
        visible_at_ms: u64_at(v, 8).ok_or_else(bad)?,
        nonce: u64_at(v, 16).ok_or_else(bad)?,
        ready_at_ms: u64_at(v, 24).ok_or_else(bad)?,
    })
}

pub(crate) fn encode_inflight(r: &Inflight) -> [u8; 44] {
    let mut v = [0u8; 44];
    v[..16].copy_from_slice(&r.id.to_bytes());
    v[16..20].copy_from_slice(&r.attempt.to_be_bytes());
    v[20..28].copy_from_slice(&r.visible_at_ms.to_be_bytes());
    v[28..36].copy_from_slice(&r.nonce.to_be_bytes());
    v[36..44].copy_from_slice(&r.ready_at_ms.to_be_bytes());
    v
}

pub(crate) fn decode_inflight(v: &[u8]) -> Result<Inflight> {
    let bad = || corrupt("inflight record");
    if v.len() != 44 {
        return Err(bad());
    }
    Ok(Inflight {
        id: MessageId::from_bytes(v[..16].try_into().map_err(|_| bad())?),
        attempt: u32_at(v, 16).ok_or_else(bad)?,
        visible_at_ms: u64_at(v, 20).ok_or_else(bad)?,
        nonce: u64_at(v, 28).ok_or_else(bad)?,
        ready_at_ms: u64_at(v, 36).ok_or_else(bad)?,
    })
}

/// How a group finished with an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finished {
    Acked,
    DeadLettered,
}

/// `acked` value: `[ready_at_ms][kind]`.
pub(crate) fn encode_acked(kind: Finished, ready_at_ms: u64) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[..8].copy_from_slice(&ready_at_ms.to_be_bytes());
    v[8] = match kind {
        Finished::Acked => 0,
        Finished::DeadLettered => 1,
    };
    v
}

/// `acked` value for a whole run of offsets, from its key's offset up to `end`
/// (exclusive): `[ready_at_ms][kind][end]`. One ack call that settles every offset of a
/// lease writes this one entry instead of one per offset. Its first nine bytes are an
/// ordinary entry's, so [`decode_acked`] and the retention filter read it unchanged.
pub(crate) fn encode_acked_run(kind: Finished, ready_at_ms: u64, end: u64) -> [u8; 17] {
    let mut v = [0u8; 17];
    v[..9].copy_from_slice(&encode_acked(kind, ready_at_ms));
    v[9..].copy_from_slice(&end.to_be_bytes());
    v
}

pub(crate) fn decode_acked(v: &[u8]) -> Result<Finished> {
    match v.get(8) {
        Some(0) => Ok(Finished::Acked),
        Some(1) => Ok(Finished::DeadLettered),
        _ => Err(corrupt("acked value")),
    }
}

/// The end (exclusive) of the offsets an `acked` entry at `offset` covers: `offset + 1`
/// for an ordinary entry, the run's end for a run.
pub(crate) fn acked_end(offset: u64, v: &[u8]) -> Result<u64> {
    match v.len() {
        9 => Ok(offset.saturating_add(1)),
        17 => u64_at(v, 9).ok_or_else(|| corrupt("acked run")),
        _ => Err(corrupt("acked value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let body = MessageBody {
            topic: "t".into(),
            tag: Some("a".into()),
            keys: vec!["k".into()],
            properties: [("p".to_string(), "v".to_string())].into(),
            body: vec![1, 2, 3],
            born_ms: 5,
            requested_ms: Some(-1),
            adjusted: true,
        };
        // Appended after what the buffer already holds.
        let mut buf = vec![7];
        encode_message_into(&mut buf, 42, &body).unwrap();
        let v = &buf[1..];
        assert_eq!(message_deliver_at(v), Some(42));
        let d = decode_deliverable(v).unwrap();
        assert_eq!(
            (&d.tag, &d.keys, &d.properties, &d.body, d.born_ms),
            (
                &body.tag,
                &body.keys,
                &body.properties,
                &body.body,
                body.born_ms
            )
        );
        assert_eq!(decode_message(v).unwrap(), (42, body));
        let l = Location {
            deliver_at_ms: 1,
            topic: 2,
            offset: 3,
            ready_at_ms: 4,
        };
        assert_eq!(decode_location(&encode_location(&l)).unwrap(), l);
        assert_eq!(message_deliver_at(&encode_location(&l)), Some(1));
        let run = Run {
            last_deliver_at_ms: 9,
            first_offset: 8,
            count: 7,
            ready_at_ms: 6,
            last_id: MessageId(5),
        };
        assert_eq!(decode_run(&encode_run(&run)).unwrap(), run);
        assert_eq!(message_deliver_at(&encode_run(&run)), Some(9));
        let r = encode_ready(7, 6, MessageId(9), b"tag");
        let mut buf = [0u8; 64];
        assert_eq!(
            encode_ready_into(&mut buf, 7, 6, MessageId(9), b"tag"),
            Some(&r[..])
        );
        assert_eq!(
            encode_ready_into(&mut [0u8; 8], 7, 6, MessageId(9), b"tag"),
            None
        );
        let e = decode_ready(&r).unwrap();
        assert_eq!(
            (e.ready_at_ms, e.deliver_at_ms, e.id, e.tag()),
            (7, 6, MessageId(9), Some(&b"tag"[..]))
        );
        let i = Inflight {
            id: MessageId(1),
            attempt: 2,
            visible_at_ms: 3,
            nonce: 4,
            ready_at_ms: 5,
        };
        assert_eq!(decode_inflight(&encode_inflight(&i)).unwrap(), i);
        let l = Lease {
            end: 9,
            visible_at_ms: 8,
            nonce: 7,
            ready_at_ms: 6,
        };
        assert_eq!(decode_lease(&encode_lease(&l)).unwrap(), l);
        assert!(decode_lease(&[0; 31]).is_err());
        assert_eq!(
            decode_acked(&encode_acked(Finished::DeadLettered, 1)).unwrap(),
            Finished::DeadLettered
        );
        assert!(decode_message(&[9, 9]).is_err());
        assert!(decode_message(&v[..12]).is_err());
        let mut cut = v.to_vec();
        cut[12] = 0xff;
        assert!(decode_message(&cut).is_err());
        assert!(decode_deliverable(&cut).is_err());
        assert!(decode_deliverable(&v[..12]).is_err());
        assert!(decode_inflight(&[0; 3]).is_err());
    }

    #[test]
    fn an_acked_run_reads_as_an_entry_with_an_end() {
        let run = encode_acked_run(Finished::Acked, 7, 1_024);
        assert_eq!(decode_acked(&run).unwrap(), Finished::Acked);
        assert_eq!(ready_at(&run), Some(7));
        assert_eq!(acked_end(1_000, &run).unwrap(), 1_024);
        let one = encode_acked(Finished::DeadLettered, 7);
        assert_eq!(acked_end(1_000, &one).unwrap(), 1_001);
        assert!(acked_end(1_000, &run[..12]).is_err());
    }
}
