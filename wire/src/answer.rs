//! A receive's answer written and read field by field, byte for byte what bincode 2's
//! standard configuration makes of [`Response::Messages`], without serde in between.
//!
//! Through serde, bincode writes every integer and length of every delivered message
//! through `std::io::Write`, one small copy each: about 1,000 instructions per message
//! of a burst's 1,024-message receives, a tenth of the daemon's whole work for a message
//! made Ready, received and acked. Reading it back through serde cost the client about
//! 1,900 instructions per message, on the consumer's path between two requests. Every
//! other answer keeps the serde path both ways. The form is bincode's, written and
//! read with `sundial_form` (bincode has no faster path for serde types); a struct is
//! its fields in order.

use crate::message::{decode, encode_into, Delivery, ReceiptHandle, Response};
use crate::WireError;
use bytes::{BufMut, BytesMut};
use sundial_form::{Read, Reader};

/// [`Response::Messages`]'s variant index (its place in the enum's declaration).
const MESSAGES: u64 = 11;

/// Appends `r` encoded to `dst`: the bytes [`encode_into`] appends, sooner for a
/// receive's answer.
pub fn encode_response_into(r: &Response, dst: &mut BytesMut) -> Result<(), WireError> {
    match r {
        Response::Messages(ms) => {
            put_messages(dst, ms);
            Ok(())
        }
        _ => encode_into(r, dst),
    }
}

/// [`encode_response_into`] into a new buffer of `r`'s size hint.
pub fn encode_response(r: &Response) -> Result<Vec<u8>, WireError> {
    match r {
        Response::Messages(ms) => {
            let mut out = Vec::with_capacity(r.size_hint());
            put_messages(&mut out, ms);
            Ok(out)
        }
        _ => crate::message::encode_sized(r, r.size_hint()),
    }
}

fn put_messages(dst: &mut impl BufMut, ms: &[Delivery]) {
    let mut w = Gather::new(dst);
    w.int(MESSAGES);
    w.int(ms.len() as u64);
    for m in ms {
        w.u128(m.id);
        match &m.tag {
            None => w.int(0),
            Some(t) => {
                w.int(1);
                w.bytes(t.as_bytes());
            }
        }
        w.int(m.keys.len() as u64);
        for k in &m.keys {
            w.bytes(k.as_bytes());
        }
        w.int(m.properties.len() as u64);
        for (k, v) in &m.properties {
            w.bytes(k.as_bytes());
            w.bytes(v.as_bytes());
        }
        w.bytes(&m.body);
        w.int(m.deliver_at_ms);
        w.int(m.ready_at_ms);
        w.int(u64::from(m.delivery_attempt));
        w.int(u64::from(m.receipt.group));
        w.int(m.receipt.offset);
        w.int(m.receipt.nonce);
    }
    w.flush();
}

/// Room for the integers gathered between two copies into the answer.
const ROOM: usize = 128;
/// The most bytes one integer takes (a marker and a `u128`).
const MOST: usize = sundial_form::WIDEST_U128;

/// Integers gathered on the stack and appended to the answer with one copy, when the
/// room runs out or before a string or body (which are copied as they are): a message
/// with no tag, keys or properties takes two copies besides its body.
struct Gather<'a, B: BufMut> {
    dst: &'a mut B,
    buf: [u8; ROOM],
    len: usize,
}

impl<'a, B: BufMut> Gather<'a, B> {
    fn new(dst: &'a mut B) -> Self {
        Gather {
            dst,
            buf: [0; ROOM],
            len: 0,
        }
    }

    fn flush(&mut self) {
        self.dst.put_slice(&self.buf[..self.len]);
        self.len = 0;
    }

    /// Room for one more integer, copying out what is gathered if need be.
    fn room(&mut self) -> &mut [u8] {
        if self.len > ROOM - MOST {
            self.flush();
        }
        &mut self.buf[self.len..]
    }

    /// An unsigned integer (or a length) in bincode's variable-length form.
    fn int(&mut self, v: u64) {
        let n = sundial_form::write_u64(self.room(), v);
        self.len += n;
    }

    fn u128(&mut self, v: u128) {
        let n = sundial_form::write_u128(self.room(), v);
        self.len += n;
    }

    /// A string or a byte buffer: its length, then its bytes.
    fn bytes(&mut self, b: &[u8]) {
        self.int(b.len() as u64);
        self.flush();
        self.dst.put_slice(b);
    }
}

/// Decodes an answer as [`decode`] does (the same bytes accepted, to the same value),
/// reading a receive's answer by hand.
pub fn decode_response(b: &[u8]) -> Result<Response, WireError> {
    let mut r = Reader::new(b);
    if r.u32() != Ok(MESSAGES as u32) {
        return decode::<Response>(b);
    }
    let ms = messages(&mut r)
        .map_err(|why| WireError::Malformed(format!("undecodable payload: {why}")))?;
    if r.left() > 0 {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes after the payload",
            r.left()
        )));
    }
    Ok(Response::Messages(ms))
}

/// The fewest bytes one encoded [`Delivery`] takes (each of its eleven fields at least
/// one): a list reserves no more room than the bytes left could fill.
const LEAST_DELIVERY: usize = 11;

fn messages(r: &mut Reader<'_>) -> Read<Vec<Delivery>> {
    let n = r.length()?;
    let mut ms = Vec::with_capacity(r.room(n, LEAST_DELIVERY));
    for _ in 0..n {
        ms.push(delivery(r)?);
    }
    Ok(ms)
}

fn delivery(r: &mut Reader<'_>) -> Read<Delivery> {
    let id = r.u128()?;
    Ok(Delivery {
        id,
        tag: r.optional_string()?,
        keys: r.strings()?,
        properties: r.string_map()?,
        body: r.bytes()?.to_vec(),
        deliver_at_ms: r.u64()?,
        ready_at_ms: r.u64()?,
        delivery_attempt: r.u32()?,
        receipt: ReceiptHandle {
            group: r.u32()?,
            offset: r.u64()?,
            nonce: r.u64()?,
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::message::{encode, ReceiptHandle, Sent, WireFailure};
    use crate::ErrorCode;
    use proptest::prelude::*;
    use sundial_form::strategies::{edgy_u128, edgy_u64};

    /// Up to `most` deliveries with integers at every edge, tags and property values
    /// of up to `text` characters, keys of up to ten times that (past a length's
    /// one-byte form) and bodies of up to `body` bytes.
    pub(crate) fn deliveries(
        text: usize,
        body: usize,
        most: usize,
    ) -> impl Strategy<Value = Vec<Delivery>> {
        let regex = |r: String| proptest::string::string_regex(&r).expect("a valid regex");
        let printable = || regex(format!("\\PC{{0,{text}}}"));
        proptest::collection::vec(
            (
                edgy_u128(),
                proptest::option::of(printable()),
                proptest::collection::vec(regex(format!("[a-z]{{0,{}}}", 10 * text)), 0..4),
                proptest::collection::btree_map(regex("[a-z]{1,12}".into()), printable(), 0..4),
                proptest::collection::vec(any::<u8>(), 0..=body),
                (edgy_u64(), edgy_u64()),
                any::<u32>(),
                (any::<u32>(), edgy_u64(), edgy_u64()),
            )
                .prop_map(
                    |(
                        id,
                        tag,
                        keys,
                        properties,
                        body,
                        (t, ready),
                        attempt,
                        (group, offset, nonce),
                    )| {
                        Delivery {
                            id,
                            tag,
                            keys,
                            properties,
                            body,
                            deliver_at_ms: t,
                            ready_at_ms: ready,
                            delivery_attempt: attempt,
                            receipt: ReceiptHandle {
                                group,
                                offset,
                                nonce,
                            },
                        }
                    },
                ),
            0..=most,
        )
    }

    proptest! {
        /// The hand-written answer is byte for byte bincode's, and decodes back.
        #[test]
        fn a_receives_answer_is_bincodes_bytes(ms in deliveries(30, 600, 300)) {
            let r = Response::Messages(ms);
            let want = encode(&r).expect("encodes");
            let mut dst = BytesMut::new();
            encode_response_into(&r, &mut dst).expect("encodes");
            prop_assert_eq!(&dst[..], &want[..]);
            prop_assert_eq!(encode_response(&r).expect("encodes"), want);
            prop_assert_eq!(crate::decode::<Response>(&dst).expect("decodes"), r.clone());
            prop_assert_eq!(decode_response(&dst).expect("decodes"), r);
        }

        /// Whatever the bytes, the hand-read answer is what serde reads, or both refuse
        /// them: valid answers cut short, with bytes changed, added or appended.
        #[test]
        fn a_receives_answer_reads_as_serde_reads_it(
            ms in deliveries(3, 8, 5),
            cut in any::<prop::sample::Index>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            tail in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let r = Response::Messages(ms);
            let mut b = encode(&r).expect("encodes");
            for (at, v) in edits {
                let i = at.index(b.len());
                b[i] = v;
            }
            b.extend_from_slice(&tail);
            for bytes in [&b[..], &b[..cut.index(b.len() + 1)]] {
                let serde = crate::decode::<Response>(bytes);
                let hand = decode_response(bytes);
                match (&serde, &hand) {
                    (Ok(a), Ok(h)) => prop_assert_eq!(a, h),
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "serde {:?}, by hand {:?}, for {:?}", serde, hand, bytes),
                }
            }
        }
    }

    #[test]
    fn every_cut_of_a_receives_answer_is_refused_and_other_answers_read_through_serde() {
        let r = Response::Messages(vec![Delivery {
            id: u128::MAX - 5,
            tag: Some("t".into()),
            keys: vec!["k".into()],
            properties: [("a".to_string(), "b".to_string())].into(),
            body: vec![9; 300],
            deliver_at_ms: 1 << 41,
            ready_at_ms: 1 << 41,
            delivery_attempt: 3,
            receipt: ReceiptHandle {
                group: 70_000,
                offset: 1 << 33,
                nonce: 12,
            },
        }]);
        let b = encode(&r).expect("encodes");
        assert_eq!(decode_response(&b).expect("decodes"), r);
        for n in 0..b.len() {
            assert!(
                decode_response(&b[..n]).is_err(),
                "a cut at {n} of {}",
                b.len()
            );
        }
        let mut longer = b.clone();
        longer.push(0);
        let e = decode_response(&longer).expect_err("a trailing byte");
        assert!(e.to_string().contains("1 trailing bytes"), "{e}");
        let done = encode(&Response::Done).expect("encodes");
        assert_eq!(decode_response(&done).expect("decodes"), Response::Done);
    }

    #[test]
    fn every_marker_and_small_value_in_every_place_reads_as_serde_reads_it() {
        let small = |group: u32, offset: u64| Delivery {
            id: u128::from(u64::MAX) + 1,
            tag: Some("é".into()),
            keys: vec!["k".into(), String::new()],
            properties: [("a".to_string(), "b".to_string())].into(),
            body: vec![7; 3],
            deliver_at_ms: 300,
            ready_at_ms: 70_000,
            delivery_attempt: 1 << 20,
            receipt: ReceiptHandle {
                group,
                offset,
                nonce: 5,
            },
        };
        let r = Response::Messages(vec![small(2, u64::MAX), small(u32::MAX, 0)]);
        let b = encode(&r).expect("encodes");
        let mut checked = 0;
        for i in 0..b.len() {
            for v in [0, 1, 2, 3, 127, 128, 250, 251, 252, 253, 254, 255] {
                let mut e = b.clone();
                e[i] = v;
                let (serde, hand) = (crate::decode::<Response>(&e), decode_response(&e));
                match (&serde, &hand) {
                    (Ok(a), Ok(h)) => assert_eq!(a, h, "byte {i} set to {v}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("byte {i} set to {v}: serde {serde:?}, by hand {hand:?}"),
                }
                checked += 1;
            }
        }
        assert!(checked > 500, "{checked}");
    }

    #[test]
    fn other_answers_keep_bincodes_path() {
        for r in [
            Response::Done,
            Response::Sent(Sent {
                id: 7,
                deliver_at_ms: 1 << 40,
                adjusted: true,
            }),
            Response::Failed(WireFailure::new(ErrorCode::NotFound, "no such message")),
            Response::Messages(Vec::new()),
        ] {
            let mut dst = BytesMut::new();
            encode_response_into(&r, &mut dst).expect("encodes");
            assert_eq!(&dst[..], &encode(&r).expect("encodes")[..], "{r:?}");
        }
    }
}
