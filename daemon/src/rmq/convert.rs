//! RocketMQ 5 messages to sundial's and back: what a `SendMessage` entry becomes, what
//! a delivered message looks like to the clients, durations, filters and statuses.

use crate::broker::CLIENT_ID_PROPERTY;
use crate::errors;
use std::collections::BTreeMap;
use std::time::Duration;
use sundial_engine::{Error, NewMessage, ReceivedMessage, TagFilter};
use sundial_rmq_proto::digest::{self, ChecksumForm};
use sundial_rmq_proto::time;
use sundial_rmq_proto::v2::{
    self, Code, Encoding, FilterType, MessageType, Resource, Status, SystemProperties,
};

/// Where the clients' `born_host` is kept among a message's properties.
pub const BORN_HOST_PROPERTY: &str = "BORN_HOST";
/// Where a body encoding other than IDENTITY is kept, so it is returned as sent.
pub const BODY_ENCODING_PROPERTY: &str = "BODY_ENCODING";
/// Properties sundial fills from the system properties; a client may not set them.
const RESERVED: [&str; 3] = [
    CLIENT_ID_PROPERTY,
    BORN_HOST_PROPERTY,
    BODY_ENCODING_PROPERTY,
];
/// Longest client message id accepted (the clients' ids are 34 characters).
const MAX_ID_LEN: usize = 128;

/// A request the gRPC port refuses before the broker sees it, with its in-band code.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The RocketMQ code.
    pub code: Code,
    /// What was wrong.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The status the clients read.
    pub fn status(&self) -> Status {
        status(self.code, &self.message)
    }
}

impl From<&Error> for Refusal {
    fn from(e: &Error) -> Self {
        Refusal::new(errors::rmq_code(errors::code(e)), e.to_string())
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::from(&e)
    }
}

/// A status with a code and message.
pub fn status(code: Code, message: &str) -> Status {
    Status {
        code: code as i32,
        message: message.to_string(),
    }
}

/// The OK status.
pub fn ok() -> Status {
    status(Code::Ok, "OK")
}

/// The name of a resource, refused when empty.
pub fn name_of(r: Option<&Resource>, what: &str, code: Code) -> Result<String, Refusal> {
    match r.map(|r| r.name.as_str()) {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err(Refusal::new(code, format!("no {what} name in the request"))),
    }
}

/// A protobuf duration as a std one; negative or malformed ones are refused with `code`.
pub fn duration(d: &prost_types::Duration, code: Code, what: &str) -> Result<Duration, Refusal> {
    if d.seconds < 0 || !(0..1_000_000_000).contains(&d.nanos) {
        return Err(Refusal::new(
            code,
            format!("{what} {}s {}ns is not a duration", d.seconds, d.nanos),
        ));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

/// A std duration as a protobuf one.
pub fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// The tag filter of a receive: TAG expressions as sundial's filter; SQL92 refused.
pub fn filter(f: Option<&v2::FilterExpression>) -> Result<Option<String>, Refusal> {
    let Some(f) = f else { return Ok(None) };
    match FilterType::try_from(f.r#type) {
        Ok(FilterType::Tag) | Ok(FilterType::Unspecified) => {}
        Ok(FilterType::Sql) => {
            return Err(Refusal::new(
                Code::IllegalFilterExpression,
                "SQL92 filters are not supported; use a TAG expression such as \"a || b\"",
            ))
        }
        Err(_) => {
            return Err(Refusal::new(
                Code::IllegalFilterExpression,
                format!("unknown filter type {}", f.r#type),
            ))
        }
    }
    let expr = f.expression.trim();
    let expr = if expr.is_empty() { "*" } else { expr };
    TagFilter::parse(expr)
        .map_err(|e| Refusal::new(Code::IllegalFilterExpression, e.to_string()))?;
    Ok(Some(expr.to_string()))
}

/// One message of a `SendMessage`, as the message sundial stores and the id its client
/// gave it.
pub fn new_message(m: v2::Message) -> Result<(NewMessage, String), Refusal> {
    let topic = name_of(m.topic.as_ref(), "topic", Code::IllegalTopic)?;
    let sp: SystemProperties = m
        .system_properties
        .ok_or_else(|| Refusal::new(Code::BadRequest, "the message has no system properties"))?;
    let id = sp.message_id;
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::new(
            Code::IllegalMessageId,
            format!("message id {id:?} is not 1 to {MAX_ID_LEN} printable ASCII characters"),
        ));
    }
    if sp.message_group.is_some() {
        return Err(Refusal::new(
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
            return Err(Refusal::new(
                Code::Unsupported,
                format!(
                    "{} messages are not supported by sundial",
                    kind.as_str_name()
                ),
            ))
        }
        (MessageType::Normal, Some(_)) => {
            return Err(Refusal::new(
                Code::MessagePropertyConflictWithType,
                "a NORMAL message carries a delivery timestamp; send it as DELAY",
            ))
        }
        (MessageType::Delay, None) => {
            return Err(Refusal::new(
                Code::IllegalDeliveryTime,
                "a DELAY message needs a delivery timestamp",
            ))
        }
        (_, Some(ts)) => Some(time::delivery_ms(ts).ok_or_else(|| {
            Refusal::new(
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
        return Err(Refusal::new(
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
            return Err(Refusal::new(
                Code::BadRequest,
                format!("unknown body encoding {}", sp.body_encoding),
            ))
        }
    }
    let msg = NewMessage {
        topic,
        tag: sp.tag.filter(|t| !t.is_empty()),
        keys: sp.keys,
        properties,
        body: m.body,
        deliver_at_ms,
    };
    Ok((msg, id))
}

/// A delivered message as the clients read it: the id its client gave it (sundial's own
/// for messages sent on the native port), the system properties kept at send, the
/// receipt handle, attempt and the body's CRC32.
pub fn delivered(
    m: ReceivedMessage,
    namespace: &str,
    receipt: String,
    invisible: Duration,
    form: ChecksumForm,
) -> v2::Message {
    let mut properties = m.properties;
    let id = properties
        .remove(CLIENT_ID_PROPERTY)
        .unwrap_or_else(|| m.message_id.to_string());
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
            receipt_handle: Some(receipt),
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
    use sundial_engine::MessageId;

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

    #[test]
    fn a_delay_message_keeps_its_fields_and_time() {
        let ts = Timestamp {
            seconds: 1_785_000_000,
            nanos: 122_000_000,
        };
        let (m, id) = new_message(message(MessageType::Delay, Some(ts))).unwrap();
        assert_eq!(id, "01AABBCCDDEEFF0000000000010000002A");
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
        let code = |m| new_message(m).unwrap_err().code;
        assert_eq!(
            code(message(MessageType::Delay, None)),
            Code::IllegalDeliveryTime
        );
        let ts = Timestamp {
            seconds: 1_785_000_000,
            nanos: 0,
        };
        assert_eq!(
            code(message(MessageType::Normal, Some(ts))),
            Code::MessagePropertyConflictWithType
        );
        assert_eq!(code(message(MessageType::Fifo, None)), Code::Unsupported);
        let bad = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(
            code(message(MessageType::Delay, Some(bad))),
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
    }

    #[test]
    fn a_delivered_message_shows_the_client_id_and_hides_sundials_properties() {
        let (m, id) = new_message(message(
            MessageType::Delay,
            Some(Timestamp {
                seconds: 1_785_000_000,
                nanos: 0,
            }),
        ))
        .unwrap();
        let mut properties = m.properties.clone();
        properties.insert(CLIENT_ID_PROPERTY.into(), id.clone());
        let mut keys = m.keys.clone();
        keys.push(id.clone());
        let got = ReceivedMessage {
            message_id: MessageId(7),
            topic: m.topic.clone(),
            tag: m.tag.clone(),
            keys,
            properties,
            body: m.body.clone(),
            deliver_at_ms: 1_785_000_000_000,
            ready_at_ms: 1_785_000_000_001,
            born_ms: 1_784_999_000_000,
            delivery_attempt: 2,
            receipt_handle: "r".into(),
        };
        let out = delivered(
            got,
            "ns",
            "r".into(),
            Duration::from_secs(30),
            ChecksumForm::PaddedHex,
        );
        let sp = out.system_properties.unwrap();
        assert_eq!(sp.message_id, id);
        assert_eq!(sp.keys, vec!["order-1".to_string()]);
        assert_eq!(sp.born_host, "10.0.0.7");
        assert_eq!(sp.delivery_attempt, Some(2));
        assert_eq!(sp.message_type, MessageType::Delay as i32);
        assert_eq!(
            sp.delivery_timestamp,
            Some(Timestamp {
                seconds: 1_785_000_000,
                nanos: 0
            })
        );
        assert_eq!(
            sp.body_digest.unwrap().checksum,
            digest::crc32_hex(b"hello")
        );
        assert_eq!(out.user_properties.len(), 1, "{:?}", out.user_properties);
        assert_eq!(out.topic.unwrap().resource_namespace, "ns");
    }

    #[test]
    fn sql_filters_are_refused_and_tags_checked() {
        let f = |t: FilterType, e: &str| {
            filter(Some(&v2::FilterExpression {
                r#type: t as i32,
                expression: e.into(),
            }))
        };
        assert_eq!(f(FilterType::Tag, "").unwrap().as_deref(), Some("*"));
        assert_eq!(
            f(FilterType::Tag, "a || b").unwrap().as_deref(),
            Some("a || b")
        );
        assert_eq!(
            f(FilterType::Sql, "a > 1").unwrap_err().code,
            Code::IllegalFilterExpression
        );
        assert_eq!(filter(None).unwrap(), None);
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
