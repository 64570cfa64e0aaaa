//! RocketMQ 5 messages as plain data and back, without the broker: what one message of
//! a `SendMessage` asks to store (checked: ids, message types, delivery timestamps,
//! reserved properties) and what a delivered message looks like to the clients. The
//! daemon maps these to its engine's types; the fuzz target drives [`outgoing`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::digest::{self, ChecksumForm};
use crate::time;
use crate::v2::{self, Code, Encoding, MessageType, Resource, SystemProperties};

/// Where the client's own message id is kept among a message's properties (RocketMQ's
/// name for it).
pub const CLIENT_ID_PROPERTY: &str = "UNIQ_KEY";
/// Where the clients' `born_host` is kept among a message's properties.
pub const BORN_HOST_PROPERTY: &str = "BORN_HOST";
/// Where a body encoding other than IDENTITY is kept, so it is returned as sent.
pub const BODY_ENCODING_PROPERTY: &str = "BODY_ENCODING";
/// Properties filled from the system properties; a client may not set them.
pub const RESERVED: [&str; 3] = [
    CLIENT_ID_PROPERTY,
    BORN_HOST_PROPERTY,
    BODY_ENCODING_PROPERTY,
];
/// Longest client message id accepted (the clients' ids are 34 characters).
pub const MAX_ID_LEN: usize = 128;

/// Why a request cannot be served as it is, with the code the clients understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// The RocketMQ code.
    pub code: Code,
    /// What was wrong.
    pub message: String,
}

impl Invalid {
    /// An `Invalid` with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
        }
    }
}

/// One message a client asks to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The id the client generated.
    pub message_id: String,
    /// Its topic.
    pub topic: String,
    /// Tag, when not empty.
    pub tag: Option<String>,
    /// Lookup keys.
    pub keys: Vec<String>,
    /// User properties, plus [`BORN_HOST_PROPERTY`] and [`BODY_ENCODING_PROPERTY`].
    pub properties: BTreeMap<String, String>,
    /// The body as sent.
    pub body: Vec<u8>,
    /// Unix ms of the delivery timestamp, for DELAY messages.
    pub deliver_at_ms: Option<i64>,
}

/// A protobuf duration as a std one; negative or malformed ones are refused with `code`.
pub fn duration(d: &prost_types::Duration, code: Code, what: &str) -> Result<Duration, Invalid> {
    if d.seconds < 0 || !(0..1_000_000_000).contains(&d.nanos) {
        return Err(Invalid::new(
            code,
            format!("{what} {}s {}ns is not a duration", d.seconds, d.nanos),
        ));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

/// A resource (topic or group) named `name`, without a namespace, as a message field.
pub fn resource(name: &str) -> Option<Resource> {
    Some(Resource {
        resource_namespace: String::new(),
        name: name.to_string(),
    })
}

/// A std duration as a protobuf one.
pub fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// One message of a `SendMessage`, checked.
pub fn outgoing(m: v2::Message) -> Result<Outgoing, Invalid> {
    let topic = match m.topic {
        Some(r) if !r.name.is_empty() => r.name,
        _ => {
            return Err(Invalid::new(
                Code::IllegalTopic,
                "the message names no topic",
            ))
        }
    };
    let sp: SystemProperties = m
        .system_properties
        .ok_or_else(|| Invalid::new(Code::BadRequest, "the message has no system properties"))?;
    let id = sp.message_id;
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new(
            Code::IllegalMessageId,
            format!("message id {id:?} is not 1 to {MAX_ID_LEN} printable ASCII characters"),
        ));
    }
    if sp.message_group.is_some() {
        return Err(Invalid::new(
            Code::Unsupported,
            "FIFO message groups are not supported by sundial",
        ));
    }
    let kind = MessageType::try_from(sp.message_type).unwrap_or(MessageType::Unspecified);
    let deliver_at_ms = match (kind, sp.delivery_timestamp) {
        (
            MessageType::Fifo
            | MessageType::Transaction
            | MessageType::Lite
            | MessageType::Priority,
            _,
        ) => {
            return Err(Invalid::new(
                Code::Unsupported,
                format!(
                    "{} messages are not supported by sundial",
                    kind.as_str_name()
                ),
            ))
        }
        (MessageType::Normal, Some(_)) => {
            return Err(Invalid::new(
                Code::MessagePropertyConflictWithType,
                "a NORMAL message carries a delivery timestamp; send it as DELAY",
            ))
        }
        (MessageType::Delay, None) => {
            return Err(Invalid::new(
                Code::IllegalDeliveryTime,
                "a DELAY message needs a delivery timestamp",
            ))
        }
        (_, Some(ts)) => Some(time::delivery_ms(ts).ok_or_else(|| {
            Invalid::new(
                Code::IllegalDeliveryTime,
                format!(
                    "delivery timestamp {}s {}ns is not a time sundial can represent",
                    ts.seconds, ts.nanos
                ),
            )
        })?),
        (_, None) => None,
    };
    let mut properties: BTreeMap<String, String> = m.user_properties;
    if let Some(k) = properties.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(Invalid::new(
            Code::IllegalMessagePropertyKey,
            format!("property {k:?} is reserved"),
        ));
    }
    if !sp.born_host.is_empty() {
        properties.insert(BORN_HOST_PROPERTY.into(), sp.born_host);
    }
    match Encoding::try_from(sp.body_encoding) {
        Ok(Encoding::Identity | Encoding::Unspecified) => {}
        Ok(e) => {
            properties.insert(BODY_ENCODING_PROPERTY.into(), e.as_str_name().to_string());
        }
        Err(_) => {
            return Err(Invalid::new(
                Code::BadRequest,
                format!("unknown body encoding {}", sp.body_encoding),
            ))
        }
    }
    Ok(Outgoing {
        message_id: id,
        topic,
        tag: sp.tag.filter(|t| !t.is_empty()),
        keys: sp.keys,
        properties,
        body: m.body,
        deliver_at_ms,
    })
}

/// A message as it is handed to a consumer, in plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The broker's own id, used when the message carries no client id.
    pub broker_id: String,
    /// Its topic.
    pub topic: String,
    /// Tag.
    pub tag: Option<String>,
    /// Lookup keys (the client id among them is dropped).
    pub keys: Vec<String>,
    /// Properties as stored (the reserved ones are taken out).
    pub properties: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// Effective delivery time, Unix ms.
    pub deliver_at_ms: u64,
    /// When the broker accepted it, Unix ms.
    pub born_ms: u64,
    /// 1 for the first delivery.
    pub delivery_attempt: u32,
    /// The receipt handle the client acks with.
    pub receipt_handle: String,
}

/// A delivered message as the clients read it: the id its client gave it (the broker's
/// own for messages sent otherwise), the system properties kept at send, the
/// receipt handle, attempt and the body's CRC32.
pub fn delivered(
    m: Delivery,
    namespace: &str,
    invisible: Duration,
    form: ChecksumForm,
) -> v2::Message {
    let mut properties = m.properties;
    let id = properties.remove(CLIENT_ID_PROPERTY).unwrap_or(m.broker_id);
    let born_host = properties.remove(BORN_HOST_PROPERTY).unwrap_or_default();
    let encoding = match properties.remove(BODY_ENCODING_PROPERTY).as_deref() {
        Some("GZIP") => Encoding::Gzip,
        _ => Encoding::Identity,
    };
    // The id was indexed as a key for lookups; it is not one of the sender's keys.
    let keys = m.keys.into_iter().filter(|k| *k != id).collect();
    let kind = if m.deliver_at_ms > m.born_ms {
        MessageType::Delay
    } else {
        MessageType::Normal
    };
    let at = |ms: u64| time::timestamp_of_ms(i64::try_from(ms).unwrap_or(i64::MAX));
    v2::Message {
        topic: Some(Resource {
            resource_namespace: namespace.to_string(),
            name: m.topic,
        }),
        user_properties: properties,
        system_properties: Some(SystemProperties {
            tag: m.tag,
            keys,
            message_id: id,
            body_digest: Some(digest::body_digest(&m.body, form)),
            body_encoding: encoding as i32,
            message_type: kind as i32,
            born_timestamp: Some(at(m.born_ms)),
            born_host,
            store_timestamp: Some(at(m.born_ms)),
            store_host: "sundial".into(),
            delivery_timestamp: (kind == MessageType::Delay).then(|| at(m.deliver_at_ms)),
            receipt_handle: Some(m.receipt_handle),
            queue_id: 0,
            queue_offset: Some(0),
            invisible_duration: Some(proto_duration(invisible)),
            delivery_attempt: Some(i32::try_from(m.delivery_attempt).unwrap_or(i32::MAX)),
            ..Default::default()
        }),
        body: m.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn message(kind: MessageType, ts: Option<Timestamp>) -> v2::Message {
        v2::Message {
            topic: Some(Resource {
                resource_namespace: String::new(),
                name: "orders".into(),
            }),
            user_properties: [("k".to_string(), "v".to_string())].into(),
            system_properties: Some(SystemProperties {
                tag: Some("paid".into()),
                keys: vec!["order-1".into()],
                message_id: "01AABBCCDDEEFF0000000000010000002A".into(),
                message_type: kind as i32,
                body_encoding: Encoding::Identity as i32,
                born_host: "10.0.0.7".into(),
                delivery_timestamp: ts,
                ..Default::default()
            }),
            body: b"hello".to_vec(),
        }
    }

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn a_delay_message_keeps_its_fields_and_time() {
        let ts = Timestamp {
            seconds: 1_785_000_000,
            nanos: 122_000_000,
        };
        let m = outgoing(message(MessageType::Delay, Some(ts))).unwrap();
        assert_eq!(m.message_id, "01AABBCCDDEEFF0000000000010000002A");
        assert_eq!(m.topic, "orders");
        assert_eq!(m.tag.as_deref(), Some("paid"));
        assert_eq!(m.keys, vec!["order-1".to_string()]);
        assert_eq!(m.deliver_at_ms, Some(1_785_000_000_122));
        assert_eq!(m.properties["k"], "v");
        assert_eq!(m.properties[BORN_HOST_PROPERTY], "10.0.0.7");
        assert_eq!(m.body, b"hello");
    }

    #[test]
    fn type_and_time_mistakes_get_their_codes() {
        let code = |m| outgoing(m).unwrap_err().code;
        assert_eq!(
            code(message(MessageType::Delay, None)),
            Code::IllegalDeliveryTime
        );
        assert_eq!(
            code(message(MessageType::Normal, at(1_785_000_000))),
            Code::MessagePropertyConflictWithType
        );
        assert_eq!(code(message(MessageType::Fifo, None)), Code::Unsupported);
        assert_eq!(
            code(message(MessageType::Delay, at(i64::MAX))),
            Code::IllegalDeliveryTime
        );
        let mut no_id = message(MessageType::Normal, None);
        no_id.system_properties.as_mut().unwrap().message_id.clear();
        assert_eq!(code(no_id), Code::IllegalMessageId);
        let mut reserved = message(MessageType::Normal, None);
        reserved
            .user_properties
            .insert(CLIENT_ID_PROPERTY.into(), "x".into());
        assert_eq!(code(reserved), Code::IllegalMessagePropertyKey);
        let mut no_topic = message(MessageType::Normal, None);
        no_topic.topic = None;
        assert_eq!(code(no_topic), Code::IllegalTopic);
        let mut no_props = message(MessageType::Normal, None);
        no_props.system_properties = None;
        assert_eq!(code(no_props), Code::BadRequest);
    }

    #[test]
    fn a_delivered_message_shows_the_client_id_and_hides_the_reserved_properties() {
        let m = outgoing(message(MessageType::Delay, at(1_785_000_000))).unwrap();
        let id = m.message_id.clone();
        let mut properties = m.properties.clone();
        properties.insert(CLIENT_ID_PROPERTY.into(), id.clone());
        let mut keys = m.keys.clone();
        keys.push(id.clone());
        let d = Delivery {
            broker_id: "0000000000000007".into(),
            topic: m.topic.clone(),
            tag: m.tag.clone(),
            keys,
            properties,
            body: m.body.clone(),
            deliver_at_ms: 1_785_000_000_000,
            born_ms: 1_784_999_000_000,
            delivery_attempt: 2,
            receipt_handle: "r".into(),
        };
        let out = delivered(
            d.clone(),
            "ns",
            Duration::from_secs(30),
            ChecksumForm::PaddedHex,
        );
        let sp = out.system_properties.unwrap();
        assert_eq!(sp.message_id, id);
        assert_eq!(sp.keys, vec!["order-1".to_string()]);
        assert_eq!(sp.born_host, "10.0.0.7");
        assert_eq!(sp.delivery_attempt, Some(2));
        assert_eq!(sp.receipt_handle.as_deref(), Some("r"));
        assert_eq!(sp.message_type, MessageType::Delay as i32);
        assert_eq!(sp.delivery_timestamp, at(1_785_000_000));
        assert_eq!(
            sp.body_digest.unwrap().checksum,
            digest::crc32_hex(b"hello")
        );
        assert_eq!(out.user_properties.len(), 1, "{:?}", out.user_properties);
        assert_eq!(out.topic.unwrap().resource_namespace, "ns");
        // Sent without a client id: the broker's id; Ready at once: NORMAL.
        let mut plain = d;
        plain.properties.clear();
        plain.deliver_at_ms = plain.born_ms;
        let out = delivered(plain, "", Duration::from_secs(30), ChecksumForm::Hex);
        let sp = out.system_properties.unwrap();
        assert_eq!(sp.message_id, "0000000000000007");
        assert_eq!(sp.message_type, MessageType::Normal as i32);
        assert_eq!(sp.delivery_timestamp, None);
    }

    #[test]
    fn durations_refuse_negatives() {
        let d = |s, n| {
            duration(
                &prost_types::Duration {
                    seconds: s,
                    nanos: n,
                },
                Code::IllegalInvisibleTime,
                "x",
            )
        };
        assert_eq!(d(30, 0).unwrap(), Duration::from_secs(30));
        assert!(d(-1, 0).is_err());
        assert!(d(1, -5).is_err());
        assert_eq!(
            proto_duration(Duration::from_millis(1500)),
            prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            }
        );
    }
}
