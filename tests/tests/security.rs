//! The protocol port's exposure (SPEC §7): loopback by default; beyond loopback without
//! a token the daemon warns, with a token it does not, and the token is required and
//! never logged. (Refusals with `Unauthorized` and their counter: `bad_input.rs`.)

use sundial_tests::Daemon;
use sundial_wire::{Client, ClientError, ClientOptions, ErrorCode};

const WARNING: &str = "beyond loopback without a token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_the_default_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    assert!(d.addr.starts_with("127.0.0.1:"), "{}", d.addr);
    assert!(!d.log_text().contains(WARNING), "{}", d.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_without_a_token_warns() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_on(&dir.path().join("data"), "0.0.0.0:0", &[]);
    let log = d.log_text();
    d.stop();
    assert!(log.contains(WARNING), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_with_a_token_is_quiet_and_the_token_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let token = "s3cret-token-for-the-test";
    let d = Daemon::start_on(&dir.path().join("data"), "0.0.0.0:0", &["--token", token]);
    // Talk over loopback only.
    let addr = d.addr.replace("0.0.0.0", "127.0.0.1");
    let opts = ClientOptions {
        token: Some(token.into()),
        ..ClientOptions::default()
    };
    let c = Client::connect(&addr, opts).await.unwrap();
    c.stats().await.unwrap();
    let r = Client::connect(&addr, ClientOptions::default()).await;
    let refused = match r {
        Err(ClientError::Refused(f)) => Some(f.code),
        Ok(c) => match c.stats().await {
            Err(ClientError::Refused(f)) => Some(f.code),
            _ => None,
        },
        Err(_) => None,
    };
    assert_eq!(refused, Some(ErrorCode::Unauthorized));
    let log = d.log_text();
    assert!(!log.contains(WARNING), "{log}");
    assert!(!log.contains(token), "the token was logged:\n{log}");
}
