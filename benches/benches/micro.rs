//! Micro-benchmarks (divan): key encoding, frame and request encoding, and the pump's
//! due scan with many deleted timer keys below its watermark (the tombstone pitfall:
//! the scan must not wade through them). `cargo bench -p sundial-benches`.

use bytes::BytesMut;
use divan::{black_box, Bencher};
use std::sync::OnceLock;
use sundial_engine::{keys, Config, Engine, ManualClock, MessageId, NewMessage, TopicKind};
use sundial_wire::{decode_request, encode, Frame, FrameCodec, Inbound, OutgoingMessage, Request};
use tokio_util::codec::{Decoder, Encoder};

fn main() {
    divan::main();
}

#[divan::bench]
fn timer_key_encode_and_parse() -> Option<(u64, MessageId)> {
    let k = keys::timer(black_box(1_700_000_000_123), MessageId(black_box(42)));
    keys::parse_timer(black_box(&k))
}

#[divan::bench]
fn ready_key_encode_and_parse() -> Option<(u32, u64)> {
    let k = keys::ready(black_box(7), black_box(123_456));
    keys::parse_ready(black_box(&k))
}

#[divan::bench(args = [256, 65_536])]
fn frame_encode_decode(bencher: Bencher, payload: usize) {
    let body = bytes::Bytes::from(vec![7u8; payload]);
    let mut codec = FrameCodec::default();
    bencher.bench_local(|| {
        let mut buf = BytesMut::new();
        codec
            .encode(
                Frame {
                    request_id: 9,
                    payload: body.clone(),
                },
                &mut buf,
            )
            .expect("encode");
        match codec.decode(&mut buf) {
            Ok(Some(Inbound::Frame(f))) => f.payload.len(),
            _ => 0,
        }
    });
}

#[divan::bench(args = [1, 64])]
fn send_request_encode_decode(bencher: Bencher, messages: usize) {
    let m = OutgoingMessage::new("orders", vec![b'x'; 256])
        .deliver_at(1_900_000_000_000)
        .tag("t")
        .key("k");
    let req = Request::SendBatch(vec![m; messages]);
    bencher.bench_local(|| {
        let b = encode(black_box(&req)).expect("encode");
        decode_request(&b).map(|r| matches!(r, Request::SendBatch(_)))
    });
}

const T0: u64 = 1_700_000_000_000;

/// An engine whose timer family holds `deleted` promoted (single-deleted) keys below
/// the pump's watermark.
fn engine_with_tombstones(
    deleted: u64,
) -> (Engine, std::sync::Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let e = Engine::open(
        dir.path(),
        Config {
            clock: clock.clone(),
            background: false,
            ..Config::default()
        },
    )
    .expect("open");
    e.create_topic("t", TopicKind::Delay).expect("topic");
    let mut left = deleted;
    while left > 0 {
        let n = left.min(4096);
        let batch = (0..n)
            .map(|_| NewMessage {
                topic: "t".into(),
                body: vec![b'x'; 16],
                deliver_at_ms: Some((T0 + 1) as i64),
                ..NewMessage::default()
            })
            .collect();
        for r in e.send_batch(batch) {
            r.expect("send");
        }
        left -= n;
    }
    clock.advance(1);
    e.tick().expect("tick");
    (e, clock, dir)
}

/// A seeded engine: (deleted keys, engine, its clock, its directory).
type Seeded = (u64, Engine, std::sync::Arc<ManualClock>, tempfile::TempDir);

/// One due message, then a pump tick: the time must not grow with the deleted keys.
#[divan::bench(args = [0, 20_000, 200_000], sample_count = 50, sample_size = 1)]
fn due_scan_after_deleted_keys(bencher: Bencher, deleted: u64) {
    static ENGINES: OnceLock<std::sync::Mutex<Vec<Seeded>>> = OnceLock::new();
    let engines = ENGINES.get_or_init(Default::default);
    let mut all = engines.lock().expect("engines");
    if !all.iter().any(|x| x.0 == deleted) {
        let (e, c, d) = engine_with_tombstones(deleted);
        all.push((deleted, e, c, d));
    }
    let (_, e, clock, _) = all.iter().find(|x| x.0 == deleted).expect("engine");
    bencher
        .with_inputs(|| {
            let now = sundial_engine::Clock::now_ms(clock.as_ref());
            e.send(NewMessage {
                topic: "t".into(),
                body: vec![b'y'; 16],
                deliver_at_ms: Some((now + 1) as i64),
                ..NewMessage::default()
            })
            .expect("send");
            clock.advance(1);
        })
        .bench_local_values(|()| e.tick().expect("tick").promoted);
}
