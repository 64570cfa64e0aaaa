//! SPEC §2: delivery-time rules, through the engine and the pure rule function.

mod common;
use common::*;
use std::time::Duration;
use sundial_engine::send::effective_time;
use sundial_engine::{Config, Error, OverMaxDelay, TopicKind};

#[test]
fn rule_table() {
    let cfg = Config::default();
    let now = T0;
    let day = 24 * 3600 * 1000;
    // Past and present: immediate, at now.
    let e = effective_time(Some((now - 5_000) as i64), now, &cfg).unwrap();
    assert!(e.immediate && e.deliver_at_ms == now && e.adjusted);
    let e = effective_time(Some(now as i64), now, &cfg).unwrap();
    assert!(e.immediate && e.deliver_at_ms == now && !e.adjusted);
    // Within max_delay: exactly as asked.
    let e = effective_time(Some((now + 1) as i64), now, &cfg).unwrap();
    assert!(!e.immediate && e.deliver_at_ms == now + 1 && !e.adjusted);
    let e = effective_time(Some((now + day) as i64), now, &cfg).unwrap();
    assert!(!e.immediate && e.deliver_at_ms == now + day);
    // Beyond: deliver-now by default, adjusted.
    let e = effective_time(Some((now + day + 1) as i64), now, &cfg).unwrap();
    assert!(e.immediate && e.adjusted && e.deliver_at_ms == now);
    // Beyond with reject.
    let reject = Config {
        over_max_delay: OverMaxDelay::Reject,
        ..Config::default()
    };
    assert!(matches!(
        effective_time(Some((now + day + 1) as i64), now, &reject),
        Err(Error::BadDeliveryTime(_))
    ));
    // Negative, absurd, overflowing.
    for bad in [-1i64, i64::MIN, 0, 5_000, i64::MAX, 253_402_300_800_000] {
        assert!(
            matches!(
                effective_time(Some(bad), now, &cfg),
                Err(Error::BadDeliveryTime(_))
            ),
            "{bad} must be refused"
        );
    }
    // No time: a normal message.
    let e = effective_time(None, now, &cfg).unwrap();
    assert!(e.immediate && !e.adjusted);
}

#[test]
fn max_delay_is_configurable_to_400_days() {
    let cfg = Config {
        max_delay: Duration::from_secs(400 * 86_400),
        ..Config::default()
    };
    let at = T0 + 399 * 86_400_000;
    let e = effective_time(Some(at as i64), T0, &cfg).unwrap();
    assert_eq!(e.deliver_at_ms, at);
    assert!(!e.immediate);
}

#[test]
fn precision_rounds_up_never_earlier() {
    let cfg = Config {
        precision_ms: 1000,
        ..Config::default()
    };
    let e = effective_time(Some((T0 + 1_500) as i64), T0, &cfg).unwrap();
    assert_eq!(e.deliver_at_ms, T0 + 2_000);
    assert!(e.adjusted);
    let e = effective_time(Some((T0 + 3_000) as i64), T0, &cfg).unwrap();
    assert_eq!(e.deliver_at_ms, T0 + 3_000);
    assert!(!e.adjusted);
    let h = Harness::with(|c| c.precision_ms = 1000);
    h.topic("d", TopicKind::Delay);
    let r = h.e().send(delay_msg("d", T0 + 1_001, "x")).unwrap();
    assert_eq!(r.deliver_at_ms, T0 + 2_000);
    h.receive("d", "g", 1); // creates the group at the end of the log
    h.advance(1_001);
    assert!(
        h.receive("d", "g", 10).is_empty(),
        "rounded up, so not at 1001"
    );
    h.advance(998);
    assert!(h.receive("d", "g", 10).is_empty());
    h.advance(1);
    assert_eq!(h.receive("d", "g", 10).len(), 1);
}

#[test]
fn engine_applies_the_rules_and_reports_them_in_the_receipt() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    h.receive("d", "g", 1);
    let past = h.e().send(delay_msg("d", T0 - 60_000, "past")).unwrap();
    assert_eq!(past.deliver_at_ms, T0);
    let near = h.e().send(delay_msg("d", T0 + 10_000, "near")).unwrap();
    assert_eq!((near.deliver_at_ms, near.adjusted), (T0 + 10_000, false));
    let far = h
        .e()
        .send(delay_msg("d", T0 + 25 * 3600 * 1000, "far"))
        .unwrap();
    assert_eq!((far.deliver_at_ms, far.adjusted), (T0, true));
    assert!(past.message_id < near.message_id && near.message_id < far.message_id);
    assert_eq!(past.message_id.to_string().len(), 32);
    let now: Vec<_> = h
        .receive("d", "g", 10)
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(now, vec![b"past".to_vec(), b"far".to_vec()]);
    h.advance(9_999);
    assert!(h.receive("d", "g", 10).is_empty());
    h.advance(1);
    assert_eq!(h.receive("d", "g", 10)[0].body, b"near");
}

#[test]
fn refused_times_store_nothing() {
    let h = Harness::with(|c| c.over_max_delay = OverMaxDelay::Reject);
    h.topic("d", TopicKind::Delay);
    for bad in [-5i64, 12, i64::MAX, (T0 + 2 * 86_400_000) as i64] {
        let e = h.e().send(delay_msg("d", 0, "x")).err();
        assert!(matches!(e, Some(Error::BadDeliveryTime(_))));
        let mut m = delay_msg("d", 0, "x");
        m.deliver_at_ms = Some(bad);
        assert!(
            matches!(h.e().send(m), Err(Error::BadDeliveryTime(_))),
            "{bad}"
        );
    }
    let s = h.e().stats();
    assert_eq!(
        (s.topics[0].sent, s.timing_total, s.topics[0].ready_total),
        (0, 0, 0)
    );
}

#[test]
fn body_limit_and_message_fields() {
    let h = Harness::with(|c| c.max_body_bytes = 1024);
    h.topic("n", TopicKind::Normal);
    let mut big = normal_msg("n", "");
    big.body = vec![0; 1025];
    assert!(matches!(
        h.e().send(big),
        Err(Error::MessageTooLarge {
            size: 1025,
            limit: 1024
        })
    ));
    let mut bad_tag = normal_msg("n", "x");
    bad_tag.tag = Some("a || b".into());
    assert!(matches!(h.e().send(bad_tag), Err(Error::BadRequest(_))));
    h.receive("n", "g", 1);
    let mut m = normal_msg("n", "hello");
    m.tag = Some("t1".into());
    m.keys = vec!["k1".into(), "k2".into()];
    m.properties.insert("p".into(), "v".into());
    h.e().send(m).unwrap();
    let got = h.receive("n", "g", 1);
    assert_eq!(got[0].tag.as_deref(), Some("t1"));
    assert_eq!(got[0].keys, vec!["k1".to_string(), "k2".to_string()]);
    assert_eq!(got[0].properties.get("p").map(String::as_str), Some("v"));
    assert_eq!(got[0].delivery_attempt, 1);
}

#[test]
fn precision_coarser_than_max_delay_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        precision_ms: 60_000,
        max_delay: Duration::from_secs(10),
        ..Config::default()
    };
    assert!(matches!(
        sundial_engine::Engine::open(dir.path(), cfg),
        Err(Error::BadRequest(_))
    ));
}
