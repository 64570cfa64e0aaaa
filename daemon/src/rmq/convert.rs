//! The gRPC front end's side of the conversions: the checked plain data of
//! `sundial_rmq_proto::convert` as engine types and back, tag filters (which the engine
//! parses), in-band statuses, and refusals from engine errors (mapped in `errors`).

use crate::errors;
use std::time::Duration;
use sundial_engine::{Error, NewMessage, ReceivedMessage, TagFilter};
use sundial_rmq_proto::convert::{self as wire, Delivery, Invalid};
use sundial_rmq_proto::digest::ChecksumForm;
use sundial_rmq_proto::v2::{self, Code, FilterType, Resource, Status};

pub use wire::{duration, proto_duration};

/// A request the gRPC port refuses, with its in-band code.
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

impl From<Invalid> for Refusal {
    fn from(e: Invalid) -> Self {
        Refusal::new(e.code, e.message)
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::new(errors::rmq_code(errors::code(&e)), e.to_string())
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

/// The name of a resource, refused with `code` when empty.
pub fn name_of(r: Option<&Resource>, what: &str, code: Code) -> Result<String, Refusal> {
    match r.map(|r| r.name.as_str()) {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err(Refusal::new(code, format!("no {what} name in the request"))),
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

/// One message of a `SendMessage` as the message sundial stores, and its client's id.
pub fn new_message(m: v2::Message) -> Result<(NewMessage, String), Refusal> {
    let o = wire::outgoing(m)?;
    let msg = NewMessage {
        topic: o.topic,
        tag: o.tag,
        keys: o.keys,
        properties: o.properties,
        body: o.body,
        deliver_at_ms: o.deliver_at_ms,
    };
    Ok((msg, o.message_id))
}

/// A received message as the clients read it.
pub fn delivered(
    m: ReceivedMessage,
    topic: &str,
    namespace: &str,
    invisible: Duration,
    form: ChecksumForm,
) -> v2::Message {
    let d = Delivery {
        broker_id: m.message_id.hex(),
        topic: topic.to_string(),
        tag: m.tag,
        keys: m.keys,
        properties: m.properties,
        body: m.body,
        deliver_at_ms: m.deliver_at_ms,
        born_ms: m.born_ms,
        delivery_attempt: m.delivery_attempt,
        receipt_handle: m.receipt_handle.to_string(),
    };
    wire::delivered(d, namespace, invisible, form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_keeps_the_client_id_where_the_wire_reads_it() {
        assert_eq!(crate::broker::CLIENT_ID_PROPERTY, wire::CLIENT_ID_PROPERTY);
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
    fn engine_errors_become_their_rocketmq_codes() {
        let r = Refusal::from(Error::BadReceiptHandle("stale".into()));
        assert_eq!(r.code, Code::InvalidReceiptHandle);
        assert!(r.message.contains("stale"), "{}", r.message);
        let r = Refusal::from(Error::TopicNotFound("t".into()));
        assert_eq!(r.status().code, Code::TopicNotFound as i32);
    }
}
