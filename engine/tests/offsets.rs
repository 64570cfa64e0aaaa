//! SPEC §4: group offsets reset to a timestamp.

mod common;
use common::*;
use sundial_engine::{Error, GroupStart, TopicKind};

#[test]
fn reset_to_a_timestamp_delivers_again_from_there() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.e()
        .create_group("n", "g", GroupStart::Latest, None)
        .unwrap();
    for i in 0..10u64 {
        h.e().send(normal_msg("n", &i.to_string())).unwrap();
        h.advance(1_000);
    }
    assert_eq!(h.drain("n", "g").len(), 10);
    // Messages 4..9 became Ready at T0 + 4000 and later.
    let off = h.e().reset_offset("n", "g", T0 + 4_000).unwrap();
    assert_eq!(off, 4);
    let again: Vec<_> = h.drain("n", "g").into_iter().map(|m| m.body).collect();
    assert_eq!(
        again,
        (4..10)
            .map(|i: u64| i.to_string().into_bytes())
            .collect::<Vec<_>>()
    );
    // To the beginning of time, and past the end.
    assert_eq!(h.e().reset_offset("n", "g", 0).unwrap(), 0);
    let inflight = h.receive("n", "g", 3);
    assert_eq!(h.e().reset_offset("n", "g", T0 + 99_000).unwrap(), 10);
    assert!(h.receive("n", "g", 10).is_empty());
    assert!(matches!(
        h.e().ack("n", "g", &inflight[0].receipt_handle),
        Err(Error::BadReceiptHandle(_))
    ));
    let g = &h.e().stats().topics[0].groups[0];
    assert_eq!((g.inflight, g.retry, g.backlog), (0, 0, 0));
    assert!(matches!(
        h.e().reset_offset("n", "nope", 0),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn reset_only_affects_its_group() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.e()
        .create_group("n", "a", GroupStart::Latest, None)
        .unwrap();
    h.e()
        .create_group("n", "b", GroupStart::Latest, None)
        .unwrap();
    for i in 0..5 {
        h.e().send(normal_msg("n", &i.to_string())).unwrap();
    }
    h.drain("n", "a");
    h.drain("n", "b");
    h.e().reset_offset("n", "a", 0).unwrap();
    assert_eq!(h.drain("n", "a").len(), 5);
    assert!(h.drain("n", "b").is_empty());
}
