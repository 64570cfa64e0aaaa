//! The crash loop: producers and consumers keep working while the daemon is SIGKILLed
//! at random moments (some during its start-up) and started again on the same port.
//! Everything the clients were told goes to a synced history file; at the end every
//! group drains and the checker reads the file: nothing acknowledged lost, nothing
//! unexpected, nothing early, nothing acked delivered again to its group.
//!
//! `SUNDIAL_CRASH_KILLS` sets the number of kills (10 by default; `make crash` runs 50).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_tests::checker::{self, Event, History};
use sundial_tests::workload::{self, Failures, Target};
use sundial_tests::Daemon;
use sundial_wire::{now_ms, StartFrom, TopicType};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_or_early_across_kill_9_loops() {
    let kills: usize = std::env::var("SUNDIAL_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let history_path = dir.path().join("history");
    let mut d = Daemon::start(&data, &[]);
    let addr = d.addr.clone();
    {
        let c = d.client().await;
        c.create_topic("crash", TopicType::Mixed).await.unwrap();
        for g in ["live", "late"] {
            c.create_group("crash", g, StartFrom::Earliest, None)
                .await
                .unwrap();
        }
    }
    let history = Arc::new(History::create(&history_path).unwrap());
    let target = Target {
        addr: addr.clone(),
        topic: "crash".into(),
        history: history.clone(),
        failures: Arc::new(Failures::default()),
    };
    // Every delivery time falls before the kills are expected to end, so the drain
    // does not wait out a full minute of delay.
    let latest = now_ms() + (kills as i64) * 1_200 + 5_000;
    let running = workload::start(&target, 3, "live", 2, latest);

    let mut startup_kills = 0;
    let mut rng = StdRng::from_os_rng();
    for _ in 0..kills {
        let pause = rng.random_range(300..1_500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        d.kill9();
        history.log(&[Event::Kill]);
        if rng.random_bool(0.3) {
            let after = Duration::from_millis(rng.random_range(0..400));
            let (data, addr) = (data.clone(), addr.clone());
            tokio::task::spawn_blocking(move || {
                Daemon::kill_during_startup(&data, &addr, &[], after)
            })
            .await
            .unwrap();
            history.log(&[Event::Kill]);
            startup_kills += 1;
        }
        let (data, addr) = (data.clone(), addr.clone());
        d = tokio::task::spawn_blocking(move || Daemon::start_on(&data, &addr, &[]))
            .await
            .unwrap();
    }

    running.stop().await;
    // Drain both groups: everything is due by now or within seconds.
    workload::drain(&target, &["live", "late"]).await;
    let stats = d.client().await.stats().await.unwrap();
    let status = d.stop();
    assert!(status.success(), "{status:?}\n{}", d.log_text());

    let v = checker::check(&checker::read(&history_path).unwrap(), &["live", "late"]);
    let f = &target.failures;
    eprintln!(
        "crash loop: {v}; {startup_kills} kills during start-up; failed calls: {} retryable, \
         {} refused; {:.1} s",
        f.retryable.load(Ordering::Relaxed),
        f.refused.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    assert!(v.passed(), "{v}");
    assert_eq!(
        stats.early_deliveries, 0,
        "the daemon counted early deliveries"
    );
    assert!(v.kills >= kills, "{v}");
    assert!(v.sent >= 500, "too little work to mean anything: {v}");
    assert!(v.acks > 0, "{v}");
    assert_eq!(
        f.refused.load(Ordering::Relaxed),
        0,
        "a running daemon refused a well-formed call"
    );
}
