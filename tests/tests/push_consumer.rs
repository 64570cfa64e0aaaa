//! The push consumer against the real daemon: successes are acked once, failures are
//! retried with the group's backoff, and a message that keeps failing reaches
//! `%DLQ%<group>` after the configured attempts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sundial_tests::{eventually, Daemon};
use sundial_wire::{
    now_ms, ConsumeResult, OutgoingMessage, PushConsumer, PushOptions, ReceiveOptions, StartFrom,
    TopicType,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_backoff_then_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &dir.path().join("data"),
        &[
            "--retry-backoff",
            "300ms,600ms",
            "--max-delivery-attempts",
            "3",
        ],
    );
    let c = d.client().await;
    c.create_topic("jobs", TopicType::Mixed).await.unwrap();
    c.create_group("jobs", "workers", StartFrom::Earliest, None)
        .await
        .unwrap();
    let due = now_ms() + 300;
    let mut ids = HashMap::new();
    for i in 0..20 {
        let tag = if i == 7 { "poison" } else { "ok" };
        let r = c
            .send(
                OutgoingMessage::new("jobs", format!("job {i}"))
                    .deliver_at(due)
                    .tag(tag),
            )
            .await
            .unwrap();
        ids.insert(r.message_id, tag);
    }

    // Every call: (message id, attempt, when).
    let calls: Arc<Mutex<Vec<(String, u32, i64)>>> = Arc::default();
    let seen = calls.clone();
    let push = PushConsumer::start(
        c.clone(),
        "jobs",
        "workers",
        PushOptions {
            concurrency: 4,
            receive: ReceiveOptions {
                max_messages: 8,
                wait: Duration::from_secs(2),
                ..ReceiveOptions::default()
            },
        },
        move |m| {
            let seen = seen.clone();
            async move {
                let at = now_ms();
                assert!(at as u64 >= m.deliver_at_ms, "delivered early");
                seen.lock()
                    .unwrap()
                    .push((m.message_id.clone(), m.delivery_attempt, at));
                if m.tag.as_deref() == Some("poison") {
                    ConsumeResult::Failure
                } else {
                    ConsumeResult::Success
                }
            }
        },
    );
    let poison = ids
        .iter()
        .find(|(_, t)| **t == "poison")
        .map(|(id, _)| id.clone())
        .unwrap();
    let done = eventually(Duration::from_secs(20), || {
        let calls = calls.clone();
        let poison = poison.clone();
        async move {
            let n = calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.0 == poison)
                .count();
            (n >= 3).then_some(())
        }
    })
    .await;
    assert!(done.is_some(), "the poison message was not tried 3 times");
    // The dead letter is written as the third delivery is refused; let it land.
    let dlq = "%DLQ%workers".to_string();
    let dead = eventually(Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let s = c.stats().await.ok()?;
            let t = s.topics.iter().find(|t| t.topic == "jobs")?;
            (t.groups[0].dead_lettered == 1).then_some(())
        }
    })
    .await;
    let report = push.stop().await;
    assert!(dead.is_some(), "not dead-lettered: {:?}", c.stats().await);

    let calls = calls.lock().unwrap().clone();
    let good: Vec<_> = calls.iter().filter(|c| c.0 != poison).collect();
    assert_eq!(
        good.len(),
        19,
        "each good message handled exactly once: {good:?}"
    );
    assert!(good.iter().all(|c| c.1 == 1));
    let tries: Vec<_> = calls.iter().filter(|c| c.0 == poison).collect();
    assert_eq!(
        tries.iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "{tries:?}"
    );
    // Backoff: 300 ms after the first nack, 600 ms after the second.
    assert!(tries[1].2 - tries[0].2 >= 300, "{tries:?}");
    assert!(tries[2].2 - tries[1].2 >= 600, "{tries:?}");
    assert_eq!(report.acked, 19, "{report:?}");
    assert_eq!(report.nacked, 3, "{report:?}");
    assert_eq!(report.settle_errors, 0, "{report:?}");

    // The dead letter is readable from %DLQ%workers with its body.
    c.create_group(&dlq, "inspect", StartFrom::Earliest, None)
        .await
        .unwrap();
    let got = c
        .receive(
            &dlq,
            "inspect",
            &ReceiveOptions {
                wait: Duration::from_secs(2),
                ..ReceiveOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, b"job 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_running_listeners_and_their_acks() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let c = d.client().await;
    c.create_topic("slow", TopicType::Normal).await.unwrap();
    c.create_group("slow", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    for i in 0..4 {
        c.send(OutgoingMessage::new("slow", format!("{i}")))
            .await
            .unwrap();
    }
    let started: Arc<Mutex<u32>> = Arc::default();
    let s = started.clone();
    let push = PushConsumer::start(
        c.clone(),
        "slow",
        "g",
        PushOptions {
            concurrency: 4,
            ..PushOptions::default()
        },
        move |_m| {
            let s = s.clone();
            async move {
                *s.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
                ConsumeResult::Success
            }
        },
    );
    let all = eventually(Duration::from_secs(10), || {
        let s = started.clone();
        async move { (*s.lock().unwrap() == 4).then_some(()) }
    })
    .await;
    assert!(all.is_some());
    let report = push.stop().await;
    assert_eq!(report.acked, 4, "stop returned before the acks: {report:?}");
    let s = c.show_topic("slow").await.unwrap();
    assert_eq!((s.groups[0].acked, s.groups[0].inflight), (4, 0));
}
