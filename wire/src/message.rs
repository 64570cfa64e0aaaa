//! Request and response payloads (bincode 2 with serde), one enum each, and the error
//! codes of SPEC §6.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every error code of SPEC §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Well-formed but unacceptable arguments.
    BadRequest,
    /// Not a valid frame or payload.
    Malformed,
    /// Over the frame limit.
    FrameTooLarge,
    /// No such topic.
    TopicNotFound,
    /// The topic exists.
    TopicExists,
    /// Delay message to a normal topic or the reverse.
    TopicTypeMismatch,
    /// Unacceptable delivery time.
    BadDeliveryTime,
    /// Invisible duration out of range.
    BadInvisibleDuration,
    /// Unknown or stale receipt.
    BadReceiptHandle,
    /// Not found (or no longer Timing).
    NotFound,
    /// Body over the limit.
    MessageTooLarge,
    /// Disk over its watermark.
    StorageFull,
    /// Too many requests.
    Throttled,
    /// Missing or wrong token.
    Unauthorized,
    /// The daemon is stopping.
    ShuttingDown,
    /// Anything else.
    Internal,
}

impl ErrorCode {
    /// The code as SPEC §6 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::Malformed => "Malformed",
            ErrorCode::FrameTooLarge => "FrameTooLarge",
            ErrorCode::TopicNotFound => "TopicNotFound",
            ErrorCode::TopicExists => "TopicExists",
            ErrorCode::TopicTypeMismatch => "TopicTypeMismatch",
            ErrorCode::BadDeliveryTime => "BadDeliveryTime",
            ErrorCode::BadInvisibleDuration => "BadInvisibleDuration",
            ErrorCode::BadReceiptHandle => "BadReceiptHandle",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::MessageTooLarge => "MessageTooLarge",
            ErrorCode::StorageFull => "StorageFull",
            ErrorCode::Throttled => "Throttled",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::ShuttingDown => "ShuttingDown",
            ErrorCode::Internal => "Internal",
        }
    }

    /// Parses a code as SPEC §6 spells it.
    pub fn parse(s: &str) -> Option<Self> {
        ALL_CODES.iter().copied().find(|c| c.as_str() == s)
    }
}

/// Every code, for tables and tests.
pub const ALL_CODES: [ErrorCode; 16] = [
    ErrorCode::BadRequest,
    ErrorCode::Malformed,
    ErrorCode::FrameTooLarge,
    ErrorCode::TopicNotFound,
    ErrorCode::TopicExists,
    ErrorCode::TopicTypeMismatch,
    ErrorCode::BadDeliveryTime,
    ErrorCode::BadInvisibleDuration,
    ErrorCode::BadReceiptHandle,
    ErrorCode::NotFound,
    ErrorCode::MessageTooLarge,
    ErrorCode::StorageFull,
    ErrorCode::Throttled,
    ErrorCode::Unauthorized,
    ErrorCode::ShuttingDown,
    ErrorCode::Internal,
];

/// A refused request: a code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFailure {
    /// The code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

/// A message as a producer sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// Topic.
    pub topic: String,
    /// Tag.
    pub tag: Option<String>,
    /// Lookup keys.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
    /// Absolute delivery time (Unix ms) for delay messages.
    pub deliver_at_ms: Option<i64>,
}

/// What a send returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// 32 lowercase hex characters.
    pub message_id: String,
    /// Recalls or reschedules while Timing.
    pub recall_handle: String,
    /// Effective delivery time.
    pub deliver_at_ms: u64,
    /// Whether it differs from the requested one.
    pub adjusted: bool,
}

/// The first frame of every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's protocol version.
    pub version: u16,
    /// The shared token, when the daemon requires one.
    pub token: Option<String>,
}

/// Encodes a payload with bincode 2's standard configuration.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, crate::WireError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map_err(|e| crate::WireError::Malformed(format!("cannot encode: {e}")))
}

/// Decodes a payload, refusing trailing bytes and any single allocation over 8 MiB.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, crate::WireError> {
    let cfg = bincode::config::standard().with_limit::<{ 8 * 1024 * 1024 }>();
    let (v, used) = bincode::serde::decode_from_slice(bytes, cfg)
        .map_err(|e| crate::WireError::Malformed(format!("undecodable payload: {e}")))?;
    if used != bytes.len() {
        return Err(crate::WireError::Malformed(format!(
            "{} trailing bytes after the payload",
            bytes.len() - used
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_round_trip_by_name() {
        for c in ALL_CODES {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("Nope"), None);
    }

    #[test]
    fn payloads_round_trip_and_junk_is_refused() {
        let m = OutgoingMessage {
            topic: "t".into(),
            tag: Some("a".into()),
            keys: vec!["k".into()],
            properties: [("p".to_string(), "v".to_string())].into(),
            body: vec![1, 2, 3],
            deliver_at_ms: Some(-1),
        };
        let b = encode(&m).unwrap();
        assert_eq!(decode::<OutgoingMessage>(&b).unwrap(), m);
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode::<OutgoingMessage>(&longer).is_err());
        assert!(decode::<OutgoingMessage>(&b[..b.len() - 1]).is_err());
        let f = WireFailure {
            code: ErrorCode::StorageFull,
            message: "full".into(),
        };
        assert_eq!(decode::<WireFailure>(&encode(&f).unwrap()).unwrap(), f);
    }

    proptest! {
        /// Random bytes decode to an error or a value, never a panic or a huge allocation.
        #[test]
        fn random_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<OutgoingMessage>(&bytes);
            let _ = decode::<Hello>(&bytes);
        }
    }
}
