//! TLS on the protocol port (`--tls-cert`, `--tls-key`): a client trusting the daemon's
//! certificate works, the CLI too (`--tls-ca`); a plain client, or one trusting another
//! certificate, does not get in; the daemon keeps serving.

use std::path::Path;
use sundial_tests::Daemon;
use sundial_wire::tls::ClientTls;
use sundial_wire::{Client, ClientOptions, OutgoingMessage, ReceiveOptions, StartFrom, TopicType};

/// Writes a self-signed certificate for 127.0.0.1 and its key; returns the cert PEM.
fn self_signed(dir: &Path, name: &str) -> String {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = ck.cert.pem();
    std::fs::write(dir.join(format!("{name}.pem")), &cert).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), ck.key_pair.serialize_pem()).unwrap();
    cert
}

fn with_tls(pem: &str) -> ClientOptions {
    ClientOptions {
        tls: Some(ClientTls::new(pem.as_bytes(), "127.0.0.1").unwrap()),
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_get_in_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed(dir.path(), "daemon");
    let other = self_signed(dir.path(), "other");
    let (c_path, k_path) = (dir.path().join("daemon.pem"), dir.path().join("daemon.key"));
    let d = Daemon::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            c_path.to_str().unwrap(),
            "--tls-key",
            k_path.to_str().unwrap(),
        ],
    );

    let c = Client::connect(&d.addr, with_tls(&cert)).await.unwrap();
    c.create_topic("t", TopicType::Normal).await.unwrap();
    c.create_group("t", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    let sent = c.send(OutgoingMessage::new("t", "over TLS")).await.unwrap();
    let got = c
        .receive("t", "g", &ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, sent.message_id);
    assert_eq!(got[0].body, b"over TLS");

    let plain = Client::connect(&d.addr, ClientOptions::default()).await;
    assert!(plain.is_err(), "a plain client got in");
    let stranger = Client::connect(&d.addr, with_tls(&other)).await;
    assert!(
        stranger.is_err(),
        "a client trusting another certificate got in"
    );

    let (status, out, err) = d.cli(&["stats", "--json", "--tls-ca", c_path.to_str().unwrap()]);
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("early_deliveries"), "{out}");
    let (status, _, _) = d.cli(&["stats", "--json"]);
    assert!(!status.success(), "the CLI got in without TLS");

    // Still serving the TLS client.
    c.stats().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_does_not_talk_to_a_plain_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed(dir.path(), "daemon");
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let mut o = with_tls(&cert);
    o.connect_timeout = std::time::Duration::from_secs(2);
    assert!(Client::connect(&d.addr, o).await.is_err());
    d.client().await.stats().await.unwrap();
}
