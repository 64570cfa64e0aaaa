//! Auto-renew deliveries on the gRPC port (RocketMQ push consumers): kept invisible while
//! their client's Telemetry stream is open, acked later with the receipt first handed
//! out; a client without an open stream gets no renewal, and its delivery comes back.

use std::time::{Duration, Instant};
use sundial_rmq_proto::convert::resource;
use sundial_rmq_proto::v2::{self, messaging_service_client::MessagingServiceClient, Code};
use sundial_tests::Daemon;
use tonic::transport::Channel;

fn as_client<T>(msg: T, client: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("x-mq-client-id", client.parse().expect("ascii"));
    r
}

/// One receive of at most one message: (id, receipt, attempt).
async fn receive_one(
    c: &mut MessagingServiceClient<Channel>,
    client: &str,
    auto_renew: bool,
    wait: Duration,
) -> Option<(String, String, i32)> {
    let req = v2::ReceiveMessageRequest {
        group: resource("g"),
        message_queue: Some(v2::MessageQueue {
            topic: resource("t"),
            ..Default::default()
        }),
        filter_expression: None,
        batch_size: 1,
        invisible_duration: None,
        auto_renew,
        long_polling_timeout: Some(prost_types::Duration {
            seconds: wait.as_secs() as i64,
            nanos: wait.subsec_nanos() as i32,
        }),
        attempt_id: None,
    };
    let mut s = c
        .receive_message(as_client(req, client))
        .await
        .expect("receive")
        .into_inner();
    let mut got = None;
    while let Some(f) = s.message().await.expect("frame") {
        if let Some(v2::receive_message_response::Content::Message(m)) = f.content {
            let sp = m.system_properties.expect("system properties");
            got = Some((
                sp.message_id,
                sp.receipt_handle.expect("receipt"),
                sp.delivery_attempt.unwrap_or(0),
            ));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_of_live_clients_stay_invisible_and_others_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &["--grpc-renew-lease", "6s"]);
    let grpc = d.grpc_addr.clone().expect("gRPC on");
    for args in [
        vec!["topic", "create", "t", "--type", "normal"],
        vec!["group", "create", "g", "--topic", "t", "--from", "earliest"],
        vec!["send", "t", "--body", "one"],
        vec!["send", "t", "--body", "two"],
    ] {
        let (ok, out, err) = d.cli(&args);
        assert!(ok.success(), "{args:?}: {out}{err}");
    }
    let mut c = MessagingServiceClient::connect(format!("http://{grpc}"))
        .await
        .expect("connect");
    // Client "live" holds a Telemetry stream open for the whole test.
    let hello = v2::TelemetryCommand {
        status: None,
        command: Some(v2::telemetry_command::Command::Settings(v2::Settings {
            client_type: Some(v2::ClientType::PushConsumer as i32),
            ..Default::default()
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(hello).await.unwrap();
    let out = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut answers = c
        .telemetry(as_client(out, "live"))
        .await
        .expect("telemetry")
        .into_inner();
    let first = answers
        .message()
        .await
        .expect("answer")
        .expect("a settings answer");
    assert_eq!(first.status.expect("status").code, Code::Ok as i32);

    let (live_id, live_receipt, attempt) =
        receive_one(&mut c, "live", true, Duration::from_secs(5))
            .await
            .expect("the live client gets a message");
    assert_eq!(attempt, 1);
    let (gone_id, _, _) = receive_one(&mut c, "gone", true, Duration::from_secs(5))
        .await
        .expect("the client without a stream gets the other");
    assert_ne!(live_id, gone_id);

    // Over two leases (a lease is renewed when 2 s are left, slack for a loaded
    // machine): the live client's message must not come back; the other's must.
    let deadline = Instant::now() + Duration::from_secs(14);
    let mut back = None;
    while Instant::now() < deadline {
        if let Some((id, _, attempt)) =
            receive_one(&mut c, "observer", false, Duration::from_secs(1)).await
        {
            assert_ne!(id, live_id, "a renewed delivery was handed out again");
            assert_eq!(id, gone_id);
            back = Some(attempt);
        }
    }
    assert_eq!(
        back,
        Some(2),
        "the unrenewed delivery came back with attempt 2"
    );
    // The receipt handed out first still acks, after renewals.
    let r = c
        .ack_message(v2::AckMessageRequest {
            group: resource("g"),
            topic: resource("t"),
            entries: vec![v2::AckMessageEntry {
                message_id: live_id,
                receipt_handle: live_receipt,
                lite_topic: None,
            }],
        })
        .await
        .expect("ack")
        .into_inner();
    assert_eq!(r.status.expect("status").code, Code::Ok as i32);
    drop(tx);
    drop(d);
}
