//! Times on the wire: `google.protobuf.Timestamp` as sundial's milliseconds.

use prost_types::Timestamp;

/// The Unix time in milliseconds of a delivery timestamp: seconds × 1000 plus whole
/// milliseconds of the nanos. `None` when the nanos are outside 0..1e9 or the result
/// does not fit an `i64`, so that a client that passed milliseconds where seconds were
/// expected (seconds ≈ 1.8e12, still in range) and one that sent garbage are told apart
/// from an overflow only by the caller's range check, never by a wrapped value.
pub fn delivery_ms(ts: Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    ts.seconds
        .checked_mul(1000)?
        .checked_add(i64::from(ts.nanos / 1_000_000))
}

/// The timestamp of a Unix time in milliseconds, as sundial returns delivery and store
/// times to consumers.
pub fn timestamp_of_ms(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        // In 0..1000 by div_euclid, so the product fits.
        nanos: (ms.rem_euclid(1000) as i32) * 1_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn seconds_and_nanos_become_milliseconds() {
        // What the Python client sends: whole seconds, nanos 0.
        assert_eq!(delivery_ms(ts(1_785_000_000, 0)), Some(1_785_000_000_000));
        // What the Node client sends: millisecond precision in the nanos.
        assert_eq!(
            delivery_ms(ts(1_785_000_000, 122_000_000)),
            Some(1_785_000_000_122)
        );
        // Sub-millisecond nanos are truncated, not rounded.
        assert_eq!(delivery_ms(ts(1, 999_999_999)), Some(1_999));
        assert_eq!(delivery_ms(ts(0, 0)), Some(0));
    }

    #[test]
    fn milliseconds_passed_as_seconds_still_convert() {
        // The Python pitfall: 1.785e12 "seconds" is year ~58000, a valid i64 of ms that
        // the caller refuses by range (ILLEGAL_DELIVERY_TIME), not here.
        assert_eq!(
            delivery_ms(ts(1_785_000_000_000, 0)),
            Some(1_785_000_000_000_000)
        );
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(delivery_ms(ts(i64::MAX, 0)), None);
        assert_eq!(delivery_ms(ts(i64::MAX / 1000, 999_000_000)), None);
        assert_eq!(delivery_ms(ts(i64::MIN, 0)), None);
        assert_eq!(delivery_ms(ts(1, -1)), None);
        assert_eq!(delivery_ms(ts(1, 1_000_000_000)), None);
        assert_eq!(delivery_ms(ts(1, i32::MIN)), None);
    }

    #[test]
    fn negative_seconds_are_before_the_epoch() {
        assert_eq!(delivery_ms(ts(-1, 500_000_000)), Some(-500));
    }

    #[test]
    fn milliseconds_round_trip() {
        for ms in [0, 1, 999, 1000, 1_785_000_000_122, -1, -1001] {
            assert_eq!(delivery_ms(timestamp_of_ms(ms)), Some(ms), "{ms}");
        }
    }
}
