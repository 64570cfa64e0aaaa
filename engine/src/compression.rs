//! Whether the stored messages are worth compressing.
//!
//! The `messages` family's tables are compressed with LZ4 when a memtable is flushed
//! (its tables are then moved down unrewritten, so the flush is the only time). RocksDB
//! keeps a compressed block only when it saves an eighth (896 bytes a KiB or less), but
//! it compresses every block to find out: with bodies that do not compress (encrypted,
//! already compressed, random ids) and are large next to their record's other fields,
//! that work is all thrown away. So the writer samples the records it stores (the body
//! with its delivery time, tag, keys and properties, as a block holds them), compresses
//! each 16 KiB sample with the same LZ4, and the maintenance thread switches the
//! family's compression off while the samples say RocksDB would keep no block
//! compressed, and on again once they shrink.
//!
//! Sampling takes consecutive records (so what neighbouring messages share counts, as
//! it does in a block) until a sample is full, then skips 255 times as many messages:
//! the writer spends a few tens of instructions per message on it.

use crate::store::families::MESSAGES;
use crate::Shared;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

/// Bytes per sample: the `messages` family's block size.
const SAMPLE_BYTES: usize = 16 << 10;
/// Most bytes one record adds to a sample.
const RECORD_BYTES: usize = 4 << 10;
/// Messages skipped after a sample, per message the sample took.
const SKIP_PER_TAKEN: u32 = 255;
/// Compression goes off when the smoothed ratio (compressed / raw, in thousandths) is
/// at least this: RocksDB would keep hardly any block compressed (it keeps those at
/// 875 or less).
const OFF_AT: u32 = 900;
/// And on again at or below this.
const ON_AT: u32 = 850;
/// The ratio before any sample.
const UNSAMPLED: u32 = u32::MAX;

/// The writer's sampling state and what it concluded.
pub(crate) struct RecordSampler {
    /// Bodies to let pass before the next sample starts (the writer's alone).
    skip: AtomicU32,
    sample: Mutex<Sample>,
    /// Compressed / raw of the recent samples, in thousandths, smoothed.
    ratio: AtomicU32,
    /// What the samples call for.
    want_lz4: AtomicBool,
    /// What the family is set to.
    lz4: AtomicBool,
}

#[derive(Default)]
struct Sample {
    bytes: Vec<u8>,
    taken: u32,
    out: Vec<u8>,
}

impl Default for RecordSampler {
    fn default() -> Self {
        RecordSampler {
            skip: AtomicU32::new(0),
            sample: Mutex::new(Sample::default()),
            ratio: AtomicU32::new(UNSAMPLED),
            want_lz4: AtomicBool::new(true),
            lz4: AtomicBool::new(true),
        }
    }
}

impl RecordSampler {
    /// Offers one stored record (its value); returns true when the samples changed their call
    /// (the caller wakes the maintenance thread to apply it).
    pub fn offer(&self, record: &[u8]) -> bool {
        let skip = self.skip.load(Ordering::Relaxed);
        if skip > 0 {
            self.skip.store(skip - 1, Ordering::Relaxed);
            return false;
        }
        let mut s = self.sample.lock().unwrap_or_else(|p| p.into_inner());
        let room = SAMPLE_BYTES - s.bytes.len();
        let take = record.len().min(RECORD_BYTES).min(room);
        s.bytes.extend_from_slice(&record[..take]);
        s.taken += 1;
        if s.bytes.len() < SAMPLE_BYTES {
            return false;
        }
        let Sample { bytes, out, .. } = &mut *s;
        let ratio = lz4_ratio(bytes, out);
        self.skip
            .store(s.taken.saturating_mul(SKIP_PER_TAKEN), Ordering::Relaxed);
        s.bytes.clear();
        s.taken = 0;
        drop(s);
        self.conclude(ratio)
    }

    /// Folds one sample's ratio (thousandths) in; returns true when the call changed.
    fn conclude(&self, ratio: u32) -> bool {
        let old = self.ratio.load(Ordering::Relaxed);
        let smoothed = if old == UNSAMPLED {
            ratio
        } else {
            (old + ratio) / 2
        };
        self.ratio.store(smoothed, Ordering::Relaxed);
        let want = self.want_lz4.load(Ordering::Relaxed);
        let now = if want {
            smoothed < OFF_AT
        } else {
            smoothed <= ON_AT
        };
        self.want_lz4.store(now, Ordering::Relaxed);
        now != want
    }

    /// The smoothed ratio of the recent samples (compressed / raw), if any was taken.
    pub fn ratio(&self) -> Option<f64> {
        match self.ratio.load(Ordering::Relaxed) {
            UNSAMPLED => None,
            r => Some(f64::from(r) / 1000.0),
        }
    }

    /// Whether the `messages` family is set to compress.
    pub fn compressing(&self) -> bool {
        self.lz4.load(Ordering::Relaxed)
    }
}

/// Compressed / raw size of `data` with LZ4 (RocksDB's default level), in thousandths;
/// `out` is the output buffer, kept between samples.
fn lz4_ratio(data: &[u8], out: &mut Vec<u8>) -> u32 {
    if data.is_empty() {
        return 1000;
    }
    let Ok(len) = i32::try_from(data.len()) else {
        return 1000;
    };
    // SAFETY: a pure function of its arguments.
    let bound = unsafe { lz4_sys::LZ4_compressBound(len) };
    let Ok(cap) = usize::try_from(bound) else {
        return 1000;
    };
    out.clear();
    out.resize(cap.max(1), 0);
    // SAFETY: `data` is valid for `len` bytes and `out` for `bound` bytes, the sizes
    // passed; LZ4 writes at most `bound` bytes and reads nothing past `len`.
    let n = unsafe {
        lz4_sys::LZ4_compress_default(data.as_ptr().cast(), out.as_mut_ptr().cast(), len, bound)
    };
    if n <= 0 {
        return 1000;
    }
    ((n as u64 * 1000) / data.len() as u64).min(u64::from(u32::MAX - 1)) as u32
}

/// Sets the `messages` family's compression to what the samples call for, if it is
/// not already (run by the maintenance thread; a change writes a new OPTIONS file).
pub(crate) fn apply(sh: &Shared) {
    let s = &sh.compression;
    let want = s.want_lz4.load(Ordering::Relaxed);
    if want == s.lz4.load(Ordering::Relaxed) {
        return;
    }
    let Ok(cf) = sh.store.cf(MESSAGES) else {
        return;
    };
    let value = if want {
        "kLZ4Compression"
    } else {
        "kNoCompression"
    };
    match sh.store.db.set_options_cf(cf, &[("compression", value)]) {
        Ok(()) => {
            s.lz4.store(want, Ordering::Relaxed);
            tracing::info!(
                compression = if want { "lz4" } else { "none" },
                sampled_ratio = s.ratio().unwrap_or(1.0),
                "messages' tables: compression changed"
            );
        }
        Err(e) => tracing::warn!(error = %e, "could not change the messages' compression"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that do not compress (a fixed xorshift stream).
    fn noise(n: usize, seed: &mut u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed >> 24) as u8
            })
            .collect()
    }

    /// A JSON-like body: repeated field names, varying values.
    fn json(i: u64) -> Vec<u8> {
        format!(
            r#"{{"order_id":{i},"customer":"c-{}","status":"pending","items":[{{"sku":"A-{}","qty":{}}}],"currency":"EUR"}}"#,
            i % 977,
            i % 31,
            i % 5 + 1
        )
        .into_bytes()
    }

    /// Offers `n` bodies made by `body`; returns how many times the call changed.
    fn offer_all(s: &RecordSampler, n: u64, mut body: impl FnMut(u64) -> Vec<u8>) -> usize {
        (0..n).filter(|&i| s.offer(&body(i))).count()
    }

    #[test]
    fn bodies_that_do_not_compress_turn_compression_off() {
        let s = RecordSampler::default();
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        assert_eq!(offer_all(&s, 20_000, |_| noise(256, &mut seed)), 1);
        assert!(!s.want_lz4.load(Ordering::Relaxed));
        let r = s.ratio().expect("sampled");
        assert!(r > 0.99, "random bytes sampled at {r}");
    }

    #[test]
    fn bodies_that_compress_keep_it_on() {
        let s = RecordSampler::default();
        assert_eq!(offer_all(&s, 20_000, json), 0);
        assert!(s.want_lz4.load(Ordering::Relaxed));
        let r = s.ratio().expect("sampled");
        assert!(r < 0.5, "JSON sampled at {r}");
    }

    #[test]
    fn the_call_follows_the_bodies_both_ways() {
        let s = RecordSampler::default();
        let mut seed = 7;
        assert_eq!(offer_all(&s, 10_000, |_| noise(512, &mut seed)), 1);
        assert!(!s.want_lz4.load(Ordering::Relaxed));
        assert_eq!(offer_all(&s, 10_000, json), 1);
        assert!(s.want_lz4.load(Ordering::Relaxed));
    }

    #[test]
    fn neighbours_that_repeat_count_as_compressible() {
        // Each random body comes four times in a row: blocks of them compress, and so
        // must the samples, which take consecutive bodies.
        let s = RecordSampler::default();
        let mut seed = 11;
        let mut last = Vec::new();
        let changes = offer_all(&s, 20_000, |i| {
            if i % 4 == 0 {
                last = noise(300, &mut seed);
            }
            last.clone()
        });
        assert_eq!(changes, 0);
        assert!(s.ratio().expect("sampled") < 0.5);
    }

    #[test]
    fn sampling_takes_consecutive_bodies_then_skips_255_times_as_many() {
        let s = RecordSampler::default();
        let mut seed = 3;
        // 16 KiB of 256-byte bodies is 64 of them: the 64th completes the sample.
        for i in 0..64 {
            assert!(s.ratio().is_none(), "a sample completed after {i} bodies");
            s.offer(&noise(256, &mut seed));
        }
        assert!(s.ratio().is_some());
        assert_eq!(s.skip.load(Ordering::Relaxed), 64 * 255);
        for _ in 0..64 * 255 {
            s.offer(&noise(256, &mut seed));
        }
        assert_eq!(s.skip.load(Ordering::Relaxed), 0);
        assert!(s.sample.lock().unwrap().bytes.is_empty());
        s.offer(&noise(256, &mut seed));
        assert_eq!(s.sample.lock().unwrap().bytes.len(), 256);
        // A large body adds at most 4 KiB.
        s.offer(&noise(64 << 10, &mut seed));
        assert_eq!(s.sample.lock().unwrap().bytes.len(), 256 + 4096);
    }

    #[test]
    fn ratio_of_edge_inputs() {
        let mut out = Vec::new();
        assert_eq!(lz4_ratio(&[], &mut out), 1000);
        assert!(lz4_ratio(&[b'x'; 16 << 10], &mut out) < 20);
    }
}
