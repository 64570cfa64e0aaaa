//! SPEC §3: recall and reschedule of Timing messages.

mod common;
use common::*;
use sundial_engine::{Error, MessageState, TopicKind};

#[test]
fn recall_cancels_a_timing_message() {
    let mut h = Harness::new();
    h.topic("d", TopicKind::Delay);
    h.receive("d", "g", 1);
    let mut m = delay_msg("d", T0 + 1_000, "cancel me");
    m.keys = vec!["order-1".into()];
    let r = h.e().send(m).unwrap();
    let keep = h.e().send(delay_msg("d", T0 + 1_000, "keep")).unwrap();
    assert_eq!(h.e().stats().timing_total, 2);
    h.e().recall(&r.recall_handle()).unwrap();
    assert!(matches!(
        h.e().recall(&r.recall_handle()),
        Err(Error::NotFound(_))
    ));
    assert_eq!(h.e().stats().timing_total, 1);
    assert_eq!(h.e().stats().topics[0].recalled, 1);
    assert!(h.e().find_by_key("d", "order-1").unwrap().is_empty());
    assert!(matches!(h.e().show(r.message_id), Err(Error::NotFound(_))));
    h.reopen();
    h.advance(1_000);
    let got = h.drain("d", "g");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, keep.message_id);
    assert!(
        matches!(h.e().recall(&keep.recall_handle()), Err(Error::NotFound(_))),
        "Ready: too late"
    );
    assert!(matches!(
        h.e().recall("nonsense"),
        Err(Error::BadRequest(_))
    ));
}

#[test]
fn reschedule_moves_the_delivery_time() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    h.receive("d", "g", 1);
    let r = h.e().send(delay_msg("d", T0 + 1_000, "x")).unwrap();
    let later = h
        .e()
        .reschedule(&r.recall_handle(), (T0 + 5_000) as i64)
        .unwrap();
    assert_eq!(later.deliver_at_ms, T0 + 5_000);
    assert_eq!(later.message_id, r.message_id);
    assert!(
        matches!(h.e().recall(&r.recall_handle()), Err(Error::NotFound(_))),
        "old handle is spent"
    );
    h.advance(1_000);
    assert!(h.receive("d", "g", 1).is_empty(), "not at the old time");
    assert_eq!(
        h.e().show(r.message_id).unwrap().state,
        MessageState::Timing
    );
    h.advance(3_999);
    assert!(h.receive("d", "g", 1).is_empty());
    let earlier = h
        .e()
        .reschedule(&later.recall_handle(), (T0 + 4_500) as i64);
    assert!(earlier.is_ok(), "{earlier:?}");
    let earlier = earlier.unwrap();
    // 4_500 is already past at 4_999: delivered at once.
    assert_eq!(earlier.deliver_at_ms, T0 + 4_999);
    let got = h.receive("d", "g", 1);
    assert_eq!(got.len(), 1);
    assert!(matches!(
        h.e()
            .reschedule(&earlier.recall_handle(), (T0 + 9_000) as i64),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        h.e().reschedule(&later.recall_handle(), -1),
        Err(Error::NotFound(_) | Error::BadDeliveryTime(_))
    ));
    assert_eq!(h.e().stats().timing_total, 0);
}

#[test]
fn reschedule_refuses_bad_times_and_keeps_the_message() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    let r = h.e().send(delay_msg("d", T0 + 1_000, "x")).unwrap();
    assert!(matches!(
        h.e().reschedule(&r.recall_handle(), -5),
        Err(Error::BadDeliveryTime(_))
    ));
    h.e().recall(&r.recall_handle()).unwrap();
}
