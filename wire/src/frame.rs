//! Frames: a 4-byte big-endian length, then that many bytes: magic (2), protocol
//! version (2, big-endian), request id (8, big-endian) and the payload. The length is
//! checked against the configured maximum before anything is allocated for the frame.
//! A frame over the maximum whose header is sound is skipped without being buffered and
//! reported as [`Inbound::Oversized`] with its request id, so the peer can be told and
//! the connection goes on; anything else that is not a frame is an error that ends it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Magic bytes that open every frame header.
pub const MAGIC: [u8; 2] = *b"SD";
/// The protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u16 = 3;
/// Bytes of the header inside a frame (magic, version, request id).
pub const HEADER_LEN: usize = 12;
/// Default largest frame (length prefix excluded): a 4 MiB body plus room for the rest.
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024 + 64 * 1024;
/// How much larger than a request frame an answer may be: a received message is its
/// sent frame plus ids, times and a receipt handle.
pub const RESPONSE_HEADROOM: usize = 64 * 1024;

/// One frame: a request id (so requests can be pipelined and answered out of order)
/// and an encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Chosen by the client, echoed in the response.
    pub request_id: u64,
    /// The bincode payload.
    pub payload: Bytes,
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A whole frame.
    Frame(Frame),
    /// A frame over the limit, skipped (its bytes are discarded as they arrive).
    Oversized {
        /// Its request id.
        request_id: u64,
        /// Its announced length.
        len: usize,
    },
}

/// Why bytes from the network are not a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix is over the configured maximum.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The frame is not a sundial frame or is cut short.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer speaks another protocol version.
    #[error("protocol version {0} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u16),
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl WireError {
    /// The SPEC §6 error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::FrameTooLarge { .. } => "FrameTooLarge",
            WireError::Malformed(_) | WireError::UnsupportedVersion(_) => "Malformed",
            WireError::Io(_) => "Internal",
        }
    }
}

/// Encodes and decodes [`Frame`]s with a maximum frame size.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: usize,
    max_outgoing: usize,
    /// Bytes of an oversized frame still to discard.
    skipping: usize,
}

impl FrameCodec {
    /// A codec refusing frames over `max_frame` bytes (length prefix excluded), in both
    /// directions.
    pub fn new(max_frame: usize) -> Self {
        let max_frame = max_frame.max(HEADER_LEN);
        FrameCodec {
            max_frame,
            max_outgoing: max_frame,
            skipping: 0,
        }
    }

    /// Sets a different limit for frames this side encodes.
    pub fn with_max_outgoing(mut self, max: usize) -> Self {
        self.max_outgoing = max.max(HEADER_LEN);
        self
    }

    /// The limit for frames this side decodes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The limit for frames this side encodes.
    pub fn max_outgoing(&self) -> usize {
        self.max_outgoing
    }

    fn discard(&mut self, src: &mut BytesMut) {
        let n = self.skipping.min(src.len());
        src.advance(n);
        self.skipping -= n;
    }
}

/// Checks magic and version at the start of `header` (at least 4 bytes).
fn check_header(header: &[u8]) -> Result<(), WireError> {
    if header[..2] != MAGIC {
        return Err(WireError::Malformed("bad magic".into()));
    }
    let version = u16::from_be_bytes([header[2], header[3]]);
    if version != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    Ok(())
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Inbound;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, WireError> {
        if self.skipping > 0 {
            self.discard(src);
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame {
            // Only the header is read; the rest is discarded as it arrives.
            let Some(header) = src.get(4..4 + HEADER_LEN) else {
                return Ok(None);
            };
            check_header(header)?;
            let request_id = u64::from_be_bytes(
                header[4..12]
                    .try_into()
                    .map_err(|_| WireError::Malformed("short header".into()))?,
            );
            src.advance(4 + HEADER_LEN);
            self.skipping = len - HEADER_LEN;
            self.discard(src);
            return Ok(Some(Inbound::Oversized { request_id, len }));
        }
        if len < HEADER_LEN {
            return Err(WireError::Malformed(format!(
                "frame of {len} bytes is shorter than its {HEADER_LEN}-byte header"
            )));
        }
        if src.len() < 4 + len {
            // Only now, with the length known to be within the limit, and for exactly
            // this frame: `reserve` grows by doubling, which made one allocation of up
            // to twice the limit. Space already owned is reused when it can be.
            let additional = 4 + len - src.len();
            if !src.try_reclaim(additional) {
                let mut grown = BytesMut::with_capacity(4 + len);
                grown.extend_from_slice(src);
                *src = grown;
            }
            return Ok(None);
        }
        src.advance(4);
        let mut frame = src.split_to(len);
        check_header(&frame)?;
        frame.advance(4);
        let request_id = frame.get_u64();
        Ok(Some(Inbound::Frame(Frame {
            request_id,
            payload: frame.freeze(),
        })))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, f: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        put_frame(dst, f.request_id, self.max_outgoing, f.payload.len(), |d| {
            d.put_slice(&f.payload);
            Ok(())
        })
    }
}

/// Appends to `dst` the frame of `request_id` whose payload `payload` appends, with no
/// buffer of the payload's own: what a server answering many requests at once writes
/// into its connection's buffer. `reserve`: the payload's expected size. A frame over
/// `max` bytes (length prefix excluded), or a payload that fails, appends nothing and
/// is the error.
pub fn put_frame(
    dst: &mut BytesMut,
    request_id: u64,
    max: usize,
    reserve: usize,
    payload: impl FnOnce(&mut BytesMut) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let start = dst.len();
    dst.reserve(4 + HEADER_LEN + reserve);
    // The length is filled in once the payload is there.
    dst.put_u32(0);
    dst.put_slice(&MAGIC);
    dst.put_u16(PROTOCOL_VERSION);
    dst.put_u64(request_id);
    let r = payload(dst).and_then(|()| {
        let len = dst.len() - start - 4;
        u32::try_from(len)
            .ok()
            .filter(|_| len <= max)
            .ok_or(WireError::FrameTooLarge { len, max })
    });
    match r {
        Ok(len) => {
            dst[start..start + 4].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            dst.truncate(start);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(id: u64, payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        FrameCodec::default()
            .encode(
                Frame {
                    request_id: id,
                    payload: Bytes::copy_from_slice(payload),
                },
                &mut b,
            )
            .unwrap();
        b
    }

    fn frame(c: &mut FrameCodec, b: &mut BytesMut) -> Frame {
        match c.decode(b).unwrap() {
            Some(Inbound::Frame(f)) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn a_frame_put_in_place_is_the_frame_the_codec_encodes_and_a_refused_one_leaves_nothing() {
        let mut b = BytesMut::from(&b"before"[..]);
        let put = |b: &mut BytesMut, id: u64, payload: &[u8], max: usize| {
            put_frame(b, id, max, 1, |d| {
                d.extend_from_slice(payload);
                Ok(())
            })
        };
        put(&mut b, 7, b"payload", 1024).unwrap();
        put(&mut b, 8, b"", 1024).unwrap();
        let mut want = BytesMut::from(&b"before"[..]);
        want.extend_from_slice(&encode(7, b"payload"));
        want.extend_from_slice(&encode(8, b""));
        assert_eq!(b, want);
        // Over the limit (header included) or a failing payload: nothing appended.
        let err = put(&mut b, 9, &[1u8; 20], HEADER_LEN + 19).unwrap_err();
        assert!(
            matches!(err, WireError::FrameTooLarge { len: 32, max: 31 }),
            "{err:?}"
        );
        let failed = put_frame(&mut b, 10, 1024, 0, |d| {
            d.extend_from_slice(b"half");
            Err(WireError::Malformed("no".into()))
        });
        assert!(failed.is_err());
        assert_eq!(b, want, "nothing of the refused frames is left");
        put(&mut b, 11, &[2u8; 19], HEADER_LEN + 19).unwrap();
        let mut c = FrameCodec::new(1024);
        let mut rest = b.split_off(6);
        for (id, payload) in [(7, &b"payload"[..]), (8, b""), (11, &[2u8; 19])] {
            let f = frame(&mut c, &mut rest);
            assert_eq!((f.request_id, &f.payload[..]), (id, payload));
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn an_oversized_frame_is_skipped_and_reported_with_its_id() {
        let mut c = FrameCodec::new(1024);
        let mut big = encode(9, &[7u8; 2000]);
        let tail = big.split_off(100);
        let before = big.capacity();
        assert_eq!(
            c.decode(&mut big).unwrap(),
            Some(Inbound::Oversized {
                request_id: 9,
                len: 2012
            })
        );
        assert!(
            big.is_empty() && big.capacity() <= before,
            "nothing buffered for it"
        );
        let mut rest = tail;
        rest.extend_from_slice(&encode(10, b"next"));
        let f = frame(&mut c, &mut rest);
        assert_eq!((f.request_id, &f.payload[..]), (10, &b"next"[..]));
        // An oversized length without a sound header is not skipped: it is an error.
        let mut junk = BytesMut::from(
            &[
                0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            ][..],
        );
        assert!(matches!(c.decode(&mut junk), Err(WireError::Malformed(_))));
    }

    #[test]
    fn refuses_what_is_not_a_frame() {
        let mut c = FrameCodec::new(1024);
        let mut short = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3][..]);
        assert!(matches!(c.decode(&mut short), Err(WireError::Malformed(_))));
        let mut magic = encode(1, b"x");
        magic[4] = b'X';
        assert!(matches!(c.decode(&mut magic), Err(WireError::Malformed(_))));
        let mut version = encode(1, b"x");
        version[7] = 9;
        assert!(matches!(
            c.decode(&mut version),
            Err(WireError::UnsupportedVersion(9))
        ));
        assert_eq!(WireError::UnsupportedVersion(9).code(), "Malformed");
    }

    #[test]
    fn pipelined_frames_come_out_one_by_one_and_partial_ones_wait() {
        let mut c = FrameCodec::default();
        let mut b = encode(7, b"first");
        b.extend_from_slice(&encode(8, b"second"));
        let tail = b.split_off(b.len() - 3);
        assert_eq!(frame(&mut c, &mut b).request_id, 7);
        assert_eq!(
            c.decode(&mut b).unwrap(),
            None,
            "the second is not whole yet"
        );
        b.extend_from_slice(&tail);
        let f = frame(&mut c, &mut b);
        assert_eq!((f.request_id, &f.payload[..]), (8, &b"second"[..]));
        assert!(b.is_empty());
    }

    proptest! {
        #[test]
        fn round_trip(id in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut b = encode(id, &payload);
            let f = frame(&mut FrameCodec::default(), &mut b);
            prop_assert_eq!(f.request_id, id);
            prop_assert_eq!(&f.payload[..], &payload[..]);
        }

        /// Random bytes never panic and never make the decoder allocate past the limit.
        #[test]
        fn random_bytes_are_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut c = FrameCodec::new(4096);
            let mut b = BytesMut::from(&bytes[..]);
            for _ in 0..4 {
                match c.decode(&mut b) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
            prop_assert!(b.capacity() <= 4096 + 4 + 64);
        }
    }
}
