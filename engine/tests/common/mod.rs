//! Shared helpers for the engine's behaviour tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use sundial_engine::{
    Clock, Config, Engine, ManualClock, NewMessage, ReceiveRequest, ReceivedMessage, TopicKind,
};
use tempfile::TempDir;

/// A fixed starting time: 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000;

/// An engine on a temporary directory driven by a manual clock, without background
/// threads: tests move time and call `tick` themselves.
pub struct Harness {
    pub engine: Option<Engine>,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    pub config: Config,
}

pub fn config(clock: &Arc<ManualClock>) -> Config {
    Config {
        background: false,
        clock: clock.clone(),
        ..Config::default()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let clock = ManualClock::new(T0);
        let mut config = config(&clock);
        tweak(&mut config);
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path(), config.clone()).expect("open");
        Harness {
            engine: Some(engine),
            clock,
            dir,
            config,
        }
    }

    pub fn e(&self) -> &Engine {
        self.engine.as_ref().expect("engine is open")
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Closes and reopens the engine on the same directory and clock.
    pub fn reopen(&mut self) {
        self.engine = None;
        self.engine = Some(Engine::open(self.dir.path(), self.config.clone()).expect("reopen"));
    }

    pub fn topic(&self, name: &str, kind: TopicKind) {
        self.e().create_topic(name, kind).expect("create topic");
    }

    /// Moves time forward and runs the pump.
    pub fn advance(&self, ms: u64) {
        self.clock.advance(ms);
        self.e().tick().expect("tick");
    }

    pub fn receive(&self, topic: &str, group: &str, max: usize) -> Vec<ReceivedMessage> {
        self.e()
            .receive(ReceiveRequest::new(topic, group, max))
            .expect("receive")
    }

    pub fn receive_inv(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        inv_ms: u64,
    ) -> Vec<ReceivedMessage> {
        let mut r = ReceiveRequest::new(topic, group, max);
        r.invisible_duration = Duration::from_millis(inv_ms);
        self.e().receive(r).expect("receive")
    }

    /// Rows in one of the store's column families.
    pub fn rows(&self, family: &str) -> usize {
        self.e().count_rows(family).expect("count rows")
    }

    /// A group's (inflight, retry, acked) counts, from the engine's stats.
    pub fn group_counts(&self, topic: &str, group: &str) -> (u64, u64, u64) {
        let s = self.e().stats();
        let t = s.topics.iter().find(|t| t.name == topic).expect("topic");
        let g = t.groups.iter().find(|g| g.name == group).expect("group");
        (g.inflight, g.retry, g.acked)
    }

    /// Lets `invisible_ms` pass and checks that `m` alone comes back, at attempt 2, that
    /// its first receipt is then stale, and that the new one acks it.
    pub fn redelivered_and_acked(
        &self,
        topic: &str,
        group: &str,
        m: &ReceivedMessage,
        invisible_ms: u64,
    ) {
        self.advance(invisible_ms);
        let back = self.receive(topic, group, 10);
        assert_eq!(back.len(), 1, "only the unacked one comes back: {back:?}");
        assert_eq!(back[0].message_id, m.message_id);
        assert_eq!(back[0].delivery_attempt, 2);
        let stale = self.e().ack(topic, group, &m.receipt_handle);
        assert!(
            matches!(stale, Err(sundial_engine::Error::BadReceiptHandle(_))),
            "{stale:?}"
        );
        self.e().ack(topic, group, &back[0].receipt_handle).unwrap();
    }

    /// Receives and acks everything currently Ready for the group.
    pub fn drain(&self, topic: &str, group: &str) -> Vec<ReceivedMessage> {
        let mut all = Vec::new();
        for _ in 0..100_000 {
            let got = self.receive(topic, group, 1024);
            if got.is_empty() {
                break;
            }
            let receipts: Vec<_> = got.iter().map(|m| m.receipt_handle).collect();
            for r in self.e().ack_batch(topic, group, receipts) {
                r.expect("ack");
            }
            all.extend(got);
        }
        all
    }
}

pub fn delay_msg(topic: &str, at: u64, body: &str) -> NewMessage {
    NewMessage {
        topic: topic.into(),
        body: body.as_bytes().to_vec(),
        deliver_at_ms: Some(at as i64),
        ..NewMessage::default()
    }
}

pub fn normal_msg(topic: &str, body: &str) -> NewMessage {
    NewMessage {
        topic: topic.into(),
        body: body.as_bytes().to_vec(),
        ..NewMessage::default()
    }
}
