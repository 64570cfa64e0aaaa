//! Feeds arbitrary bytes to the frame codec in chunks, as a connection would receive
//! them, and decodes every frame's payload as a request. The first byte picks the frame
//! limit, whether the rest arrives at once, and whether each frame's magic and version
//! are set right (a two-byte magic is too rare to come up by chance, and no comparison
//! hint guides the fuzzer to it, so without this few inputs would get past the header);
//! the second byte picks the chunk size.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sundial_fuzz::{check_request, measured, CODEC_SLACK};
use sundial_wire::{FrameCodec, Inbound, WireError, HEADER_LEN, MAGIC, PROTOCOL_VERSION};
use tokio_util::codec::Decoder;

/// Frame limits to try: tiny ones, so that short inputs reach the oversized path, and
/// larger ones, so that they reach the request decoder.
const LIMITS: [usize; 4] = [HEADER_LEN, 64, 1024, 64 * 1024];

/// Checks one decoded item against the limit and decodes a frame's payload.
fn check_item(item: &Inbound, max_frame: usize) {
    match item {
        Inbound::Frame(f) => {
            assert!(
                f.payload.len() + HEADER_LEN <= max_frame,
                "a frame over the limit"
            );
            check_request(&f.payload);
        }
        Inbound::Oversized { len, .. } => {
            assert!(*len > max_frame, "an oversized frame within the limit");
        }
    }
}

/// What one codec call left the stream with.
enum Step {
    /// An item came out; there may be more.
    Item,
    /// More bytes are needed (or, at the end of input, the stream ended cleanly).
    Wait,
    /// An error: the connection ends here.
    End,
}

/// Runs one codec call and checks its allocation, its progress and its error type.
fn step(codec: &mut FrameCodec, buf: &mut BytesMut, eof: bool) -> Step {
    let max_frame = codec.max_frame();
    let before = buf.len();
    let (r, largest) = measured(|| {
        if eof {
            codec.decode_eof(buf)
        } else {
            codec.decode(buf)
        }
    });
    assert!(
        largest <= max_frame + CODEC_SLACK,
        "the codec allocated {largest} bytes at once (limit {max_frame})"
    );
    match r {
        Ok(Some(item)) => {
            assert!(buf.len() < before, "an item without consuming input");
            check_item(&item, max_frame);
            Step::Item
        }
        Ok(None) => Step::Wait,
        Err(
            WireError::FrameTooLarge { .. }
            | WireError::Malformed(_)
            | WireError::UnsupportedVersion(_)
            | WireError::Io(_),
        ) => Step::End,
        Err(e) => panic!("untyped codec error {e:?}"),
    }
}

/// Writes the right magic and version at the start of every frame of `stream`, following
/// the length prefixes as the codec would, so that the fuzzer's mutations of lengths,
/// ids and payloads get past the header check.
fn repair_headers(stream: &mut [u8]) {
    let mut at = 0usize;
    while at + 4 + HEADER_LEN <= stream.len() {
        let len = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        stream[at + 4..at + 6].copy_from_slice(&MAGIC);
        stream[at + 6..at + 8].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        at = match (at + 4).checked_add(len) {
            Some(next) if len >= HEADER_LEN => next,
            _ => break,
        };
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, size, stream @ ..] = data else {
        return;
    };
    let mut stream = stream.to_vec();
    if mode & 8 != 0 {
        repair_headers(&mut stream);
    }
    let max_frame = LIMITS[usize::from(mode & 3)];
    let chunk = if mode & 4 != 0 {
        stream.len().max(1)
    } else {
        usize::from(*size) + 1
    };
    let mut codec = FrameCodec::new(max_frame);
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match step(&mut codec, &mut buf, false) {
                Step::Item => {}
                Step::Wait => break,
                Step::End => return,
            }
        }
    }
    while let Step::Item = step(&mut codec, &mut buf, true) {}
});
