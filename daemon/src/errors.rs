//! Engine errors as SPEC §6 codes, mapped once. The native port sends the code as it is;
//! the RocketMQ gRPC port's `Status` codes (SPEC §8) map from these codes beside it.

use sundial_engine::{Error, StorageErrorKind};
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

#[cfg(test)]
mod tests {
    use super::*;

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
