//! Decodes arbitrary bytes as the request of a RocketMQ 5 RPC, as the gRPC front end
//! does with every message: the first byte picks the RPC, the rest is the protobuf.
//! No panic, a bounded allocation, and whatever decodes re-encodes stably (compared as
//! bytes: settings hold a float, and a NaN never compares equal).

#![no_main]

use std::mem::size_of;

use libfuzzer_sys::fuzz_target;
use sundial_fuzz::{measured, DECODE_SLACK};
use sundial_rmq_proto::{decode_request, v2, RPCS};

/// How many bytes of decoded value one input byte may become. An element of a repeated
/// message field takes at least two bytes on the wire (its tag and a zero length) and
/// its whole struct in memory, and a growing list may hold twice the room it uses, so
/// the largest such element bounds it; a `Message` (one per `SendMessageRequest` entry)
/// is the largest.
const EXPANSION: usize = max(
    size_of::<v2::Message>(),
    max(
        size_of::<v2::SubscriptionEntry>(),
        max(size_of::<v2::AckMessageEntry>(), size_of::<v2::Resource>()),
    ),
);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let rpc = RPCS[usize::from(pick) % RPCS.len()];
    let (r, largest) = measured(|| decode_request(rpc, bytes));
    assert!(
        largest <= EXPANSION * bytes.len() + DECODE_SLACK,
        "decoding a {}-byte {rpc} request allocated {largest} bytes at once",
        bytes.len()
    );
    if let Ok(req) = r {
        assert_eq!(req.rpc(), rpc);
        let once = req.encode_to_vec();
        let again = decode_request(rpc, &once).expect("a re-encoded request decodes");
        assert_eq!(again.encode_to_vec(), once, "decode, encode, decode is stable");
    }
});
