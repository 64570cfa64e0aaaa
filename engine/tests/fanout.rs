//! SPEC §1: every group receives every message; consumers in a group share the work.

mod common;
use common::*;
use std::collections::HashSet;
use sundial_engine::{GroupStart, TopicKind};

#[test]
fn every_group_gets_every_message_from_one_ready_log() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    for g in ["g1", "g2", "g3"] {
        h.e()
            .create_group("d", g, GroupStart::Latest, None)
            .unwrap();
    }
    for i in 0..300u64 {
        h.e()
            .send(delay_msg("d", T0 + 1 + i % 30, &i.to_string()))
            .unwrap();
    }
    h.advance(30);
    let mut per_group = Vec::new();
    for g in ["g1", "g2", "g3"] {
        let ids: Vec<_> = h.drain("d", g).into_iter().map(|m| m.message_id).collect();
        assert_eq!(ids.len(), 300);
        per_group.push(ids);
    }
    assert_eq!(per_group[0], per_group[1]);
    assert_eq!(per_group[1], per_group[2]);
    // One ready log: 300 entries, not 900.
    assert_eq!(h.e().stats().topics[0].ready_total, 300);
}

#[test]
fn consumers_in_one_group_share_without_overlap() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.receive("n", "g", 1);
    for i in 0..100 {
        h.e().send(normal_msg("n", &i.to_string())).unwrap();
    }
    let a = h.receive("n", "g", 30);
    let b = h.receive("n", "g", 30);
    let ids_a: HashSet<_> = a.iter().map(|m| m.message_id).collect();
    let ids_b: HashSet<_> = b.iter().map(|m| m.message_id).collect();
    assert_eq!(ids_a.len() + ids_b.len(), 60);
    assert!(ids_a.is_disjoint(&ids_b));
    // Slow group g2 is independent of g's progress.
    h.e()
        .create_group("n", "g2", GroupStart::Earliest, None)
        .unwrap();
    assert_eq!(h.drain("n", "g2").len(), 100);
}

#[test]
fn new_group_starts_at_latest_unless_earliest() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.e().send(normal_msg("n", "old")).unwrap();
    assert!(
        h.receive("n", "auto", 10).is_empty(),
        "auto-created from latest"
    );
    h.e()
        .create_group("n", "early", GroupStart::Earliest, None)
        .unwrap();
    h.e().send(normal_msg("n", "new")).unwrap();
    let auto: Vec<_> = h.drain("n", "auto").into_iter().map(|m| m.body).collect();
    assert_eq!(auto, vec![b"new".to_vec()]);
    assert_eq!(h.drain("n", "early").len(), 2);
}
