//! SPEC §5: above the disk high watermark, acked data goes first; then `StorageFull`
//! (reject) or the oldest Ready messages go (drop-oldest). Timing is never dropped.

mod common;
use common::*;
use rand::RngCore;
use sundial_engine::{Error, GroupStart, NewMessage, StoragePolicy, TopicKind};

const BUDGET: u64 = 3 << 20;

/// Sends 1 KiB messages in batches of 500 until `n` are accepted or a send is refused
/// with `StorageFull`; returns how many were accepted.
fn fill(h: &Harness, topic: &str, n: usize) -> usize {
    let mut rng = rand::rng();
    let mut accepted = 0;
    for _ in 0..n / 500 {
        let msgs: Vec<NewMessage> = (0..500)
            .map(|_| {
                let mut body = vec![0u8; 1024];
                rng.fill_bytes(&mut body);
                NewMessage {
                    topic: topic.into(),
                    body,
                    ..NewMessage::default()
                }
            })
            .collect();
        for r in h.e().send_batch(msgs) {
            match r {
                Ok(_) => accepted += 1,
                Err(Error::StorageFull(_)) => return accepted,
                Err(e) => panic!("{e}"),
            }
        }
    }
    accepted
}

#[test]
fn reject_policy_refuses_sends_until_acked_data_is_deleted() {
    let h = Harness::with(|c| c.disk_high_watermark_bytes = Some(BUDGET));
    h.topic("n", TopicKind::Normal);
    h.topic("d", TopicKind::Delay);
    h.e()
        .create_group("n", "g", GroupStart::Latest, None)
        .unwrap();
    let timing = h.e().send(delay_msg("d", T0 + 86_000_000, "wait")).unwrap();
    // Sends are refused before a maintenance pass has run: they are charged against
    // the headroom the last pass measured, at twice their size. A pass measures again
    // and may take them back; fill until a pass finds the store over the watermark.
    let mut accepted = 0;
    let mut full = None;
    for _ in 0..20 {
        let n = fill(&h, "n", 6000);
        accepted += n;
        assert!(n < 6000, "6000 1 KiB sends do not fit a 3 MiB budget");
        let e = h.e().send(normal_msg("n", "x")).unwrap_err();
        assert!(matches!(e, Error::StorageFull(_)), "{e}");
        let r = h.e().maintain().unwrap();
        if r.storage_full {
            full = Some(r);
            break;
        }
    }
    let r = full.expect("a pass finds the store full");
    assert!(accepted > 1000, "{accepted} accepted");
    assert_eq!(r.purged, 0, "nothing was acked");
    // Consumers keep working while sends are refused.
    assert_eq!(h.drain("n", "g").len(), accepted);
    let r = h.e().maintain().unwrap();
    assert_eq!(r.purged as usize, accepted, "{r:?}");
    assert!(!r.storage_full, "{r:?}");
    assert!(r.disk_bytes < BUDGET, "{r:?}");
    h.e().send(normal_msg("n", "again")).unwrap();
    assert_eq!(h.drain("n", "g").len(), 1);
    assert_eq!(h.e().stats().timing_total, 1);
    assert!(h.e().show(timing.message_id).is_ok());
}

#[test]
fn drop_oldest_policy_drops_ready_never_timing() {
    let h = Harness::with(|c| {
        c.disk_high_watermark_bytes = Some(BUDGET);
        c.storage_policy = StoragePolicy::DropOldest;
    });
    h.topic("n", TopicKind::Normal);
    h.topic("d", TopicKind::Delay);
    h.e()
        .create_group("n", "slow", GroupStart::Latest, None)
        .unwrap();
    let timers: Vec<_> = (0..200)
        .map(|i| {
            h.e()
                .send(delay_msg("d", T0 + 86_000_000, &i.to_string()))
                .unwrap()
        })
        .collect();
    assert_eq!(fill(&h, "n", 6000), 6000, "drop-oldest never refuses");
    let r = h.e().maintain().unwrap();
    assert!(
        r.over_watermark && r.dropped > 0 && !r.storage_full,
        "{r:?}"
    );
    assert!(r.disk_bytes < BUDGET, "{r:?}");
    h.e().send(normal_msg("n", "fresh")).unwrap();
    let got = h.drain("n", "slow");
    assert_eq!(
        got.len() as u64,
        6001 - r.dropped,
        "the newest survive, oldest dropped"
    );
    assert_eq!(got.last().unwrap().body, b"fresh");
    let s = h.e().stats();
    assert_eq!(s.timing_total, 200);
    for t in &timers {
        assert!(h.e().show(t.message_id).is_ok());
    }
}

/// A topic whose ready log retention already emptied must not stall `drop-oldest`.
#[test]
fn drop_oldest_skips_logs_retention_already_emptied() {
    let h = Harness::with(|c| {
        c.disk_high_watermark_bytes = Some(BUDGET);
        c.storage_policy = StoragePolicy::DropOldest;
        c.retention = std::time::Duration::from_secs(3600);
    });
    h.topic("old", TopicKind::Normal);
    for _ in 0..3 {
        let msgs: Vec<NewMessage> = (0..1000).map(|_| normal_msg("old", "x")).collect();
        for r in h.e().send_batch(msgs) {
            r.unwrap();
        }
    }
    for _ in 0..130 {
        h.advance(60_000);
    }
    h.e().maintain().unwrap();
    h.e().compact().unwrap();
    h.topic("n", TopicKind::Normal);
    assert_eq!(fill(&h, "n", 6000), 6000);
    let r = h.e().maintain().unwrap();
    assert!(
        r.over_watermark && r.dropped > 0 && !r.storage_full,
        "{r:?}"
    );
    h.e().send(normal_msg("n", "accepted")).unwrap();
}
