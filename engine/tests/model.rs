//! Model-based test: random operations against the engine and a small in-memory
//! reference model. After every step: nothing early, nothing acknowledged lost, no
//! phantom message, acked is final for its group, each message in exactly one state
//! per group (as `show` reports it).

mod common;
use common::*;
use proptest::prelude::*;
use std::time::Duration;
use sundial_engine::{
    Error, GroupMessageState, GroupStart, MessageId, MessageState, ReceiptHandle, ReceiveRequest,
    TopicKind,
};

const GROUPS: [&str; 2] = ["g1", "g2"];
const MAX_ATTEMPTS: u32 = 3;
const MAX_DELAY_MS: u64 = 60_000;
const BACKOFF_MS: [u64; 2] = [1_000, 2_000];

#[derive(Debug, Clone)]
enum Op {
    SendPast(u64),
    SendNear(u64),
    SendFar(u64),
    SendOverMax(u64),
    SendNormal,
    Advance(u64),
    Receive {
        group: usize,
        max: usize,
        inv_ms: u64,
    },
    Ack(usize),
    Nack(usize),
    Change(usize, u64),
    Recall(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..10_000u64).prop_map(Op::SendPast),
        1 => (1..5_000u64).prop_map(Op::SendNear),
        // Millisecond edges: due in 1 or 2 ms, clock moving by 0..=2 ms.
        2 => (1..3u64).prop_map(Op::SendNear),
        2 => (0..3u64).prop_map(Op::Advance),
        1 => (5_000..MAX_DELAY_MS).prop_map(Op::SendFar),
        1 => (1..100_000u64).prop_map(Op::SendOverMax),
        1 => Just(Op::SendNormal),
        3 => (0..4_000u64).prop_map(Op::Advance),
        3 => (0..2usize, 1..6usize, 100..4_000u64).prop_map(|(group, max, inv_ms)| Op::Receive { group, max, inv_ms }),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::Nack),
        1 => (any::<usize>(), 100..4_000u64).prop_map(|(i, d)| Op::Change(i, d)),
        1 => any::<usize>().prop_map(Op::Recall),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum G {
    Pending,
    Inflight {
        attempt: u32,
        visible_at: u64,
        receipt: Option<ReceiptHandle>,
    },
    Acked,
    Dead,
}

#[derive(Debug)]
struct M {
    id: MessageId,
    deliver_at: u64,
    handle: String,
    recalled: bool,
    groups: [G; 2],
}

struct Run {
    h: Harness,
    msgs: Vec<M>,
    receipts: Vec<(usize, usize, ReceiptHandle)>,
}

impl Run {
    fn new() -> Self {
        let h = Harness::with(|c| {
            c.max_delivery_attempts = MAX_ATTEMPTS;
            c.max_delay = Duration::from_millis(MAX_DELAY_MS);
            c.retry_backoff = BACKOFF_MS
                .iter()
                .map(|&ms| Duration::from_millis(ms))
                .collect();
        });
        h.topic("t", TopicKind::Mixed);
        for g in GROUPS {
            h.e()
                .create_group("t", g, GroupStart::Latest, None)
                .unwrap();
        }
        Run {
            h,
            msgs: Vec::new(),
            receipts: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.h.now()
    }

    fn find(&self, id: MessageId) -> usize {
        self.msgs
            .iter()
            .position(|m| m.id == id)
            .unwrap_or_else(|| panic!("phantom message {id}"))
    }

    fn deliverable(&self, g: usize) -> Vec<usize> {
        let now = self.now();
        (0..self.msgs.len())
            .filter(|&i| {
                let m = &self.msgs[i];
                !m.recalled
                    && m.deliver_at <= now
                    && match &m.groups[g] {
                        G::Pending => true,
                        G::Inflight {
                            visible_at,
                            attempt,
                            ..
                        } => *visible_at <= now && *attempt < MAX_ATTEMPTS,
                        _ => false,
                    }
            })
            .collect()
    }

    fn send(&mut self, at: Option<u64>) {
        let now = self.now();
        let m = match at {
            Some(t) => delay_msg("t", t, "x"),
            None => normal_msg("t", "x"),
        };
        let r = self.h.e().send(m).unwrap();
        let expect = match at {
            Some(t) if t > now && t <= now + MAX_DELAY_MS => t,
            _ => now,
        };
        assert_eq!(r.deliver_at_ms, expect);
        if let Some(last) = self.msgs.last() {
            assert!(last.id < r.message_id, "ids increase in send order");
        }
        self.msgs.push(M {
            id: r.message_id,
            deliver_at: r.deliver_at_ms,
            handle: r.recall_handle(),
            recalled: false,
            groups: [G::Pending, G::Pending],
        });
    }

    /// Model side of the pump's expiry: deliveries out of attempts go to the DLQ.
    fn expire(&mut self) {
        let now = self.now();
        for m in &mut self.msgs {
            for g in &mut m.groups {
                if let G::Inflight {
                    attempt,
                    visible_at,
                    ..
                } = g
                {
                    if *visible_at <= now && *attempt >= MAX_ATTEMPTS {
                        *g = G::Dead;
                    }
                }
            }
        }
    }

    fn receive(&mut self, g: usize, max: usize, inv_ms: u64) {
        let now = self.now();
        let expected = self.deliverable(g);
        let mut req = ReceiveRequest::new("t", GROUPS[g], max);
        req.invisible_duration = Duration::from_millis(inv_ms);
        let got = self.h.e().receive(req).unwrap();
        assert_eq!(
            got.len(),
            max.min(expected.len()),
            "receive returns what is deliverable"
        );
        for r in got {
            assert!(r.deliver_at_ms <= now, "early delivery");
            let i = self.find(r.message_id);
            assert!(
                expected.contains(&i),
                "delivered something not deliverable: {:?}",
                self.msgs[i]
            );
            let attempt = match &self.msgs[i].groups[g] {
                G::Pending => 1,
                G::Inflight { attempt, .. } => attempt + 1,
                other => panic!("delivered in state {other:?}"),
            };
            assert_eq!(r.delivery_attempt, attempt);
            self.msgs[i].groups[g] = G::Inflight {
                attempt,
                visible_at: now + inv_ms,
                receipt: Some(r.receipt_handle),
            };
            self.receipts.push((g, i, r.receipt_handle));
        }
    }

    fn current(&self, k: usize) -> Option<(usize, usize, ReceiptHandle, bool)> {
        if self.receipts.is_empty() {
            return None;
        }
        let (g, i, r) = self.receipts[k % self.receipts.len()];
        let valid =
            matches!(&self.msgs[i].groups[g], G::Inflight { receipt: Some(x), .. } if *x == r);
        Some((g, i, r, valid))
    }

    fn step(&mut self, op: Op) {
        let now = self.now();
        match op {
            Op::SendPast(d) => self.send(Some(now - d)),
            Op::SendNear(d) | Op::SendFar(d) => self.send(Some(now + d)),
            Op::SendOverMax(d) => self.send(Some(now + MAX_DELAY_MS + d)),
            Op::SendNormal => self.send(None),
            Op::Advance(ms) => {
                self.h.advance(ms);
                self.expire();
            }
            Op::Receive { group, max, inv_ms } => self.receive(group, max, inv_ms),
            Op::Ack(k) => {
                let Some((g, i, r, valid)) = self.current(k) else {
                    return;
                };
                let res = self.h.e().ack("t", GROUPS[g], &r);
                assert_eq!(
                    res.is_ok(),
                    valid,
                    "ack {res:?} of {:?}",
                    self.msgs[i].groups[g]
                );
                if let Err(e) = res {
                    assert!(matches!(e, Error::BadReceiptHandle(_)), "{e}");
                } else {
                    self.msgs[i].groups[g] = G::Acked;
                }
            }
            Op::Nack(k) => {
                let Some((g, i, r, valid)) = self.current(k) else {
                    return;
                };
                let res = self.h.e().nack("t", GROUPS[g], &r);
                assert_eq!(res.is_ok(), valid, "nack {res:?}");
                if res.is_ok() {
                    let G::Inflight { attempt, .. } = self.msgs[i].groups[g].clone() else {
                        unreachable!()
                    };
                    self.msgs[i].groups[g] = if attempt >= MAX_ATTEMPTS {
                        G::Dead
                    } else {
                        let b = BACKOFF_MS[(attempt as usize - 1).min(BACKOFF_MS.len() - 1)];
                        G::Inflight {
                            attempt,
                            visible_at: now + b,
                            receipt: None,
                        }
                    };
                }
            }
            Op::Change(k, d) => {
                let Some((g, i, r, valid)) = self.current(k) else {
                    return;
                };
                let res = self.h.e().change_invisible_duration(
                    "t",
                    GROUPS[g],
                    &r,
                    Duration::from_millis(d),
                );
                assert_eq!(res.is_ok(), valid, "change {res:?}");
                if let Ok(new) = res {
                    let G::Inflight { attempt, .. } = self.msgs[i].groups[g].clone() else {
                        unreachable!()
                    };
                    self.msgs[i].groups[g] = G::Inflight {
                        attempt,
                        visible_at: now + d,
                        receipt: Some(new),
                    };
                    self.receipts.push((g, i, new));
                }
            }
            Op::Recall(k) => {
                if self.msgs.is_empty() {
                    return;
                }
                let i = k % self.msgs.len();
                let timing = !self.msgs[i].recalled && self.msgs[i].deliver_at > now;
                let res = self.h.e().recall(&self.msgs[i].handle.clone());
                assert_eq!(res.is_ok(), timing, "recall {res:?} of {:?}", self.msgs[i]);
                if res.is_ok() {
                    self.msgs[i].recalled = true;
                } else {
                    assert!(matches!(res, Err(Error::NotFound(_))));
                }
            }
            Op::Reopen => self.h.reopen(),
        }
        self.check();
    }

    /// Each message is in exactly the state the model says, per group.
    fn check(&self) {
        let now = self.now();
        for m in &self.msgs {
            let v = self.h.e().show(m.id);
            if m.recalled {
                assert!(
                    matches!(v, Err(Error::NotFound(_))),
                    "recalled message still visible"
                );
                continue;
            }
            let v = v.unwrap_or_else(|e| panic!("acknowledged message {} lost: {e}", m.id));
            if m.deliver_at > now {
                assert_eq!(v.state, MessageState::Timing);
                continue;
            }
            assert!(
                matches!(v.state, MessageState::Ready { ready_at_ms } if ready_at_ms >= m.deliver_at)
            );
            for (g, name) in GROUPS.iter().enumerate() {
                let got = v
                    .groups
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| s.clone());
                let want = match &m.groups[g] {
                    G::Pending => GroupMessageState::Ready,
                    G::Acked => GroupMessageState::Acked,
                    G::Dead => GroupMessageState::DeadLettered,
                    G::Inflight {
                        attempt,
                        visible_at,
                        ..
                    } if *visible_at > now => GroupMessageState::Inflight {
                        attempt: *attempt,
                        visible_at_ms: *visible_at,
                    },
                    G::Inflight { attempt, .. } => GroupMessageState::Retry { attempt: *attempt },
                };
                assert_eq!(got, Some(want), "message {} group {name}", m.id);
            }
        }
        let s = self.h.e().stats();
        assert_eq!(s.early_deliveries, 0);
        let timing = self
            .msgs
            .iter()
            .filter(|m| !m.recalled && m.deliver_at > now)
            .count() as u64;
        assert_eq!(s.timing_total, timing, "exact Timing counter");
        let t = s.topics.iter().find(|t| t.name == "t").unwrap();
        for (g, name) in GROUPS.iter().enumerate() {
            let gs = t.groups.iter().find(|x| x.name == *name).unwrap();
            let acked = self.msgs.iter().filter(|m| m.groups[g] == G::Acked).count() as u64;
            let dead = self.msgs.iter().filter(|m| m.groups[g] == G::Dead).count() as u64;
            assert_eq!(
                (gs.acked, gs.dead_lettered),
                (acked, dead),
                "group {name} counters"
            );
        }
    }

    /// Moves time far ahead and consumes everything: every message that was not
    /// recalled ends acked or dead-lettered in every group.
    fn finish(&mut self) {
        for _ in 0..50 {
            self.step(Op::Advance(MAX_DELAY_MS));
            for g in 0..2 {
                for _ in 0..100 {
                    let before = self.receipts.len();
                    self.receive(g, 8, 100);
                    if self.receipts.len() == before {
                        break;
                    }
                    for k in before..self.receipts.len() {
                        self.step(Op::Ack(k));
                    }
                }
            }
            let open = self
                .msgs
                .iter()
                .any(|m| !m.recalled && m.groups.iter().any(|g| !matches!(g, G::Acked | G::Dead)));
            if !open {
                break;
            }
        }
        for m in self.msgs.iter().filter(|m| !m.recalled) {
            for g in &m.groups {
                assert!(
                    matches!(g, G::Acked | G::Dead),
                    "message {} never finished: {g:?}",
                    m.id
                );
            }
        }
    }
}

proptest! {
    // SUNDIAL_MODEL_CASES raises the number of cases for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("SUNDIAL_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(40),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]
    #[test]
    fn engine_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut run = Run::new();
        for op in ops {
            run.step(op);
        }
        run.finish();
    }
}
