//! Restarts: a graceful stop with pending messages, and `kill -9` under load from a
//! producer. Every send that got a receipt is delivered, at or after its time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sundial_tests::Daemon;
use sundial_wire::{
    now_ms, Client, ClientOptions, OutgoingMessage, Producer, ReceiveOptions, StartFrom, TopicType,
};

/// Receives and acks everything for `group` until every id in `want` was seen or
/// `limit` passes; checks none is early. Returns the ids seen (messages sent without a
/// receipt before a kill may be among them too).
async fn drain(
    c: &Client,
    topic: &str,
    group: &str,
    want: &HashSet<String>,
    limit: Duration,
) -> HashSet<String> {
    let mut seen = HashSet::new();
    let deadline = std::time::Instant::now() + limit;
    let o = ReceiveOptions {
        max_messages: 256,
        wait: Duration::from_millis(500),
        ..ReceiveOptions::default()
    };
    while !want.is_subset(&seen) && std::time::Instant::now() < deadline {
        let got = c.receive(topic, group, &o).await.unwrap();
        let now = now_ms() as u64;
        let mut receipts = Vec::new();
        for m in got {
            assert!(
                now >= m.deliver_at_ms,
                "{} delivered {} ms early",
                m.message_id,
                m.deliver_at_ms - now
            );
            seen.insert(m.message_id);
            receipts.push(m.receipt_handle);
        }
        if !receipts.is_empty() {
            for r in c.ack(topic, group, receipts).await.unwrap() {
                r.unwrap();
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_messages_survive_a_graceful_restart_and_arrive_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut d = Daemon::start(&data, &[]);
    let c = d.client().await;
    c.create_topic("t", TopicType::Delay).await.unwrap();
    c.create_group("t", "g", StartFrom::Latest, None)
        .await
        .unwrap();
    let due = now_ms() + 2_000;
    let mut sent = HashSet::new();
    for i in 0..50 {
        let r = c
            .send(OutgoingMessage::new("t", format!("{i}")).deliver_at(due + i))
            .await
            .unwrap();
        sent.insert(r.message_id);
    }
    drop(c);
    let status = d.stop();
    assert!(
        status.success(),
        "SIGTERM exit: {status:?}\n{}",
        d.log_text()
    );
    assert!(now_ms() < due, "the test machine is too slow for this test");

    let d = Daemon::start(&data, &[]);
    let c = d.client().await;
    let early = c
        .receive(
            "t",
            "g",
            &ReceiveOptions {
                wait: Duration::ZERO,
                ..ReceiveOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(early.is_empty() || now_ms() >= due, "{early:?}");
    let seen = drain(&c, "t", "g", &sent, Duration::from_secs(20)).await;
    assert_eq!(seen, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_receipted_send_survives_kill_9_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut d = Daemon::start(&data, &[]);
    let c = d.client().await;
    c.create_topic("load", TopicType::Mixed).await.unwrap();
    c.create_group("load", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    let receipted: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Four pipelined producers, each with its own connection, sending until it fails.
    let mut producers = Vec::new();
    for p in 0..4 {
        let addr = d.addr.clone();
        let receipted = receipted.clone();
        producers.push(tokio::spawn(async move {
            let c = Client::connect(&addr, ClientOptions::default())
                .await
                .unwrap();
            let producer = Producer::new(c);
            for i in 0..1_000_000u64 {
                let delay = (i % 7) as i64 * 300;
                let m =
                    OutgoingMessage::new("load", format!("{p}-{i}")).deliver_at(now_ms() + delay);
                match producer.send_batch(vec![m.clone(), m]).await {
                    Ok(rs) => {
                        let mut set = receipted.lock().unwrap();
                        for r in rs {
                            set.insert(r.unwrap().message_id);
                        }
                    }
                    Err(e) => {
                        assert!(e.is_retryable(), "{e}");
                        return;
                    }
                }
            }
        }));
    }
    // Let load build, then kill.
    let loaded = sundial_tests::eventually(Duration::from_secs(20), || {
        let r = receipted.clone();
        async move { (r.lock().unwrap().len() >= 2_000).then_some(()) }
    })
    .await;
    assert!(loaded.is_some(), "producers did not get going");
    d.kill9();
    for p in producers {
        tokio::time::timeout(Duration::from_secs(30), p)
            .await
            .expect("producer noticed the kill")
            .unwrap();
    }
    let receipted = receipted.lock().unwrap().clone();

    let d = Daemon::start(&data, &[]);
    let c = d.client().await;
    let seen = drain(&c, "load", "g", &receipted, Duration::from_secs(60)).await;
    let lost: Vec<_> = receipted.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "{} of {} receipted sends lost, e.g. {:?}",
        lost.len(),
        receipted.len(),
        &lost[..lost.len().min(5)]
    );
    let s = c.stats().await.unwrap();
    assert_eq!(s.early_deliveries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_a_retryable_error_and_the_next_call_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut d = Daemon::start(&data, &[]);
    let c = d.client().await;
    c.create_topic("t", TopicType::Normal).await.unwrap();
    let addr = d.addr.clone();
    d.kill9();
    let e = c.list_topics().await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(e.code(), "Unavailable");
    let _d = Daemon::start_on(&data, &addr, &[]);
    let topics = sundial_tests::eventually(Duration::from_secs(10), || {
        let c = c.clone();
        async move { c.list_topics().await.ok() }
    })
    .await
    .expect("the client reconnected");
    assert_eq!(topics[0].name, "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_a_waiting_long_poll_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&dir.path().join("data"), &[]);
    let c = d.client().await;
    c.create_topic("t", TopicType::Delay).await.unwrap();
    let poll = {
        let c = c.clone();
        tokio::spawn(async move {
            let o = ReceiveOptions {
                wait: Duration::from_secs(30),
                ..ReceiveOptions::default()
            };
            let t = std::time::Instant::now();
            (c.receive("t", "g", &o).await, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let s = d.stop();
        (s, d)
    })
    .await
    .unwrap();
    assert!(
        status.0.success(),
        "{:?}\n{}",
        status.0,
        status.1.log_text()
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );
    let (got, waited) = poll.await.unwrap();
    // Answered (empty) before the daemon went away, not cut off mid-request.
    assert_eq!(got.unwrap().len(), 0);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}
