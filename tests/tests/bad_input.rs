//! Bad input against the real daemon. Each case gets a typed error or a closed
//! connection within a bounded time, while the daemon keeps serving every other
//! connection and loses nothing stored.

use std::time::{Duration, Instant};
use sundial_tests::{closed_within, raw_frame, Daemon};
use sundial_wire::{
    decode, encode, Client, ClientError, ClientOptions, ErrorCode, Hello, OutgoingMessage,
    ReceiptHandle, Request, Response, StartFrom, TopicType, MAX_LIST, PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frame(id: u64, req: &Request) -> Vec<u8> {
    raw_frame(b"SD", PROTOCOL_VERSION, id, &encode(req).unwrap())
}

/// Reads one frame (≤ 5 s): `Some((id, response))`, or `None` when the daemon closed.
async fn read_frame(s: &mut TcpStream) -> Option<(u64, Response)> {
    let read = async {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).await.ok()?;
        let id = u64::from_be_bytes(body[4..12].try_into().ok()?);
        Some((id, decode::<Response>(&body[12..]).expect("a response")))
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the daemon answered or closed within 5 s")
}

async fn handshaken(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let hello = Request::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: None,
        client: "raw".into(),
    });
    s.write_all(&frame(0, &hello)).await.unwrap();
    match read_frame(&mut s).await {
        Some((0, Response::Welcome(_))) => s,
        other => panic!("handshake: {other:?}"),
    }
}

fn failed(r: Option<(u64, Response)>) -> (u64, ErrorCode) {
    match r {
        Some((id, Response::Failed(f))) => (id, f.code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_else_is_disturbed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &dir.path().join("data"),
        &[
            "--handshake-timeout",
            "1s",
            "--write-timeout",
            "1s",
            "--max-frame-bytes",
            "131072",
            "--max-body-bytes",
            "1024",
        ],
    );
    // A well-behaved client that stores something first and keeps working throughout.
    let good = d.client().await;
    good.create_topic("keep", TopicType::Normal).await.unwrap();
    good.create_group("keep", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    let stored = good
        .send(OutgoingMessage::new("keep", "precious"))
        .await
        .unwrap();

    // Random bytes instead of a handshake.
    let mut s = TcpStream::connect(&d.addr).await.unwrap();
    let junk: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    let _ = s.write_all(&junk).await;
    closed_within(&mut s, Duration::from_secs(5)).await;

    // A truncated frame, then the client closes its side.
    let mut s = handshaken(&d.addr).await;
    let f = frame(1, &Request::Stats);
    s.write_all(&f[..f.len() - 3]).await.unwrap();
    s.shutdown().await.unwrap();
    closed_within(&mut s, Duration::from_secs(5)).await;

    // A frame over the maximum: FrameTooLarge for its request id, its bytes skipped
    // without being buffered, and the connection goes on.
    let mut s = handshaken(&d.addr).await;
    let mut big = raw_frame(b"SD", PROTOCOL_VERSION, 77, &[0u8; 200_000]);
    big.extend_from_slice(&frame(78, &Request::ListTopics));
    s.write_all(&big).await.unwrap();
    assert_eq!(
        failed(read_frame(&mut s).await),
        (77, ErrorCode::FrameTooLarge)
    );
    match read_frame(&mut s).await {
        Some((78, Response::Topics(_))) => {}
        other => panic!("connection unusable after an oversized frame: {other:?}"),
    }
    drop(s);

    // A length prefix over the maximum without a sound header: Malformed, then closed.
    let mut s = handshaken(&d.addr).await;
    s.write_all(&[
        0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ])
    .await
    .unwrap();
    assert_eq!(failed(read_frame(&mut s).await), (0, ErrorCode::Malformed));
    closed_within(&mut s, Duration::from_secs(5)).await;

    // The client refuses a request over the daemon's limit itself, for that call only.
    let too_big = good
        .send(OutgoingMessage::new("keep", vec![b'x'; 140_000]))
        .await;
    match &too_big {
        Err(ClientError::Refused(f)) => assert_eq!(f.code, ErrorCode::FrameTooLarge),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(!too_big.unwrap_err().is_retryable());
    good.list_topics().await.unwrap();

    // Wrong magic, wrong version: Malformed, then closed.
    for bad in [
        raw_frame(
            b"XX",
            PROTOCOL_VERSION,
            3,
            &encode(&Request::Stats).unwrap(),
        ),
        raw_frame(
            b"SD",
            PROTOCOL_VERSION + 7,
            3,
            &encode(&Request::Stats).unwrap(),
        ),
    ] {
        let mut s = handshaken(&d.addr).await;
        s.write_all(&bad).await.unwrap();
        assert_eq!(failed(read_frame(&mut s).await), (0, ErrorCode::Malformed));
        closed_within(&mut s, Duration::from_secs(5)).await;
    }

    // An unknown request kind and an undecodable payload in valid frames: Malformed
    // for that request id, and the connection goes on.
    let mut s = handshaken(&d.addr).await;
    s.write_all(&raw_frame(b"SD", PROTOCOL_VERSION, 41, &[200, 1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(failed(read_frame(&mut s).await), (41, ErrorCode::Malformed));
    s.write_all(&raw_frame(
        b"SD",
        PROTOCOL_VERSION,
        42,
        &[8, 0xff, 0xff, 0xff, 0xff, 0x0f],
    ))
    .await
    .unwrap();
    assert_eq!(failed(read_frame(&mut s).await), (42, ErrorCode::Malformed));
    s.write_all(&frame(43, &Request::ListTopics)).await.unwrap();
    match read_frame(&mut s).await {
        Some((43, Response::Topics(t))) => assert_eq!(t.len(), 1),
        other => panic!("connection unusable after a bad payload: {other:?}"),
    }
    // An ack of more receipts than a request's list may hold: refused before its
    // list is decoded, Malformed for that id, and the connection goes on.
    let over = Request::Ack {
        topic: "keep".into(),
        group: "g".into(),
        receipts: vec![
            ReceiptHandle {
                group: 1,
                offset: 1,
                nonce: 1,
            };
            MAX_LIST + 1
        ],
    };
    s.write_all(&frame(45, &over)).await.unwrap();
    assert_eq!(failed(read_frame(&mut s).await), (45, ErrorCode::Malformed));
    s.write_all(&frame(46, &Request::ListTopics)).await.unwrap();
    assert!(matches!(
        read_frame(&mut s).await,
        Some((46, Response::Topics(_)))
    ));
    // A second handshake on the same connection is a typed refusal too.
    let hello = Request::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: None,
        client: "again".into(),
    });
    s.write_all(&frame(44, &hello)).await.unwrap();
    assert_eq!(
        failed(read_frame(&mut s).await),
        (44, ErrorCode::BadRequest)
    );
    drop(s);

    // A request before the handshake: refused and closed.
    let mut s = TcpStream::connect(&d.addr).await.unwrap();
    s.write_all(&frame(5, &Request::Stats)).await.unwrap();
    assert_eq!(failed(read_frame(&mut s).await), (5, ErrorCode::BadRequest));
    closed_within(&mut s, Duration::from_secs(5)).await;

    // A client that opens and never speaks is closed after the handshake timeout.
    let mut silent = TcpStream::connect(&d.addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(5)).await;

    // A client that sends requests and never reads its responses is closed after the
    // write timeout; meanwhile the good client is served.
    for i in 0..30 {
        good.create_topic(
            &format!("padding-topic-with-a-long-name-{i:03}"),
            TopicType::Mixed,
        )
        .await
        .unwrap();
    }
    let mut hog = handshaken(&d.addr).await;
    let (_rd, mut wr) = hog.split();
    let burst: Vec<u8> = (0..20_000u64)
        .flat_map(|i| frame(100 + i, &Request::ListTopics))
        .collect();
    let write = tokio::time::timeout(Duration::from_secs(20), wr.write_all(&burst)).await;
    let probe_started = Instant::now();
    let topics = good.list_topics().await.unwrap();
    assert_eq!(topics.len(), 31);
    assert!(probe_started.elapsed() < Duration::from_secs(2));
    // Either the write failed because the daemon closed, or it went through and the
    // daemon closes once its responses stay unread.
    let _ = write;
    let gone = sundial_tests::eventually(Duration::from_secs(15), || {
        let good = good.clone();
        async move {
            let s = good.stats().await.ok()?;
            (s.connections == 1).then_some(())
        }
    })
    .await;
    assert!(
        gone.is_some(),
        "the hog is still connected: {}",
        d.log_text()
    );
    drop(hog);

    // Everything stored is still there, and the good client still works.
    let s = good.show_topic("keep").await.unwrap();
    assert_eq!(s.sent, 1);
    let got = good
        .receive("keep", "g", &sundial_wire::ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, stored.message_id);
    assert_eq!(got[0].body, b"precious");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_configured_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &["--token", "s3cret-token"]);
    match Client::connect(&d.addr, ClientOptions::default()).await {
        Err(ClientError::Refused(f)) => assert_eq!(f.code, ErrorCode::Unauthorized),
        Err(e) => panic!("expected Unauthorized, got {e}"),
        Ok(_) => panic!("connected without the token"),
    }
    let wrong = ClientOptions {
        token: Some("guess".into()),
        ..ClientOptions::default()
    };
    assert!(matches!(
        Client::connect(&d.addr, wrong).await,
        Err(ClientError::Refused(f)) if f.code == ErrorCode::Unauthorized
    ));
    let right = ClientOptions {
        token: Some("s3cret-token".into()),
        ..ClientOptions::default()
    };
    let c = Client::connect(&d.addr, right).await.unwrap();
    c.create_topic("t", TopicType::Normal).await.unwrap();
    let text = d.scrape();
    assert!(text.contains("sundial_unauthorized_total 2"), "{text}");
    assert!(!d.log_text().contains("s3cret-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &["--max-connections", "2"]);
    let a = d.client().await;
    let _b = d.client().await;
    match Client::connect(&d.addr, ClientOptions::default()).await {
        Err(ClientError::Refused(f)) => assert_eq!(f.code, ErrorCode::Throttled),
        Err(e) => panic!("expected Throttled, got {e}"),
        Ok(_) => panic!("a third connection was accepted"),
    }
    a.list_topics().await.unwrap();
}
