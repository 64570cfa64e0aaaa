//! What the engine tells its observer: lateness as messages become Ready, and the
//! duration of every successful WAL sync (one per sync, none for work that needs no
//! sync, none for a sync that failed).

mod common;

use common::{config, delay_msg, T0};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sundial_engine::{Engine, ManualClock, Observer, TopicKind};

#[derive(Default)]
struct Recorder {
    ready: Mutex<Vec<(String, u64)>>,
    syncs: AtomicU64,
    synced_for: Mutex<Duration>,
}

impl Observer for Recorder {
    fn ready(&self, topic: &str, lateness_ms: u64) {
        self.ready
            .lock()
            .unwrap()
            .push((topic.to_string(), lateness_ms));
    }

    fn wal_synced(&self, took: Duration) {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        *self.synced_for.lock().unwrap() += took;
    }
}

impl Recorder {
    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// The count of syncs once it reaches `n` (the syncer reports a sync after its
    /// answers, so a caller can hear "done" a moment before the report), or whatever
    /// it is after two seconds.
    fn syncs_once(&self, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.syncs() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.syncs()
    }
}

#[test]
fn every_successful_wal_sync_is_reported_once_and_work_without_a_sync_is_not() {
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let e = Engine::open_with_observer(dir.path(), config(&clock), Some(rec.clone())).unwrap();

    // Each call waits for its answer, so each durable call is a round and a sync alone.
    e.create_topic("t", TopicKind::Delay).unwrap();
    assert_eq!(rec.syncs_once(1), 1, "creating a topic is durable");
    for (i, synced) in (2..=4).enumerate() {
        e.send(delay_msg("t", T0 + 100 + i as u64, "x")).unwrap();
        assert_eq!(rec.syncs_once(synced), synced, "one sync per send");
    }
    assert!(
        *rec.synced_for.lock().unwrap() > Duration::ZERO,
        "the syncs took no time at all"
    );

    // Making messages Ready needs no sync: the pump's passes report lateness only.
    clock.advance(101);
    e.tick().unwrap();
    assert_eq!(
        *rec.ready.lock().unwrap(),
        vec![("t".to_string(), 1), ("t".to_string(), 0)],
        "the two messages due by now, each as late as the clock says"
    );
    e.send(delay_msg("t", T0 + 400, "z")).unwrap();

    // A sync that fails is not a sync: the send is refused and nothing is reported.
    e.inject_sync_failure();
    assert!(e.send(delay_msg("t", T0 + 500, "y")).is_err());
    // Closing the engine waits for the syncer, so the count is final now: the four
    // syncs above and the one for "z"; a sixth would be the pump pass's or the failed
    // sync's.
    drop(e);
    assert_eq!(rec.syncs(), 5, "a pump pass or a failed sync was reported");
}
