//! Crash test: a child process sends under load and prints each acknowledged send;
//! the parent kills it with SIGKILL at a random moment, several rounds, then reopens
//! and checks that every acknowledged send is stored and later delivered.

use rand::Rng;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use sundial_engine::{
    Clock, Config, Engine, GroupStart, MessageId, NewMessage, ReceiveRequest, SystemClock,
    TopicKind,
};

const CHILD_ENV: &str = "SUNDIAL_CRASH_CHILD_DIR";
const ROUNDS: usize = 6;

fn child(dir: &str) {
    let engine = Engine::open(dir, Config::default()).expect("child open");
    let mut threads = Vec::new();
    for t in 0..4 {
        let e = engine.clone();
        threads.push(std::thread::spawn(move || {
            let mut rng = rand::rng();
            for i in 0..1_000_000u64 {
                let now = SystemClock.now_ms();
                let n = rng.random_range(1..40);
                let msgs: Vec<NewMessage> = (0..n)
                    .map(|_| NewMessage {
                        topic: "crash".into(),
                        body: format!("t{t}-{i}").into_bytes(),
                        deliver_at_ms: Some((now as i64) + rng.random_range(-1_000..2_500)),
                        ..NewMessage::default()
                    })
                    .collect();
                let res = e.send_batch(msgs);
                let mut out = std::io::stdout().lock();
                for r in res {
                    let r = r.expect("send");
                    let _ = writeln!(out, "ACK {} {}", r.message_id, r.deliver_at_ms);
                }
                let _ = out.flush();
                drop(out);
                // Keep the load steady but bounded, so the checks stay quick.
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn acknowledged_sends_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let quiet = Config {
        background: false,
        ..Config::default()
    };
    {
        let e = Engine::open(dir.path(), quiet.clone()).unwrap();
        e.create_topic("crash", TopicKind::Delay).unwrap();
        e.create_group("crash", "g", GroupStart::Earliest, None)
            .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut acked: HashMap<MessageId, u64> = HashMap::new();
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "acknowledged_sends_survive_sigkill",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() != Some("ACK") {
                    continue;
                }
                let (Some(id), Some(at)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if let (Ok(id), Ok(at)) = (id.parse::<MessageId>(), at.parse::<u64>()) {
                    lines.push((id, at));
                }
            }
            lines
        });
        // Wait until the child is really sending, then kill it at a random moment.
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1_500)));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "child must have been killed");
        let got = reader.join().unwrap();
        assert!(
            !got.is_empty() || start.elapsed() > Duration::from_secs(30),
            "round {round}: the child acknowledged nothing"
        );
        // Every acknowledged send is still there after the crash: the last ones before
        // the kill (the ones a lost sync would take) all, and a sample of the others;
        // the final drain below checks every one of them.
        let e = Engine::open(dir.path(), quiet.clone()).unwrap();
        let recent = got.len().saturating_sub(5_000);
        let older: Vec<MessageId> = acked.keys().copied().collect();
        for (id, _) in &got[recent..] {
            e.show(*id)
                .unwrap_or_else(|err| panic!("round {round}: acknowledged {id} lost: {err}"));
        }
        for _ in 0..older.len().min(2_000) {
            let id = older[rng.random_range(0..older.len())];
            e.show(id)
                .unwrap_or_else(|err| panic!("round {round}: acknowledged {id} lost: {err}"));
        }
        acked.extend(got);
        assert_eq!(e.stats().early_deliveries, 0);
    }
    assert!(acked.len() > 100, "only {} sends acknowledged", acked.len());
    // Let every delivery time pass, then drain: all of them arrive, none early.
    let e = Engine::open(dir.path(), quiet).unwrap();
    let last = acked.values().copied().max().unwrap();
    while SystemClock.now_ms() <= last {
        std::thread::sleep(Duration::from_millis(50));
    }
    e.tick().unwrap();
    let mut seen = HashMap::new();
    for _ in 0..100_000 {
        let got = e.receive(ReceiveRequest::new("crash", "g", 1024)).unwrap();
        if got.is_empty() {
            break;
        }
        let now = SystemClock.now_ms();
        let rs: Vec<_> = got.iter().map(|m| m.receipt_handle).collect();
        for m in got {
            assert!(m.deliver_at_ms <= now);
            seen.insert(m.message_id, m.deliver_at_ms);
        }
        for r in e.ack_batch("crash", "g", rs) {
            r.unwrap();
        }
    }
    for (id, at) in &acked {
        assert_eq!(
            seen.get(id),
            Some(at),
            "acknowledged {id} not delivered at its time"
        );
    }
    eprintln!("crash test: {ROUNDS} kills, {} acknowledged sends, {} delivered (unacknowledged sends may also appear)", acked.len(), seen.len());
}
