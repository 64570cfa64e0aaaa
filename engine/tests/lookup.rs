//! SPEC §3: message show and find by key.

mod common;
use common::*;
use sundial_engine::{GroupMessageState, GroupStart, MessageState, TopicKind};

#[test]
fn show_reports_state_per_group_and_find_by_key() {
    let h = Harness::new();
    h.topic("d", TopicKind::Delay);
    for g in ["acker", "holder", "idle", "nacker"] {
        h.e()
            .create_group("d", g, GroupStart::Latest, None)
            .unwrap();
    }
    let mut m = delay_msg("d", T0 + 100, "x");
    m.keys = vec!["order-7".into()];
    let r = h.e().send(m).unwrap();
    h.e().send(delay_msg("d", T0 + 100, "other")).unwrap();
    let v = h.e().show(r.message_id).unwrap();
    assert_eq!(v.state, MessageState::Timing);
    assert_eq!(v.deliver_at_ms, T0 + 100);
    assert!(v.groups.is_empty());
    assert_eq!(
        h.e().find_by_key("d", "order-7").unwrap(),
        vec![r.message_id]
    );
    assert!(h.e().find_by_key("d", "order-8").unwrap().is_empty());
    h.advance(100);
    let a = h.receive("d", "acker", 1);
    h.e().ack("d", "acker", &a[0].receipt_handle).unwrap();
    h.receive_inv("d", "holder", 1, 60_000);
    let n = h.receive("d", "nacker", 1);
    h.e().nack("d", "nacker", &n[0].receipt_handle).unwrap();
    let v = h.e().show(r.message_id).unwrap();
    assert_eq!(
        v.state,
        MessageState::Ready {
            ready_at_ms: T0 + 100
        }
    );
    let states: Vec<_> = v
        .groups
        .iter()
        .map(|(g, s)| (g.as_str(), s.clone()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("acker", GroupMessageState::Acked),
            (
                "holder",
                GroupMessageState::Inflight {
                    attempt: 1,
                    visible_at_ms: T0 + 100 + 60_000
                }
            ),
            ("idle", GroupMessageState::Ready),
            (
                "nacker",
                GroupMessageState::Inflight {
                    attempt: 1,
                    visible_at_ms: T0 + 100 + 10_000
                }
            ),
        ]
    );
    assert!(matches!(
        h.e().show(sundial_engine::MessageId(42)),
        Err(sundial_engine::Error::NotFound(_))
    ));
}

/// Messages the pump moved are found through its per-step run records: many steps,
/// two topics interleaved, every message resolves to its own offset.
#[test]
fn show_finds_pumped_messages_across_steps_and_topics() {
    let h = Harness::with(|c| c.pump_step = 7);
    h.topic("a", TopicKind::Delay);
    h.topic("b", TopicKind::Delay);
    h.e()
        .create_group("a", "g", GroupStart::Latest, None)
        .unwrap();
    h.e()
        .create_group("b", "g", GroupStart::Latest, None)
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..60u64 {
        let topic = if i % 3 == 0 { "b" } else { "a" };
        let r = h.e().send(delay_msg(topic, T0 + 10 + i % 4, "x")).unwrap();
        ids.push((topic, r.message_id));
    }
    h.advance(20);
    // Ack the first 9 of topic a in delivery order; the rest stay Ready or Inflight.
    let got = h.receive("a", "g", 12);
    for m in &got[..9] {
        h.e().ack("a", "g", &m.receipt_handle).unwrap();
    }
    let acked: Vec<_> = got[..9].iter().map(|m| m.message_id).collect();
    let inflight: Vec<_> = got[9..].iter().map(|m| m.message_id).collect();
    for (topic, id) in ids {
        let v = h.e().show(id).unwrap();
        assert_eq!(v.topic, topic);
        assert!(
            matches!(v.state, MessageState::Ready { .. }),
            "{id}: {:?}",
            v.state
        );
        let want = if acked.contains(&id) {
            GroupMessageState::Acked
        } else if inflight.contains(&id) {
            GroupMessageState::Inflight {
                attempt: 1,
                visible_at_ms: T0 + 20 + 30_000,
            }
        } else {
            GroupMessageState::Ready
        };
        assert_eq!(v.groups, vec![("g".to_string(), want)], "{id}");
    }
}

/// A store written before run records had their own family keeps them in `messages`
/// (under `0xff`): opening it moves them, and pumped messages are still found with
/// the time they became Ready.
#[test]
fn run_records_of_an_older_store_are_moved_when_it_opens() {
    let mut h = Harness::with(|c| c.pump_step = 3);
    h.topic("d", TopicKind::Delay);
    let ids: Vec<_> = (0..10u64)
        .map(|i| {
            h.e()
                .send(delay_msg("d", T0 + 10 + i, "x"))
                .unwrap()
                .message_id
        })
        .collect();
    h.advance(30);
    while h.e().tick().unwrap().more {}
    h.engine = None;
    // Put the runs back where earlier builds wrote them.
    let names = [
        "meta", "messages", "timer", "ready", "inflight", "acked", "keys", "runs",
    ];
    let count_runs = |db: &rocksdb::DB, family: &str| {
        let cf = db.cf_handle(family).unwrap();
        db.iterator_cf(
            cf,
            rocksdb::IteratorMode::From(&[0xff], rocksdb::Direction::Forward),
        )
        .filter(|r| r.as_ref().unwrap().0.first() == Some(&0xff))
        .count()
    };
    {
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), h.dir.path(), names).unwrap();
        let (runs, messages) = (
            db.cf_handle("runs").unwrap(),
            db.cf_handle("messages").unwrap(),
        );
        let rows: Vec<_> = db
            .iterator_cf(runs, rocksdb::IteratorMode::Start)
            .map(|r| r.unwrap())
            .collect();
        assert!(
            rows.len() >= 4,
            "ten messages in steps of three: {} runs",
            rows.len()
        );
        for (k, v) in rows {
            db.put_cf(messages, &k, &v).unwrap();
            db.delete_cf(runs, &k).unwrap();
        }
        assert_eq!(count_runs(&db, "runs"), 0);
    }
    h.reopen();
    for id in &ids {
        let v = h.e().show(*id).unwrap();
        assert_eq!(
            v.state,
            MessageState::Ready {
                ready_at_ms: T0 + 30
            },
            "{id}"
        );
    }
    h.engine = None;
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), h.dir.path(), names).unwrap();
    assert_eq!(count_runs(&db, "messages"), 0);
    assert!(count_runs(&db, "runs") >= 4);
}
