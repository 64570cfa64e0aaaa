//! Decodes arbitrary bytes as a request payload, as the daemon does with every frame:
//! no panic, a bounded allocation, a typed error, and whatever decodes must encode and
//! decode again to an equal request. The same bytes are decoded as a response too, for
//! panics and allocation only: responses hold floats, and a NaN never compares equal.
//! The client's reader of a receive's answer must agree with serde's on every input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sundial_fuzz::{check_request, measured, DECODE_SLACK, EXPANSION};
use sundial_wire::{decode, decode_response, Response};

fuzz_target!(|data: &[u8]| {
    check_request(data);
    let (_, largest) = measured(|| decode::<Response>(data));
    assert!(
        largest <= EXPANSION * data.len() + DECODE_SLACK,
        "decoding a {}-byte response allocated {largest} bytes at once",
        data.len()
    );
    let (hand, largest) = measured(|| decode_response(data));
    assert!(
        largest <= EXPANSION * data.len() + DECODE_SLACK,
        "reading a {}-byte answer by hand allocated {largest} bytes at once",
        data.len()
    );
    if let (Ok(h @ Response::Messages(_)), serde) = (&hand, decode::<Response>(data)) {
        assert_eq!(serde.as_ref().ok(), Some(h), "serde read {serde:?}");
    } else if matches!(decode::<Response>(data), Ok(Response::Messages(_))) {
        panic!("serde read a receive's answer the hand reader refused: {hand:?}");
    }
});
