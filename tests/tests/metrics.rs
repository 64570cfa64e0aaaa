//! `/metrics` on the real daemon: the documented families, `sundial_` prefix, histograms
//! with `_bucket` lines, per-state counts matching the engine's.

use std::time::Duration;
use sundial_tests::{metric_value, Daemon};
use sundial_wire::{now_ms, OutgoingMessage, ReceiveOptions, StartFrom, TopicType};

const FAMILIES: &[&str] = &[
    "sundial_sends_total",
    "sundial_receives_total",
    "sundial_acks_total",
    "sundial_nacks_total",
    "sundial_redeliveries_total",
    "sundial_dead_letters_total",
    "sundial_recalls_total",
    "sundial_timing_messages",
    "sundial_ready_messages",
    "sundial_inflight_messages",
    "sundial_delivery_lateness_seconds",
    "sundial_receive_lateness_seconds",
    "sundial_request_duration_seconds",
    "sundial_early_deliveries_total",
    "sundial_rocksdb_sst_bytes",
    "sundial_rocksdb_pending_compaction_bytes",
    "sundial_rocksdb_write_stopped",
    "sundial_connections",
    "sundial_disk_bytes",
    "sundial_wal_sync_duration_seconds",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_documented_families_with_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let c = d.client().await;
    c.create_topic("m", TopicType::Delay).await.unwrap();
    c.create_group("m", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    for i in 0..5 {
        c.send(OutgoingMessage::new("m", "x").deliver_at(now_ms() + i * 50))
            .await
            .unwrap();
    }
    let later = c
        .send(OutgoingMessage::new("m", "later").deliver_at(now_ms() + 3_600_000))
        .await
        .unwrap();
    c.send(OutgoingMessage::new("m", "waits").deliver_at(now_ms() + 3_600_000))
        .await
        .unwrap();
    let o = ReceiveOptions {
        wait: Duration::from_secs(2),
        max_messages: 2,
        ..ReceiveOptions::default()
    };
    let mut got = Vec::new();
    let mut receives = 0;
    for _ in 0..50 {
        if got.len() == 5 {
            break;
        }
        got.extend(c.receive("m", "g", &o).await.unwrap());
        receives += 1;
    }
    // A second group of the same topic counts its receives in a series of its own.
    c.create_group("m", "g2", StartFrom::Earliest, None)
        .await
        .unwrap();
    let mut got2 = 0;
    for _ in 0..50 {
        if got2 == 5 {
            break;
        }
        got2 += c.receive("m", "g2", &o).await.unwrap().len();
        receives += 1;
    }
    assert_eq!(got2, 5);
    c.ack("m", "g", vec![got[0].receipt_handle]).await.unwrap();
    c.nack("m", "g", vec![got[1].receipt_handle]).await.unwrap();
    c.recall(&later.recall_handle).await.unwrap();

    // A refused nack naming a made-up group must not create a series for it.
    let refused = c
        .nack(
            "m",
            "made-up-group",
            vec!["0".repeat(40).parse().expect("a handle")],
        )
        .await
        .unwrap();
    assert!(refused[0].is_err());

    let text = d.scrape();
    assert!(
        !text.contains("made-up-group"),
        "a refused nack made a series"
    );
    for f in FAMILIES {
        assert!(
            text.lines().any(|l| l.starts_with(f)),
            "{f} missing from /metrics:\n{text}"
        );
    }
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        assert!(l.starts_with("sundial_"), "unprefixed series {l}");
        assert!(
            !l.contains(&got[0].message_id),
            "a message id in a label: {l}"
        );
    }
    for h in [
        "sundial_delivery_lateness_seconds",
        "sundial_receive_lateness_seconds",
        "sundial_request_duration_seconds",
        "sundial_wal_sync_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {h} histogram")),
            "{h} is not a histogram"
        );
        assert!(
            text.contains(&format!("{h}_bucket{{")),
            "{h} has no buckets"
        );
    }
    // Each request is one sample of its operation's series, whichever thread served it.
    for (op, n) in [
        ("send", 7.0),
        ("receive", f64::from(receives)),
        ("ack", 1.0),
    ] {
        assert_eq!(
            metric_value(
                &text,
                &format!("sundial_request_duration_seconds_count{{op=\"{op}\"}}")
            ),
            Some(n),
            "{op}"
        );
    }
    assert_eq!(
        metric_value(&text, "sundial_sends_total{topic=\"m\"}"),
        Some(7.0)
    );
    // Every durable answer waited for a sync, and one sync may cover several of them:
    // at least one sync, and at most one per writer job the requests made (3 creates,
    // 7 sends, the receives, an ack, two nacks and a recall; a receive that waited
    // can take two jobs).
    let syncs = metric_value(&text, "sundial_wal_sync_duration_seconds_count").unwrap_or(0.0);
    let jobs = f64::from(3 + 7 + 2 * receives + 4);
    assert!(
        (1.0..=jobs).contains(&syncs),
        "{syncs} WAL syncs for at most {jobs} writer jobs"
    );
    let synced_for = metric_value(&text, "sundial_wal_sync_duration_seconds_sum").unwrap_or(0.0);
    assert!(synced_for > 0.0, "the syncs took {synced_for} s in all");
    // One lateness figure per first delivery to each group, however a receive's
    // figures are grouped.
    assert_eq!(
        metric_value(&text, "sundial_receive_lateness_seconds_count{topic=\"m\"}"),
        Some(10.0)
    );
    for g in ["g", "g2"] {
        assert_eq!(
            metric_value(
                &text,
                &format!("sundial_receives_total{{topic=\"m\",group=\"{g}\"}}")
            ),
            Some(5.0),
            "{g}"
        );
    }
    assert_eq!(
        metric_value(&text, "sundial_acks_total{topic=\"m\",group=\"g\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "sundial_nacks_total{topic=\"m\",group=\"g\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "sundial_recalls_total{topic=\"m\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "sundial_timing_messages{topic=\"m\"}"),
        Some(1.0)
    );
    let counts = c.show_topic("m").await.unwrap();
    let g = &counts.groups[0];
    assert_eq!(
        metric_value(&text, "sundial_inflight_messages{topic=\"m\",group=\"g\"}"),
        Some(g.inflight as f64)
    );
    assert_eq!(g.inflight + g.retry, 4, "{g:?}");
    assert_eq!(
        metric_value(&text, "sundial_early_deliveries_total"),
        Some(0.0)
    );
    assert_eq!(metric_value(&text, "sundial_connections"), Some(1.0));
}
