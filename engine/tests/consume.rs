//! SPEC §4: receive, ack, nack, change_invisible_duration, expiry, dead letters.

mod common;
use common::*;
use std::time::Duration;
use sundial_engine::{Error, GroupMessageState, ReceiptHandle, ReceiveRequest, TopicKind};

#[test]
fn ack_is_final_and_bad_receipts_are_refused() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.receive("n", "g", 1);
    h.e().send(normal_msg("n", "a")).unwrap();
    let got = h.receive("n", "g", 10);
    assert_eq!(got.len(), 1);
    let r = &got[0].receipt_handle;
    h.e().ack("n", "g", r).unwrap();
    assert!(matches!(
        h.e().ack("n", "g", r),
        Err(Error::BadReceiptHandle(_))
    ));
    assert!(matches!(
        "zz".parse::<ReceiptHandle>(),
        Err(Error::BadReceiptHandle(_))
    ));
    // Well formed, but naming an offset nothing was delivered at.
    let nowhere = ReceiptHandle {
        offset: r.offset + 1_000,
        ..*r
    };
    assert!(matches!(
        h.e().ack("n", "g", &nowhere),
        Err(Error::BadReceiptHandle(_))
    ));
    assert!(matches!(
        h.e().ack("n", "other", r),
        Err(Error::BadReceiptHandle(_))
    ));
    h.advance(3_600_000);
    assert!(h.receive("n", "g", 10).is_empty(), "acked is final");
    let s = h.e().stats();
    let g = &s.topics[0].groups[0];
    assert_eq!((g.acked, g.inflight, g.retry, g.backlog), (1, 0, 0, 0));
}

#[test]
fn expiry_redelivers_with_attempt_plus_one_and_old_receipt_goes_stale() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.receive("n", "g", 1);
    let id = h.e().send(normal_msg("n", "a")).unwrap().message_id;
    let first = h.receive_inv("n", "g", 10, 1_000);
    assert_eq!(first[0].delivery_attempt, 1);
    h.advance(999);
    assert!(h.receive("n", "g", 10).is_empty(), "still invisible");
    assert!(matches!(
        h.e().show(id).unwrap().groups[0].1,
        GroupMessageState::Inflight { attempt: 1, .. }
    ));
    h.advance(1);
    assert_eq!(h.e().stats().topics[0].groups[0].retry, 1);
    let second = h.receive_inv("n", "g", 10, 1_000);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].delivery_attempt, 2);
    assert_eq!(second[0].message_id, id);
    assert!(matches!(
        h.e().ack("n", "g", &first[0].receipt_handle),
        Err(Error::BadReceiptHandle(_))
    ));
    h.e().ack("n", "g", &second[0].receipt_handle).unwrap();
    let g = &h.e().stats().topics[0].groups[0];
    assert_eq!((g.redelivered, g.inflight, g.retry, g.acked), (1, 0, 0, 1));
}

/// A receive that found nothing visible skips the retry scan until the earliest entry
/// it saw; entries written since (a changed invisible time, a nack) must still arrive
/// the moment they are visible, without the pump's help.
#[test]
fn receives_see_redeliveries_written_after_a_scan_found_none() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.receive("n", "g", 1);
    for body in ["a", "b"] {
        h.e().send(normal_msg("n", body)).unwrap();
    }
    let a = h.receive_inv("n", "g", 1, 10_000);
    let b = h.receive_inv("n", "g", 1, 10_000);
    assert_eq!((a.len(), b.len()), (1, 1));
    // Nothing visible until +10 s: this receive learns it.
    assert!(h.receive("n", "g", 4).is_empty());
    let new_b = h
        .e()
        .change_invisible_duration("n", "g", &b[0].receipt_handle, Duration::from_secs(1))
        .unwrap();
    h.clock.advance(999);
    assert!(h.receive("n", "g", 4).is_empty(), "visible before its time");
    h.clock.advance(1);
    let again = h.receive_inv("n", "g", 4, 30_000);
    assert_eq!(again.len(), 1, "b was not redelivered at its new time");
    assert_eq!(
        (again[0].body.as_slice(), again[0].delivery_attempt),
        (&b"b"[..], 2)
    );
    assert!(matches!(
        h.e().ack("n", "g", &new_b),
        Err(Error::BadReceiptHandle(_))
    ));
    // A nack after another empty receive: visible after the first backoff.
    assert!(h.receive("n", "g", 4).is_empty());
    h.e().nack("n", "g", &a[0].receipt_handle).unwrap();
    let wait = h.config.retry_backoff[0].as_millis() as u64;
    h.clock.advance(wait - 1);
    assert!(
        h.receive("n", "g", 4).is_empty(),
        "visible before its backoff"
    );
    h.clock.advance(1);
    assert!(wait < 30_000, "b's delivery must stay invisible meanwhile");
    let got = h.receive_inv("n", "g", 4, 60_000);
    assert_eq!(got.len(), 1, "the nacked message was not redelivered");
    assert_eq!(
        (got[0].body.as_slice(), got[0].delivery_attempt),
        (&b"a"[..], 2)
    );
    // And plain expiry: b's second delivery, 30 s after it was handed out.
    assert!(h.receive("n", "g", 4).is_empty());
    h.clock.advance(30_000 - wait - 1);
    assert!(h.receive("n", "g", 4).is_empty(), "visible before its time");
    h.clock.advance(1);
    let last = h.receive("n", "g", 4);
    assert_eq!(last.len(), 1, "the expired delivery was not redelivered");
    assert_eq!(
        (last[0].body.as_slice(), last[0].delivery_attempt),
        (&b"b"[..], 3)
    );
}

#[test]
fn nack_uses_the_backoff_table() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.receive("n", "g", 1);
    h.e().send(normal_msg("n", "a")).unwrap();
    let backoff = h.config.retry_backoff.clone();
    for (attempt, wait) in backoff.iter().take(4).enumerate() {
        let got = h.receive("n", "g", 10);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].delivery_attempt as usize, attempt + 1);
        h.e().nack("n", "g", &got[0].receipt_handle).unwrap();
        assert!(matches!(
            h.e().nack("n", "g", &got[0].receipt_handle),
            Err(Error::BadReceiptHandle(_))
        ));
        let ms = wait.as_millis() as u64;
        h.advance(ms - 1);
        assert!(
            h.receive("n", "g", 10).is_empty(),
            "visible before its backoff"
        );
        h.advance(1);
    }
    assert_eq!(h.receive("n", "g", 10)[0].delivery_attempt, 5);
}

#[test]
fn change_invisible_duration_counts_from_the_call() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.receive("n", "g", 1);
    h.e().send(normal_msg("n", "a")).unwrap();
    let got = h.receive_inv("n", "g", 1, 1_000);
    h.advance(900);
    let new = h
        .e()
        .change_invisible_duration("n", "g", &got[0].receipt_handle, Duration::from_secs(5))
        .unwrap();
    assert_ne!(new, got[0].receipt_handle);
    assert!(matches!(
        h.e().ack("n", "g", &got[0].receipt_handle),
        Err(Error::BadReceiptHandle(_))
    ));
    h.advance(4_999);
    assert!(h.receive("n", "g", 1).is_empty());
    h.e().ack("n", "g", &new).unwrap();
    h.advance(10_000);
    assert!(h.receive("n", "g", 1).is_empty());
    for bad in [
        Duration::from_millis(99),
        Duration::from_secs(12 * 3600 + 1),
    ] {
        let mut r = ReceiveRequest::new("n", "g", 1);
        r.invisible_duration = bad;
        assert!(matches!(
            h.e().receive(r),
            Err(Error::BadInvisibleDuration(_))
        ));
    }
}

#[test]
fn dead_letter_after_max_attempts() {
    let h = Harness::with(|c| c.max_delivery_attempts = 3);
    h.topic("n", TopicKind::Normal);
    h.receive("n", "g", 1);
    let mut m = normal_msg("n", "poison");
    m.tag = Some("t".into());
    m.keys = vec!["k".into()];
    let id = h.e().send(m).unwrap().message_id;
    for attempt in 1..=3 {
        let got = h.receive_inv("n", "g", 1, 1_000);
        assert_eq!(got[0].delivery_attempt, attempt);
        h.advance(1_000);
    }
    assert!(h.receive("n", "g", 1).is_empty());
    let s = h.e().stats();
    let t = s.topics.iter().find(|t| t.name == "n").unwrap();
    assert_eq!(t.groups[0].dead_lettered, 1);
    assert_eq!(
        h.e().show(id).unwrap().groups[0].1,
        GroupMessageState::DeadLettered
    );
    h.e()
        .create_group("%DLQ%g", "ops", sundial_engine::GroupStart::Earliest, None)
        .unwrap();
    let dl = h.drain("%DLQ%g", "ops");
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].body, b"poison");
    assert_eq!(dl[0].tag.as_deref(), Some("t"));
    assert_eq!(
        dl[0].properties.get("DLQ_ORIGIN_MESSAGE_ID"),
        Some(&id.to_string())
    );
    assert_eq!(
        dl[0].properties.get("DLQ_ORIGIN_TOPIC").map(String::as_str),
        Some("n")
    );

    // A nack of the last attempt dead-letters at once.
    h.e().send(normal_msg("n", "second")).unwrap();
    for _ in 1..3 {
        let got = h.receive("n", "g", 1);
        h.e().nack("n", "g", &got[0].receipt_handle).unwrap();
        h.advance(3_600_000);
    }
    let got = h.receive("n", "g", 1);
    assert_eq!(got[0].delivery_attempt, 3);
    h.e().nack("n", "g", &got[0].receipt_handle).unwrap();
    assert_eq!(h.drain("%DLQ%g", "ops").len(), 1);
}

#[test]
fn tag_filters() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.e()
        .create_group(
            "n",
            "ab",
            sundial_engine::GroupStart::Latest,
            Some("a || b"),
        )
        .unwrap();
    h.e()
        .create_group("n", "all", sundial_engine::GroupStart::Latest, Some("*"))
        .unwrap();
    for tag in [Some("a"), Some("b"), Some("c"), None] {
        let mut m = normal_msg("n", tag.unwrap_or("none"));
        m.tag = tag.map(str::to_string);
        h.e().send(m).unwrap();
    }
    let ab: Vec<_> = h.drain("n", "ab").into_iter().map(|m| m.body).collect();
    assert_eq!(ab, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(h.drain("n", "all").len(), 4);
    let mut r = ReceiveRequest::new("n", "x", 1);
    r.filter = Some("a ||".into());
    assert!(matches!(h.e().receive(r), Err(Error::BadRequest(_))));
}

#[test]
fn a_call_filter_applies_to_retries_too() {
    let h = Harness::new();
    h.topic("n", TopicKind::Normal);
    h.receive("n", "g", 1);
    let mut m = normal_msg("n", "for a");
    m.tag = Some("a".into());
    h.e().send(m).unwrap();
    let with = |f: &str| {
        let mut r = ReceiveRequest::new("n", "g", 10);
        r.filter = Some(f.into());
        r.invisible_duration = Duration::from_secs(1);
        h.e().receive(r).unwrap()
    };
    assert_eq!(with("a").len(), 1);
    h.advance(1_000);
    assert!(with("b").is_empty(), "a retry tagged a is not for filter b");
    let again = with("a");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_attempt, 2);
}

#[test]
fn ready_signal_changes_when_messages_become_ready() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    let mut sig = h.e().ready_signal();
    sig.mark_unchanged();
    h.e().send(delay_msg("d", T0 + 100, "x")).unwrap();
    assert!(!sig.has_changed().unwrap(), "nothing Ready yet");
    h.advance(100);
    assert!(
        sig.has_changed().unwrap(),
        "the pump announced the Ready message"
    );
}

/// A receive reads its messages' bodies in id order and hands them out in ready
/// order: every message must get its own body, whether the ids come ascending, with
/// other topics' messages between them, or descending (sent in the reverse order of
/// their delivery times).
#[test]
fn each_received_message_carries_its_own_body_whatever_the_id_order() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    h.topic("other", TopicKind::Delay);
    h.receive("d", "g", 1);
    let t0 = h.now();
    let mut sent = std::collections::HashMap::new();
    // Descending ids: sent last, due first.
    for i in 0..40u64 {
        let body = format!("down-{i}");
        let r = h.e().send(delay_msg("d", t0 + 1_000 - i, &body)).unwrap();
        sent.insert(r.message_id, body);
    }
    // Ascending ids with other messages between them, all due later.
    for i in 0..40u64 {
        let body = format!("up-{i}");
        let r = h.e().send(delay_msg("d", t0 + 2_000 + i, &body)).unwrap();
        sent.insert(r.message_id, body);
        h.e()
            .send(delay_msg("other", t0 + 2_000 + i, "elsewhere"))
            .unwrap();
    }
    h.advance(3_000);
    let got = h.receive("d", "g", 100);
    assert_eq!(got.len(), 80);
    for m in &got {
        assert_eq!(
            std::str::from_utf8(&m.body).unwrap(),
            sent[&m.message_id],
            "{}",
            m.message_id
        );
    }
    let times: Vec<u64> = got.iter().map(|m| m.deliver_at_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in ready order");
    assert!(
        got[..40]
            .windows(2)
            .all(|w| w[0].message_id > w[1].message_id),
        "the first forty in descending id order"
    );
}
