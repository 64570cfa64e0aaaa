//! The CLI against the real daemon: `--json` outputs parse and carry SPEC §7's fields;
//! errors print `{"error", "message"}` and exit non-zero; the readable form is a table.

use serde_json::Value;
use sundial_tests::Daemon;

fn json(d: &Daemon, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (status, out, err) = d.cli(&a);
    assert!(status.success(), "{args:?} failed: {out}{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
}

fn has(v: &Value, fields: &[&str]) {
    for f in fields {
        assert!(v.get(f).is_some(), "{f} missing from {v}");
    }
}

#[test]
fn json_outputs_carry_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let t = json(&d, &["topic", "create", "reminders", "--type", "delay"]);
    assert_eq!(t["message_type"], "DELAY");
    let g = json(
        &d,
        &[
            "group",
            "create",
            "mailer",
            "--topic",
            "reminders",
            "--from",
            "earliest",
        ],
    );
    assert_eq!(g["group"], "mailer");

    let r = json(
        &d,
        &[
            "send",
            "reminders",
            "--delay",
            "500ms",
            "--tag",
            "email",
            "--keys",
            "u1,u2",
            "--property",
            "lang=en",
            "--body",
            "call mom",
        ],
    );
    has(
        &r,
        &["message_id", "recall_handle", "deliver_at_ms", "adjusted"],
    );
    assert_eq!(r["adjusted"], false);
    let id = r["message_id"].as_str().unwrap().to_string();

    let got = json(
        &d,
        &["receive", "reminders", "--group", "mailer", "--wait", "5s"],
    );
    let m = &got.as_array().unwrap()[0];
    has(
        m,
        &[
            "message_id",
            "topic",
            "tag",
            "keys",
            "properties",
            "body",
            "deliver_at_ms",
            "ready_at_ms",
            "delivery_attempt",
            "receipt_handle",
        ],
    );
    assert_eq!(m["message_id"], id.as_str());
    assert_eq!(m["body"], "call mom");
    assert_eq!(m["keys"], serde_json::json!(["u1", "u2"]));
    assert_eq!(m["properties"]["lang"], "en");
    assert_eq!(m["delivery_attempt"], 1);
    assert!(m["ready_at_ms"].as_u64().unwrap() >= m["deliver_at_ms"].as_u64().unwrap());
    let receipt = m["receipt_handle"].as_str().unwrap().to_string();

    let shown = json(&d, &["message", "show", &id]);
    assert_eq!(shown["state"], "Ready");
    assert_eq!(shown["groups"][0]["state"], "Inflight");
    // Text that is no receipt handle is refused on its own, with the code the daemon
    // would give; the real handle next to it is still acked, and the exit says some failed.
    let (status, out, err) = d.cli(&[
        "ack",
        "reminders",
        "--group",
        "mailer",
        "not-a-receipt",
        &receipt.to_uppercase(),
        "--json",
    ]);
    assert_eq!(status.code(), Some(1), "{out}{err}");
    let acked: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(acked[0]["receipt_handle"], "not-a-receipt");
    assert_eq!(acked[0]["acked"], false);
    assert_eq!(acked[0]["error"], "BadReceiptHandle");
    assert_eq!(acked[1]["receipt_handle"], receipt.to_uppercase().as_str());
    assert_eq!(acked[1]["acked"], true);
    let again = d.cli(&["ack", "reminders", "--group", "mailer", &receipt]);
    assert_eq!(again.0.code(), Some(1), "acked once already: {}", again.1);
    let found = json(
        &d,
        &["message", "find", "--topic", "reminders", "--key", "u2"],
    );
    assert_eq!(found, serde_json::json!([id]));

    // An absolute time and a body from a file; a past time is delivered at once.
    let body = dir.path().join("body.bin");
    std::fs::write(&body, [0xffu8, 0x00, 0x01]).unwrap();
    let past = json(
        &d,
        &[
            "send",
            "reminders",
            "--deliver-at",
            "1000000000000",
            "--body-file",
            body.to_str().unwrap(),
        ],
    );
    // Effective time: now (Ready at once), and the receipt says it was adjusted.
    assert!(past["deliver_at_ms"].as_u64().unwrap() > 1_000_000_000_000u64);
    assert_eq!(past["adjusted"], true);
    let got = json(
        &d,
        &["receive", "reminders", "--group", "mailer", "--wait", "5s"],
    );
    assert_eq!(got[0]["body_base64"], "/wAB");
    assert!(got[0].get("body").is_none());

    // Recall and reschedule.
    let later = json(
        &d,
        &["send", "reminders", "--delay", "1h", "--body", "later"],
    );
    let h = later["recall_handle"].as_str().unwrap();
    let moved = json(&d, &["reschedule", h, "--delay", "2h"]);
    has(
        &moved,
        &["message_id", "recall_handle", "deliver_at_ms", "adjusted"],
    );
    assert!(moved["deliver_at_ms"].as_u64() > later["deliver_at_ms"].as_u64());
    json(&d, &["recall", moved["recall_handle"].as_str().unwrap()]);

    let topics = json(&d, &["topic", "list"]);
    assert_eq!(topics[0]["name"], "reminders");
    let shown = json(&d, &["topic", "show", "reminders"]);
    assert_eq!(shown["groups"][0]["acked"], 1);
    assert_eq!(shown["recalled"], 1);
    let groups = json(&d, &["group", "list", "--topic", "reminders"]);
    assert_eq!(groups[0]["group"], "mailer");
    let reset = json(
        &d,
        &[
            "group",
            "reset-offset",
            "mailer",
            "--topic",
            "reminders",
            "--to",
            "0",
        ],
    );
    assert_eq!(reset["next_offset"], 0);
    let stats = json(&d, &["stats"]);
    has(
        &stats,
        &[
            "topics",
            "timing_total",
            "early_deliveries",
            "disk_bytes",
            "connections",
        ],
    );
    assert_eq!(stats["early_deliveries"], 0);
}

#[test]
fn errors_print_code_and_message_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let (status, out, _) = d.cli(&["send", "missing", "--body", "x", "--json"]);
    assert!(!status.success());
    let e: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(e["error"], "TopicNotFound");
    assert!(e["message"].as_str().unwrap().contains("missing"));

    let (status, _, err) = d.cli(&["message", "show", "zz"]);
    assert!(!status.success());
    assert!(err.contains("BadRequest"), "{err}");

    // Nothing listening: a client-side code, still JSON.
    let out = std::process::Command::new(sundial_tests::bin())
        .args(["stats", "--json", "--addr", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["error"], "Unavailable");

    // A bad duration is refused before anything is sent.
    let (status, _, err) = d.cli(&["send", "x", "--delay", "soon", "--body", "b"]);
    assert!(!status.success());
    assert!(err.contains("soon"), "{err}");
}

#[test]
fn readable_output_is_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let (s, _, _) = d.cli(&["topic", "create", "a", "--type", "mixed"]);
    assert!(s.success());
    let (s, out, _) = d.cli(&["topic", "list"]);
    assert!(s.success());
    let lines: Vec<_> = out.lines().collect();
    assert!(lines[0].starts_with("TOPIC"), "{out}");
    assert!(
        lines[1].starts_with("a ") && lines[1].contains("MIXED"),
        "{out}"
    );
}
