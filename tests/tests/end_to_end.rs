//! The seed's example, end to end through the real daemon: a DELAY topic, a message due
//! a few seconds ahead, nothing before its time, the message after it (never before
//! `deliver_at_ms`), ack, nothing more.

use std::time::Duration;
use sundial_tests::Daemon;
use sundial_wire::{
    now_ms, ClientError, ErrorCode, OutgoingMessage, Producer, ReceiveOptions, SimpleConsumer,
    StartFrom, TopicType,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_message_arrives_at_its_time_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let c = d.client().await;
    c.create_topic("orders", TopicType::Delay).await.unwrap();
    c.create_group("orders", "billing", StartFrom::Latest, None)
        .await
        .unwrap();

    let deliver_at = now_ms() + 2_500;
    let producer = Producer::new(c.clone());
    let r = producer
        .send(
            OutgoingMessage::new("orders", "order 42 is due")
                .deliver_at(deliver_at)
                .tag("due")
                .key("order-42"),
        )
        .await
        .unwrap();
    assert_eq!(r.deliver_at_ms, deliver_at as u64);
    assert!(!r.adjusted);
    assert_eq!(r.message_id.len(), 32);

    let consumer =
        SimpleConsumer::new(c.clone(), "orders", "billing").with_options(ReceiveOptions {
            wait: Duration::from_millis(500),
            ..ReceiveOptions::default()
        });
    // Before its time: nothing, however often we ask.
    while now_ms() < deliver_at - 700 {
        let got = consumer.receive(16).await.unwrap();
        assert!(
            got.is_empty(),
            "received {got:?} {} ms before it was due",
            deliver_at - now_ms()
        );
    }
    // A long poll across the due time returns as soon as it is Ready.
    let consumer = consumer.with_options(ReceiveOptions {
        wait: Duration::from_secs(10),
        ..ReceiveOptions::default()
    });
    let mut got = Vec::new();
    for _ in 0..20 {
        got = consumer.receive(16).await.unwrap();
        if !got.is_empty() {
            break;
        }
    }
    let received_at = now_ms();
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert!(
        received_at >= deliver_at,
        "received {} ms early",
        deliver_at - received_at
    );
    assert!(
        received_at - deliver_at < 1_000,
        "received {} ms late",
        received_at - deliver_at
    );
    assert_eq!(m.message_id, r.message_id);
    assert_eq!(m.body, b"order 42 is due");
    assert_eq!(m.tag.as_deref(), Some("due"));
    assert_eq!(m.keys, vec!["order-42".to_string()]);
    assert_eq!(m.delivery_attempt, 1);
    assert!(m.ready_at_ms >= m.deliver_at_ms);

    consumer.ack(&m.receipt_handle).await.unwrap();
    // Acking again is refused with a typed error, and the connection stays usable.
    match consumer.ack(&m.receipt_handle).await {
        Err(ClientError::Refused(f)) => assert_eq!(f.code, ErrorCode::BadReceiptHandle),
        other => panic!("second ack: {other:?}"),
    }
    let more = consumer
        .clone()
        .with_options(ReceiveOptions {
            wait: Duration::from_millis(300),
            ..ReceiveOptions::default()
        })
        .receive(16)
        .await
        .unwrap();
    assert!(more.is_empty(), "{more:?}");

    let found = c.find_messages("orders", "order-42").await.unwrap();
    assert_eq!(found, vec![r.message_id.clone()]);
    let shown = c.show_message(&r.message_id).await.unwrap();
    assert_eq!(shown.state, "Ready");
    assert_eq!(shown.groups[0].state, "Acked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_and_the_connection_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &["--max-body-bytes", "1024"]);
    let c = d.client().await;
    fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
        match r {
            Err(ClientError::Refused(f)) => f.code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(
        code(c.send(OutgoingMessage::new("nope", "x")).await),
        ErrorCode::TopicNotFound
    );
    c.create_topic("plain", TopicType::Normal).await.unwrap();
    assert_eq!(
        code(c.create_topic("plain", TopicType::Delay).await.map(|_| ())),
        ErrorCode::TopicExists
    );
    assert_eq!(
        code(
            c.send(OutgoingMessage::new("plain", "x").deliver_at(now_ms() + 1000))
                .await
        ),
        ErrorCode::TopicTypeMismatch
    );
    c.create_topic("later", TopicType::Delay).await.unwrap();
    assert_eq!(
        code(
            c.send(OutgoingMessage::new("later", "x").deliver_at(-5))
                .await
        ),
        ErrorCode::BadDeliveryTime
    );
    assert_eq!(
        code(
            c.send(OutgoingMessage::new("later", vec![0u8; 2048]).deliver_at(now_ms()))
                .await
        ),
        ErrorCode::MessageTooLarge
    );
    let o = ReceiveOptions {
        invisible: Duration::from_millis(10),
        wait: Duration::ZERO,
        ..ReceiveOptions::default()
    };
    assert_eq!(
        code(c.receive("later", "g", &o).await.map(|_| ())),
        ErrorCode::BadInvisibleDuration
    );
    assert_eq!(code(c.recall("not-a-handle").await), ErrorCode::BadRequest);
    // Still usable, and a delay beyond max_delay is delivered now and says so.
    let r = c
        .send(OutgoingMessage::new("later", "x").deliver_at(now_ms() + 48 * 3600 * 1000))
        .await
        .unwrap();
    assert!(r.adjusted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_does_not_hold_up_other_requests_on_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let c = d.client().await;
    c.create_topic("quiet", TopicType::Delay).await.unwrap();
    let poll = {
        let c = c.clone();
        tokio::spawn(async move {
            let o = ReceiveOptions {
                wait: Duration::from_secs(3),
                ..ReceiveOptions::default()
            };
            let t = std::time::Instant::now();
            let got = c.receive("quiet", "g", &o).await.unwrap();
            (got.len(), t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Answered out of order, while the long poll on the same connection waits.
    let t = std::time::Instant::now();
    let r = c
        .send(OutgoingMessage::new("quiet", "wake").deliver_at(now_ms() + 500))
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "send waited behind the poll"
    );
    let (n, waited) = poll.await.unwrap();
    // The poll returns when the message becomes Ready, not at the end of its wait.
    assert_eq!(n, 1);
    assert!(waited < Duration::from_millis(2_500), "{waited:?}");
    assert!(now_ms() as u64 >= r.deliver_at_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_hands_out_only_what_fits_one_answer_frame() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &dir.path().join("data"),
        &["--max-frame-bytes", "327680", "--max-body-bytes", "200000"],
    );
    let c = d.client().await;
    c.create_topic("big", TopicType::Normal).await.unwrap();
    c.create_group("big", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    let mut sent = std::collections::HashSet::new();
    for i in 0..6u8 {
        let r = c
            .send(OutgoingMessage::new("big", vec![i; 60_000]))
            .await
            .unwrap();
        sent.insert(r.message_id);
    }
    // One 200 KB body alone is handed out even though it is over the byte budget.
    let huge = c
        .send(OutgoingMessage::new("big", vec![9u8; 200_000]))
        .await
        .unwrap();
    sent.insert(huge.message_id);
    let o = ReceiveOptions {
        max_messages: 16,
        wait: Duration::from_millis(200),
        ..ReceiveOptions::default()
    };
    let mut seen = std::collections::HashSet::new();
    let mut calls = 0;
    while seen.len() < sent.len() && calls < 20 {
        calls += 1;
        let got = c.receive("big", "g", &o).await.unwrap();
        let bytes: usize = got.iter().map(|m| m.body.len()).sum();
        assert!(
            got.len() == 1 || bytes <= 327_680,
            "{} messages, {bytes} bytes",
            got.len()
        );
        for m in got {
            c.ack("big", "g", vec![m.receipt_handle]).await.unwrap()[0]
                .clone()
                .unwrap();
            assert!(seen.insert(m.message_id));
        }
    }
    assert_eq!(seen, sent);
    assert!(calls >= 3, "everything came in {calls} answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_match_behind_a_long_run_of_filtered_out_messages_is_found_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let c = d.client().await;
    c.create_topic("mixed-tags", TopicType::Normal)
        .await
        .unwrap();
    c.create_group("mixed-tags", "g", StartFrom::Earliest, Some("wanted"))
        .await
        .unwrap();
    // More non-matching entries than one engine receive skips (16,384).
    for _ in 0..6 {
        let batch = (0..4096)
            .map(|_| OutgoingMessage::new("mixed-tags", "noise").tag("noise"))
            .collect();
        for r in c.send_batch(batch).await.unwrap() {
            r.unwrap();
        }
    }
    c.send(OutgoingMessage::new("mixed-tags", "signal").tag("wanted"))
        .await
        .unwrap();
    let o = ReceiveOptions {
        wait: Duration::ZERO,
        ..ReceiveOptions::default()
    };
    let got = c.receive("mixed-tags", "g", &o).await.unwrap();
    assert_eq!(got.len(), 1, "the match was not found without waiting");
    assert_eq!(got[0].body, b"signal");
}

/// Single sends pipelined on one connection are stored as one engine batch when they
/// arrive together, yet each is its own request: the refused ones (unknown topic, body
/// over the limit, a NORMAL message with a delivery time) get their own typed error, the
/// others their own receipt, and other requests in between are answered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_single_sends_are_answered_each_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &["--max-body-bytes", "1024"]);
    let c = d.client().await;
    c.create_topic("later", TopicType::Delay).await.unwrap();
    c.create_topic("plain", TopicType::Normal).await.unwrap();
    let due = now_ms() + 3_600_000;
    let n = 2_000usize;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let sender = c.clone();
        tasks.spawn(async move {
            let m = match i % 5 {
                0 => OutgoingMessage::new("nope", "x").deliver_at(due),
                1 => OutgoingMessage::new("later", vec![0u8; 2048]).deliver_at(due),
                2 => OutgoingMessage::new("plain", "x").deliver_at(due),
                _ => OutgoingMessage::new("later", format!("m{i}")).deliver_at(due + i as i64),
            };
            (i, sender.send(m).await.map(Some))
        });
        if i % 500 == 0 {
            let c = c.clone();
            tasks.spawn(async move { (usize::MAX, c.show_topic("later").await.map(|_| None)) });
        }
    }
    let (mut ok, mut ids) = (0, std::collections::HashSet::new());
    while let Some(r) = tasks.join_next().await {
        let (i, r) = r.unwrap();
        let expect = match i {
            usize::MAX => {
                r.expect("show_topic between the sends");
                continue;
            }
            i => i % 5,
        };
        match (expect, r) {
            (0, Err(ClientError::Refused(f))) => assert_eq!(f.code, ErrorCode::TopicNotFound),
            (1, Err(ClientError::Refused(f))) => assert_eq!(f.code, ErrorCode::MessageTooLarge),
            (2, Err(ClientError::Refused(f))) => {
                assert_eq!(f.code, ErrorCode::TopicTypeMismatch)
            }
            (3 | 4, Ok(Some(receipt))) => {
                assert_eq!(
                    receipt.deliver_at_ms,
                    (due + i as i64) as u64,
                    "message {i}"
                );
                assert!(
                    ids.insert(receipt.message_id),
                    "message {i}: a receipt twice"
                );
                ok += 1;
            }
            (e, other) => panic!("message {i} (kind {e}): {other:?}"),
        }
    }
    assert_eq!(ok, n * 2 / 5);
    let t = c.show_topic("later").await.unwrap();
    assert_eq!((t.sent, t.timing), (ok as u64, ok as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_as_the_wire_carries_them_are_the_messages_sent_and_ack_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let c = d.client().await;
    c.create_topic("raw", TopicType::Delay).await.unwrap();
    c.create_group("raw", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    let due = now_ms() + 300;
    let mut sent = std::collections::BTreeMap::new();
    for i in 0..5u8 {
        let body = vec![i; 3 + i as usize];
        let r = c
            .send(
                OutgoingMessage::new("raw", body.clone())
                    .deliver_at(due)
                    .tag(format!("t{i}")),
            )
            .await
            .unwrap();
        sent.insert(r.message_id, (body, format!("t{i}")));
    }
    // Short enough that an ack which did not hold would show as a redelivery below.
    let o = ReceiveOptions {
        max_messages: 16,
        invisible: Duration::from_millis(1_500),
        wait: Duration::from_secs(2),
        ..ReceiveOptions::default()
    };
    let mut got = Vec::new();
    for _ in 0..20 {
        if got.len() == sent.len() {
            break;
        }
        got.extend(c.receive_deliveries("raw", "g", &o).await.unwrap());
    }
    assert_eq!(got.len(), sent.len(), "{got:?}");
    for m in &got {
        let id = format!("{:032x}", m.id);
        let (body, tag) = sent
            .get(&id)
            .unwrap_or_else(|| panic!("{id} was never sent"));
        assert_eq!(&m.body, body);
        assert_eq!(m.tag.as_deref(), Some(tag.as_str()));
        assert_eq!(m.delivery_attempt, 1);
        assert!(m.deliver_at_ms >= due as u64 && m.ready_at_ms >= m.deliver_at_ms);
        assert!(now_ms() as u64 >= m.deliver_at_ms);
        // The same message printed for consumers carries the same id.
        assert_eq!(m.clone().delivered("raw").message_id, id);
    }
    let acks = c
        .ack("raw", "g", got.iter().map(|m| m.receipt).collect())
        .await
        .unwrap();
    assert!(acks.iter().all(|a| a.is_ok()), "{acks:?}");
    // Acked: nothing comes back, though the invisible duration ends during this wait.
    let until = now_ms() + 2_500;
    while now_ms() < until {
        let again = c.receive_deliveries("raw", "g", &o).await.unwrap();
        assert!(again.is_empty(), "{again:?}");
    }
}
