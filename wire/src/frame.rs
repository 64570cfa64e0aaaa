//! Frames: a 4-byte big-endian length, then that many bytes: magic (2), protocol
//! version (2, big-endian), request id (8, big-endian) and the payload. The length is
//! checked against the configured maximum before anything is allocated for the frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Magic bytes that open every frame header.
pub const MAGIC: [u8; 2] = *b"SD";
/// The protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes of the header inside a frame (magic, version, request id).
pub const HEADER_LEN: usize = 12;
/// Default largest frame (length prefix excluded): a 4 MiB body plus room for the rest.
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024 + 64 * 1024;

/// One frame: a request id (so requests can be pipelined and answered out of order)
/// and an encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Chosen by the client, echoed in the response.
    pub request_id: u64,
    /// The bincode payload.
    pub payload: Bytes,
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
}

impl FrameCodec {
    /// A codec refusing frames over `max_frame` bytes (length prefix excluded).
    pub fn new(max_frame: usize) -> Self {
        FrameCodec {
            max_frame: max_frame.max(HEADER_LEN),
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame {
            return Err(WireError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        if len < HEADER_LEN {
            return Err(WireError::Malformed(format!(
                "frame of {len} bytes is shorter than its {HEADER_LEN}-byte header"
            )));
        }
        if src.len() < 4 + len {
            // Only now, with the length known to be within the limit.
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let mut frame = src.split_to(len);
        if frame[..2] != MAGIC {
            return Err(WireError::Malformed("bad magic".into()));
        }
        frame.advance(2);
        let version = frame.get_u16();
        if version != PROTOCOL_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let request_id = frame.get_u64();
        Ok(Some(Frame {
            request_id,
            payload: frame.freeze(),
        }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, f: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        let len = HEADER_LEN + f.payload.len();
        if len > self.max_frame {
            return Err(WireError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        dst.reserve(4 + len);
        dst.put_u32(len as u32);
        dst.put_slice(&MAGIC);
        dst.put_u16(PROTOCOL_VERSION);
        dst.put_u64(f.request_id);
        dst.put_slice(&f.payload);
        Ok(())
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

    #[test]
    fn refuses_what_is_not_a_frame() {
        let mut c = FrameCodec::new(1024);
        let mut big = BytesMut::from(&[0, 0, 4, 1][..]);
        assert!(matches!(
            c.decode(&mut big),
            Err(WireError::FrameTooLarge {
                len: 1025,
                max: 1024
            })
        ));
        assert!(
            big.capacity() < 1024,
            "nothing allocated for a refused frame"
        );
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
        assert_eq!(c.decode(&mut b).unwrap().unwrap().request_id, 7);
        assert_eq!(
            c.decode(&mut b).unwrap(),
            None,
            "the second is not whole yet"
        );
        b.extend_from_slice(&tail);
        let f = c.decode(&mut b).unwrap().unwrap();
        assert_eq!((f.request_id, &f.payload[..]), (8, &b"second"[..]));
        assert!(b.is_empty());
    }

    proptest! {
        #[test]
        fn round_trip(id in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut b = encode(id, &payload);
            let f = FrameCodec::default().decode(&mut b).unwrap().unwrap();
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
