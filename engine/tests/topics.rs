//! SPEC §1: topics, type consistency, names.

mod common;
use common::*;
use sundial_engine::{Error, TopicKind};

#[test]
fn type_consistency() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.topic("d", TopicKind::Delay);
    h.topic("m", TopicKind::Mixed);
    let at = T0 + 1000;
    assert!(matches!(
        h.e().send(delay_msg("n", at, "x")),
        Err(Error::TopicTypeMismatch { .. })
    ));
    assert!(matches!(
        h.e().send(normal_msg("d", "x")),
        Err(Error::TopicTypeMismatch { .. })
    ));
    h.e().send(delay_msg("d", at, "x")).unwrap();
    h.e().send(normal_msg("n", "x")).unwrap();
    h.e().send(delay_msg("m", at, "x")).unwrap();
    h.e().send(normal_msg("m", "x")).unwrap();
    let e = h.e().send(normal_msg("d", "x")).unwrap_err();
    assert!(matches!(e, Error::TopicTypeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("DELAY"), "{e}");
}

#[test]
fn missing_existing_and_bad_names() {
    let h = Harness::new();
    assert!(matches!(
        h.e().send(normal_msg("nope", "x")),
        Err(Error::TopicNotFound(_))
    ));
    h.topic("t", TopicKind::Delay);
    assert!(matches!(
        h.e().create_topic("t", TopicKind::Normal),
        Err(Error::TopicExists(_))
    ));
    for bad in ["", "has space", "slash/", &"x".repeat(128), "é"] {
        assert!(
            matches!(
                h.e().create_topic(bad, TopicKind::Normal),
                Err(Error::BadRequest(_))
            ),
            "{bad:?}"
        );
    }
    h.e()
        .create_topic(&"x".repeat(127), TopicKind::Normal)
        .unwrap();
    h.e().create_topic("a_b-c%D9", TopicKind::Mixed).unwrap();
    assert_eq!(h.e().topic("t").unwrap().kind, TopicKind::Delay);
    assert!(matches!(h.e().topic("zz"), Err(Error::TopicNotFound(_))));
}

#[test]
fn topics_are_durable_and_deletable() {
    let mut h = Harness::new();
    h.topic("a", TopicKind::Delay);
    h.topic("b", TopicKind::Normal);
    h.e().send(delay_msg("a", T0 + 5000, "x")).unwrap();
    h.reopen();
    let names: Vec<_> = h
        .e()
        .list_topics()
        .into_iter()
        .map(|t| (t.name, t.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("a".into(), TopicKind::Delay),
            ("b".into(), TopicKind::Normal)
        ]
    );
    h.e().delete_topic("a").unwrap();
    assert!(matches!(
        h.e().send(delay_msg("a", T0 + 5000, "x")),
        Err(Error::TopicNotFound(_))
    ));
    h.advance(10_000); // the orphaned timer entry is dropped, not delivered anywhere
    h.reopen();
    assert_eq!(h.e().list_topics().len(), 1);
    h.topic("a", TopicKind::Delay);
    assert!(h.receive("a", "g", 10).is_empty());
}
