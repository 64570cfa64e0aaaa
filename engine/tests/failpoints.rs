//! Failpoints (`--features failpoints`): each named failure gives the affected callers
//! an error, never loses or exposes what was acknowledged, and the engine recovers as
//! `failpoints.rs` in the engine describes. Failpoints are global to the process, so
//! the cases run one at a time.

mod common;
use common::*;
use std::sync::mpsc::channel;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use sundial_engine::failpoints::{self, configure};
use sundial_engine::{Error, GroupStart, MessageState, ReceiveRequest, TopicKind};

static SERIAL: Mutex<()> = Mutex::new(());

/// Sets a failpoint for the life of the guard.
struct Set(&'static str);

impl Set {
    fn new(name: &'static str, actions: &str) -> Set {
        configure(name, actions).unwrap();
        Set(name)
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        configure(self.0, "off").unwrap();
    }
}

/// DELAY topic `t` with group `g` from the earliest message.
fn delay_topic(h: &Harness) {
    h.topic("t", TopicKind::Delay);
    h.e()
        .create_group("t", "g", GroupStart::Earliest, None)
        .unwrap();
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn a_slow_wal_sync_does_not_hold_up_the_writer_and_no_durable_answer_comes_before_it() {
    let _s = serial();
    let h = Harness::new();
    delay_topic(&h);
    let e = h.e().clone();
    let sync = Set::new(failpoints::WAL_SYNC, "pause");
    let (tx, rx) = channel();
    // Joined at the end: a thread still holding the engine when the test process exits
    // would close RocksDB during the exit.
    let mut threads = Vec::new();
    for body in ["a", "b"] {
        let (e, tx) = (e.clone(), tx.clone());
        threads.push(std::thread::spawn(move || {
            let _ = tx.send(e.send(delay_msg("t", T0 + 1_000, body)));
        }));
    }
    // While the first sync hangs, the writer goes on: both sends are applied...
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.e().stats().timing_total < 2 {
        assert!(Instant::now() < deadline, "the second send was not applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    // ...and a job that needs no sync is answered,
    let (ptx, prx) = channel();
    threads.push(std::thread::spawn(move || {
        let _ = ptx.send(e.tick());
    }));
    prx.recv_timeout(Duration::from_secs(10))
        .expect("a pump pass is answered while a sync hangs")
        .unwrap();
    // but neither send is, until the syncs are done.
    assert!(
        rx.try_recv().is_err(),
        "a send was answered before its sync"
    );
    drop(sync);
    for _ in 0..2 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("answered after the sync")
            .unwrap();
    }
    for t in threads {
        t.join().expect("a sending thread panicked");
    }
}

/// The group's inflight count, as stats report it.
fn inflight(h: &Harness) -> u64 {
    let st = h.e().stats();
    st.topics
        .iter()
        .flat_map(|t| &t.groups)
        .map(|g| g.inflight)
        .sum()
}

#[test]
fn a_receive_is_answered_only_after_the_sync_of_its_hand_outs() {
    let _s = serial();
    let h = Harness::new();
    delay_topic(&h);
    let sent = h.e().send(delay_msg("t", T0, "now")).unwrap();
    h.e().tick().unwrap();
    let sync = Set::new(failpoints::WAL_SYNC, "pause");
    let e = h.e().clone();
    let (tx, rx) = channel();
    let receiver = std::thread::spawn(move || {
        let _ = tx.send(e.receive(sundial_engine::ReceiveRequest::new("t", "g", 10)));
    });
    // The hand-out is applied (and its bodies may be read) while the sync hangs...
    let deadline = Instant::now() + Duration::from_secs(10);
    while inflight(&h) < 1 {
        assert!(Instant::now() < deadline, "the receive was not applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    // ...but the consumer hears nothing before the sync is done.
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "a receive was answered before its sync"
    );
    drop(sync);
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("answered after the sync")
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, sent.message_id);
    assert_eq!(got[0].body, b"now");
    receiver.join().expect("the receiving thread panicked");
}

#[test]
fn a_failed_wal_sync_refuses_writes_until_reopen_and_loses_nothing_acknowledged() {
    let _s = serial();
    let mut h = Harness::new();
    delay_topic(&h);
    let kept = h.e().send(delay_msg("t", T0 + 1_000, "kept")).unwrap();
    {
        let _f = Set::new(failpoints::WAL_SYNC, "return");
        let r = h.e().send(delay_msg("t", T0 + 1_000, "refused"));
        assert!(matches!(r, Err(Error::Poisoned(_))), "{r:?}");
    }
    // The failpoint is off, but the engine stays refused: the failed round's state is
    // unknown until RocksDB recovers it.
    let r = h.e().send(delay_msg("t", T0 + 1_000, "after"));
    assert!(matches!(r, Err(Error::Poisoned(_))), "{r:?}");
    assert!(h.e().stats().poisoned);

    h.reopen();
    h.clock.advance(1_000);
    h.e().tick().unwrap();
    let got = h.drain("t", "g");
    assert!(
        got.iter().any(|m| m.message_id == kept.message_id),
        "the acknowledged send is delivered after reopen"
    );
    assert!(got.iter().all(|m| m.body != b"after"));
    h.e().send(delay_msg("t", T0 + 5_000, "works")).unwrap();
}

#[test]
fn a_failed_pump_move_leaves_messages_timing_and_the_next_pass_moves_them() {
    let _s = serial();
    let h = Harness::new();
    delay_topic(&h);
    let r = h.e().send(delay_msg("t", T0 + 100, "x")).unwrap();
    h.clock.advance(200);
    {
        let _f = Set::new(failpoints::PUMP_MOVE, "return");
        assert!(h.e().tick().is_err());
        assert_eq!(
            h.e().show(r.message_id).unwrap().state,
            MessageState::Timing
        );
        assert!(h.receive("t", "g", 10).is_empty());
    }
    h.e().tick().unwrap();
    let got = h.drain("t", "g");
    assert_eq!(got.len(), 1);
    assert!(!h.e().stats().poisoned, "a refused move is not fatal");
}

#[test]
fn a_failed_ack_is_an_error_and_the_delivery_stays_inflight() {
    let _s = serial();
    let h = Harness::new();
    delay_topic(&h);
    h.e().send(delay_msg("t", T0, "x")).unwrap();
    h.e().tick().unwrap();
    let got = h.receive_inv("t", "g", 10, 1_000);
    assert_eq!(got.len(), 1);
    let receipt = got[0].receipt_handle;
    {
        let _f = Set::new(failpoints::ACK_WRITE, "return");
        let r = h.e().ack("t", "g", &receipt);
        assert!(matches!(r, Err(Error::Storage(_))), "{r:?}");
    }
    // Not acked: after its invisible duration it comes back with attempt 2.
    h.advance(1_001);
    let again = h.receive("t", "g", 10);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_attempt, 2);
    h.e().ack("t", "g", &again[0].receipt_handle).unwrap();
    assert!(!h.e().stats().poisoned);
}

#[test]
fn a_failing_compaction_filter_keeps_entries_and_a_later_compaction_removes_them() {
    let _s = serial();
    const HOUR: u64 = 3_600_000;
    let h = Harness::with(|c| c.retention = Duration::from_millis(HOUR));
    h.topic("m", TopicKind::Mixed);
    h.e()
        .create_group("m", "g", GroupStart::Latest, None)
        .unwrap();
    h.advance(10);
    let old = h.e().send(normal_msg("m", "old")).unwrap();
    assert_eq!(h.drain("m", "g").len(), 1);
    while h.now() < T0 + HOUR + 30_000 {
        h.advance(60_000);
    }
    h.e().maintain().unwrap();
    {
        let _f = Set::new(failpoints::COMPACTION_FILTER, "return");
        h.e().compact().unwrap();
        assert!(h.e().show(old.message_id).is_ok(), "kept while unsure");
    }
    h.e().compact().unwrap();
    assert!(matches!(
        h.e().show(old.message_id),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn an_unknown_failpoint_name_is_refused() {
    assert!(configure("no::such", "return").is_err());
}

#[test]
fn a_panicking_engine_job_poisons_the_engine_and_nothing_half_applied_is_kept() {
    let _s = serial();
    let mut h = Harness::new();
    delay_topic(&h);
    let kept = h.e().send(delay_msg("t", T0 + 1_000, "kept")).unwrap();
    h.clock.advance(1_000);
    {
        // The pump's job runs on the writer thread: the panic happens there.
        let _f = Set::new(failpoints::PUMP_MOVE, "panic");
        let r = h.e().tick();
        assert!(matches!(r, Err(Error::Poisoned(_))), "{r:?}");
    }
    let r = h.e().send(delay_msg("t", T0 + 5_000, "after"));
    assert!(matches!(r, Err(Error::Poisoned(_))), "{r:?}");
    let r = h.e().receive(ReceiveRequest::new("t", "g", 10));
    assert!(matches!(r, Err(Error::Poisoned(_))), "{r:?}");
    assert!(h.e().stats().poisoned);

    h.reopen();
    h.e().tick().unwrap();
    let got = h.drain("t", "g");
    let ids: Vec<_> = got.iter().map(|m| m.message_id).collect();
    assert_eq!(ids, vec![kept.message_id], "the acknowledged send, once");
}

#[test]
fn a_panic_in_the_wal_syncer_poisons_the_engine() {
    let _s = serial();
    let h = Harness::new();
    delay_topic(&h);
    h.e().send(delay_msg("t", T0 + 1_000, "kept")).unwrap();
    {
        let _f = Set::new(failpoints::WAL_SYNC, "panic");
        let r = h.e().send(delay_msg("t", T0 + 1_000, "unanswered"));
        assert!(matches!(r, Err(Error::Poisoned(_))), "{r:?}");
    }
    let r = h.e().send(delay_msg("t", T0 + 1_000, "after"));
    assert!(matches!(r, Err(Error::Poisoned(_))), "{r:?}");
    assert!(h.e().stats().poisoned);
}

#[test]
fn a_full_file_system_refuses_the_round_keeps_counts_exact_and_writes_resume_without_restart() {
    let _s = serial();
    let h = Harness::with(|c| c.disk_high_watermark_bytes = Some(1 << 30));
    delay_topic(&h);
    h.e().send(delay_msg("t", T0, "before")).unwrap();
    h.e().tick().unwrap();
    let got = h.receive_inv("t", "g", 10, 10_000);
    assert_eq!(got.len(), 1);
    let receipt = got[0].receipt_handle;
    let counts = h.e().counters();
    {
        let _f = Set::new(failpoints::WRITE_NO_SPACE, "return");
        let r = h.e().send(delay_msg("t", T0 + 1_000, "refused"));
        assert!(matches!(r, Err(Error::StorageFull(_))), "{r:?}");
        let r = h.e().ack("t", "g", &receipt);
        assert!(matches!(r, Err(Error::StorageFull(_))), "{r:?}");
    }
    assert!(!h.e().stats().poisoned, "a full disk is not a crash");
    assert_eq!(
        h.e().counters(),
        counts,
        "refused writes leave every count as it was"
    );
    // Sends stay refused until maintenance finds room; what else can be written is.
    let r = h.e().send(delay_msg("t", T0 + 1_000, "still refused"));
    assert!(matches!(r, Err(Error::StorageFull(_))), "{r:?}");
    h.e().ack("t", "g", &receipt).unwrap();
    let report = h.e().maintain().unwrap();
    assert!(!report.storage_full, "{report:?}");
    let r = h.e().send(delay_msg("t", T0 + 1_000, "after")).unwrap();
    h.advance(1_000);
    let got = h.drain("t", "g");
    let ids: Vec<_> = got.iter().map(|m| m.message_id).collect();
    assert_eq!(ids, vec![r.message_id]);
    let t = &h.e().counters().topics[0];
    assert_eq!((t.sent, t.timing), (2, 0));
}

/// Stores written before 2026-12-06 hold leases of one offset (receives of one message
/// wrote one); this build writes ordinary records for them, so the failpoint makes the
/// old form. Such a lease is still acked on its own, its receipt cannot ack twice, an
/// unacked one comes back at attempt 2 when its invisible time ends, and an acked one
/// is dropped then without being delivered again.
#[test]
fn leases_of_one_offset_from_an_older_store_are_settled_and_expire() {
    let _s = serial();
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.e()
        .create_group("n", "g", GroupStart::Earliest, None)
        .unwrap();
    for i in 0..2 {
        h.e().send(normal_msg("n", &format!("m{i}"))).unwrap();
    }
    let (first, second) = {
        let _f = Set::new(failpoints::LEASE_OF_ONE, "return");
        (
            h.receive_inv("n", "g", 1, 1_000),
            h.receive_inv("n", "g", 1, 1_000),
        )
    };
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_eq!(
        h.rows("inflight"),
        4,
        "two leases, each with its visibility entry"
    );

    h.e().ack("n", "g", &first[0].receipt_handle).unwrap();
    let again = h.e().ack("n", "g", &first[0].receipt_handle);
    assert!(
        matches!(again, Err(Error::BadReceiptHandle(_))),
        "{again:?}"
    );
    // The acked lease stays until its invisible time ends, as the older builds left it.
    assert_eq!((h.rows("acked"), h.rows("inflight")), (1, 4));

    h.redelivered_and_acked("n", "g", &second[0], 1_001);
    assert_eq!((h.rows("acked"), h.rows("inflight")), (2, 0));
    assert_eq!(h.group_counts("n", "g"), (0, 0, 2));
    assert!(h.receive("n", "g", 10).is_empty());
}
