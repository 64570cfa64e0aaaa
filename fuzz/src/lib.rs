//! What the fuzz targets share: a counting global allocator, so that a target can fail
//! on an allocation out of proportion to its input (which the sanitizer alone would let
//! pass until memory ran out), and the bounds the targets hold the decoders to.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Slack over the frame limit for one allocation by the frame codec: the buffer holds a
/// whole frame and its 4-byte length prefix; everything else is small and of fixed size
/// whatever the input (an error message, which `format!` sizes at about twice its text,
/// under 128 bytes; the 40-byte shared header of a buffer a frame is split off). The
/// limit can be as low as 12 bytes, hence room for those.
pub const CODEC_SLACK: usize = 4 + 256;

/// How many bytes of decoded value one payload byte may become. A list element takes at
/// least one byte on the wire (an empty string) and 24 in memory, and a growing list may
/// hold twice the room it uses: 48; rounded up. A length that is only claimed, with no
/// bytes behind it, must not count at all.
pub const EXPANSION: usize = 64;

/// Fixed slack for one allocation by the request decoder: a list reserves room for at
/// most 16 elements before they arrive (under 3 KiB for the largest element), and error
/// messages and map nodes are small.
pub const DECODE_SLACK: usize = 4 * 1024;

/// Wraps the system allocator and records the largest single allocation made on this
/// thread while measuring is on.
struct Counting;

thread_local! {
    /// Whether allocations on this thread are being measured.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    /// The largest single allocation (or reallocation target) since measuring began.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Records an allocation of `size` bytes if this thread is measuring. Const-initialised
/// thread locals without destructors never allocate, so this cannot recurse.
fn note(size: usize) {
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is passed unchanged to the system allocator; only sizes are read.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The allocator of every fuzz target, so that decoding is measured where it happens.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Switches measuring off when dropped, so that a panic inside a measured call does not
/// leave the thread measured.
struct MeasureGuard;

impl Drop for MeasureGuard {
    fn drop(&mut self) {
        MEASURING.with(|m| m.set(false));
    }
}

/// Runs `f` with measuring on and returns its result with the largest single
/// allocation it made.
pub fn measured<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    MEASURING.with(|m| m.set(true));
    let guard = MeasureGuard;
    let r = f();
    drop(guard);
    (r, LARGEST.with(|l| l.get()))
}

/// Decodes `payload` as the daemon decodes a request frame and checks what must hold
/// for any input: a bounded allocation, a typed error, and a stable round trip.
pub fn check_request(payload: &[u8]) {
    use sundial_wire::{decode, decode_request, encode, Request, WireError};
    let (r, largest) = measured(|| decode_request(payload));
    assert!(
        largest <= EXPANSION * payload.len() + DECODE_SLACK,
        "decoding a {}-byte payload allocated {largest} bytes at once",
        payload.len()
    );
    match r {
        Ok(req) => {
            let bytes = encode(&req).expect("a decoded request encodes");
            let again: Request = decode(&bytes).expect("a re-encoded request decodes");
            assert_eq!(again, req, "decode, encode, decode is stable");
        }
        Err(WireError::Malformed(_)) => {}
        Err(e) => panic!("the request decoder returned {e:?}, not Malformed"),
    }
}
