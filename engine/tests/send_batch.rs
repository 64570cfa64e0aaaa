//! A batch of sends: each message succeeds or fails on its own, results come back in
//! the batch's order, and ids increase in that order.

mod common;
use common::*;
use sundial_engine::{Error, MessageId, TopicKind};

#[test]
fn a_long_batch_answers_every_message_in_order_and_each_on_its_own() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    h.topic("n", TopicKind::Normal);
    h.receive("d", "g", 1);
    let n = 1000;
    // Every 97th message goes to the wrong topic type; the last one too.
    let wrong = |i: usize| i % 97 == 50 || i == n - 1;
    let msgs = (0..n)
        .map(|i| {
            let topic = if wrong(i) { "n" } else { "d" };
            delay_msg(topic, T0 + 10, &i.to_string())
        })
        .collect();
    let results = h.e().send_batch(msgs);
    assert_eq!(results.len(), n);
    let mut sent: Vec<MessageId> = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(receipt) => {
                assert!(!wrong(i), "message {i} should have been refused");
                sent.push(receipt.message_id);
            }
            Err(e) => {
                assert!(wrong(i), "message {i} refused: {e}");
                assert!(matches!(e, Error::TopicTypeMismatch { .. }), "{e}");
            }
        }
    }
    assert_eq!(sent.len(), (0..n).filter(|&i| !wrong(i)).count());
    assert!(
        sent.windows(2).all(|w| w[0] < w[1]),
        "ids increase in batch order"
    );
    h.advance(10);
    let got = h.drain("d", "g");
    let got_ids: Vec<MessageId> = got.iter().map(|m| m.message_id).collect();
    assert_eq!(got_ids, sent, "every accepted message, in send order");
    let bodies: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    let expected: Vec<String> = (0..n)
        .filter(|&i| !wrong(i))
        .map(|i| i.to_string())
        .collect();
    assert_eq!(bodies, expected);
}

#[test]
fn batches_from_many_threads_interleave_but_each_keeps_its_order() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    h.receive("d", "g", 1);
    let per = 300;
    let batches: Vec<Vec<MessageId>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let e = h.e();
                s.spawn(move || {
                    let msgs = (0..per)
                        .map(|i| delay_msg("d", T0 + 10, &format!("{t}:{i}")))
                        .collect();
                    e.send_batch(msgs)
                        .into_iter()
                        .map(|r| r.expect("send").message_id)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("sender thread"))
            .collect()
    });
    for b in &batches {
        assert_eq!(b.len(), per);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
    }
    h.advance(10);
    let got = h.drain("d", "g");
    assert_eq!(got.len(), 4 * per);
    for (t, b) in batches.iter().enumerate() {
        let mine: Vec<MessageId> = got
            .iter()
            .filter(|m| m.body.starts_with(format!("{t}:").as_bytes()))
            .map(|m| m.message_id)
            .collect();
        assert_eq!(&mine, b, "batch {t} delivered whole and in order");
    }
}
