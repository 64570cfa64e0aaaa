//! The gRPC port of a daemon with `--tls-cert`/`--tls-key`: TLS clients (the Java
//! client's default) and plaintext clients (the Python and Node clients' default) are
//! served on the same port; a TLS client that does not trust the certificate is not.

use std::path::Path;
use sundial_rmq_proto::v2::{self, messaging_service_client::MessagingServiceClient, Code};
use sundial_tests::Daemon;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

fn self_signed(dir: &Path, name: &str) -> String {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = ck.cert.pem();
    std::fs::write(dir.join(format!("{name}.pem")), &cert).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), ck.key_pair.serialize_pem()).unwrap();
    cert
}

async fn route(c: &mut MessagingServiceClient<Channel>) -> Result<i32, tonic::Status> {
    let r = c
        .query_route(v2::QueryRouteRequest {
            topic: Some(v2::Resource {
                resource_namespace: String::new(),
                name: "t".into(),
            }),
            endpoints: None,
        })
        .await?
        .into_inner();
    Ok(r.status.map_or(0, |s| s.code))
}

async fn tls_client(addr: &str, ca: &str) -> Result<MessagingServiceClient<Channel>, String> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("127.0.0.1");
    let ch = Channel::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(MessagingServiceClient::new(ch))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_plaintext_share_the_grpc_port() {
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
    let grpc = d.grpc_addr.clone().expect("gRPC on");
    let (ok, out, err) = d.cli(&[
        "topic",
        "create",
        "t",
        "--type",
        "delay",
        "--tls-ca",
        c_path.to_str().unwrap(),
    ]);
    assert!(ok.success(), "{out}{err}");

    let mut tls = tls_client(&grpc, &cert)
        .await
        .expect("a TLS client trusting the certificate");
    assert_eq!(
        route(&mut tls).await.expect("QueryRoute over TLS"),
        Code::Ok as i32
    );

    let mut plain = MessagingServiceClient::connect(format!("http://{grpc}"))
        .await
        .expect("a plaintext client on the same port");
    assert_eq!(
        route(&mut plain).await.expect("QueryRoute in plaintext"),
        Code::Ok as i32
    );

    let stranger = match tls_client(&grpc, &other).await {
        Err(e) => Err(e),
        Ok(mut c) => route(&mut c).await.map_err(|e| e.to_string()),
    };
    assert!(
        stranger.is_err(),
        "a client trusting another certificate got in"
    );
    // The port still serves both kinds after the refused handshake.
    assert_eq!(route(&mut tls).await.expect("TLS again"), Code::Ok as i32);
    assert_eq!(
        route(&mut plain).await.expect("plaintext again"),
        Code::Ok as i32
    );
}
