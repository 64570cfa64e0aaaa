//! The official RocketMQ 5 clients against a real daemon's gRPC port (SPEC §8): the
//! Python 5.1.2 and Node.js 1.0.8 clients, driven by the JSON-line programs in
//! `tests/rmq-clients/`, and a tonic client of `sundial-rmq-proto` where a test needs
//! exact requests (a retried send, a refusal's code).
//!
//! The clients are installed by `scripts/rocketmq-clients.sh` (run once per test
//! binary). When they cannot be installed the tests fail, unless
//! `SUNDIAL_SKIP_RMQ_CLIENTS=1` is set. Every client program runs with `--timeout` and
//! is killed when its test ends; every wait has a deadline.

use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use sundial_rmq_proto::v2::{self, messaging_service_client::MessagingServiceClient, Code};
use sundial_tests::Daemon;

// ---------------------------------------------------------------------------------
// The clients

/// Where the installed clients are.
struct Clients {
    python: PathBuf,
    node_path: PathBuf,
    rust: PathBuf,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root")
        .to_path_buf()
}

/// Runs the install script once (it is idempotent and quick when all is in place).
fn install() -> Result<Clients, String> {
    let script = repo().join("scripts/rocketmq-clients.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    // A first install downloads both clients; later runs take seconds.
    let status = wait_until(&mut child, Instant::now() + Duration::from_secs(900));
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        Some(s) => return Err(format!("{} exited with {s}: {err}", script.display())),
        None => return Err(format!("{} did not finish in 15 min", script.display())),
    }
    let value = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(PathBuf::from)
            .ok_or_else(|| format!("{} printed no {name}=: {out}{err}", script.display()))
    };
    Ok(Clients {
        python: value("RMQ_PYTHON")?,
        node_path: value("RMQ_NODE_PATH")?,
        rust: value("RMQ_RUST")?,
    })
}

/// The clients, or `None` when they are missing and skipping was asked for.
fn clients() -> Option<&'static Clients> {
    static CLIENTS: OnceLock<Result<Clients, String>> = OnceLock::new();
    match CLIENTS.get_or_init(install) {
        Ok(c) => Some(c),
        Err(e) if std::env::var("SUNDIAL_SKIP_RMQ_CLIENTS").as_deref() == Ok("1") => {
            eprintln!(
                "SKIPPED (SUNDIAL_SKIP_RMQ_CLIENTS=1): the RocketMQ clients are missing: {e}"
            );
            None
        }
        Err(e) => panic!(
            "the official RocketMQ 5 clients could not be installed, so the gRPC endpoint \
             cannot be tested against them: {e}\nRun `bash scripts/rocketmq-clients.sh` \
             (it needs network access once), or set SUNDIAL_SKIP_RMQ_CLIENTS=1 to skip \
             these tests."
        ),
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

/// The exit status by `deadline`, else kills the child and answers `None`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    Python,
    Node,
    /// Producer and simple consumer only (5.0.0 has no push consumer).
    Rust,
}

const BOTH: [Lang; 2] = [Lang::Python, Lang::Node];

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Node => "node",
            Lang::Rust => "rust",
        }
    }
}

/// A running client program; dropping it kills the process.
struct Prog {
    label: String,
    child: Option<Child>,
    events: Arc<Mutex<Vec<Value>>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
    deadline: Instant,
}

/// What a finished program printed.
struct Output {
    label: String,
    status: Option<ExitStatus>,
    events: Vec<Value>,
    stderr: String,
}

/// Starts `prog` (producer, simple_consumer or push_consumer) of `lang` on `endpoint`
/// with `args` (split at spaces); it ends itself after `timeout_s` seconds.
fn start(c: &Clients, lang: Lang, prog: &str, endpoint: &str, timeout_s: u64, args: &str) -> Prog {
    let dir = repo().join("tests/rmq-clients").join(lang.name());
    let mut cmd = match lang {
        Lang::Python => {
            let mut cmd = Command::new(&c.python);
            cmd.arg(dir.join(format!("{prog}.py")));
            cmd
        }
        Lang::Rust => {
            let mut cmd = Command::new(&c.rust);
            cmd.arg(prog);
            cmd
        }
        Lang::Node => {
            let mut cmd = Command::new("node");
            cmd.arg(dir.join(format!("{prog}.js")))
                .env("NODE_PATH", &c.node_path);
            cmd
        }
    };
    let timeout = timeout_s.to_string();
    cmd.args(["--endpoint", endpoint, "--timeout", &timeout])
        .args(args.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let label = format!("{} {prog} {args}", lang.name());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
    let events = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("stdout");
    let reader = {
        let events = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"event": "unparsed", "line": line}));
                // When the test saw it, by the same wall clock as the daemon's.
                v["seen_ms"] = now_ms().into();
                events.lock().expect("events").push(v);
            }
        })
    };
    let stderr = drain(child.stderr.take());
    Prog {
        label,
        child: Some(child),
        events,
        reader: Some(reader),
        stderr: Some(stderr),
        // The program's own watchdog fires at `timeout_s`; this is the backstop.
        deadline: Instant::now() + Duration::from_secs(timeout_s + 15),
    }
}

impl Prog {
    /// The first event matching `pred` within `limit`.
    fn wait_for(&self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = self.events.lock().expect("events").iter().find(|v| pred(v)) {
                return Some(v.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit (killing the program at its deadline) and collects its output.
    fn finish(mut self) -> Output {
        let mut child = self.child.take().expect("running");
        let status = wait_until(&mut child, self.deadline);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let events = std::mem::take(&mut *self.events.lock().expect("events"));
        Output {
            label: self.label.clone(),
            status,
            events,
            stderr,
        }
    }
}

impl Drop for Prog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Output {
    fn all(&self, event: &str) -> Vec<&Value> {
        self.events.iter().filter(|v| v["event"] == event).collect()
    }

    /// The one event of this kind.
    fn only(&self, event: &str) -> &Value {
        let all = self.all(event);
        assert_eq!(all.len(), 1, "expected one {event} event:\n{self}");
        all[0]
    }

    /// Asserts a clean run: exit status 0, no error event.
    fn ok(&self) -> &Self {
        assert!(
            self.status.is_some_and(|s| s.success()) && self.all("error").is_empty(),
            "the client program failed:\n{self}"
        );
        self
    }

    /// Asserts that the run failed at `stage` and returns the first such error.
    fn failed_at(&self, stage: &str) -> &Value {
        assert_eq!(
            self.status.and_then(|s| s.code()),
            Some(1),
            "expected exit status 1 (errors):\n{self}"
        );
        self.all("error")
            .into_iter()
            .find(|e| e["stage"] == stage)
            .unwrap_or_else(|| panic!("no error at stage {stage}:\n{self}"))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[{}] exit {:?}", self.label, self.status)?;
        for e in &self.events {
            writeln!(f, "  {e}")?;
        }
        let tail: Vec<&str> = self.stderr.lines().rev().take(30).collect();
        for l in tail.into_iter().rev() {
            writeln!(f, "  stderr: {l}")?;
        }
        Ok(())
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

// ---------------------------------------------------------------------------------
// The daemon

/// A daemon on a temporary directory (the daemon goes first when dropped).
struct Env {
    d: Daemon,
    flags: Vec<String>,
    dir: tempfile::TempDir,
}

fn daemon(flags: &[&str]) -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = Daemon::start(&dir.path().join("data"), flags);
    assert!(
        d.grpc_addr.is_some(),
        "the gRPC port is off: {}",
        d.log_text()
    );
    Env {
        d,
        flags: flags.iter().map(|f| f.to_string()).collect(),
        dir,
    }
}

impl Env {
    fn ep(&self) -> String {
        self.d.grpc_addr.clone().expect("gRPC address")
    }

    /// Stops the daemon (SIGTERM) and starts it again on the same directory and port.
    fn restart(&mut self) {
        let status = self.d.stop();
        assert!(status.success(), "stop: {status}: {}", self.d.log_text());
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.d = Daemon::start_on(&self.dir.path().join("data"), &self.d.addr, &flags);
    }

    /// `sundial ARGS --json`, which must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let (ok, v) = self.try_json(args);
        assert!(ok, "sundial {args:?} failed: {v}");
        v
    }

    /// `sundial ARGS --json`: (success, output).
    fn try_json(&self, args: &[&str]) -> (bool, Value) {
        let mut a = args.to_vec();
        a.push("--json");
        if self.flags.iter().any(|f| f == "--token") {
            a.extend(["--token", "t"]);
        }
        let (status, out, err) = self.d.cli(&a);
        let v = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("sundial {args:?}: {e}: {out:?} {err}"));
        (status.success(), v)
    }

    fn topic(&self, name: &str, kind: &str) {
        self.json(&["topic", "create", name, "--type", kind]);
    }

    /// A group that starts at the beginning of the topic, so no message can pass it by
    /// before its first receive.
    fn group(&self, group: &str, topic: &str) {
        self.json(&[
            "group", "create", group, "--topic", topic, "--from", "earliest",
        ]);
    }

    /// The topic's counters, read now (`sundial stats` reuses a report for 250 ms;
    /// `topic show` does not).
    fn topic_stats(&self, topic: &str) -> Value {
        self.json(&["topic", "show", topic])
    }

    fn group_stats(&self, topic: &str, group: &str) -> Value {
        let t = self.topic_stats(topic);
        t["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["group"] == group))
            .cloned()
            .unwrap_or_else(|| panic!("no group {group} in {t}"))
    }

    /// Polls the group's counters until `pred` holds (≤ `limit`).
    fn group_until(
        &self,
        topic: &str,
        group: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let g = self.group_stats(topic, group);
            if pred(&g) {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "group {group} of {topic} stayed at {g}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The sundial id of the message its RocketMQ client named `rmq_id`.
    fn find(&self, topic: &str, key: &str) -> Vec<String> {
        let v = self.json(&["message", "find", "--topic", topic, "--key", key]);
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(|i| s(i).to_string())
            .collect()
    }

    /// Asserts that nothing was ever stored in `topic`: no send counted, nothing timing
    /// or ready, and a native receive from the beginning finds nothing.
    fn assert_nothing_stored(&self, topic: &str) {
        let t = self.topic_stats(topic);
        assert_eq!(
            (n(&t["sent"]), n(&t["timing"]), n(&t["ready_total"])),
            (0, 0, 0),
            "{topic} holds messages: {t}"
        );
        self.group("inspect", topic);
        let got = self.json(&["receive", topic, "--group", "inspect", "--wait", "500ms"]);
        assert_eq!(got, serde_json::json!([]), "{topic} delivered something");
    }
}

/// Asserts one received event: the message sent, in full, at its time or later.
#[allow(clippy::too_many_arguments)]
fn assert_delivery(
    got: &Value,
    id: &str,
    body: &str,
    tag: &str,
    keys: &[&str],
    property: (&str, &str),
    deliver_at_ms: u64,
    attempt: u64,
) {
    assert_eq!(got["message_id"], id, "{got}");
    assert_eq!(got["body"], body, "{got}");
    assert_eq!(got["tag"], tag, "{got}");
    assert_eq!(got["keys"], serde_json::json!(keys), "{got}");
    assert_eq!(got["properties"][property.0], property.1, "{got}");
    assert!(
        got["properties"].get("UNIQ_KEY").is_none(),
        "a system property leaked into the user properties: {got}"
    );
    assert_eq!(n(&got["delivery_attempt"]), attempt, "{got}");
    assert_eq!(n(&got["delivery_timestamp_ms"]), deliver_at_ms, "{got}");
    assert_eq!(got["corrupted"], false, "{got}");
    // Never early, by the wall clock (the daemon's clock).
    let at = n(&got["receive_time_ms"]);
    assert!(
        at >= deliver_at_ms,
        "received {} ms early: {got}",
        deliver_at_ms - at
    );
    // And not absurdly late either (a loaded machine, a client's long poll).
    assert!(
        at - deliver_at_ms < 5_000,
        "received {} ms late: {got}",
        at - deliver_at_ms
    );
}

// ---------------------------------------------------------------------------------
// The example: a delay message with tag, keys and a property; a SimpleConsumer that
// receives and acks, a PushConsumer whose listener returns SUCCESS (two groups, so
// each gets the message).

fn example(lang: Lang) {
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    let ep = env.ep();
    env.topic("orders", "delay");
    env.group("billing", "orders");
    env.group("shipping", "orders");
    let body = format!("order-42-from-{}", lang.name());

    let simple = start(
        c,
        lang,
        "simple_consumer",
        &ep,
        40,
        "--topic orders --group billing --await-seconds 5 --invisible-seconds 30",
    );
    let push = start(
        c,
        lang,
        "push_consumer",
        &ep,
        40,
        "--topic orders --group shipping --result success --linger 2",
    );
    let producer = start(
        c,
        lang,
        "producer",
        &ep,
        30,
        &format!(
            "--topic orders --tag TagA --keys order-42,customer-7 --property region=eu \
         --delay-ms 3000 --body {body}"
        ),
    );

    let p = producer.finish();
    p.ok();
    let sent = p.only("sent");
    let id = s(&sent["message_id"]).to_string();
    let at = n(&sent["deliver_at_ms"]);
    assert!(
        !id.is_empty() && !s(&sent["recall_handle"]).is_empty(),
        "{p}"
    );
    assert!(
        n(&sent["send_time_ms"]) < at,
        "the message was not sent ahead of its time: {p}"
    );

    // Stored once, findable by the client's id, Ready at its time and not before.
    let sid = env.find("orders", &id);
    assert_eq!(sid.len(), 1, "{sid:?}");
    let shown = env.json(&["message", "show", &sid[0]]);
    assert_eq!(n(&shown["deliver_at_ms"]), at, "{shown}");

    let keys = ["customer-7", "order-42"];
    let s_out = simple.finish();
    s_out.ok();
    assert_delivery(
        s_out.only("received"),
        &id,
        &body,
        "TagA",
        &keys,
        ("region", "eu"),
        at,
        1,
    );
    assert_eq!(s_out.only("acked")["message_id"], id.as_str(), "{s_out}");

    let p_out = push.finish();
    p_out.ok();
    let got = p_out.only("received");
    assert_delivery(got, &id, &body, "TagA", &keys, ("region", "eu"), at, 1);
    assert_eq!(got["result"], "success");

    // Both groups acked; nothing left in flight or redelivered.
    for g in ["billing", "shipping"] {
        let st = env.group_until("orders", g, Duration::from_secs(5), |g| n(&g["acked"]) == 1);
        assert_eq!((n(&st["inflight"]), n(&st["redelivered"])), (0, 0), "{st}");
    }
    let shown = env.json(&["message", "show", &sid[0]]);
    assert!(n(&shown["ready_at_ms"]) >= at, "Ready early: {shown}");
    assert_eq!(env.json(&["stats"])["early_deliveries"], 0);
}

#[test]
fn python_example_delay_message_to_simple_and_push_consumers() {
    example(Lang::Python);
}

#[test]
fn node_example_delay_message_to_simple_and_push_consumers() {
    example(Lang::Node);
}

/// The Rust client's example: Producer and SimpleConsumer (its API takes and gives
/// whole seconds), with a Python PushConsumer on a second group as the other side.
#[test]
fn rust_example_delay_message_to_simple_and_push_consumers() {
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    let ep = env.ep();
    env.topic("orders", "delay");
    env.group("billing", "orders");
    env.group("shipping", "orders");
    let simple = start(
        c,
        Lang::Rust,
        "simple_consumer",
        &ep,
        40,
        "--topic orders --group billing",
    );
    let push = start(
        c,
        Lang::Python,
        "push_consumer",
        &ep,
        40,
        "--topic orders --group shipping --linger 2",
    );
    let producer = start(
        c,
        Lang::Rust,
        "producer",
        &ep,
        30,
        "--topic orders --tag TagA --keys order-42,customer-7 --property region=eu \
         --delay-ms 3000 --body order-42-from-rust",
    );
    let p = producer.finish();
    p.ok();
    let sent = p.only("sent");
    let id = s(&sent["message_id"]).to_string();
    let at = n(&sent["deliver_at_ms"]);
    assert!(
        n(&sent["send_time_ms"]) < at,
        "not sent ahead of its time: {p}"
    );
    assert_eq!(env.find("orders", &id).len(), 1);

    let out = simple.finish();
    out.ok();
    let got = out.only("received");
    assert_eq!(got["message_id"], id.as_str(), "{out}");
    assert_eq!(got["body"], "order-42-from-rust", "{out}");
    assert_eq!(got["tag"], "TagA", "{out}");
    assert_eq!(
        got["keys"],
        serde_json::json!(["customer-7", "order-42"]),
        "{out}"
    );
    assert_eq!(got["properties"]["region"], "eu", "{out}");
    assert_eq!(n(&got["delivery_attempt"]), 1, "{out}");
    assert_eq!(n(&got["delivery_timestamp_s"]) * 1000, at, "{out}");
    let t = n(&got["receive_time_ms"]);
    assert!(
        (at..at + 5_000).contains(&t),
        "received at {t}, due {at}: {out}"
    );
    assert_eq!(out.only("acked")["message_id"], id.as_str());

    let out = push.finish();
    out.ok();
    let keys = ["customer-7", "order-42"];
    let body = "order-42-from-rust";
    assert_delivery(
        out.only("received"),
        &id,
        body,
        "TagA",
        &keys,
        ("region", "eu"),
        at,
        1,
    );
    for g in ["billing", "shipping"] {
        env.group_until("orders", g, Duration::from_secs(5), |g| n(&g["acked"]) == 1);
    }
}

// ---------------------------------------------------------------------------------
// Invisibility: a message not acked comes back with attempt 2; a changed invisible
// duration holds, and the ack goes with the new handle.

#[test]
fn unacked_message_comes_back_with_attempt_2() {
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    let ep = env.ep();
    let mut runs = Vec::new();
    for lang in BOTH {
        let topic = format!("jobs-{}", lang.name());
        env.topic(&topic, "delay");
        env.group("workers", &topic);
        let consumer = start(
            c,
            lang,
            "simple_consumer",
            &ep,
            40,
            &format!(
                "--topic {topic} --group workers --mode redeliver --invisible-seconds 2 \
             --await-seconds 3"
            ),
        );
        let r = env.json(&["send", &topic, "--delay", "200ms", "--body", "job 1"]);
        runs.push((lang, topic, consumer, s(&r["message_id"]).to_string()));
    }
    for (lang, topic, consumer, id) in runs {
        let out = consumer.finish();
        out.ok();
        let got = out.all("received");
        assert_eq!(got.len(), 2, "{lang:?}: {out}");
        assert!(
            got.iter()
                .all(|g| g["message_id"] == id.as_str() && g["body"] == "job 1"),
            "{out}"
        );
        assert_eq!(
            got.iter()
                .map(|g| n(&g["delivery_attempt"]))
                .collect::<Vec<_>>(),
            vec![1, 2],
            "{out}"
        );
        // Invisible for 2 s (the first event is printed a little after the server's
        // receive, hence the slack).
        let gap = n(&got[1]["receive_time_ms"]) - n(&got[0]["receive_time_ms"]);
        assert!(gap >= 1_800, "{lang:?}: redelivered after {gap} ms: {out}");
        assert_eq!(out.only("acked")["message_id"], id.as_str());
        let st = env.group_until(&topic, "workers", Duration::from_secs(5), |g| {
            n(&g["acked"]) == 1
        });
        assert_eq!(
            (n(&st["redelivered"]), n(&st["inflight"])),
            (1, 0),
            "{lang:?}: {st}"
        );
    }
}

#[test]
fn changed_invisible_duration_holds_and_the_new_handle_acks() {
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    // Each client on its own topic, checked on its own thread: the check must fall
    // between that client's change and its ack.
    std::thread::scope(|scope| {
        for lang in BOTH {
            let env = &env;
            scope.spawn(move || change_then_ack(env, c, lang));
        }
    });
}

fn change_then_ack(env: &Env, c: &Clients, lang: Lang) {
    let topic = format!("jobs-{}", lang.name());
    env.topic(&topic, "delay");
    env.group("workers", &topic);
    // Received for 2 s, changed to 10 s, acked 3 s after the change: past the first
    // duration, so only the changed one keeps the message (and the new handle) valid.
    let consumer = start(
        c,
        lang,
        "simple_consumer",
        &env.ep(),
        40,
        &format!(
            "--topic {topic} --group workers --mode change-invisible --invisible-seconds 2 \
             --new-invisible-seconds 10 --ack-delay-seconds 3 --await-seconds 3"
        ),
    );
    let r = env.json(&["send", &topic, "--delay", "200ms", "--body", "job 2"]);
    let id = s(&r["message_id"]).to_string();
    let changed = consumer.wait_for(Duration::from_secs(30), |v| {
        v["event"] == "changed" || v["event"] == "done"
    });
    let changed = changed.unwrap_or_else(|| panic!("{lang:?}: no change"));
    assert_eq!(changed["event"], "changed", "{lang:?}: {changed}");
    // Between the change and the ack the server holds the message for 10 s from the
    // change.
    let shown = env.json(&["message", "show", &id]);
    let g = &shown["groups"][0];
    assert_eq!(g["state"], "Inflight", "{lang:?}: {shown}");
    let visible_at = n(&g["visible_at_ms"]);
    let t = n(&changed["change_time_ms"]);
    assert!(
        (t + 10_000..t + 11_000).contains(&visible_at),
        "{lang:?}: visible again at {visible_at}, change at {t}: {shown}"
    );
    let out = consumer.finish();
    out.ok();
    assert_eq!(out.only("received")["message_id"], id.as_str(), "{out}");
    let acked = out.only("acked");
    assert_eq!(acked["message_id"], id.as_str());
    assert!(n(&acked["seen_ms"]) >= t + 3_000, "{out}");
    let st = env.group_until(&topic, "workers", Duration::from_secs(5), |g| {
        n(&g["acked"]) == 1
    });
    assert_eq!(
        (n(&st["redelivered"]), n(&st["inflight"])),
        (0, 0),
        "{lang:?}: {st}"
    );
}

// ---------------------------------------------------------------------------------
// Delivery times: past, beyond the maximum (both policies), milliseconds given as
// seconds.

/// Sends one message with each client to its own topic with `producer_args`, a simple
/// consumer per topic running; answers the outputs per language.
fn send_and_receive(
    env: &Env,
    c: &Clients,
    producer_args: &str,
) -> Vec<(Lang, String, Output, Output)> {
    let ep = env.ep();
    let mut runs = Vec::new();
    for lang in BOTH {
        let topic = format!("t-{}", lang.name());
        env.topic(&topic, "delay");
        env.group("g", &topic);
        let consumer = start(
            c,
            lang,
            "simple_consumer",
            &ep,
            30,
            &format!("--topic {topic} --group g --await-seconds 3"),
        );
        let producer = start(
            c,
            lang,
            "producer",
            &ep,
            30,
            &format!("--topic {topic} {producer_args}"),
        );
        runs.push((lang, topic, consumer, producer));
    }
    runs.into_iter()
        .map(|(lang, topic, consumer, producer)| {
            (lang, topic, producer.finish(), consumer.finish())
        })
        .collect()
}

/// Asserts that the message was delivered at once: within 3 s of the later of its send
/// and the consumer's start.
fn assert_at_once(producer: &Output, consumer: &Output) -> (String, u64) {
    producer.ok();
    consumer.ok();
    let sent = producer.only("sent");
    let got = consumer.only("received");
    assert_eq!(
        got["message_id"], sent["message_id"],
        "{producer}{consumer}"
    );
    assert_eq!(n(&got["delivery_attempt"]), 1);
    let ready = n(&sent["send_time_ms"]).max(n(&consumer.only("started")["seen_ms"]));
    let at = n(&got["receive_time_ms"]);
    assert!(
        at < ready + 3_000,
        "received {} ms after it could be: {producer}{consumer}",
        at - ready
    );
    (
        s(&sent["message_id"]).to_string(),
        n(&sent["deliver_at_ms"]),
    )
}

#[test]
fn past_delivery_time_is_delivered_at_once() {
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    for (lang, topic, p, con) in send_and_receive(&env, c, "--delay-ms=-60000 --body late") {
        let (id, asked) = assert_at_once(&p, &con);
        assert!(
            asked + 55_000 < n(&p.only("sent")["send_time_ms"]),
            "{lang:?}: {p}"
        );
        let sid = env.find(&topic, &id);
        let shown = env.json(&["message", "show", &sid[0]]);
        assert_eq!(shown["state"], "Ready", "{lang:?}: {shown}");
    }
}

#[test]
fn over_max_delay_is_delivered_now_by_default() {
    let Some(c) = clients() else { return };
    let env = daemon(&["--max-delay", "1h"]);
    for (lang, topic, p, con) in send_and_receive(&env, c, "--delay-ms 7200000 --body 2h") {
        let (id, asked) = assert_at_once(&p, &con);
        let sid = env.find(&topic, &id);
        assert_eq!(sid.len(), 1, "{lang:?}: {sid:?}");
        let shown = env.json(&["message", "show", &sid[0]]);
        assert_eq!(shown["adjusted"], true, "{lang:?}: {shown}");
        assert!(
            n(&shown["deliver_at_ms"]) + 3_600_000 < asked,
            "{lang:?}: {shown}"
        );
    }
}

/// Runs each client's producer with `args` on its own topic and asserts that the send
/// failed with `code` in the error and nothing was stored.
fn refused_send(env: &Env, c: &Clients, args: &str, code: &str) {
    let ep = env.ep();
    let mut runs = Vec::new();
    for lang in BOTH {
        let topic = format!("t-{}", lang.name());
        env.topic(&topic, "delay");
        let p = start(
            c,
            lang,
            "producer",
            &ep,
            30,
            &format!("--topic {topic} {args}"),
        );
        runs.push((lang, topic, p));
    }
    for (lang, topic, p) in runs {
        let out = p.finish();
        let e = out.failed_at("send");
        assert!(
            s(&e["message"]).contains(code),
            "{lang:?}: not {code}: {out}"
        );
        assert!(out.all("sent").is_empty(), "{out}");
        env.assert_nothing_stored(&topic);
    }
}

#[test]
fn over_max_delay_is_refused_with_the_reject_policy() {
    let Some(c) = clients() else { return };
    let env = daemon(&["--max-delay", "1h", "--over-max-delay", "reject"]);
    refused_send(&env, c, "--delay-ms 7200000", "40012");
}

#[test]
fn milliseconds_given_as_seconds_are_refused() {
    let Some(c) = clients() else { return };
    // Default policy deliver-now: an absurd time must still not be delivered now.
    let env = daemon(&[]);
    refused_send(&env, c, "--mode ms-as-seconds --delay-ms 5000", "40012");
}

#[test]
fn normal_message_to_delay_topic_is_refused_by_the_clients() {
    // Both clients check the route's accepted message types before any RPC
    // (Python: IllegalArgumentException, Node: TypeError); the server's own refusal is
    // in `server_side_refusals_carry_their_codes`.
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    let ep = env.ep();
    let mut runs = Vec::new();
    for lang in BOTH {
        let topic = format!("t-{}", lang.name());
        env.topic(&topic, "delay");
        let p = start(
            c,
            lang,
            "producer",
            &ep,
            30,
            &format!("--topic {topic} --mode normal"),
        );
        runs.push((lang, topic, p));
    }
    for (lang, topic, p) in runs {
        let out = p.finish();
        let e = out.failed_at("send");
        let class = match lang {
            Lang::Python => "IllegalArgumentException",
            Lang::Node | Lang::Rust => "TypeError",
        };
        assert_eq!(e["class"], class, "{out}");
        env.assert_nothing_stored(&topic);
    }
}

#[test]
fn recall_cancels_a_timing_message() {
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    let ep = env.ep();
    let mut runs = Vec::new();
    for lang in BOTH {
        let topic = format!("t-{}", lang.name());
        env.topic(&topic, "delay");
        let p = start(
            c,
            lang,
            "producer",
            &ep,
            30,
            &format!("--topic {topic} --mode recall --delay-ms 60000"),
        );
        runs.push((lang, topic, p));
    }
    for (lang, topic, p) in runs {
        let out = p.finish();
        out.ok();
        let sent = out.only("sent");
        assert_eq!(
            out.only("recalled")["message_id"],
            sent["message_id"],
            "{lang:?}: {out}"
        );
        let t = env.topic_stats(&topic);
        assert_eq!(
            (n(&t["sent"]), n(&t["recalled"]), n(&t["timing"])),
            (1, 1, 0),
            "{lang:?}: {t}"
        );
        // The handle is spent: the native port says so too.
        let (ok, v) = env.try_json(&["recall", s(&sent["recall_handle"])]);
        assert!(!ok && v["error"] == "NotFound", "{lang:?}: {v}");
    }
}

// ---------------------------------------------------------------------------------
// Dead letters: a push listener that keeps failing.

#[test]
fn failing_push_listener_ends_in_the_dead_letter_topic() {
    let Some(c) = clients() else { return };
    let env = daemon(&["--max-delivery-attempts", "3", "--retry-backoff", "1s"]);
    let ep = env.ep();
    let mut runs = Vec::new();
    for lang in BOTH {
        let topic = format!("t-{}", lang.name());
        let group = format!("workers-{}", lang.name());
        env.topic(&topic, "delay");
        env.group(&group, &topic);
        // Three deliveries, and the time for a fourth that must not come.
        let push = start(
            c,
            lang,
            "push_consumer",
            &ep,
            40,
            &format!("--topic {topic} --group {group} --result failure --expect 3 --linger 3"),
        );
        let body = format!("poison for {}", lang.name());
        let r = env.json(&["send", &topic, "--delay", "100ms", "--body", &body]);
        runs.push((
            lang,
            topic,
            group,
            push,
            body,
            s(&r["message_id"]).to_string(),
        ));
    }
    for (lang, topic, group, push, body, id) in runs {
        let out = push.finish();
        out.ok();
        let got = out.all("received");
        assert_eq!(
            got.iter()
                .map(|g| n(&g["delivery_attempt"]))
                .collect::<Vec<_>>(),
            vec![1, 2, 3],
            "{lang:?}: {out}"
        );
        assert!(got
            .iter()
            .all(|g| g["message_id"] == id.as_str() && g["result"] == "failure"));
        let st = env.group_until(&topic, &group, Duration::from_secs(10), |g| {
            n(&g["dead_lettered"]) == 1
        });
        assert_eq!((n(&st["acked"]), n(&st["inflight"])), (0, 0), "{st}");
        let dlq = format!("%DLQ%{group}");
        env.group("inspect", &dlq);
        let dead = env.json(&["receive", &dlq, "--group", "inspect", "--wait", "5s"]);
        let dead = dead.as_array().expect("a list");
        assert_eq!(dead.len(), 1, "{lang:?}: {dead:?}");
        assert_eq!(dead[0]["body"], body.as_str(), "{dead:?}");
    }
}

// ---------------------------------------------------------------------------------
// Interop with the native port, and a restart.

#[test]
fn grpc_sent_messages_are_received_natively() {
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    let ep = env.ep();
    env.topic("mixed", "delay");
    env.group("native", "mixed");
    let producers: Vec<_> = BOTH
        .iter()
        .map(|lang| {
            let body = format!("to-native-from-{}", lang.name());
            let p = start(
                c,
                *lang,
                "producer",
                &ep,
                30,
                &format!(
                    "--topic mixed --tag TagI --keys ik --property from=rmq --delay-ms 1500 \
                 --body {body}"
                ),
            );
            (*lang, body, p)
        })
        .collect();
    let mut sent = Vec::new();
    for (lang, body, p) in producers {
        let out = p.finish();
        out.ok();
        let e = out.only("sent");
        sent.push((
            lang,
            body,
            s(&e["message_id"]).to_string(),
            n(&e["deliver_at_ms"]),
        ));
    }
    let mut got: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 2 && Instant::now() < deadline {
        let v = env.json(&["receive", "mixed", "--group", "native", "--wait", "5s"]);
        let now = now_ms();
        for m in v.as_array().expect("a list") {
            // Never early: it was handed out at or after its time.
            assert!(now >= n(&m["deliver_at_ms"]), "early: {m}");
            got.push(m.clone());
        }
    }
    assert_eq!(got.len(), 2, "{got:?}");
    for (lang, body, rmq_id, at) in sent {
        let m = got
            .iter()
            .find(|m| m["properties"]["UNIQ_KEY"] == rmq_id.as_str())
            .unwrap_or_else(|| panic!("{lang:?}: {rmq_id} not received natively: {got:?}"));
        assert_eq!(m["body"], body.as_str(), "{m}");
        assert_eq!(m["tag"], "TagI", "{m}");
        assert_eq!(m["properties"]["from"], "rmq", "{m}");
        assert!(
            m["keys"].as_array().expect("keys").contains(&"ik".into()),
            "{m}"
        );
        assert_eq!(n(&m["deliver_at_ms"]), at, "{m}");
        assert!(n(&m["ready_at_ms"]) >= at, "{m}");
        assert_eq!(n(&m["delivery_attempt"]), 1, "{m}");
        assert_eq!(
            env.find("mixed", &rmq_id),
            vec![s(&m["message_id"]).to_string()]
        );
    }
}

#[test]
fn native_sent_message_is_received_by_both_clients() {
    let Some(c) = clients() else { return };
    let env = daemon(&[]);
    let ep = env.ep();
    env.topic("native", "delay");
    let consumers: Vec<_> = BOTH
        .iter()
        .map(|lang| {
            env.group(lang.name(), "native");
            let p = start(
                c,
                *lang,
                "simple_consumer",
                &ep,
                30,
                &format!("--topic native --group {} --await-seconds 5", lang.name()),
            );
            (*lang, p)
        })
        .collect();
    let r = env.json(&[
        "send",
        "native",
        "--delay",
        "1500ms",
        "--tag",
        "TagN",
        "--keys",
        "nk1,nk2",
        "--property",
        "from=native",
        "--body",
        "from the native port",
    ]);
    let id = s(&r["message_id"]);
    assert_eq!(id.len(), 32, "{r}");
    let at = n(&r["deliver_at_ms"]);
    for (lang, p) in consumers {
        let out = p.finish();
        out.ok();
        let got = out.only("received");
        assert_delivery(
            got,
            id,
            "from the native port",
            "TagN",
            &["nk1", "nk2"],
            ("from", "native"),
            at,
            1,
        );
        assert_eq!(out.only("acked")["message_id"], id, "{lang:?}");
    }
}

#[test]
fn pending_grpc_messages_are_delivered_once_after_a_restart() {
    let Some(c) = clients() else { return };
    let mut env = daemon(&[]);
    env.topic("later", "delay");
    env.group("g", "later");
    let p = start(
        c,
        Lang::Python,
        "producer",
        &env.ep(),
        30,
        "--topic later --count 3 --delay-ms 4000 --body survivor",
    );
    let out = p.finish();
    out.ok();
    let sent: Vec<(String, u64)> = out
        .all("sent")
        .iter()
        .map(|e| (s(&e["message_id"]).to_string(), n(&e["deliver_at_ms"])))
        .collect();
    assert_eq!(sent.len(), 3, "{out}");
    let t = env.topic_stats("later");
    assert_eq!(n(&t["timing"]), 3, "not pending before the restart: {t}");

    env.restart();
    let consumer = start(
        c,
        Lang::Python,
        "simple_consumer",
        &env.ep(),
        30,
        "--topic later --group g --expect 3 --await-seconds 5",
    );
    let out = consumer.finish();
    out.ok();
    let got = out.all("received");
    assert_eq!(got.len(), 3, "{out}");
    let ids: BTreeSet<&str> = got.iter().map(|g| s(&g["message_id"])).collect();
    let want: BTreeSet<&str> = sent.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, want, "{out}");
    for g in got {
        let (_, at) = sent
            .iter()
            .find(|(i, _)| g["message_id"] == i.as_str())
            .expect("sent");
        assert!(
            n(&g["receive_time_ms"]) >= *at,
            "early after the restart: {g}"
        );
        assert_eq!(n(&g["delivery_attempt"]), 1, "{g}");
        assert_eq!(g["body"], "survivor");
    }
    // Once: three stored, three Ready, three acked, none again.
    let st = env.group_until("later", "g", Duration::from_secs(5), |g| {
        n(&g["acked"]) == 3
    });
    assert_eq!(
        (n(&st["redelivered"]), n(&st["inflight"]), n(&st["ready"])),
        (0, 0, 0),
        "{st}"
    );
    let t = env.topic_stats("later");
    assert_eq!((n(&t["sent"]), n(&t["ready_total"])), (3, 3), "{t}");
}

// ---------------------------------------------------------------------------------
// Exact requests with a tonic client.

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(ep: &str) -> MessagingServiceClient<tonic::transport::Channel> {
    MessagingServiceClient::connect(format!("http://{ep}"))
        .await
        .expect("connect to the gRPC port")
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    sundial_rmq_proto::time::timestamp_of_ms(ms)
}

/// A message as a producer sends it: `deliver_at` None for a NORMAL one.
fn message(topic: &str, id: &str, deliver_at: Option<prost_types::Timestamp>) -> v2::Message {
    let kind = if deliver_at.is_some() {
        v2::MessageType::Delay
    } else {
        v2::MessageType::Normal
    };
    v2::Message {
        topic: Some(v2::Resource {
            resource_namespace: String::new(),
            name: topic.into(),
        }),
        user_properties: Default::default(),
        system_properties: Some(v2::SystemProperties {
            tag: Some("TagD".into()),
            keys: vec!["dk".into()],
            message_id: id.into(),
            body_encoding: v2::Encoding::Identity as i32,
            message_type: kind as i32,
            born_timestamp: Some(timestamp(now_ms() as i64)),
            born_host: "127.0.0.1".into(),
            delivery_timestamp: deliver_at,
            ..Default::default()
        }),
        body: format!("body of {id}").into_bytes(),
    }
}

/// One SendMessage of `m`: (top-level code, the entry).
async fn send(
    client: &mut MessagingServiceClient<tonic::transport::Channel>,
    m: v2::Message,
) -> (i32, v2::SendResultEntry) {
    let r = client
        .send_message(v2::SendMessageRequest { messages: vec![m] })
        .await
        .expect("SendMessage answered")
        .into_inner();
    let code = r.status.expect("a status").code;
    assert_eq!(r.entries.len(), 1, "{:?}", r.entries);
    (code, r.entries.into_iter().next().expect("one entry"))
}

#[test]
fn a_retried_send_is_stored_once_also_across_a_restart() {
    let mut env = daemon(&[]);
    env.topic("dedupe", "delay");
    let rt = runtime();
    let in_a_minute = || Some(timestamp(now_ms() as i64 + 60_000));
    let first_id = "01AABBCCDDEEFF00010000000100000001";
    let (first, other) = rt.block_on(async {
        let mut cl = connect(&env.ep()).await;
        let (code, a) = send(&mut cl, message("dedupe", first_id, in_a_minute())).await;
        assert_eq!(code, Code::Ok as i32, "{a:?}");
        assert!(!a.recall_handle.is_empty(), "{a:?}");
        assert_eq!(a.message_id, first_id);
        // The same id again, as a client retries: the first receipt, not a second copy.
        let (code, b) = send(&mut cl, message("dedupe", first_id, in_a_minute())).await;
        assert_eq!(code, Code::Ok as i32, "{b:?}");
        assert_eq!(b.recall_handle, a.recall_handle);
        assert_eq!(b.message_id, first_id);
        // Two at once with a new id: serialised, still one copy.
        let other_id = "01AABBCCDDEEFF00010000000100000002";
        let mut cl2 = cl.clone();
        let (x, y) = tokio::join!(
            send(&mut cl, message("dedupe", other_id, in_a_minute())),
            send(&mut cl2, message("dedupe", other_id, in_a_minute())),
        );
        assert_eq!((x.0, y.0), (Code::Ok as i32, Code::Ok as i32));
        assert_eq!(x.1.recall_handle, y.1.recall_handle);
        assert_ne!(x.1.recall_handle, a.recall_handle);
        (a, x.1)
    });
    assert_eq!(env.find("dedupe", first_id).len(), 1);
    assert_eq!(n(&env.topic_stats("dedupe")["sent"]), 2);

    env.restart();
    rt.block_on(async {
        let mut cl = connect(&env.ep()).await;
        for m in [&first, &other] {
            let (code, again) =
                send(&mut cl, message("dedupe", &m.message_id, in_a_minute())).await;
            assert_eq!(code, Code::Ok as i32, "{again:?}");
            assert_eq!(
                again.recall_handle, m.recall_handle,
                "a new copy after the restart"
            );
        }
    });
    let t = env.topic_stats("dedupe");
    assert_eq!((n(&t["sent"]), n(&t["timing"])), (2, 2), "{t}");
    assert_eq!(env.find("dedupe", first_id).len(), 1);
}

#[test]
fn server_side_refusals_carry_their_codes() {
    let env = daemon(&[]);
    env.topic("delays", "delay");
    env.topic("plain", "normal");
    let rt = runtime();
    rt.block_on(async {
        let mut cl = connect(&env.ep()).await;
        let cases = [
            // NORMAL to a DELAY topic and DELAY to a NORMAL one: type consistency.
            ("delays", None, Code::MessagePropertyConflictWithType),
            (
                "plain",
                Some(timestamp(now_ms() as i64 + 5_000)),
                Code::MessagePropertyConflictWithType,
            ),
            // Milliseconds in the seconds field (year ~58000), and before 1970.
            (
                "delays",
                Some(prost_types::Timestamp {
                    seconds: now_ms() as i64 + 5_000,
                    nanos: 0,
                }),
                Code::IllegalDeliveryTime,
            ),
            (
                "delays",
                Some(prost_types::Timestamp {
                    seconds: -5,
                    nanos: 0,
                }),
                Code::IllegalDeliveryTime,
            ),
            (
                "missing",
                Some(timestamp(now_ms() as i64 + 5_000)),
                Code::TopicNotFound,
            ),
        ];
        for (i, (topic, at, want)) in cases.into_iter().enumerate() {
            let id = format!("01AABBCCDDEEFF0001000000010000010{i}");
            let (code, e) = send(&mut cl, message(topic, &id, at)).await;
            assert_eq!(code, want as i32, "case {i}: {e:?}");
            assert_eq!(
                e.status.as_ref().map(|s| s.code),
                Some(want as i32),
                "case {i}"
            );
            assert!(e.recall_handle.is_empty(), "case {i}: {e:?}");
        }
    });
    for t in ["delays", "plain"] {
        env.assert_nothing_stored(t);
    }
}

// ---------------------------------------------------------------------------------
// Credentials.

#[test]
fn token_protected_daemon_requires_the_clients_credentials() {
    let Some(c) = clients() else { return };
    let env = daemon(&[
        "--token",
        "t",
        "--rmq-access-key",
        "ak",
        "--rmq-secret-key",
        "sk",
    ]);
    let ep = env.ep();
    env.topic("secure", "delay");
    env.group("g", "secure");
    let base = "--topic secure --delay-ms 1000";
    let creds = "--access-key ak --secret-key sk";
    let mut anon = Vec::new();
    let mut good = Vec::new();
    for lang in BOTH {
        // The Node client names the refusal's code only in its log (on stderr with
        // --verbose); the Python one logs to a file shared by every test.
        let verbose = if lang == Lang::Node { " --verbose" } else { "" };
        for (which, extra) in [
            ("no credentials", ""),
            ("a wrong secret", " --access-key ak --secret-key nope"),
        ] {
            let args = format!("{base}{extra}{verbose}");
            anon.push((lang, which, start(c, lang, "producer", &ep, 30, &args)));
        }
        let body = format!("signed-by-{}", lang.name());
        let signed = format!("{base} {creds} --body {body}");
        good.push((body, start(c, lang, "producer", &ep, 30, &signed)));
    }
    let consumer = start(
        c,
        Lang::Python,
        "simple_consumer",
        &ep,
        30,
        &format!("--topic secure --group g --expect 2 --await-seconds 5 {creds}"),
    );
    for (lang, which, p) in anon {
        let out = p.finish();
        assert!(
            out.all("sent").is_empty(),
            "{lang:?} {which}: sent without credentials: {out}"
        );
        // Both clients fail on the route, which they fetch before any send.
        let e = match lang {
            Lang::Python => out.failed_at("send"),
            Lang::Node | Lang::Rust => out.failed_at("startup"),
        };
        assert!(
            s(&e["message"]).contains("route"),
            "{lang:?} {which}: {out}"
        );
        if lang == Lang::Node {
            assert!(out.stderr.contains("response-code=40100"), "{which}: {out}");
        }
    }
    // The daemon refused each of them.
    let refused = env
        .d
        .metric("sundial_request_errors_total{op=\"QueryRoute\",code=\"UNAUTHORIZED\"}")
        .unwrap_or(0.0);
    assert!(refused >= 4.0, "{refused} routes refused");
    let mut ids = BTreeSet::new();
    for (body, p) in good {
        let out = p.finish();
        out.ok();
        let sent = out.only("sent");
        ids.insert((s(&sent["message_id"]).to_string(), body));
    }
    let out = consumer.finish();
    out.ok();
    let got: BTreeSet<(String, String)> = out
        .all("received")
        .iter()
        .map(|g| (s(&g["message_id"]).to_string(), s(&g["body"]).to_string()))
        .collect();
    assert_eq!(got, ids, "{out}");
    let t = env.topic_stats("secure");
    assert_eq!(n(&t["sent"]), 2, "only the signed sends are stored: {t}");

    // The refusal's code, exactly, on a request without credentials.
    let rt = runtime();
    rt.block_on(async {
        let mut cl = connect(&ep).await;
        let r = cl
            .query_route(v2::QueryRouteRequest {
                topic: Some(v2::Resource {
                    resource_namespace: String::new(),
                    name: "secure".into(),
                }),
                endpoints: None,
            })
            .await
            .expect("QueryRoute answered")
            .into_inner();
        assert_eq!(r.status.map(|s| s.code), Some(Code::Unauthorized as i32));
        assert!(r.message_queues.is_empty());
        let m = message(
            "secure",
            "01AABBCCDDEEFF00010000000100000009",
            Some(timestamp(now_ms() as i64 + 5_000)),
        );
        let r = cl
            .send_message(v2::SendMessageRequest { messages: vec![m] })
            .await
            .expect("SendMessage answered")
            .into_inner();
        assert_eq!(r.status.map(|s| s.code), Some(Code::Unauthorized as i32));
    });
    assert_eq!(n(&env.topic_stats("secure")["sent"]), 2);
}
