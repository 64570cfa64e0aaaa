//! The engine's one error type. Storage failures keep what kind of failure RocksDB or
//! the file system reported ([`StorageErrorKind`]): a full disk is handled (sends are
//! refused and writes resume once there is room), corruption and unknown I/O errors
//! poison the engine. The mapping to wire error codes lives in the daemon.

/// Every way an engine operation can be refused or fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is well-formed but its arguments are not acceptable.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The named topic does not exist.
    #[error("topic {0:?} not found")]
    TopicNotFound(String),
    /// A topic with that name already exists.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// The message's kind (delay or not) does not fit the topic's message type.
    #[error("topic {topic:?} has message type {kind}: {why}")]
    TopicTypeMismatch {
        /// The topic's name.
        topic: String,
        /// The topic's message type.
        kind: String,
        /// What was wrong with the message.
        why: String,
    },
    /// The delivery time is negative, absurd, overflows, or is beyond `max_delay` under
    /// the `reject` policy.
    #[error("bad delivery time: {0}")]
    BadDeliveryTime(String),
    /// The invisible duration is outside the allowed range.
    #[error("invisible duration {0} ms is outside 100 ms ..= 12 h")]
    BadInvisibleDuration(u64),
    /// The receipt handle is unknown, stale, or malformed.
    #[error("bad receipt handle: {0}")]
    BadReceiptHandle(String),
    /// The thing asked for does not exist (or no longer is in the asked state).
    #[error("not found: {0}")]
    NotFound(String),
    /// The body is larger than the configured limit.
    #[error("message body is {size} bytes; the limit is {limit}")]
    MessageTooLarge {
        /// The body's size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The disk is over its high watermark, or the file system ran out of space, and
    /// the write was refused; nothing of it was stored.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The engine is closing or closed.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A write, a sync or an engine thread failed earlier; the engine refuses writes
    /// until it is reopened.
    #[error("storage failed earlier and writes are refused until restart: {0}")]
    Poisoned(String),
    /// RocksDB or the file system under it reported an error.
    #[error("storage error: {0}")]
    Storage(#[source] StorageError),
    /// A stored record could not be decoded.
    #[error("corrupt stored record: {0}")]
    Corrupt(String),
    /// A failure inside the engine or its host that is not about storage (a thread
    /// could not start, an answer went missing).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of storage failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// The file system has no space left (or RocksDB stopped writes after that).
    NoSpace,
    /// RocksDB found corrupt data.
    Corruption,
    /// Any other I/O error.
    Io,
    /// RocksDB is shutting down.
    ShutdownInProgress,
    /// A bad argument or an unsupported operation (a bug in the engine, or a bad path).
    InvalidArgument,
    /// Anything else RocksDB reports.
    Other,
}

/// A storage failure with its kind and RocksDB's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    /// The kind of failure.
    pub kind: StorageErrorKind,
    /// RocksDB's (or the file system's) message.
    pub message: String,
}

impl StorageError {
    /// A storage error of `kind`.
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        StorageError {
            kind,
            message: message.into(),
        }
    }
}

impl Error {
    /// A storage error of `kind` (also for failures the engine injects in tests).
    pub fn storage(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        Error::Storage(StorageError::new(kind, message))
    }

    /// Whether this is the file system running out of space: the engine refuses sends
    /// and keeps going instead of poisoning itself.
    pub fn is_no_space(&self) -> bool {
        matches!(
            self,
            Error::Storage(StorageError {
                kind: StorageErrorKind::NoSpace,
                ..
            })
        )
    }
}

/// The kind of a RocksDB error. RocksDB reports a full disk as an I/O error whose
/// sub-code message is "No space left on device" (its `Status::NoSpace`), and once it
/// has stopped writes after one, every write returns that same background error.
fn kind_of(kind: rocksdb::ErrorKind, msg: &str) -> StorageErrorKind {
    match kind {
        rocksdb::ErrorKind::IOError
            if msg.contains("No space left on device") || msg.contains("space limit") =>
        {
            StorageErrorKind::NoSpace
        }
        rocksdb::ErrorKind::IOError => StorageErrorKind::Io,
        rocksdb::ErrorKind::Corruption => StorageErrorKind::Corruption,
        rocksdb::ErrorKind::ShutdownInProgress => StorageErrorKind::ShutdownInProgress,
        rocksdb::ErrorKind::InvalidArgument | rocksdb::ErrorKind::NotSupported => {
            StorageErrorKind::InvalidArgument
        }
        _ => StorageErrorKind::Other,
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(StorageError::new(
            kind_of(e.kind(), e.as_ref()),
            e.into_string(),
        ))
    }
}

/// Result with the engine's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        use rocksdb::ErrorKind as K;
        let nospace = "IO error: No space left on device: While appending to file: /d/12.log";
        assert_eq!(kind_of(K::IOError, nospace), StorageErrorKind::NoSpace);
        let io = "IO error: Input/output error: /d/000012.log";
        assert_eq!(kind_of(K::IOError, io), StorageErrorKind::Io);
        let corrupt = "Corruption: block checksum mismatch";
        assert_eq!(
            kind_of(K::Corruption, corrupt),
            StorageErrorKind::Corruption
        );
        assert_eq!(kind_of(K::Busy, "Resource busy"), StorageErrorKind::Other);
        let e = Error::storage(StorageErrorKind::NoSpace, nospace);
        assert!(e.is_no_space());
        assert!(!Error::storage(StorageErrorKind::Io, io).is_no_space());
    }

    #[test]
    fn a_storage_error_keeps_its_cause() {
        use std::error::Error as _;
        let e = Error::storage(StorageErrorKind::Io, "disk went away");
        assert_eq!(
            e.source().map(|s| s.to_string()),
            Some("disk went away".into())
        );
    }
}
