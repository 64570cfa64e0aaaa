//! A receive's answer written field by field, byte for byte what bincode 2's standard
//! configuration makes of [`Response::Messages`], without serde in between.
//!
//! Through serde, bincode writes every integer and length of every delivered message
//! through `std::io::Write`, one small copy each: about 1,000 instructions per message
//! of a burst's 1,024-message receives, a tenth of the daemon's whole work for a message
//! made Ready, received and acked. Every other answer keeps the serde path. The format
//! is bincode's (written by hand because the crate has no faster path for serde types):
//! an integer below 251 is one byte, else a marker byte (251, 252, 253, 254) and its 2,
//! 4, 8 or 16 bytes little-endian; a length is such an integer, an `Option` a 0 or 1
//! byte, an enum its variant index, a struct its fields in order.

use crate::message::{encode_into, Delivery, Response};
use crate::WireError;
use bytes::{BufMut, BytesMut};

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
const MOST: usize = 17;

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
        let b = self.room();
        let n = if v < 251 {
            b[0] = v as u8;
            1
        } else if let Ok(v) = u16::try_from(v) {
            b[0] = 251;
            b[1..3].copy_from_slice(&v.to_le_bytes());
            3
        } else if let Ok(v) = u32::try_from(v) {
            b[0] = 252;
            b[1..5].copy_from_slice(&v.to_le_bytes());
            5
        } else {
            b[0] = 253;
            b[1..9].copy_from_slice(&v.to_le_bytes());
            9
        };
        self.len += n;
    }

    fn u128(&mut self, v: u128) {
        match u64::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => {
                let b = self.room();
                b[0] = 254;
                b[1..17].copy_from_slice(&v.to_le_bytes());
                self.len += MOST;
            }
        }
    }

    /// A string or a byte buffer: its length, then its bytes.
    fn bytes(&mut self, b: &[u8]) {
        self.int(b.len() as u64);
        self.flush();
        self.dst.put_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{encode, ReceiptHandle, Sent, WireFailure};
    use crate::ErrorCode;
    use proptest::prelude::*;

    /// Integers at every edge of bincode's forms.
    fn edgy_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(250),
            Just(251),
            Just(u64::from(u16::MAX)),
            Just(u64::from(u16::MAX) + 1),
            Just(u64::from(u32::MAX)),
            Just(u64::from(u32::MAX) + 1),
            Just(u64::MAX),
            any::<u64>(),
            0u64..300,
        ]
    }

    fn edgy_u128() -> impl Strategy<Value = u128> {
        prop_oneof![
            edgy_u64().prop_map(u128::from),
            Just(u128::from(u64::MAX) + 1),
            Just(u128::MAX),
            any::<u128>(),
        ]
    }

    proptest! {
        /// The hand-written answer is byte for byte bincode's, and decodes back.
        #[test]
        fn a_receives_answer_is_bincodes_bytes(
            ms in proptest::collection::vec(
                (
                    edgy_u128(),
                    proptest::option::of("\\PC{0,20}"),
                    proptest::collection::vec("[a-z]{0,300}", 0..4),
                    proptest::collection::btree_map("[a-z]{1,12}", "\\PC{0,30}", 0..4),
                    proptest::collection::vec(any::<u8>(), 0..600),
                    (edgy_u64(), edgy_u64()),
                    any::<u32>(),
                    (any::<u32>(), edgy_u64(), edgy_u64()),
                ),
                0..300,
            ),
        ) {
            let r = Response::Messages(
                ms.into_iter()
                    .map(|(id, tag, keys, properties, body, (t, ready), attempt, (group, offset, nonce))| Delivery {
                        id,
                        tag,
                        keys,
                        properties,
                        body,
                        deliver_at_ms: t,
                        ready_at_ms: ready,
                        delivery_attempt: attempt,
                        receipt: ReceiptHandle { group, offset, nonce },
                    })
                    .collect(),
            );
            let want = encode(&r).expect("encodes");
            let mut dst = BytesMut::new();
            encode_response_into(&r, &mut dst).expect("encodes");
            prop_assert_eq!(&dst[..], &want[..]);
            prop_assert_eq!(encode_response(&r).expect("encodes"), want);
            prop_assert_eq!(crate::decode::<Response>(&dst).expect("decodes"), r);
        }
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
