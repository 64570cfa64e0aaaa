//! Engine errors as SPEC §6 codes, mapped once. The native port sends the code as it is;
//! the RocketMQ gRPC port's `Status` codes (SPEC §8) map from these codes beside it.

use sundial_engine::{Error, StorageErrorKind};
use sundial_rmq_proto::v2::Code;
use sundial_wire::ErrorCode;

/// The SPEC §6 code of an engine error.
pub fn code(e: &Error) -> ErrorCode {
    // Every variant is named, so a new one cannot silently become `Internal`.
    match e {
        Error::BadRequest(_) => ErrorCode::BadRequest,
        Error::TopicNotFound(_) => ErrorCode::TopicNotFound,
        Error::TopicExists(_) => ErrorCode::TopicExists,
        Error::TopicTypeMismatch { .. } => ErrorCode::TopicTypeMismatch,
        Error::BadDeliveryTime(_) => ErrorCode::BadDeliveryTime,
        Error::BadInvisibleDuration(_) => ErrorCode::BadInvisibleDuration,
        Error::BadReceiptHandle(_) => ErrorCode::BadReceiptHandle,
        Error::NotFound(_) => ErrorCode::NotFound,
        Error::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
        Error::StorageFull(_) => ErrorCode::StorageFull,
        // A full file system refuses writes; it is not the daemon's fault.
        Error::Storage(s) if s.kind == StorageErrorKind::NoSpace => ErrorCode::StorageFull,
        Error::ShuttingDown => ErrorCode::ShuttingDown,
        Error::Poisoned(_) | Error::Storage(_) | Error::Corrupt(_) | Error::Internal(_) => {
            ErrorCode::Internal
        }
    }
}

/// The RocketMQ 5 `Status` code (SPEC §8) of a SPEC §6 code: what the gRPC port answers
/// in band for every refusal.
pub fn rmq_code(code: ErrorCode) -> Code {
    // Every code is named, so a new one has to be given its RocketMQ code here.
    match code {
        ErrorCode::BadRequest | ErrorCode::Malformed | ErrorCode::TopicExists => Code::BadRequest,
        ErrorCode::FrameTooLarge => Code::PayloadTooLarge,
        ErrorCode::TopicNotFound => Code::TopicNotFound,
        ErrorCode::TopicTypeMismatch => Code::MessagePropertyConflictWithType,
        ErrorCode::BadDeliveryTime => Code::IllegalDeliveryTime,
        ErrorCode::BadInvisibleDuration => Code::IllegalInvisibleTime,
        ErrorCode::BadReceiptHandle => Code::InvalidReceiptHandle,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::MessageTooLarge => Code::MessageBodyTooLarge,
        ErrorCode::StorageFull | ErrorCode::Throttled => Code::TooManyRequests,
        ErrorCode::Unauthorized => Code::Unauthorized,
        ErrorCode::ShuttingDown | ErrorCode::Internal => Code::InternalServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_codes_map_to_the_rocketmq_codes_of_spec_8() {
        let pairs = [
            (ErrorCode::TopicNotFound, 40402),
            (ErrorCode::TopicTypeMismatch, 40014),
            (ErrorCode::BadDeliveryTime, 40012),
            (ErrorCode::BadInvisibleDuration, 40011),
            (ErrorCode::BadReceiptHandle, 40013),
            (ErrorCode::MessageTooLarge, 41301),
            (ErrorCode::BadRequest, 40000),
            (ErrorCode::Unauthorized, 40100),
            (ErrorCode::Throttled, 42900),
            (ErrorCode::StorageFull, 42900),
            (ErrorCode::NotFound, 40400),
            (ErrorCode::Internal, 50001),
            (ErrorCode::ShuttingDown, 50001),
        ];
        for (c, n) in pairs {
            assert_eq!(rmq_code(c) as i32, n, "{c:?}");
        }
        // A disk out of space is "too many requests", not a server fault.
        let full = Error::storage(StorageErrorKind::NoSpace, "x");
        assert_eq!(rmq_code(code(&full)), Code::TooManyRequests);
    }

    #[test]
    fn every_engine_error_maps_to_a_spec_code() {
        let errors = [
            Error::BadRequest("x".into()),
            Error::TopicNotFound("t".into()),
            Error::StorageFull("x".into()),
            Error::Poisoned("x".into()),
            Error::ShuttingDown,
        ];
        let codes: Vec<_> = errors.iter().map(code).collect();
        assert_eq!(
            codes,
            vec![
                ErrorCode::BadRequest,
                ErrorCode::TopicNotFound,
                ErrorCode::StorageFull,
                ErrorCode::Internal,
                ErrorCode::ShuttingDown
            ]
        );
    }

    #[test]
    fn each_refusal_keeps_its_name_and_storage_failures_are_internal() {
        let refusals = [
            Error::BadRequest("x".into()),
            Error::TopicNotFound("t".into()),
            Error::TopicExists("t".into()),
            Error::TopicTypeMismatch {
                topic: "t".into(),
                kind: "DELAY".into(),
                why: "x".into(),
            },
            Error::BadDeliveryTime("x".into()),
            Error::BadInvisibleDuration(1),
            Error::BadReceiptHandle("x".into()),
            Error::NotFound("x".into()),
            Error::MessageTooLarge { size: 2, limit: 1 },
            Error::StorageFull("x".into()),
            Error::ShuttingDown,
        ];
        assert_eq!(
            code(&Error::storage(StorageErrorKind::NoSpace, "x")),
            ErrorCode::StorageFull
        );
        for e in &refusals {
            let name = format!("{e:?}");
            assert!(name.starts_with(code(e).as_str()), "{name} -> {}", code(e));
        }
        for e in [
            Error::Poisoned("x".into()),
            Error::storage(StorageErrorKind::Io, "x"),
            Error::Internal("x".into()),
            Error::Corrupt("x".into()),
        ] {
            assert_eq!(code(&e), ErrorCode::Internal, "{e:?}");
        }
    }
}
