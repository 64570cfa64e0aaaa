//! Request and response payloads (bincode 2 with serde), one enum each, and the error
//! codes of SPEC §6.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every error code of SPEC §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

impl WireFailure {
    /// A failure with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireFailure {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for WireFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireFailure {}

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
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Absolute delivery time (Unix ms) for delay messages; `None` for normal ones.
    pub deliver_at_ms: Option<i64>,
}

impl OutgoingMessage {
    /// At least the bytes this message takes encoded: every length and integer counted
    /// at its widest (see [`Request::size_hint`]).
    fn encoded_at_most(&self) -> usize {
        let text = |s: &str| WIDEST_INT + s.len();
        let keys: usize = self.keys.iter().map(|k| text(k)).sum();
        let properties: usize = self.properties.iter().map(|(k, v)| text(k) + text(v)).sum();
        text(&self.topic)
            + self.tag.as_deref().map_or(1, |t| 1 + text(t))
            + WIDEST_INT
            + keys
            + WIDEST_INT
            + properties
            + WIDEST_INT
            + self.body.len()
            + 1
            + WIDEST_INT
    }

    /// A message for `topic` with `body`, no tag, keys or delivery time.
    pub fn new(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        OutgoingMessage {
            topic: topic.into(),
            body: body.into(),
            ..OutgoingMessage::default()
        }
    }

    /// Sets the absolute delivery time (Unix ms).
    pub fn deliver_at(mut self, ms: i64) -> Self {
        self.deliver_at_ms = Some(ms);
        self
    }

    /// Sets the tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Adds a lookup key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Adds a user property.
    pub fn property(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.properties.insert(k.into(), v.into());
        self
    }
}

/// What a send returns once the message is durable.
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

/// A send's receipt as the daemon answers it: the message id, the effective delivery
/// time and whether it was adjusted. The id's hex and the recall
/// handle follow from these, so the daemon prints neither and the client prints them
/// once ([`Sent::receipt`]); a batch's answer is a quarter of the bytes it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The message id (its 32 hex digits are the id clients see).
    pub id: u128,
    /// Effective delivery time.
    pub deliver_at_ms: u64,
    /// Whether it differs from the requested one.
    pub adjusted: bool,
}

impl Sent {
    /// The receipt with the id and recall handle printed: the handle is the time's 16
    /// hex digits and then the id's 32.
    pub fn receipt(&self) -> Receipt {
        let mut handle = String::with_capacity(48);
        push_hex(&mut handle, u128::from(self.deliver_at_ms), 16);
        push_hex(&mut handle, self.id, 32);
        Receipt {
            message_id: handle[16..].to_string(),
            recall_handle: handle,
            deliver_at_ms: self.deliver_at_ms,
            adjusted: self.adjusted,
        }
    }
}

/// Appends the low `digits` hex digits of `v`, lowercase, most significant first.
fn push_hex(out: &mut String, v: u128, digits: u32) {
    // Into a stack buffer first: pushing the characters one by one cost about 800
    // instructions per message id, on every delivered message.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = digits.min(32) as usize;
    let mut buf = [0u8; 32];
    for (i, d) in buf[..n].iter_mut().enumerate() {
        *d = DIGITS[((v >> (4 * (n - 1 - i))) & 0xf) as usize];
    }
    out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
}

/// The first frame of every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's protocol version.
    pub version: u16,
    /// The shared token, when the daemon requires one.
    pub token: Option<String>,
    /// Who is connecting, for the daemon's logs.
    pub client: String,
}

/// The daemon's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The daemon's protocol version.
    pub version: u16,
    /// The daemon's name and version.
    pub server: String,
    /// The largest frame the daemon accepts (length prefix excluded).
    pub max_frame: u64,
}

/// A topic's message type on the wire: `NORMAL`, `DELAY` or `MIXED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicType {
    /// Only messages without a delivery time.
    Normal,
    /// Only messages with a delivery time.
    Delay,
    /// Both.
    Mixed,
}

impl TopicType {
    /// `NORMAL`, `DELAY` or `MIXED`.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicType::Normal => "NORMAL",
            TopicType::Delay => "DELAY",
            TopicType::Mixed => "MIXED",
        }
    }
}

impl std::str::FromStr for TopicType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(TopicType::Normal),
            "delay" => Ok(TopicType::Delay),
            "mixed" => Ok(TopicType::Mixed),
            _ => Err(format!("{s:?} is not one of normal, delay, mixed")),
        }
    }
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartFrom {
    /// Only messages that become Ready from now on (the default).
    Latest,
    /// The oldest retained message.
    Earliest,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// `NORMAL`, `DELAY` or `MIXED`.
    pub message_type: String,
    /// Creation time (Unix ms).
    pub created_ms: u64,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Name.
    pub group: String,
    /// The topic it consumes.
    pub topic: String,
    /// Its subscription's tag filter.
    pub filter: String,
    /// Creation time (Unix ms).
    pub created_ms: u64,
}

/// Exact counters of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCounts {
    /// Name.
    pub group: String,
    /// Ready, not yet handed to the group.
    pub ready: u64,
    /// Delivered and invisible.
    pub inflight: u64,
    /// Invisible time over, waiting for redelivery.
    pub retry: u64,
    /// Acks so far (cumulative).
    pub acked: u64,
    /// Dead-lettered so far (cumulative).
    pub dead_lettered: u64,
    /// Deliveries with attempt > 1 so far.
    pub redelivered: u64,
    /// Skipped by the group's filter.
    pub skipped: u64,
    /// The group's cursor in the ready log.
    pub next_offset: u64,
}

/// Exact counters of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicCounts {
    /// Name.
    pub topic: String,
    /// `NORMAL`, `DELAY` or `MIXED`.
    pub message_type: String,
    /// Waiting for their delivery time.
    pub timing: u64,
    /// Ever became Ready (the ready log's end offset).
    pub ready_total: u64,
    /// Accepted sends.
    pub sent: u64,
    /// Recalled before delivery.
    pub recalled: u64,
    /// Deleted under disk pressure after every group acked them.
    pub purged: u64,
    /// Dropped under disk pressure (`drop-oldest`).
    pub dropped: u64,
    /// Per group.
    pub groups: Vec<GroupCounts>,
}

/// RocksDB figures of one column family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyCounts {
    /// Family name.
    pub family: String,
    /// Bytes in SST files.
    pub sst_bytes: u64,
    /// Bytes in memtables.
    pub memtable_bytes: u64,
    /// Estimated keys.
    pub estimated_keys: u64,
    /// Bytes compaction still has to rewrite.
    pub pending_compaction_bytes: u64,
}

/// What `stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Per topic.
    pub topics: Vec<TopicCounts>,
    /// Timing messages, all topics.
    pub timing_total: u64,
    /// Deliveries before their delivery time (must stay 0).
    pub early_deliveries: u64,
    /// Per column family.
    pub families: Vec<FamilyCounts>,
    /// Bytes of the data directory.
    pub disk_bytes: u64,
    /// The configured disk budget, if any.
    pub disk_high_watermark_bytes: Option<u64>,
    /// The filesystem fill ratio where disk pressure starts (when no budget is set).
    pub disk_high_ratio: f64,
    /// Used bytes of the data directory's filesystem.
    pub filesystem_used_bytes: Option<u64>,
    /// Size in bytes of the data directory's filesystem.
    pub filesystem_size_bytes: Option<u64>,
    /// Whether sends are refused for lack of space.
    pub storage_full: bool,
    /// Whether RocksDB has stopped writes.
    pub write_stopped: bool,
    /// Whether the engine refuses writes after a storage failure.
    pub poisoned: bool,
    /// Bytes in RocksDB's shared block cache.
    pub block_cache_bytes: u64,
    /// Bytes of the block cache pinned by readers.
    pub block_cache_pinned_bytes: u64,
    /// Bytes of table readers outside the block cache.
    pub table_readers_bytes: u64,
    /// Open client connections.
    pub connections: u64,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
}

/// A delivery's receipt handle: the group, the ready-log offset and the delivery's
/// nonce that the daemon settles it by, carried as numbers. It prints as 40 lowercase
/// hex digits (the group's 8, the offset's 16, the nonce's 16), the form the CLI shows
/// and `str::parse` reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReceiptHandle {
    /// The group's id.
    pub group: u32,
    /// The message's ready-log offset.
    pub offset: u64,
    /// Which delivery of it.
    pub nonce: u64,
}

impl std::fmt::Display for ReceiptHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::with_capacity(40);
        push_hex(&mut s, u128::from(self.group), 8);
        push_hex(&mut s, u128::from(self.offset), 16);
        push_hex(&mut s, u128::from(self.nonce), 16);
        f.write_str(&s)
    }
}

/// Text that is not a receipt handle's 40 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a receipt handle (40 hexadecimal digits)")]
pub struct BadReceiptHandle(pub String);

impl std::str::FromStr for ReceiptHandle {
    type Err = BadReceiptHandle;
    fn from_str(s: &str) -> Result<Self, BadReceiptHandle> {
        let bad = || BadReceiptHandle(s.to_string());
        let part = |r: std::ops::Range<usize>| {
            s.get(r)
                .filter(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|p| u64::from_str_radix(p, 16).ok())
        };
        if s.len() != 40 {
            return Err(bad());
        }
        let (Some(group), Some(offset), Some(nonce)) = (part(0..8), part(8..24), part(24..40))
        else {
            return Err(bad());
        };
        Ok(ReceiptHandle {
            group: u32::try_from(group).map_err(|_| bad())?,
            offset,
            nonce,
        })
    }
}

/// A received message as the daemon answers it: the id and the receipt handle as
/// numbers, and no topic (the receive named it). The client turns it into a
/// [`Delivered`] with [`Delivery::delivered`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The message id (its 32 hex digits are the id clients see).
    pub id: u128,
    /// Tag.
    pub tag: Option<String>,
    /// Lookup keys.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Effective delivery time (Unix ms).
    pub deliver_at_ms: u64,
    /// When it became Ready (Unix ms).
    pub ready_at_ms: u64,
    /// 1 for the first delivery to this group.
    pub delivery_attempt: u32,
    /// For ack, nack and change_invisible_duration.
    pub receipt: ReceiptHandle,
}

impl Delivery {
    /// The message as a consumer sees it, the id printed and the topic filled in.
    pub fn delivered(self, topic: &str) -> Delivered {
        let mut message_id = String::with_capacity(32);
        push_hex(&mut message_id, self.id, 32);
        Delivered {
            message_id,
            topic: topic.to_string(),
            tag: self.tag,
            keys: self.keys,
            properties: self.properties,
            body: self.body,
            deliver_at_ms: self.deliver_at_ms,
            ready_at_ms: self.ready_at_ms,
            delivery_attempt: self.delivery_attempt,
            receipt_handle: self.receipt,
        }
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// 32 lowercase hex characters.
    pub message_id: String,
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
    /// Effective delivery time (Unix ms).
    pub deliver_at_ms: u64,
    /// When it became Ready (Unix ms).
    pub ready_at_ms: u64,
    /// 1 for the first delivery to this group.
    pub delivery_attempt: u32,
    /// For ack, nack and change_invisible_duration.
    pub receipt_handle: ReceiptHandle,
}

/// One group's view of a Ready message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The group.
    pub group: String,
    /// `Ready`, `Inflight`, `Retry`, `Acked`, `DeadLettered` or `Skipped`.
    pub state: String,
    /// The attempt that is out (Inflight) or was last made (Retry).
    pub attempt: Option<u32>,
    /// When an Inflight message becomes visible again (Unix ms).
    pub visible_at_ms: Option<u64>,
}

/// What `message show` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    /// 32 lowercase hex characters.
    pub message_id: String,
    /// Topic.
    pub topic: String,
    /// Tag.
    pub tag: Option<String>,
    /// Lookup keys.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Body size in bytes.
    pub body_bytes: u64,
    /// When the broker accepted it (Unix ms).
    pub born_ms: u64,
    /// Effective delivery time (Unix ms).
    pub deliver_at_ms: u64,
    /// Whether it differs from the requested one.
    pub adjusted: bool,
    /// `Timing` or `Ready`.
    pub state: String,
    /// When it became Ready (Unix ms).
    pub ready_at_ms: Option<u64>,
    /// Per group of its topic (Ready messages only).
    pub groups: Vec<GroupState>,
}

/// Every request a client can make. The first frame of a connection must be
/// [`Request::Hello`]; the daemon answers every other request only after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Opens the connection.
    Hello(Hello),
    /// Creates a topic.
    CreateTopic {
        /// Name.
        topic: String,
        /// Message type.
        message_type: TopicType,
    },
    /// Deletes a topic, its groups and its ready log.
    DeleteTopic {
        /// Name.
        topic: String,
    },
    /// Lists topics.
    ListTopics,
    /// One topic with its counters.
    ShowTopic {
        /// Name.
        topic: String,
    },
    /// Creates a group (or updates its filter).
    CreateGroup {
        /// Topic.
        topic: String,
        /// Group.
        group: String,
        /// Where a new group starts.
        from: StartFrom,
        /// Tag filter, `*` when absent.
        filter: Option<String>,
    },
    /// Lists groups, optionally of one topic.
    ListGroups {
        /// Only this topic's groups.
        topic: Option<String>,
    },
    /// Resets a group to the messages that became Ready at or after `to_ms`.
    ResetOffset {
        /// Topic.
        topic: String,
        /// Group.
        group: String,
        /// Unix ms.
        to_ms: u64,
    },
    /// Sends one message.
    Send(OutgoingMessage),
    /// Sends many messages in one commit; each succeeds or fails on its own.
    SendBatch(Vec<OutgoingMessage>),
    /// Receives Ready messages, waiting up to `wait_ms` when there are none.
    Receive {
        /// Topic.
        topic: String,
        /// Group (created from latest when unknown).
        group: String,
        /// Tag filter for this call; the group's subscription when absent.
        filter: Option<String>,
        /// At most this many.
        max_messages: u32,
        /// How long received messages stay invisible to the group.
        invisible_ms: u64,
        /// Long-poll wait.
        wait_ms: u64,
    },
    /// Acknowledges deliveries.
    Ack {
        /// Topic.
        topic: String,
        /// Group.
        group: String,
        /// Receipt handles.
        receipts: Vec<ReceiptHandle>,
    },
    /// Gives deliveries back for redelivery after the retry backoff.
    Nack {
        /// Topic.
        topic: String,
        /// Group.
        group: String,
        /// Receipt handles.
        receipts: Vec<ReceiptHandle>,
    },
    /// Makes a delivery invisible for `invisible_ms` from now.
    ChangeInvisible {
        /// Topic.
        topic: String,
        /// Group.
        group: String,
        /// Receipt handle.
        receipt: ReceiptHandle,
        /// New invisible duration.
        invisible_ms: u64,
    },
    /// Cancels a Timing message.
    Recall {
        /// The recall handle from its send receipt.
        handle: String,
    },
    /// Moves a Timing message to a new delivery time.
    Reschedule {
        /// The recall handle from its send receipt.
        handle: String,
        /// New absolute delivery time (Unix ms).
        deliver_at_ms: i64,
    },
    /// The state of one message.
    ShowMessage {
        /// 32 hex characters.
        message_id: String,
    },
    /// Ids of retained messages with a lookup key.
    FindMessages {
        /// Topic.
        topic: String,
        /// Key.
        key: String,
    },
    /// Counters and storage figures.
    Stats,
}

/// The most bytes bincode's variable-length form takes for a length or a 64-bit integer.
const WIDEST_INT: usize = 9;

impl Request {
    /// At least the bytes the encoded request takes, for requests that carry messages
    /// or receipts (0 for the rest), so the client encodes each into a buffer allocated
    /// once: a single send's buffer otherwise grew from nothing by doubling, seven
    /// copies for a 256-byte body, and a batch's a dozen more.
    pub fn size_hint(&self) -> usize {
        // The variant index, and a list's length.
        const HEAD: usize = 2 * WIDEST_INT;
        // A receipt handle: a 32-bit integer and two 64-bit ones.
        const RECEIPT: usize = 5 + 2 * WIDEST_INT;
        match self {
            Request::Send(m) => HEAD + m.encoded_at_most(),
            Request::SendBatch(ms) => {
                HEAD + ms
                    .iter()
                    .map(OutgoingMessage::encoded_at_most)
                    .sum::<usize>()
            }
            Request::Ack {
                topic,
                group,
                receipts,
            }
            | Request::Nack {
                topic,
                group,
                receipts,
            } => HEAD + 2 * WIDEST_INT + topic.len() + group.len() + RECEIPT * receipts.len(),
            _ => 0,
        }
    }

    /// A short name for logs and the request-duration metric's `op` label.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello(_) => "hello",
            Request::CreateTopic { .. } => "create_topic",
            Request::DeleteTopic { .. } => "delete_topic",
            Request::ListTopics => "list_topics",
            Request::ShowTopic { .. } => "show_topic",
            Request::CreateGroup { .. } => "create_group",
            Request::ListGroups { .. } => "list_groups",
            Request::ResetOffset { .. } => "reset_offset",
            Request::Send(_) => "send",
            Request::SendBatch(_) => "send_batch",
            Request::Receive { .. } => "receive",
            Request::Ack { .. } => "ack",
            Request::Nack { .. } => "nack",
            Request::ChangeInvisible { .. } => "change_invisible",
            Request::Recall { .. } => "recall",
            Request::Reschedule { .. } => "reschedule",
            Request::ShowMessage { .. } => "show_message",
            Request::FindMessages { .. } => "find_messages",
            Request::Stats => "stats",
        }
    }
}

/// Every answer: one variant per kind of result, or a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The handshake succeeded.
    Welcome(Welcome),
    /// The request was refused.
    Failed(WireFailure),
    /// Done, nothing to report.
    Done,
    /// A topic.
    Topic(TopicInfo),
    /// Topics.
    Topics(Vec<TopicInfo>),
    /// One topic's counters.
    TopicCounts(TopicCounts),
    /// A group.
    Group(GroupInfo),
    /// Groups.
    Groups(Vec<GroupInfo>),
    /// A group's new ready-log offset after a reset.
    Offset(u64),
    /// A send receipt.
    Sent(Sent),
    /// Per message of a batch, in order.
    SentBatch(Vec<Result<Sent, WireFailure>>),
    /// Received messages (possibly none).
    Messages(Vec<Delivery>),
    /// Per receipt of an ack or nack, in order.
    Settled(Vec<Result<(), WireFailure>>),
    /// A new receipt handle.
    NewReceipt(ReceiptHandle),
    /// One message's state.
    Message(MessageInfo),
    /// Message ids.
    MessageIds(Vec<String>),
    /// Counters and storage figures.
    Stats(StatsReport),
}

impl Response {
    /// About how many bytes the encoded answer takes, so its buffer is allocated once:
    /// a receive's answer of a thousand messages otherwise grew by doubling, copying
    /// itself a dozen times. Only answers that carry messages are worth estimating.
    pub fn size_hint(&self) -> usize {
        match self {
            Response::Messages(ms) => {
                16 + ms
                    .iter()
                    .map(|m| {
                        // Each length prefix and integer takes at most 9 bytes, the id
                        // 17 and the receipt 23: 100 with the tag's flag.
                        100 + m.tag.as_ref().map_or(0, String::len)
                            + m.keys.iter().map(|k| k.len() + 9).sum::<usize>()
                            + m.properties
                                .iter()
                                .map(|(k, v)| k.len() + v.len() + 18)
                                .sum::<usize>()
                            + m.body.len()
                    })
                    .sum::<usize>()
            }
            // A receipt takes at most 28 bytes (a u128 17, a u64 9), a refusal a few
            // dozen; an answer that grew from empty reallocated byte by byte.
            Response::Sent(_) => 32,
            Response::SentBatch(v) => {
                16 + v
                    .iter()
                    .map(|r| r.as_ref().map_or_else(|f| 16 + f.message.len(), |_| 28))
                    .sum::<usize>()
            }
            _ => 0,
        }
    }
}

/// Encodes a payload with bincode 2's standard configuration.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, crate::WireError> {
    encode_sized(v, 0)
}

/// [`encode`] into a buffer of `capacity` bytes to start with.
pub fn encode_sized<T: Serialize>(v: &T, capacity: usize) -> Result<Vec<u8>, crate::WireError> {
    let mut out = Vec::with_capacity(capacity);
    encode_to(v, &mut out)?;
    Ok(out)
}

/// Appends `v` encoded to `dst` (a frame's payload, see [`put_frame`](crate::frame::put_frame)).
pub fn encode_into<T: Serialize>(v: &T, dst: &mut bytes::BytesMut) -> Result<(), crate::WireError> {
    use bytes::BufMut;
    encode_to(v, &mut dst.writer())
}

fn encode_to<T: Serialize>(v: &T, w: &mut impl std::io::Write) -> Result<(), crate::WireError> {
    bincode::serde::encode_into_std_write(v, w, bincode::config::standard())
        .map(|_| ())
        .map_err(|e| crate::WireError::Malformed(format!("cannot encode: {e}")))
}

/// Largest payload [`decode`] accepts; frame limits must stay below it.
pub const MAX_DECODE: usize = 64 * 1024 * 1024;

/// Most elements one list or map in a request may hold: the sends of a batch, the
/// receipts of a settle, a message's keys or properties. [`decode_request`] refuses a
/// request that claims more before decoding the list, so no list grows past what the
/// broker takes (an ack of a whole frame of 3-byte receipt handles was millions of
/// them). Memory per wire byte is not bounded by it: a batch of messages each with
/// thousands of empty keys still decodes to up to 24 times its size (a 24-byte
/// `String` per byte), before the engine refuses more than 32 keys a message.
pub const MAX_LIST: usize = 4096;

/// Decodes a payload, refusing trailing bytes and more than [`MAX_DECODE`] bytes of
/// claimed allocations, and allocating only for bytes the payload really holds.
///
/// Decoding with bincode directly reserves whatever a length prefix claims before
/// reading what follows: a 6-byte payload claiming a 60 MiB string made a 60 MiB
/// allocation, and one claiming a huge list made serde reserve up to 1 MiB, whatever
/// the frame limit. Through [`Bounded`](crate::bounded::Bounded), strings and byte
/// buffers are first borrowed from the payload (so their length is checked against the
/// bytes present) and then copied, and lists and maps reserve room for at most a few
/// elements; valid payloads decode to exactly the same values. Lists may be of any
/// length (an answer lists every topic); requests are decoded by [`decode_request`].
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, crate::WireError> {
    decode_within::<T, { crate::bounded::UNLIMITED }>(bytes)
}

/// [`decode`] for a request, whose lists and maps hold at most [`MAX_LIST`] elements.
pub fn decode_request(bytes: &[u8]) -> Result<Request, crate::WireError> {
    decode_within::<Request, MAX_LIST>(bytes)
}

fn decode_within<T: for<'de> Deserialize<'de>, const MAX: usize>(
    bytes: &[u8],
) -> Result<T, crate::WireError> {
    let cfg = bincode::config::standard().with_limit::<MAX_DECODE>();
    let seed = crate::bounded::Bounded::<_, MAX>(std::marker::PhantomData::<T>);
    let (v, used) = bincode::serde::seed_decode_from_slice(seed, bytes, cfg)
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

    proptest! {
        /// Ids, handles and receipts print as zero-padded lowercase hex of their width.
        #[test]
        fn hex_is_zero_padded_lowercase(v in any::<u128>(), digits in 0u32..=32) {
            let kept = if digits == 32 { v } else { v & ((1u128 << (4 * digits)) - 1) };
            let mut s = String::from("x");
            push_hex(&mut s, kept, digits);
            let want = if digits == 0 { "x".to_string() } else { format!("x{:0w$x}", kept, w = digits as usize) };
            prop_assert_eq!(s, want);
        }
    }

    fn outgoing() -> impl Strategy<Value = OutgoingMessage> {
        (
            "\\PC{0,300}",
            proptest::option::of("\\PC{0,20}"),
            proptest::collection::vec("[a-z]{0,30}", 0..4),
            proptest::collection::btree_map("[a-z]{1,12}", "\\PC{0,30}", 0..4),
            proptest::collection::vec(any::<u8>(), 0..600),
            proptest::option::of(any::<i64>()),
        )
            .prop_map(|(topic, tag, keys, properties, body, deliver_at_ms)| {
                OutgoingMessage {
                    topic,
                    tag,
                    keys,
                    properties,
                    body,
                    deliver_at_ms,
                }
            })
    }

    fn settling() -> impl Strategy<Value = Request> {
        (
            "\\PC{0,40}",
            "\\PC{0,40}",
            proptest::collection::vec(any::<(u32, u64, u64)>(), 0..300),
            any::<bool>(),
        )
            .prop_map(|(topic, group, rs, ack)| {
                let receipts = rs
                    .into_iter()
                    .map(|(group, offset, nonce)| ReceiptHandle {
                        group,
                        offset,
                        nonce,
                    })
                    .collect();
                if ack {
                    Request::Ack {
                        topic,
                        group,
                        receipts,
                    }
                } else {
                    Request::Nack {
                        topic,
                        group,
                        receipts,
                    }
                }
            })
    }

    proptest! {
        /// A request carrying messages or receipts fits the buffer its size hint
        /// reserves (so the client's buffer never grows), and the hint stays within a
        /// small multiple of what it needs.
        #[test]
        fn sends_and_settles_fit_their_size_hint(
            r in prop_oneof![
                outgoing().prop_map(Request::Send),
                proptest::collection::vec(outgoing(), 0..40).prop_map(Request::SendBatch),
                settling(),
            ],
        ) {
            let hint = r.size_hint();
            let bytes = encode_sized(&r, hint).expect("encodes");
            prop_assert!(bytes.len() <= hint, "{} bytes, hint {}", bytes.len(), hint);
            prop_assert!(hint <= 10 * bytes.len() + 64, "{} bytes, hint {}", bytes.len(), hint);
            prop_assert_eq!(decode_request(&bytes).expect("decodes"), r);
        }
    }

    proptest! {
        /// A receive's answer fits the buffer its size hint reserves, so it is never
        /// copied to grow, and the hint is not far above what it needs.
        #[test]
        fn messages_fit_their_size_hint(ms in crate::answer::tests::deliveries(30, 600, 40)) {
            let r = Response::Messages(ms);
            let hint = r.size_hint();
            let bytes = encode_sized(&r, hint).expect("encodes");
            prop_assert!(bytes.len() <= hint, "{} bytes, hint {}", bytes.len(), hint);
            prop_assert!(hint <= 2 * bytes.len() + 64, "{} bytes, hint {}", bytes.len(), hint);
            prop_assert_eq!(&bytes, &encode(&r).expect("encodes"));
            prop_assert_eq!(decode::<Response>(&bytes).expect("decodes"), r);
        }
    }

    proptest! {
        /// A receipt handle prints its three numbers as `format!` would and parses
        /// back, in either case; a delivery prints its id the same way and keeps the
        /// rest as it came.
        #[test]
        fn receipt_handles_and_ids_print_their_numbers(
            group in any::<u32>(), offset in any::<u64>(), nonce in any::<u64>(), id in any::<u128>(),
        ) {
            let h = ReceiptHandle { group, offset, nonce };
            let text = h.to_string();
            prop_assert_eq!(&text, &format!("{group:08x}{offset:016x}{nonce:016x}"));
            prop_assert_eq!(text.parse::<ReceiptHandle>(), Ok(h));
            prop_assert_eq!(text.to_uppercase().parse::<ReceiptHandle>(), Ok(h));
            let d = Delivery {
                id,
                tag: Some("t".into()),
                keys: vec!["k".into()],
                properties: BTreeMap::new(),
                body: b"b".to_vec(),
                deliver_at_ms: 1,
                ready_at_ms: 2,
                delivery_attempt: 3,
                receipt: h,
            }
            .delivered("orders");
            prop_assert_eq!(&d.message_id, &format!("{id:032x}"));
            prop_assert_eq!((d.topic.as_str(), d.receipt_handle, d.delivery_attempt), ("orders", h, 3));
        }
    }

    #[test]
    fn text_that_is_not_a_receipt_handle_is_refused() {
        let good = "0000000700000100000000000000000000beef01";
        assert!(good.parse::<ReceiptHandle>().is_ok());
        for bad in [
            "",
            "zz",
            &good[1..],
            &format!("{good}0"),
            &good.replacen('0', "g", 1),
            &good.replacen('0', " ", 1),
            &good.replacen("00", "é", 1),
        ] {
            assert_eq!(
                bad.parse::<ReceiptHandle>(),
                Err(BadReceiptHandle(bad.to_string()))
            );
        }
        // A 40-byte string whose 8th byte starts a multi-byte character has no part
        // boundary there: refused, not a panic.
        let split = format!("0000000é{}", &good[9..]);
        assert_eq!(split.len(), 40);
        assert!(split.parse::<ReceiptHandle>().is_err());
    }

    proptest! {
        /// A receipt prints the id as 32 lowercase hex digits and the recall handle as
        /// the time's 16 and the id's 32, as `format!` would; a batch of them fits the
        /// answer's size hint and decodes to what was sent.
        #[test]
        fn sent_receipts_print_their_numbers_and_fit_the_hint(
            rs in proptest::collection::vec(
                (any::<u128>(), any::<u64>(), any::<bool>(), proptest::option::of("[a-z ]{0,60}")),
                0..40,
            ),
        ) {
            let mut batch = Vec::new();
            for &(id, t, adjusted, ref refusal) in &rs {
                let s = Sent { id, deliver_at_ms: t, adjusted };
                let r = s.receipt();
                prop_assert_eq!(&r.message_id, &format!("{id:032x}"));
                prop_assert_eq!(&r.recall_handle, &format!("{t:016x}{id:032x}"));
                prop_assert_eq!((r.deliver_at_ms, r.adjusted), (t, adjusted));
                batch.push(match refusal {
                    None => Ok(s),
                    Some(m) => Err(WireFailure { code: ErrorCode::StorageFull, message: m.clone() }),
                });
            }
            for s in batch.iter().flatten() {
                let one = Response::Sent(*s);
                let bytes = encode_sized(&one, one.size_hint()).expect("encodes");
                prop_assert!(bytes.len() <= one.size_hint(), "{} bytes", bytes.len());
            }
            let r = Response::SentBatch(batch);
            let hint = r.size_hint();
            let bytes = encode_sized(&r, hint).expect("encodes");
            prop_assert!(bytes.len() <= hint, "{} bytes, hint {}", bytes.len(), hint);
            prop_assert_eq!(decode::<Response>(&bytes).expect("decodes"), r);
        }
    }

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
        let r = Request::SendBatch(vec![m.clone(), m.clone()]);
        assert_eq!(decode::<Request>(&encode(&r).unwrap()).unwrap(), r);
        let resp = Response::Settled(vec![
            Ok(()),
            Err(WireFailure {
                code: ErrorCode::BadReceiptHandle,
                message: "stale".into(),
            }),
        ]);
        assert_eq!(decode::<Response>(&encode(&resp).unwrap()).unwrap(), resp);
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
            let _ = decode::<Request>(&bytes);
            let _ = decode::<Response>(&bytes);
        }
    }
}
