//! Leases: the messages one receive hands out share one inflight record. Each of them
//! must still behave on its own: acked, nacked, given a new invisible time, or
//! redelivered when the lease expires; and counters, `show`, restarts and the purge of
//! acked data must see the same states as with one record per message.

mod common;
use common::*;
use std::time::Duration;
use sundial_engine::{Error, GroupMessageState, GroupStart, TopicKind};

/// NORMAL topic `n` with group `g` from the start, holding `count` messages.
fn setup(count: usize) -> Harness {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.e()
        .create_group("n", "g", GroupStart::Earliest, None)
        .unwrap();
    for i in 0..count {
        h.e().send(normal_msg("n", &format!("m{i}"))).unwrap();
    }
    h
}

fn group_state(h: &Harness, id: sundial_engine::MessageId) -> GroupMessageState {
    let v = h.e().show(id).unwrap();
    v.groups
        .into_iter()
        .find(|(n, _)| n == "g")
        .map(|(_, s)| s)
        .expect("group g in show")
}

fn counts(h: &Harness) -> (u64, u64, u64) {
    h.group_counts("n", "g")
}

#[test]
fn each_message_of_one_receive_is_settled_on_its_own() {
    let h = setup(10);
    let got = h.receive_inv("n", "g", 10, 1_000);
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|m| m.delivery_attempt == 1));
    assert_eq!(counts(&h), (10, 0, 0));

    // Acks of three, one given twice: the second time is refused.
    for m in &got[..3] {
        h.e().ack("n", "g", &m.receipt_handle).unwrap();
    }
    let again = h.e().ack("n", "g", &got[0].receipt_handle);
    assert!(
        matches!(again, Err(Error::BadReceiptHandle(_))),
        "{again:?}"
    );
    // One nacked (backoff 10 s), one given 60 s more.
    h.e().nack("n", "g", &got[3].receipt_handle).unwrap();
    let longer = h
        .e()
        .change_invisible_duration("n", "g", &got[4].receipt_handle, Duration::from_secs(60))
        .unwrap();
    // The nacked one's old receipt no longer acks.
    let stale = h.e().ack("n", "g", &got[3].receipt_handle);
    assert!(
        matches!(stale, Err(Error::BadReceiptHandle(_))),
        "{stale:?}"
    );
    assert_eq!(counts(&h), (7, 0, 3));
    assert_eq!(group_state(&h, got[0].message_id), GroupMessageState::Acked);
    let now = h.now();
    assert_eq!(
        group_state(&h, got[5].message_id),
        GroupMessageState::Inflight {
            attempt: 1,
            visible_at_ms: now + 1_000
        }
    );
    assert_eq!(
        group_state(&h, got[4].message_id),
        GroupMessageState::Inflight {
            attempt: 1,
            visible_at_ms: now + 60_000
        }
    );

    // The lease expires: the five untouched come back at attempt 2, nothing else.
    h.advance(1_001);
    assert_eq!(counts(&h), (2, 5, 3));
    assert_eq!(
        group_state(&h, got[9].message_id),
        GroupMessageState::Retry { attempt: 1 }
    );
    let again = h.receive_inv("n", "g", 10, 30_000);
    let mut ids: Vec<_> = again.iter().map(|m| m.message_id).collect();
    ids.sort();
    let want: Vec<_> = got[5..].iter().map(|m| m.message_id).collect();
    assert_eq!(ids, want);
    assert!(again.iter().all(|m| m.delivery_attempt == 2));
    // A receipt from the first delivery is stale now; the new ones work.
    let stale = h.e().ack("n", "g", &got[5].receipt_handle);
    assert!(
        matches!(stale, Err(Error::BadReceiptHandle(_))),
        "{stale:?}"
    );
    for m in &again {
        h.e().ack("n", "g", &m.receipt_handle).unwrap();
    }
    h.e().ack("n", "g", &longer).unwrap();
    // The nacked one returns after its backoff.
    h.advance(10_000);
    let last = h.receive("n", "g", 10);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].message_id, got[3].message_id);
    assert_eq!(last[0].delivery_attempt, 2);
    h.e().ack("n", "g", &last[0].receipt_handle).unwrap();
    assert_eq!(counts(&h), (0, 0, 10));
}

#[test]
fn a_lease_survives_a_restart_and_its_receipts_still_ack() {
    let mut h = setup(6);
    let got = h.receive_inv("n", "g", 6, 5_000);
    h.e().ack("n", "g", &got[0].receipt_handle).unwrap();
    h.reopen();
    assert_eq!(counts(&h), (5, 0, 1));
    let receipts: Vec<_> = got[1..3].iter().map(|m| m.receipt_handle).collect();
    for r in h.e().ack_batch("n", "g", receipts) {
        r.unwrap();
    }
    h.advance(5_001);
    let again = h.receive("n", "g", 10);
    let ids: Vec<_> = again.iter().map(|m| m.message_id).collect();
    let want: Vec<_> = got[3..].iter().map(|m| m.message_id).collect();
    assert_eq!(ids, want, "only the unacked come back");
}

#[test]
fn an_expired_lease_found_by_a_receive_before_the_pump_is_delivered_at_once() {
    let h = setup(4);
    let got = h.receive_inv("n", "g", 4, 1_000);
    h.e().ack("n", "g", &got[1].receipt_handle).unwrap();
    // Time passes without a pump pass: the receive itself finds the expired lease.
    h.clock.advance(1_001);
    let again = h.receive("n", "g", 10);
    let ids: Vec<_> = again.iter().map(|m| m.message_id).collect();
    assert_eq!(
        ids,
        vec![got[0].message_id, got[2].message_id, got[3].message_id]
    );
    assert!(again.iter().all(|m| m.delivery_attempt == 2));
}

#[test]
fn acked_leases_do_not_hold_back_the_purge_of_acked_data() {
    let mut h = setup(50);
    let got = h.receive_inv("n", "g", 50, 3_600_000);
    let receipts: Vec<_> = got.iter().map(|m| m.receipt_handle).collect();
    for r in h.e().ack_batch("n", "g", receipts) {
        r.unwrap();
    }
    // Disk pressure (a 1-byte budget) purges acked data; the lease's invisible time is
    // an hour away, but everything in it is acked.
    h.config.disk_high_watermark_bytes = Some(1);
    h.reopen();
    let r = h.e().maintain().unwrap();
    assert_eq!(r.purged, 50, "{r:?}");
}

#[test]
fn leases_expiring_in_one_pump_pass_are_each_counted_once() {
    let h = setup(6);
    let a = h.receive_inv("n", "g", 3, 1_000);
    let b = h.receive_inv("n", "g", 3, 2_000);
    assert_eq!((a.len(), b.len()), (3, 3));
    assert_eq!(counts(&h), (6, 0, 0));
    // One pump pass finds both leases expired.
    h.advance(2_001);
    assert_eq!(counts(&h), (0, 6, 0));
    let again = h.receive("n", "g", 10);
    assert_eq!(again.len(), 6);
    assert!(again.iter().all(|m| m.delivery_attempt == 2));
    assert_eq!(counts(&h), (6, 0, 0));
}

#[test]
fn a_leased_message_removed_by_retention_leaves_the_counts_once() {
    const HOUR: u64 = 3_600_000;
    let h = Harness::with(|c| c.retention = Duration::from_millis(HOUR));
    h.topic("n", TopicKind::Normal);
    h.e()
        .create_group("n", "g", GroupStart::Earliest, None)
        .unwrap();
    for i in 0..3 {
        h.e().send(normal_msg("n", &format!("m{i}"))).unwrap();
    }
    let got = h.receive_inv("n", "g", 3, 2 * HOUR);
    // Retention passes while the lease is still invisible; compaction removes them.
    while h.now() < T0 + HOUR + 60_000 {
        h.advance(60_000);
    }
    h.e().maintain().unwrap();
    h.e().compact().unwrap();
    let r = h.e().nack("n", "g", &got[0].receipt_handle);
    assert!(matches!(r, Err(Error::BadReceiptHandle(_))), "{r:?}");
    assert_eq!(counts(&h), (3, 0, 0), "a refused nack changes nothing");
    // The lease expires: the three leave the inflight count, once each.
    while h.now() < T0 + 2 * HOUR + 60_000 {
        h.advance(60_000);
    }
    assert_eq!(counts(&h), (0, 0, 0));
    assert!(h.receive("n", "g", 10).is_empty());
}

/// A receipt given twice in one ack call is acked once and refused the second time,
/// whether the call is large enough for its receipts to be read ahead together or not.
#[test]
fn a_receipt_twice_in_one_ack_call_is_refused_the_second_time() {
    let h = setup(20);
    let got = h.receive_inv("n", "g", 20, 60_000);
    assert_eq!(got.len(), 20);
    for (part, dup) in [(&got[..16], 5usize), (&got[16..], 1)] {
        let mut receipts: Vec<_> = part.iter().map(|m| m.receipt_handle).collect();
        receipts.insert(dup + 1, part[dup].receipt_handle);
        let out = h.e().ack_batch("n", "g", receipts);
        assert_eq!(out.len(), part.len() + 1);
        for (i, r) in out.iter().enumerate() {
            if i == dup + 1 {
                assert!(matches!(r, Err(Error::BadReceiptHandle(_))), "{r:?}");
            } else {
                assert!(r.is_ok(), "{i}: {r:?}");
            }
        }
    }
    assert_eq!(counts(&h), (0, 0, 20));
}

fn ack_all(h: &Harness, msgs: &[sundial_engine::ReceivedMessage]) {
    let receipts: Vec<_> = msgs.iter().map(|m| m.receipt_handle).collect();
    for r in h.e().ack_batch("n", "g", receipts) {
        r.unwrap();
    }
}

/// One ack call that settles every message of a lease writes one ack entry for the
/// run and deletes the lease; each message still reads as acked on its own.
#[test]
fn a_lease_acked_whole_in_one_call_is_one_ack_entry() {
    let mut h = setup(100);
    let got = h.receive_inv("n", "g", 100, 60_000);
    assert_eq!(got.len(), 100);
    // One lease: its record and its visibility entry.
    assert_eq!(h.rows("inflight"), 2);
    ack_all(&h, &got);
    assert_eq!(h.rows("acked"), 1);
    assert_eq!(h.rows("inflight"), 0, "the lease is gone");
    assert_eq!(counts(&h), (0, 0, 100));
    for i in [0, 1, 50, 98, 99] {
        assert_eq!(group_state(&h, got[i].message_id), GroupMessageState::Acked);
    }
    for i in [0, 37, 99] {
        let again = h.e().ack("n", "g", &got[i].receipt_handle);
        assert!(
            matches!(again, Err(Error::BadReceiptHandle(_))),
            "{again:?}"
        );
        let nack = h.e().nack("n", "g", &got[i].receipt_handle);
        assert!(matches!(nack, Err(Error::BadReceiptHandle(_))), "{nack:?}");
    }
    h.reopen();
    assert_eq!(counts(&h), (0, 0, 100));
    assert_eq!(
        group_state(&h, got[63].message_id),
        GroupMessageState::Acked
    );
    // Its invisible time passes: nothing comes back.
    h.advance(60_001);
    assert!(h.receive("n", "g", 100).is_empty());
    assert_eq!(counts(&h), (0, 0, 100));
}

/// A lease acked in part, or whole but over two calls, keeps one entry per message,
/// and what is left of it expires as before; a call holding one whole lease and part
/// of another writes each its way.
#[test]
fn a_lease_acked_in_part_keeps_an_entry_per_message() {
    let h = setup(30);
    let a = h.receive_inv("n", "g", 10, 1_000);
    let b = h.receive_inv("n", "g", 10, 1_000);
    let c = h.receive_inv("n", "g", 10, 1_000);
    // All of `a` and the first nine of `b` in one call; `c` over two calls.
    let mut one_call: Vec<_> = a.iter().chain(&b[..9]).cloned().collect();
    one_call.reverse();
    ack_all(&h, &one_call);
    ack_all(&h, &c[..4]);
    ack_all(&h, &c[4..]);
    assert_eq!(h.rows("acked"), 1 + 9 + 10);
    assert_eq!(counts(&h), (1, 0, 29));
    assert_eq!(group_state(&h, b[8].message_id), GroupMessageState::Acked);
    assert_eq!(group_state(&h, c[9].message_id), GroupMessageState::Acked);
    h.advance(1_001);
    let again = h.receive("n", "g", 30);
    let ids: Vec<_> = again.iter().map(|m| m.message_id).collect();
    assert_eq!(
        ids,
        vec![b[9].message_id],
        "only the unacked one comes back"
    );
    assert_eq!(again[0].delivery_attempt, 2);
}

/// A reset to a message inside a run acked whole: those before it stay acked, it and
/// those after it are delivered again.
#[test]
fn a_reset_into_a_run_acked_whole_delivers_the_rest_again() {
    let h = setup(0);
    let mut sent_at = Vec::new();
    for i in 0..20 {
        sent_at.push(h.now());
        h.e().send(normal_msg("n", &format!("m{i}"))).unwrap();
        h.advance(10);
    }
    let got = h.receive_inv("n", "g", 20, 60_000);
    assert_eq!(got.len(), 20);
    ack_all(&h, &got);
    assert_eq!(h.rows("acked"), 1);
    let offset = h.e().reset_offset("n", "g", sent_at[12]).unwrap();
    assert_eq!(
        group_state(&h, got[11].message_id),
        GroupMessageState::Acked
    );
    assert_ne!(
        group_state(&h, got[12].message_id),
        GroupMessageState::Acked
    );
    let again = h.drain("n", "g");
    let ids: Vec<_> = again.iter().map(|m| m.message_id).collect();
    let want: Vec<_> = got[12..].iter().map(|m| m.message_id).collect();
    assert_eq!(ids, want, "from offset {offset} on");
    for m in &got {
        assert_eq!(group_state(&h, m.message_id), GroupMessageState::Acked);
    }
}

/// A receive of one message writes an ordinary inflight record, not a lease: its ack
/// deletes the record and its entry at once, so nothing is left to expire; one left
/// unacked comes back at attempt 2 when its invisible time ends.
#[test]
fn a_receive_of_one_leaves_nothing_inflight_once_acked() {
    let h = setup(2);
    let got = h.receive_inv("n", "g", 1, 1_000);
    assert_eq!(got.len(), 1);
    assert_eq!(h.rows("inflight"), 2, "a record and its visibility entry");
    h.e().ack("n", "g", &got[0].receipt_handle).unwrap();
    assert_eq!((h.rows("acked"), h.rows("inflight")), (1, 0));
    let again = h.e().ack("n", "g", &got[0].receipt_handle);
    assert!(
        matches!(again, Err(Error::BadReceiptHandle(_))),
        "{again:?}"
    );
    assert_eq!(group_state(&h, got[0].message_id), GroupMessageState::Acked);
    assert_eq!(counts(&h), (0, 0, 1));

    let second = h.receive_inv("n", "g", 1, 1_000);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].message_id, got[0].message_id);
    assert_eq!(counts(&h), (1, 0, 1));
    // The first delivery's receipt is stale; the new one acks.
    h.redelivered_and_acked("n", "g", &second[0], 1_001);
    assert_eq!((h.rows("acked"), h.rows("inflight")), (2, 0));
    assert_eq!(counts(&h), (0, 0, 2));
}
