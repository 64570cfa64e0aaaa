//! The `messages` family compresses its tables only while the stored bodies compress:
//! random bodies switch LZ4 off (in RocksDB's own options), compressible ones switch it
//! back on, and every body reads back whole either way.

mod common;
use common::*;
use rand::{Rng, SeedableRng};
use std::path::Path;
use sundial_engine::{NewMessage, TopicKind};

/// The `compression` option of the `messages` family in the newest OPTIONS file RocksDB
/// wrote in `dir`.
fn messages_compression(dir: &Path) -> String {
    let newest = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u64 = name.strip_prefix("OPTIONS-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max()
        .expect("an OPTIONS file")
        .1;
    let text = std::fs::read_to_string(newest).expect("read OPTIONS");
    let section = text
        .split("[CFOptions \"messages\"]")
        .nth(1)
        .expect("the messages family's section");
    section
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("compression="))
        .expect("a compression line")
        .to_string()
}

fn msg(at: u64, body: Vec<u8>) -> NewMessage {
    NewMessage {
        topic: "d".into(),
        body,
        deliver_at_ms: Some(at as i64),
        ..NewMessage::default()
    }
}

fn json(i: usize) -> Vec<u8> {
    format!(
        r#"{{"order":{i},"status":"pending","customer":"c-{}","currency":"EUR"}}"#,
        i % 97
    )
    .into_bytes()
}

#[test]
fn compression_follows_what_the_bodies_do() {
    let mut h = Harness::new();
    h.topic("d", TopicKind::Delay);
    h.receive("d", "g", 1);
    assert_eq!(messages_compression(h.dir.path()), "kLZ4Compression");
    let s = h.e().stats();
    assert!(s.body_compression);
    assert_eq!(s.body_compression_ratio, None);

    // Random bodies of 2 KiB: eight records fill the first sample. (With 256-byte
    // ones a record's other fields still compress, about 0.89, and RocksDB keeps such
    // blocks compressed: compression stays on.)
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for _ in 0..2 {
        let batch: Vec<_> = (0..100)
            .map(|_| {
                let mut b = vec![0u8; 2048];
                rng.fill(&mut b[..]);
                b
            })
            .collect();
        sent.extend(batch.iter().cloned());
        for r in h
            .e()
            .send_batch(batch.into_iter().map(|b| msg(T0 + 10, b)).collect())
        {
            r.expect("send");
        }
    }
    let ratio = h.e().stats().body_compression_ratio.expect("sampled");
    assert!(ratio > 0.95, "random bodies sampled at {ratio}");
    // Applied by the maintenance pass, not by the writer.
    assert!(h.e().stats().body_compression);
    h.e().maintain().expect("maintain");
    assert!(!h.e().stats().body_compression);
    assert_eq!(messages_compression(h.dir.path()), "kNoCompression");

    // JSON bodies: the next sample starts after 255 × 8 skipped messages.
    let batch: Vec<_> = (0..3_000).map(json).collect();
    sent.extend(batch.iter().cloned());
    for chunk in batch.chunks(1_000) {
        let msgs = chunk.iter().map(|b| msg(T0 + 10, b.clone())).collect();
        for r in h.e().send_batch(msgs) {
            r.expect("send");
        }
    }
    let ratio = h.e().stats().body_compression_ratio.expect("sampled");
    assert!(ratio <= 0.85, "after JSON bodies the ratio is {ratio}");
    h.e().maintain().expect("maintain");
    assert!(h.e().stats().body_compression);
    assert_eq!(messages_compression(h.dir.path()), "kLZ4Compression");

    // Every body reads back whole after a reopen, which opens with LZ4 as configured.
    h.reopen();
    assert!(h.e().stats().body_compression);
    h.advance(10);
    let got = h.drain("d", "g");
    let mut bodies: Vec<_> = got.into_iter().map(|m| m.body).collect();
    bodies.sort();
    sent.sort();
    assert_eq!(bodies.len(), sent.len());
    assert!(bodies == sent, "bodies changed on the way");
}
