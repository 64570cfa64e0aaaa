//! Failpoints in a running daemon (`--features sundial/failpoints,sundial-tests/failpoints`,
//! which `make test` passes). Producers and consumers keep working while the engine is
//! made to fail; the affected requests get errors, nothing that was acknowledged is
//! lost, and after a restart the checker passes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use sundial_tests::checker::{self, History};
use sundial_tests::workload::{self, Failures, Target};
use sundial_tests::{eventually, Daemon};
use sundial_wire::{now_ms, ClientError, ErrorCode, OutgoingMessage, StartFrom, TopicType};

/// A daemon with a MIXED topic `f` and groups `live` and `late`, and a target on it.
async fn setup(dir: &std::path::Path) -> (Daemon, Target) {
    let d = Daemon::start(&dir.join("data"), &[]);
    let c = d.client().await;
    c.create_topic("f", TopicType::Mixed).await.unwrap();
    // Probes outside the history go to their own topic.
    c.create_topic("probe", TopicType::Normal).await.unwrap();
    for g in ["live", "late"] {
        c.create_group("f", g, StartFrom::Earliest, None)
            .await
            .unwrap();
    }
    let t = Target {
        addr: d.addr.clone(),
        topic: "f".into(),
        history: Arc::new(History::create(&dir.join("history")).unwrap()),
        failures: Arc::new(Failures::default()),
    };
    (d, t)
}

/// Restarts on the same port, drains both groups and checks the history.
async fn restart_drain_check(d: &mut Daemon, t: &Target, dir: &std::path::Path) -> String {
    d.kill9();
    *d = Daemon::start_on(&dir.join("data"), &t.addr, &[]);
    workload::drain(t, &["live", "late"]).await;
    let stats = d.client().await.stats().await.unwrap();
    assert_eq!(stats.early_deliveries, 0);
    let v = checker::check(
        &checker::read(&dir.join("history")).unwrap(),
        &["live", "late"],
    );
    assert!(v.passed(), "{v}");
    assert!(v.sent > 100, "too little work: {v}");
    v.to_string()
}

fn poisoned(d: &Daemon) -> bool {
    d.metric("sundial_storage_poisoned") == Some(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_wal_sync_refuses_writes_until_restart_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, t) = setup(dir.path()).await;
    let run = workload::start(&t, 2, "live", 1, now_ms() + 5_000);
    let busy = eventually(Duration::from_secs(20), || async {
        (t.history.sent() >= 200).then_some(())
    })
    .await;
    assert!(busy.is_some(), "the workload did not get going");

    d.failpoint("writer::sync", "return");
    let refused = eventually(Duration::from_secs(20), || async {
        (t.failures.refused.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    assert!(refused.is_some(), "no request was refused");
    d.failpoint("writer::sync", "off");
    // Off again, yet writes stay refused until a restart: the failed round's outcome is
    // unknown to the daemon until RocksDB recovers the log.
    let c = d.client().await;
    let r = c.send(OutgoingMessage::new("probe", "after")).await;
    assert!(
        matches!(&r, Err(ClientError::Refused(f)) if f.code == ErrorCode::Internal),
        "{r:?}"
    );
    assert!(poisoned(&d), "the poisoned gauge shows it");
    let sent_before_stop = t.history.sent();
    run.stop().await;
    assert_eq!(
        t.history.sent(),
        sent_before_stop,
        "a poisoned daemon acknowledged a send"
    );

    let report = restart_drain_check(&mut d, &t, dir.path()).await;
    eprintln!("failed WAL sync: {report}");
    assert!(!poisoned(&d));
    let c = d.client().await;
    c.send(OutgoingMessage::new("probe", "works again"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_moves_acks_and_compaction_filters_delay_work_but_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, t) = setup(dir.path()).await;
    // Every compaction keeps what it would have removed, for the whole run.
    d.failpoint("retention::filter", "return");
    let run = workload::start(&t, 2, "live", 2, now_ms() + 6_000);
    let busy = eventually(Duration::from_secs(20), || async {
        (t.history.sent() >= 200).then_some(())
    })
    .await;
    assert!(busy.is_some(), "the workload did not get going");

    // The pump fails for a second: what falls due then is late, never early.
    d.failpoint("pump::move", "return");
    tokio::time::sleep(Duration::from_secs(1)).await;
    d.failpoint("pump::move", "off");
    // Half the ack calls fail until some have.
    let before = t.failures.refused.load(Ordering::Relaxed);
    d.failpoint("consume::ack", "50%return");
    let failed_acks = eventually(Duration::from_secs(20), || async {
        (t.failures.refused.load(Ordering::Relaxed) > before).then_some(())
    })
    .await;
    d.failpoint("consume::ack", "off");
    assert!(failed_acks.is_some(), "no ack was refused");
    assert!(!poisoned(&d), "these failures are not fatal");
    let c = d.client().await;
    c.send(OutgoingMessage::new("probe", "still takes sends"))
        .await
        .unwrap();
    run.stop().await;

    let report = restart_drain_check(&mut d, &t, dir.path()).await;
    eprintln!("failed moves, acks and filters: {report}");
}
