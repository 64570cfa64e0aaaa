//! The engine's one error type; each variant maps to one wire error code of SPEC §6.

/// Every way an engine operation can be refused or fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// The disk is over its high watermark and the policy refuses new sends.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The engine is closing or closed.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A write or sync failed earlier; the engine refuses writes until it is reopened.
    #[error("storage failed earlier and writes are refused until restart: {0}")]
    Poisoned(String),
    /// RocksDB reported an error.
    #[error("storage error: {0}")]
    Storage(String),
    /// A stored record could not be decoded.
    #[error("corrupt stored record: {0}")]
    Corrupt(String),
}

impl Error {
    /// The SPEC §6 error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "BadRequest",
            Error::TopicNotFound(_) => "TopicNotFound",
            Error::TopicExists(_) => "TopicExists",
            Error::TopicTypeMismatch { .. } => "TopicTypeMismatch",
            Error::BadDeliveryTime(_) => "BadDeliveryTime",
            Error::BadInvisibleDuration(_) => "BadInvisibleDuration",
            Error::BadReceiptHandle(_) => "BadReceiptHandle",
            Error::NotFound(_) => "NotFound",
            Error::MessageTooLarge { .. } => "MessageTooLarge",
            Error::StorageFull(_) => "StorageFull",
            Error::ShuttingDown => "ShuttingDown",
            Error::Poisoned(_) | Error::Storage(_) | Error::Corrupt(_) => "Internal",
        }
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(e.into_string())
    }
}

/// Result with the engine's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
