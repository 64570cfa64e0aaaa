//! The generated types against bytes the clients produce: fixed vectors serialized by
//! the official Python client's own protobuf stubs (5.1.2 wheel), and one built by hand
//! from field numbers, so that a wrong number or type in sundial's .proto fails here.

use prost::Message;
use prost_types::{Duration, Timestamp};
use sundial_rmq_proto::time::delivery_ms;
use sundial_rmq_proto::v2::{
    self, retry_policy, settings, telemetry_command, ClientType, Code, Encoding, FilterType,
    MessageType,
};
use sundial_rmq_proto::{decode_request, Request};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector is hex"))
        .collect()
}

/// A DELAY message to "delay-topic" with tag TagA, keys k1 k2, id 01ABCDEF, a user
/// property color=blue, born at 1785000000 s and due at 1785000060.122 s, body "hello".
const SEND: &str = "0a5b0a0d120b64656c61792d746f706963120d0a05636f6c6f721204626c75651a340a045461\
674112026b3112026b321a083031414243444546280130033a0608c0e093d3064201685a0b08fce093d3061080a5\
963a220568656c6c6f";

/// A settings reply: status OK; PRODUCER, request timeout 3 s, backoff 3 attempts
/// exponential 10 ms..1 s ×2, publishing delay-topic with a 4 MiB limit and validation.
const TELEMETRY: &str = "0a0408a09c01123408011a14080312100a051080ade204120208011d00000040220208\
032a160a0d120b64656c61792d746f70696310808080021801";

/// A SimpleConsumer receive: group g, TAG "*", batch 32, invisible 15 s, long polling 20 s.
const RECEIVE: &str = "0a031201671a05080112012a20202a02080f3a020814";

/// A ChangeInvisibleDuration answer: INVALID_RECEIPT_HANDLE "stale", handle rh2.
const CHANGE_RESPONSE: &str = "0a0b08cdb80212057374616c651203726832";

fn send_request() -> v2::SendMessageRequest {
    let mut user_properties = std::collections::BTreeMap::new();
    user_properties.insert("color".to_string(), "blue".to_string());
    v2::SendMessageRequest {
        messages: vec![v2::Message {
            topic: Some(v2::Resource {
                resource_namespace: String::new(),
                name: "delay-topic".into(),
            }),
            user_properties,
            system_properties: Some(v2::SystemProperties {
                tag: Some("TagA".into()),
                keys: vec!["k1".into(), "k2".into()],
                message_id: "01ABCDEF".into(),
                body_encoding: Encoding::Identity as i32,
                message_type: MessageType::Delay as i32,
                born_timestamp: Some(Timestamp {
                    seconds: 1_785_000_000,
                    nanos: 0,
                }),
                born_host: "h".into(),
                delivery_timestamp: Some(Timestamp {
                    seconds: 1_785_000_060,
                    nanos: 122_000_000,
                }),
                ..Default::default()
            }),
            body: b"hello".to_vec(),
        }],
    }
}

#[test]
fn a_clients_send_request_decodes_and_re_encodes_byte_for_byte() {
    let bytes = unhex(SEND);
    let req = v2::SendMessageRequest::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(req, send_request());
    let sp = req.messages[0]
        .system_properties
        .clone()
        .expect("system properties");
    assert_eq!(sp.message_type(), MessageType::Delay);
    assert_eq!(
        sp.delivery_timestamp.and_then(delivery_ms),
        Some(1_785_000_060_122)
    );
    // Fields in number order and one map entry: prost writes exactly what Python wrote.
    assert_eq!(send_request().encode_to_vec(), bytes);
    assert_eq!(
        decode_request("SendMessage", &bytes),
        Ok(Request::SendMessage(send_request()))
    );
}

#[test]
fn a_settings_reply_encodes_as_the_client_expects() {
    let reply = v2::TelemetryCommand {
        status: Some(v2::Status {
            code: Code::Ok as i32,
            message: String::new(),
        }),
        command: Some(telemetry_command::Command::Settings(v2::Settings {
            client_type: Some(ClientType::Producer as i32),
            backoff_policy: Some(v2::RetryPolicy {
                max_attempts: 3,
                strategy: Some(retry_policy::Strategy::ExponentialBackoff(
                    v2::ExponentialBackoff {
                        initial: Some(Duration {
                            seconds: 0,
                            nanos: 10_000_000,
                        }),
                        max: Some(Duration {
                            seconds: 1,
                            nanos: 0,
                        }),
                        multiplier: 2.0,
                    },
                )),
            }),
            request_timeout: Some(Duration {
                seconds: 3,
                nanos: 0,
            }),
            pub_sub: Some(settings::PubSub::Publishing(v2::Publishing {
                topics: vec![v2::Resource {
                    resource_namespace: String::new(),
                    name: "delay-topic".into(),
                }],
                max_body_size: 4 * 1024 * 1024,
                validate_message_type: true,
            })),
            ..Default::default()
        })),
    };
    assert_eq!(reply.encode_to_vec(), unhex(TELEMETRY));
}

#[test]
fn a_simple_consumers_receive_request_decodes() {
    let req = v2::ReceiveMessageRequest::decode(unhex(RECEIVE).as_slice()).expect("decodes");
    assert_eq!(req.group.map(|g| g.name), Some("g".to_string()));
    let filter = req.filter_expression.expect("filter");
    assert_eq!(filter.r#type(), FilterType::Tag);
    assert_eq!(filter.expression, "*");
    assert_eq!(req.batch_size, 32);
    assert_eq!(req.invisible_duration.map(|d| d.seconds), Some(15));
    assert!(!req.auto_renew);
    assert_eq!(req.long_polling_timeout.map(|d| d.seconds), Some(20));
    assert_eq!(req.attempt_id, None);
}

#[test]
fn a_change_invisible_duration_answer_encodes_as_the_client_reads_it() {
    let resp = v2::ChangeInvisibleDurationResponse {
        status: Some(v2::Status {
            code: Code::InvalidReceiptHandle as i32,
            message: "stale".into(),
        }),
        receipt_handle: "rh2".into(),
    };
    assert_eq!(resp.encode_to_vec(), unhex(CHANGE_RESPONSE));
}

#[test]
fn delivery_timestamp_is_field_11_of_system_properties_field_3() {
    // Built from the numbers alone: Message.system_properties = 3 (length-delimited,
    // tag 0x1a) holding message_type = 6 (varint, tag 0x30) DELAY = 3 and
    // delivery_timestamp = 11 (length-delimited, tag 0x5a) holding Timestamp.seconds =
    // 1 (varint, tag 0x08) 1785000060 and nanos = 2 (varint, tag 0x10) 5000000.
    let mut seconds = Vec::new();
    prost::encoding::encode_varint(1_785_000_060, &mut seconds);
    let mut nanos = Vec::new();
    prost::encoding::encode_varint(5_000_000, &mut nanos);
    let mut ts = vec![0x08];
    ts.extend(&seconds);
    ts.push(0x10);
    ts.extend(&nanos);
    let mut sp = vec![0x30, 0x03, 0x5a, ts.len() as u8];
    sp.extend(&ts);
    let mut msg = vec![0x1a, sp.len() as u8];
    msg.extend(&sp);
    // SendMessageRequest.messages = 1 (tag 0x0a).
    let mut req = vec![0x0a, msg.len() as u8];
    req.extend(&msg);

    let decoded = v2::SendMessageRequest::decode(req.as_slice()).expect("decodes");
    let sp = decoded.messages[0]
        .system_properties
        .clone()
        .expect("system properties");
    assert_eq!(sp.message_type(), MessageType::Delay);
    assert_eq!(
        sp.delivery_timestamp.and_then(delivery_ms),
        Some(1_785_000_060_005)
    );
    assert_eq!(decoded.encode_to_vec(), req);
}

#[test]
fn code_numbers_are_the_clients() {
    for (code, n) in [
        (Code::Ok, 20000),
        (Code::MultipleResults, 30000),
        (Code::BadRequest, 40000),
        (Code::IllegalDeliveryTime, 40012),
        (Code::InvalidReceiptHandle, 40013),
        (Code::MessagePropertyConflictWithType, 40014),
        (Code::IllegalPollingTime, 40018),
        (Code::Unauthorized, 40100),
        (Code::Forbidden, 40300),
        (Code::MessageNotFound, 40401),
        (Code::TopicNotFound, 40402),
        (Code::MessageBodyTooLarge, 41301),
        (Code::TooManyRequests, 42900),
        (Code::MessagePropertiesTooLarge, 43101),
        (Code::InternalServerError, 50001),
        (Code::NotImplemented, 50100),
        (Code::Unsupported, 50500),
    ] {
        assert_eq!(code as i32, n, "{code:?}");
    }
}

#[test]
fn unknown_fields_from_newer_clients_are_skipped() {
    // Settings.client_properties (9) is newer than the Python wheel; a field 99 the
    // crate does not know must be skipped the same way.
    let mut bytes = v2::Settings {
        client_type: Some(ClientType::SimpleConsumer as i32),
        ..Default::default()
    }
    .encode_to_vec();
    bytes.extend([0x9a, 0x06, 0x01, 0x00]); // field 99, length-delimited, 1 byte
    let s = v2::Settings::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(s.client_type(), ClientType::SimpleConsumer);
}
