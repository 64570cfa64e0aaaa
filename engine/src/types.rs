//! The engine's public domain types: ids, topics, messages, receipts, configuration.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A broker-assigned 128-bit message id: unique, increasing in send order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u128);

impl MessageId {
    /// Big-endian bytes, so byte order equals numeric order.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id encoded in 16 big-endian bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        MessageId(u128::from_be_bytes(b))
    }

    /// The 32 lowercase hex digits, as `Display` prints them, in one allocation of
    /// their size (`to_string` grows a string through the formatter: it is called for
    /// every delivery).
    pub fn hex(self) -> String {
        let mut buf = [0u8; 32];
        write_hex(&mut buf, self.0);
        // Only ASCII hex digits were written. (A zeroed heap buffer would cost a
        // calloc, dearer than the malloc of this copy.)
        std::str::from_utf8(&buf)
            .map(String::from)
            .unwrap_or_default()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        write_hex(&mut buf, self.0);
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

/// The recall handle: effective time and id, enough to find the timer entry
/// (`send::parse_recall_handle` reads it back).
pub(crate) fn recall_handle(deliver_at_ms: u64, id: MessageId) -> String {
    // The general formatter was a sixth of a send's instructions.
    let mut buf = [0u8; 48];
    write_hex(&mut buf[..16], u128::from(deliver_at_ms));
    write_hex(&mut buf[16..], id.0);
    String::from_utf8(buf.to_vec()).unwrap_or_default()
}

/// Writes the low `out.len()` nibbles of `v` into `out` as lowercase hex, most
/// significant first (ids and receipts are printed for every delivery; the general
/// formatter was a visible share of a burst's request threads).
pub(crate) fn write_hex(out: &mut [u8], v: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Two digits per byte from the least significant end (a u128 shift per digit cost
    // as much as the rest of a send's receipt); nibbles above the 32nd are zero.
    let bytes = v.to_le_bytes();
    let mut pairs = out.rchunks_exact_mut(2);
    let mut i = 0;
    for pair in &mut pairs {
        let byte = bytes.get(i).copied().unwrap_or(0);
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
        i += 1;
    }
    if let [first] = pairs.into_remainder() {
        let byte = bytes.get(i).copied().unwrap_or(0);
        *first = DIGITS[usize::from(byte & 0xf)];
    }
}

impl FromStr for MessageId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::BadRequest(format!(
                "message id {s:?} is not 32 hexadecimal characters"
            )));
        }
        u128::from_str_radix(s, 16)
            .map(MessageId)
            .map_err(|e| Error::BadRequest(format!("message id {s:?}: {e}")))
    }
}

/// What a consumer settles a delivery with: which group, which ready-log offset, and
/// which delivery of it (a new nonce each time the message is handed out or its
/// visibility changes, so an older handle goes stale). Printed as 40 hex digits: the
/// group's 8, the offset's 16 and the nonce's 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiptHandle {
    /// The group's id.
    pub group: u32,
    /// The message's ready-log offset.
    pub offset: u64,
    /// The delivery's nonce.
    pub nonce: u64,
}

impl fmt::Display for ReceiptHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 40];
        write_hex(&mut buf[..8], u128::from(self.group));
        write_hex(&mut buf[8..24], u128::from(self.offset));
        write_hex(&mut buf[24..], u128::from(self.nonce));
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for ReceiptHandle {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BadReceiptHandle(format!("{s:?} is not a receipt handle"));
        let b = s.as_bytes();
        if b.len() != 40 {
            return Err(bad());
        }
        // A digit by byte ranges, not through `char`.
        let hex = |part: &[u8]| -> Option<u64> {
            part.iter().try_fold(0u64, |acc, &c| {
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    b'A'..=b'F' => c - b'A' + 10,
                    _ => return None,
                };
                Some(acc << 4 | u64::from(d))
            })
        };
        let (Some(group), Some(offset), Some(nonce)) =
            (hex(&b[..8]), hex(&b[8..24]), hex(&b[24..]))
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

/// A topic's message type (SPEC §1, type consistency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TopicKind {
    /// Only messages without a delivery time.
    Normal,
    /// Only messages with a delivery time.
    Delay,
    /// Both.
    Mixed,
}

impl fmt::Display for TopicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicKind::Normal => "NORMAL",
            TopicKind::Delay => "DELAY",
            TopicKind::Mixed => "MIXED",
        })
    }
}

impl FromStr for TopicKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(TopicKind::Normal),
            "delay" => Ok(TopicKind::Delay),
            "mixed" => Ok(TopicKind::Mixed),
            _ => Err(Error::BadRequest(format!(
                "message type {s:?} is not one of normal, delay, mixed"
            ))),
        }
    }
}

/// Checks a topic or group name against `^[A-Za-z0-9_%-]{1,127}$`.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'%' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{what} name {name:?} must match ^[A-Za-z0-9_%-]{{1,127}}$"
        )))
    }
}

/// What a topic looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// The topic's message type.
    pub kind: TopicKind,
    /// When it was created (Unix ms).
    pub created_ms: u64,
}

/// Where a new group starts reading the ready log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// At the end: only messages that become Ready from now on.
    Latest,
    /// At the oldest retained message.
    Earliest,
}

/// What a consumer group looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// The topic it consumes.
    pub topic: String,
    /// Its subscription's tag filter expression.
    pub filter: String,
    /// When it was created (Unix ms).
    pub created_ms: u64,
}

/// A tag filter: `*` or `a || b || c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    /// Every message.
    All,
    /// Messages whose tag is one of these.
    Tags(Vec<String>),
}

impl TagFilter {
    /// Parses `*`, empty (same as `*`) or `a || b`.
    pub fn parse(expr: &str) -> Result<Self> {
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(TagFilter::All);
        }
        let mut tags = Vec::new();
        for part in expr.split("||") {
            let t = part.trim();
            if t.is_empty() || t == "*" {
                return Err(Error::BadRequest(format!(
                    "filter {expr:?}: expected `*` or `tag || tag ...`"
                )));
            }
            validate_tag(t)?;
            tags.push(t.to_string());
        }
        Ok(TagFilter::Tags(tags))
    }

    /// Whether a message with this tag passes.
    pub fn matches(&self, tag: Option<&[u8]>) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Tags(tags) => tag.is_some_and(|t| tags.iter().any(|x| x.as_bytes() == t)),
        }
    }
}

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagFilter::All => f.write_str("*"),
            TagFilter::Tags(t) => f.write_str(&t.join(" || ")),
        }
    }
}

pub(crate) fn validate_tag(tag: &str) -> Result<()> {
    if tag.is_empty()
        || tag.len() > 128
        || tag.contains("||")
        || tag.chars().any(char::is_whitespace)
    {
        return Err(Error::BadRequest(format!(
            "tag {tag:?} must be 1..=128 characters without whitespace or `||`"
        )));
    }
    Ok(())
}

/// A message as a producer hands it to the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// The topic to send to.
    pub topic: String,
    /// Optional tag, for filtering.
    pub tag: Option<String>,
    /// Lookup keys.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// Absolute delivery time in Unix ms, for delay messages; `None` for normal ones.
    pub deliver_at_ms: Option<i64>,
}

/// What the producer learns when a send is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The broker-assigned id.
    pub message_id: MessageId,
    /// The effective delivery time (Unix ms).
    pub deliver_at_ms: u64,
    /// Whether the effective time differs from the one asked for.
    pub adjusted: bool,
}

impl SendReceipt {
    /// The handle that recalls or reschedules the message while it is Timing: the
    /// effective time and the id, in hex. Printed on demand, since the native protocol
    /// carries the two numbers and lets its client print it.
    pub fn recall_handle(&self) -> String {
        recall_handle(self.deliver_at_ms, self.message_id)
    }
}

/// A message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The message id. (No topic: the receive named it.)
    pub message_id: MessageId,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Lookup keys.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// Effective delivery time (Unix ms).
    pub deliver_at_ms: u64,
    /// When it became Ready (Unix ms).
    pub ready_at_ms: u64,
    /// When the broker accepted it (Unix ms).
    pub born_ms: u64,
    /// 1 for the first delivery to this group.
    pub delivery_attempt: u32,
    /// The handle for ack, nack and change_invisible_duration.
    pub receipt_handle: ReceiptHandle,
}

/// Arguments of a receive call.
#[derive(Debug, Clone)]
pub struct ReceiveRequest {
    /// The topic.
    pub topic: String,
    /// The consumer group (created from latest if unknown).
    pub group: String,
    /// A tag filter for this call; `None` uses the group's subscription.
    pub filter: Option<String>,
    /// At most this many messages.
    pub max_messages: usize,
    /// How long received messages stay invisible to the group.
    pub invisible_duration: Duration,
    /// Stop before the stored messages handed out add up to more than this many bytes
    /// (at least one message is always handed out); `None`: no limit.
    pub max_bytes: Option<usize>,
}

impl ReceiveRequest {
    /// A receive of up to `max` messages with the default 30 s invisible duration.
    pub fn new(topic: &str, group: &str, max: usize) -> Self {
        ReceiveRequest {
            topic: topic.to_string(),
            group: group.to_string(),
            filter: None,
            max_messages: max,
            invisible_duration: Duration::from_secs(30),
            max_bytes: None,
        }
    }
}

/// Policy for delivery times beyond `max_delay` (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverMaxDelay {
    /// Deliver at once and say so in the receipt (`adjusted`).
    DeliverNow,
    /// Refuse with `BadDeliveryTime`.
    Reject,
}

/// Policy when the disk stays over its high watermark after acked data is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoragePolicy {
    /// New sends fail with `StorageFull`.
    Reject,
    /// The oldest Ready messages are deleted, oldest first; Timing ones never.
    DropOldest,
}

/// Engine configuration; `Config::default()` gives SPEC's defaults.
#[derive(Clone)]
pub struct Config {
    /// Longest accepted delay (default 24 h).
    pub max_delay: Duration,
    /// What to do with times beyond `max_delay`.
    pub over_max_delay: OverMaxDelay,
    /// Delivery-time granularity in ms; times round up to a multiple (default 1).
    pub precision_ms: u64,
    /// Largest body in bytes (default 4 MiB).
    pub max_body_bytes: usize,
    /// Deliveries before a message goes to `%DLQ%<group>` (default 17).
    pub max_delivery_attempts: u32,
    /// Backoff after the n-th nack (RocketMQ's table by default); the last repeats.
    pub retry_backoff: Vec<Duration>,
    /// How long data is kept after it became Ready (default 72 h).
    pub retention: Duration,
    /// Disk budget in bytes for the data directory; `None` uses `disk_high_ratio`.
    pub disk_high_watermark_bytes: Option<u64>,
    /// Fraction of the filesystem above which disk pressure starts (default 0.90).
    pub disk_high_ratio: f64,
    /// What to do when acked data is not enough to get under the watermark.
    pub storage_policy: StoragePolicy,
    /// Run the timer pump and maintenance on background threads (default true).
    /// Tests turn this off and drive them with `Engine::tick` and `Engine::maintain`.
    pub background: bool,
    /// How often background maintenance (retention, disk pressure) runs.
    pub maintenance_interval: Duration,
    /// Most timer entries moved to Ready in one atomic step.
    pub pump_step: usize,
    /// The clock.
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl Default for Config {
    fn default() -> Self {
        let m = |x: u64| Duration::from_secs(60 * x);
        Config {
            max_delay: Duration::from_secs(24 * 3600),
            over_max_delay: OverMaxDelay::DeliverNow,
            precision_ms: 1,
            max_body_bytes: 4 * 1024 * 1024,
            max_delivery_attempts: 17,
            retry_backoff: vec![
                Duration::from_secs(10),
                Duration::from_secs(30),
                m(1),
                m(2),
                m(3),
                m(4),
                m(5),
                m(6),
                m(7),
                m(8),
                m(9),
                m(10),
                m(20),
                m(30),
                m(60),
                m(120),
            ],
            retention: Duration::from_secs(72 * 3600),
            disk_high_watermark_bytes: None,
            disk_high_ratio: 0.90,
            storage_policy: StoragePolicy::Reject,
            background: true,
            maintenance_interval: Duration::from_secs(5),
            pump_step: 4096,
            clock: std::sync::Arc::new(crate::clock::SystemClock),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_delay", &self.max_delay)
            .field("over_max_delay", &self.over_max_delay)
            .field("precision_ms", &self.precision_ms)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_delivery_attempts", &self.max_delivery_attempts)
            .field("retention", &self.retention)
            .field("disk_high_watermark_bytes", &self.disk_high_watermark_bytes)
            .field("disk_high_ratio", &self.disk_high_ratio)
            .field("storage_policy", &self.storage_policy)
            .field("background", &self.background)
            .finish_non_exhaustive()
    }
}

/// The state of one message (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageState {
    /// Waiting in the timer index, invisible.
    Timing,
    /// In its topic's ready log.
    Ready {
        /// When it became Ready.
        ready_at_ms: u64,
    },
}

/// The state of one Ready message for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupMessageState {
    /// Visible, not yet delivered to the group.
    Ready,
    /// Delivered and invisible until `visible_at_ms`.
    Inflight {
        /// The delivery attempt that is out.
        attempt: u32,
        /// When it becomes visible again.
        visible_at_ms: u64,
    },
    /// Its invisible time passed; waiting to be delivered again.
    Retry {
        /// The last attempt made.
        attempt: u32,
    },
    /// Acknowledged by the group.
    Acked,
    /// Moved to `%DLQ%<group>` after too many attempts.
    DeadLettered,
    /// Skipped because the group's filter did not match, or it predates the group.
    Skipped,
}

/// What `message show` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    /// The message id.
    pub message_id: MessageId,
    /// Its topic.
    pub topic: String,
    /// Tag.
    pub tag: Option<String>,
    /// Keys.
    pub keys: Vec<String>,
    /// Properties.
    pub properties: BTreeMap<String, String>,
    /// Body size in bytes.
    pub body_len: usize,
    /// When the broker accepted it.
    pub born_ms: u64,
    /// Effective delivery time.
    pub deliver_at_ms: u64,
    /// Whether the effective time differs from the requested one.
    pub adjusted: bool,
    /// Timing or Ready.
    pub state: MessageState,
    /// Per group of its topic (Ready messages only).
    pub groups: Vec<(String, GroupMessageState)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_hex_prints_the_low_nibbles_most_significant_first() {
        for v in [
            0u128,
            0xab,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            u128::MAX,
        ] {
            for n in [1usize, 7, 8, 16, 24, 32] {
                let mut out = vec![0u8; n];
                write_hex(&mut out, v);
                let mask = if n == 32 {
                    u128::MAX
                } else {
                    (1u128 << (4 * n)) - 1
                };
                let want = format!("{:0n$x}", v & mask);
                assert_eq!(
                    std::str::from_utf8(&out).expect("ascii"),
                    want,
                    "{v:x} in {n}"
                );
            }
        }
        assert_eq!(MessageId(0xabc).to_string(), format!("{:032x}", 0xabc));
    }
}
