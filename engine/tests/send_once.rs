//! Sends named by their clients (`submit_send_once`): a retried id is stored once within
//! the window, in one batch, across rounds and across a reopen; after the window, or
//! without the id property, a message is stored as new.

mod common;

use common::{delay_msg, Harness};
use std::time::Duration;
use sundial_engine::{NewMessage, SendReceipt, TopicKind};

const PROP: &str = "UNIQ_KEY";
const WINDOW: Duration = Duration::from_secs(120);

fn named(h: &Harness, id: &str, body: &str) -> NewMessage {
    let mut m = delay_msg("t", h.now() + 60_000, body);
    m.properties.insert(PROP.into(), id.into());
    m.keys.push(id.into());
    m
}

fn send(h: &Harness, msgs: Vec<NewMessage>) -> Vec<(SendReceipt, bool)> {
    h.e()
        .submit_send_once(msgs, PROP, WINDOW)
        .wait()
        .expect("round")
        .into_iter()
        .map(|r| r.expect("send"))
        .collect()
}

fn stored(h: &Harness) -> u64 {
    h.e()
        .stats()
        .topics
        .iter()
        .find(|t| t.name == "t")
        .map_or(0, |t| t.sent)
}

#[test]
fn a_retried_id_is_stored_once_and_answered_with_the_first_receipt() {
    let mut h = Harness::new();
    h.topic("t", TopicKind::Delay);
    let first = send(&h, vec![named(&h, "id-1", "a")]);
    assert!(!first[0].1, "the first send is new");
    // A retry in a later round.
    let again = send(&h, vec![named(&h, "id-1", "a")]);
    assert_eq!(again[0], (first[0].0.clone(), true));
    // Twice in one batch, next to a new id: the new one is stored, the retries are not.
    let batch = send(
        &h,
        vec![
            named(&h, "id-2", "b"),
            named(&h, "id-1", "a"),
            named(&h, "id-2", "b"),
        ],
    );
    assert!(!batch[0].1);
    assert_eq!(batch[1], (first[0].0.clone(), true));
    assert_eq!(batch[2], (batch[0].0.clone(), true));
    assert_eq!(stored(&h), 2);
    // Across a reopen.
    h.reopen();
    let after = send(&h, vec![named(&h, "id-1", "a")]);
    assert_eq!(after[0], (first[0].0.clone(), true));
    assert_eq!(stored(&h), 2);
    assert_eq!(h.e().find_by_key("t", "id-1").expect("find").len(), 1);
}

#[test]
fn after_the_window_or_without_the_property_a_message_is_new() {
    let h = Harness::new();
    h.topic("t", TopicKind::Delay);
    let first = send(&h, vec![named(&h, "id-1", "a")]);
    h.clock.advance(WINDOW.as_millis() as u64);
    let later = send(&h, vec![named(&h, "id-1", "a")]);
    assert!(!later[0].1, "outside the window the id is new again");
    assert_ne!(later[0].0.message_id, first[0].0.message_id);
    // The same key without the id property (a user key that equals an id) is not
    // taken for a retry, and a plain message is not looked up at all.
    let mut plain = delay_msg("t", h.now() + 60_000, "c");
    plain.keys.push("id-1".into());
    let mut m = named(&h, "id-9", "d");
    m.properties.clear();
    let r = send(&h, vec![plain, m]);
    assert!(!r[0].1 && !r[1].1);
    assert_eq!(stored(&h), 4);
}
