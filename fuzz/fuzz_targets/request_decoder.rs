//! Decodes arbitrary bytes as a request payload, as the daemon does with every frame:
//! no panic, a bounded allocation, a typed error, and whatever decodes must encode and
//! decode again to an equal request. The same bytes are decoded as a response too, for
//! panics and allocation only: responses hold floats, and a NaN never compares equal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sundial_fuzz::{check_request, measured, DECODE_SLACK, EXPANSION};
use sundial_wire::{decode, Response};

fuzz_target!(|data: &[u8]| {
    check_request(data);
    let (_, largest) = measured(|| decode::<Response>(data));
    assert!(
        largest <= EXPANSION * data.len() + DECODE_SLACK,
        "decoding a {}-byte response allocated {largest} bytes at once",
        data.len()
    );
});
