//! Bad input on the RocketMQ gRPC port of a real daemon: random bytes, truncated HTTP/2,
//! a silent connection, undecodable protobuf, oversized messages, thousands of
//! concurrent streams and a Telemetry stream that never reads. Each gets a gRPC error or
//! a closed stream within bounded time; both ports keep serving and the message stored
//! before is still there.

use std::time::{Duration, Instant};
use sundial_rmq_proto::convert::resource;
use sundial_rmq_proto::v2::{self, messaging_service_client::MessagingServiceClient, Code};
use sundial_tests::{closed_within, Daemon};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// The HTTP/2 connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn client(addr: &str) -> MessagingServiceClient<Channel> {
    MessagingServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC connect")
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn message(topic: &str, id: &str, body: Vec<u8>) -> v2::Message {
    v2::Message {
        topic: resource(topic),
        user_properties: Default::default(),
        system_properties: Some(v2::SystemProperties {
            message_id: id.into(),
            message_type: v2::MessageType::Normal as i32,
            body_encoding: v2::Encoding::Identity as i32,
            ..Default::default()
        }),
        body,
    }
}

/// Sends one NORMAL message over gRPC; the in-band status code.
async fn send(
    c: &mut MessagingServiceClient<Channel>,
    topic: &str,
    id: &str,
    body: Vec<u8>,
) -> i32 {
    let r = c
        .send_message(v2::SendMessageRequest {
            messages: vec![message(topic, id, body)],
        })
        .await
        .expect("a gRPC answer")
        .into_inner();
    r.status.expect("a status").code
}

/// The daemon still answers on both ports, and the message sent first is stored.
async fn still_serving(d: &Daemon, grpc: &str) {
    let mut c = client(grpc).await;
    let r = c
        .query_route(v2::QueryRouteRequest {
            topic: resource("t"),
            endpoints: None,
        })
        .await
        .expect("QueryRoute answers")
        .into_inner();
    assert_eq!(r.status.expect("status").code, Code::Ok as i32);
    let (ok, out, err) = d.cli(&["topic", "show", "t", "--json"]);
    assert!(ok.success(), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["sent"].as_u64().unwrap_or(0) >= 1, "{out}");
    let (ok, out, err) = d.cli(&[
        "message", "find", "--topic", "t", "--key", "first", "--json",
    ]);
    assert!(ok.success(), "{out}{err}");
    assert!(
        out.contains("[\"") || out.contains("\"message_id\""),
        "{out}"
    );
}

fn daemon(dir: &tempfile::TempDir, extra: &[&str]) -> (Daemon, String) {
    let d = Daemon::start(&dir.path().join("data"), extra);
    let grpc = d.grpc_addr.clone().expect("the gRPC port is on");
    let (ok, out, err) = d.cli(&["topic", "create", "t", "--type", "mixed"]);
    assert!(ok.success(), "{out}{err}");
    (d, grpc)
}

async fn first_message(grpc: &str) {
    let mut c = client(grpc).await;
    let mut m = message("t", "01FIRST0000000000000000000000000001", b"kept".to_vec());
    if let Some(sp) = m.system_properties.as_mut() {
        sp.keys = vec!["first".into()];
    }
    let r = c
        .send_message(v2::SendMessageRequest { messages: vec![m] })
        .await
        .expect("send")
        .into_inner();
    assert_eq!(r.status.expect("status").code, Code::Ok as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_and_silent_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (d, grpc) = daemon(&dir, &["--handshake-timeout", "1s"]);
    first_message(&grpc).await;
    // Random bytes where the preface should be.
    let mut s = TcpStream::connect(&grpc).await.unwrap();
    let noise: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    let _ = s.write_all(&noise).await;
    closed_within(&mut s, Duration::from_secs(10)).await;
    // The preface, then half a SETTINGS frame, then the client goes away.
    let mut s = TcpStream::connect(&grpc).await.unwrap();
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&[0, 0, 18, 4, 0, 0, 0, 0, 0, 0, 3])
        .await
        .unwrap();
    drop(s);
    // A valid preface and SETTINGS, then a HEADERS frame cut off mid-way and nothing more:
    // the stream never starts and the connection is given up by keepalive at the latest.
    let mut s = TcpStream::connect(&grpc).await.unwrap();
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    s.write_all(&[0, 0, 40, 1, 4, 0, 0, 0, 1, 0x82])
        .await
        .unwrap();
    // A connection that sends nothing is closed after the handshake timeout.
    let mut silent = TcpStream::connect(&grpc).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(5)).await;
    // A TLS hello on a plaintext port is refused, not answered as HTTP/2.
    let mut tls = TcpStream::connect(&grpc).await.unwrap();
    tls.write_all(&[0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0])
        .await
        .unwrap();
    closed_within(&mut tls, Duration::from_secs(5)).await;
    still_serving(&d, &grpc).await;
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_oversized_requests_get_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (d, grpc) = daemon(&dir, &["--max-body-bytes", "65536"]);
    first_message(&grpc).await;
    // A SendMessageRequest whose field 1 has the wrong wire type: not a request.
    #[derive(Clone, PartialEq, prost::Message)]
    struct NotARequest {
        #[prost(fixed64, tag = "1")]
        x: u64,
    }
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let path =
        http::uri::PathAndQuery::from_static("/apache.rocketmq.v2.MessagingService/SendMessage");
    let codec = tonic_prost::ProstCodec::<NotARequest, v2::SendMessageResponse>::default();
    let r = raw
        .unary(tonic::Request::new(NotARequest { x: 7 }), path, codec)
        .await;
    let e = r.expect_err("an undecodable request is a gRPC error");
    assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");
    // A body over the daemon's limit but under the decode limit: in band.
    let mut c = client(&grpc).await;
    let code = send(
        &mut c,
        "t",
        "01BIG00000000000000000000000000001",
        vec![7; 100_000],
    )
    .await;
    assert_eq!(code, Code::MessageBodyTooLarge as i32);
    // A request over the decode limit: a gRPC error, the connection stays usable.
    let huge = c
        .send_message(v2::SendMessageRequest {
            messages: vec![message(
                "t",
                "01HUGE000000000000000000000000001",
                vec![7; 4 << 20],
            )],
        })
        .await;
    let e = huge.expect_err("an oversized request is refused by the transport");
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    let code = send(
        &mut c,
        "t",
        "01AFTER0000000000000000000000000001",
        b"ok".to_vec(),
    )
    .await;
    assert_eq!(code, Code::Ok as i32);
    // More messages in one request than a batch holds: in band.
    let many: Vec<_> = (0..5000)
        .map(|i| message("t", &format!("01M{i:031}"), vec![]))
        .collect();
    let r = c
        .send_message(v2::SendMessageRequest { messages: many })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(r.status.expect("status").code, Code::BadRequest as i32);
    still_serving(&d, &grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_streams_and_a_telemetry_stream_that_never_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (d, grpc) = daemon(&dir, &[]);
    first_message(&grpc).await;
    // 3,000 long polls at once over 4 connections: each is answered (nothing is Ready)
    // or refused by the stream limit, none hangs.
    let started = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(client(&grpc).await);
    }
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..3000 {
        let mut c = conns[i % 4].clone();
        calls.spawn(async move {
            let mut req = tonic::Request::new(v2::ReceiveMessageRequest {
                group: resource(&format!("g{}", i % 10)),
                message_queue: Some(v2::MessageQueue {
                    topic: resource("t"),
                    ..Default::default()
                }),
                filter_expression: None,
                batch_size: 1,
                invisible_duration: Some(prost_types::Duration {
                    seconds: 30,
                    nanos: 0,
                }),
                auto_renew: false,
                long_polling_timeout: Some(prost_types::Duration {
                    seconds: 2,
                    nanos: 0,
                }),
                attempt_id: None,
            });
            req.set_timeout(Duration::from_secs(20));
            match c.receive_message(req).await {
                Ok(r) => {
                    let mut s = r.into_inner();
                    let mut frames = 0;
                    while let Ok(Some(_)) = s.message().await {
                        frames += 1;
                    }
                    frames
                }
                Err(_) => 0,
            }
        });
    }
    let mut answered = 0;
    while let Some(r) = tokio::time::timeout(Duration::from_secs(60), calls.join_next())
        .await
        .expect("every stream ends within 60 s")
    {
        if r.expect("task") > 0 {
            answered += 1;
        }
    }
    assert!(answered >= 1, "some long polls were answered");
    assert!(started.elapsed() < Duration::from_secs(60));
    // A Telemetry stream whose client writes settings and never reads the answers: the
    // daemon stops answering and ends the stream instead of buffering without bound.
    let mut c = client(&grpc).await;
    let settings = v2::TelemetryCommand {
        status: None,
        command: Some(v2::telemetry_command::Command::Settings(v2::Settings {
            client_type: Some(v2::ClientType::Producer as i32),
            pub_sub: Some(v2::settings::PubSub::Publishing(v2::Publishing {
                topics: vec![v2::Resource {
                    resource_namespace: String::new(),
                    name: "t".repeat(100),
                }],
                max_body_size: 0,
                validate_message_type: true,
            })),
            ..Default::default()
        })),
    };
    let frames = 20_000;
    let out = tokio_stream::iter(std::iter::repeat_n(settings, frames));
    let r = c.telemetry(out).await.expect("the stream opens");
    // Give the daemon the frames before reading anything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut answers = r.into_inner();
    let mut n = 0;
    let read_all = async {
        while let Ok(Some(_)) = answers.message().await {
            n += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the stream ends within 30 s");
    assert!(
        n < frames,
        "the daemon answered all {n} frames of a client that did not read"
    );
    still_serving(&d, &grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_in_band_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (d, grpc) = daemon(&dir, &[]);
    let mut c = client(&grpc).await;
    // Unknown topic.
    assert_eq!(
        send(&mut c, "nope", "01X0000000000000000000000000000001", vec![]).await,
        Code::TopicNotFound as i32
    );
    // No message id.
    assert_eq!(
        send(&mut c, "t", "", vec![]).await,
        Code::IllegalMessageId as i32
    );
    // SQL92 filter.
    let req = v2::ReceiveMessageRequest {
        group: resource("g"),
        message_queue: Some(v2::MessageQueue {
            topic: resource("t"),
            ..Default::default()
        }),
        filter_expression: Some(v2::FilterExpression {
            r#type: v2::FilterType::Sql as i32,
            expression: "a > 1".into(),
        }),
        batch_size: 1,
        invisible_duration: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
        auto_renew: false,
        long_polling_timeout: Some(prost_types::Duration {
            seconds: 0,
            nanos: 0,
        }),
        attempt_id: None,
    };
    let mut s = c
        .receive_message(req.clone())
        .await
        .expect("stream")
        .into_inner();
    let first = s.message().await.expect("frame").expect("a status frame");
    match first.content {
        Some(v2::receive_message_response::Content::Status(st)) => {
            assert_eq!(st.code, Code::IllegalFilterExpression as i32, "{st:?}")
        }
        other => panic!("{other:?}"),
    }
    // An invisible duration under sundial's minimum.
    let mut short = req;
    short.filter_expression = None;
    short.invisible_duration = Some(prost_types::Duration {
        seconds: 0,
        nanos: 1000,
    });
    let mut s = c.receive_message(short).await.expect("stream").into_inner();
    match s.message().await.expect("frame").and_then(|f| f.content) {
        Some(v2::receive_message_response::Content::Status(st)) => {
            assert_eq!(st.code, Code::IllegalInvisibleTime as i32, "{st:?}")
        }
        other => panic!("{other:?}"),
    }
    // A stale receipt.
    let r = c
        .ack_message(v2::AckMessageRequest {
            group: resource("g"),
            topic: resource("t"),
            entries: vec![v2::AckMessageEntry {
                message_id: "x".into(),
                receipt_handle: "not-a-receipt".into(),
                lite_topic: None,
            }],
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(
        r.status.expect("status").code,
        Code::InvalidReceiptHandle as i32
    );
    // Unimplemented RPCs.
    let e = c
        .end_transaction(v2::EndTransactionRequest::default())
        .await
        .expect_err("transactions are not served");
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    drop(d);
}
