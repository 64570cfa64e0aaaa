//! SPEC §5: retention counts from Ready time; the compaction filters never remove a
//! Timing message or one still within retention of becoming Ready.

mod common;
use common::*;
use std::time::Duration;
use sundial_engine::{Error, GroupStart, MessageState, TopicKind};

const HOUR: u64 = 3_600_000;

fn step_to(h: &Harness, t: u64) {
    while h.now() < t {
        h.advance((t - h.now()).min(60_000));
    }
}

#[test]
fn retention_removes_old_ready_data_but_never_timing_or_late_ready() {
    let mut h = Harness::with(|c| c.retention = Duration::from_millis(HOUR));
    h.topic("m", TopicKind::Mixed);
    h.e()
        .create_group("m", "g", GroupStart::Latest, None)
        .unwrap();
    h.advance(10);
    let mut a = normal_msg("m", "old");
    a.keys = vec!["ka".into()];
    let a = h.e().send(a).unwrap();
    let b = h.e().send(delay_msg("m", T0 + 2 * HOUR, "timing")).unwrap();
    assert_eq!(h.drain("m", "g").len(), 1);

    step_to(&h, T0 + HOUR + 30_000);
    let report = h.e().maintain().unwrap();
    assert!(report.retention_horizon_ms > T0 + 10, "{report:?}");
    h.e().compact().unwrap();
    assert!(
        matches!(h.e().show(a.message_id), Err(Error::NotFound(_))),
        "past retention"
    );
    assert!(h.e().find_by_key("m", "ka").unwrap().is_empty());
    assert_eq!(
        h.e().show(b.message_id).unwrap().state,
        MessageState::Timing,
        "Timing is never removed"
    );

    // B becomes Ready at 2 h; half a retention period later it is still there.
    step_to(&h, T0 + 2 * HOUR + HOUR / 2);
    h.e().maintain().unwrap();
    h.e().compact().unwrap();
    let got = h.drain("m", "g");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, b.message_id);

    // C is due during an outage longer than retention: it becomes Ready at start-up
    // and is kept for a full retention period from then.
    let c = h
        .e()
        .send(delay_msg("m", T0 + 2 * HOUR + HOUR / 2 + 60_000, "late"))
        .unwrap();
    h.engine = None;
    h.clock.set(T0 + 6 * HOUR);
    h.reopen();
    h.e().tick().unwrap();
    h.e().maintain().unwrap();
    h.e().compact().unwrap();
    let v = h.e().show(c.message_id).unwrap();
    assert_eq!(
        v.state,
        MessageState::Ready {
            ready_at_ms: T0 + 6 * HOUR
        }
    );
    let got = h.drain("m", "g");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"late");

    // And a full period after that, it goes too; B went long ago.
    step_to(&h, T0 + 7 * HOUR + 60_000);
    h.e().maintain().unwrap();
    h.e().compact().unwrap();
    assert!(matches!(h.e().show(c.message_id), Err(Error::NotFound(_))));
    assert!(matches!(h.e().show(b.message_id), Err(Error::NotFound(_))));
    // A replay from the beginning finds nothing retained.
    h.e().reset_offset("m", "g", 0).unwrap();
    assert!(h.receive("m", "g", 10).is_empty());
}

#[test]
fn far_timing_messages_outlive_many_retention_periods() {
    let h = Harness::with(|c| {
        c.retention = Duration::from_millis(HOUR);
        c.max_delay = Duration::from_secs(400 * 86_400);
    });
    h.topic("d", TopicKind::Delay);
    h.e()
        .create_group("d", "g", GroupStart::Latest, None)
        .unwrap();
    let far = h.e().send(delay_msg("d", T0 + 30 * HOUR, "far")).unwrap();
    for _ in 0..29 {
        h.advance(HOUR);
        h.e().maintain().unwrap();
    }
    h.e().compact().unwrap();
    assert_eq!(
        h.e().show(far.message_id).unwrap().state,
        MessageState::Timing
    );
    h.advance(HOUR);
    assert_eq!(h.drain("d", "g")[0].body, b"far");
}
