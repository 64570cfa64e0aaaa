//! The client's request timeout against a daemon stand-in that holds one request's
//! answer back: the held call fails with a retryable `Timeout` in about its limit, the
//! connection goes on, and the late answer, when it comes, reaches no other call.

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use sundial_wire::{
    decode_request, encode_response, Client, ClientError, ClientOptions, Frame, FrameCodec,
    Inbound, OutgoingMessage, Request, Response, Sent, Welcome, DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

fn frame(request_id: u64, r: &Response) -> Frame {
    Frame {
        request_id,
        payload: encode_response(r).expect("encode").into(),
    }
}

fn sent(id: u128) -> Response {
    Response::Sent(Sent {
        id,
        deliver_at_ms: 1,
        adjusted: false,
    })
}

/// One connection: a welcome, then sends to topic "slow" are held, and each send to any
/// other topic is answered at once, followed by the answers held so far (as id 999).
async fn stand_in(l: TcpListener) {
    let Ok((s, _)) = l.accept().await else {
        return;
    };
    let mut f = Framed::new(s, FrameCodec::new(DEFAULT_MAX_FRAME));
    let mut held = Vec::new();
    while let Some(Ok(Inbound::Frame(req))) = f.next().await {
        let answers = match decode_request(&req.payload) {
            Ok(Request::Hello(_)) => vec![frame(
                req.request_id,
                &Response::Welcome(Welcome {
                    version: PROTOCOL_VERSION,
                    server: "stand-in".into(),
                    max_frame: DEFAULT_MAX_FRAME as u64,
                }),
            )],
            Ok(Request::Send(m)) if m.topic == "slow" => {
                held.push(req.request_id);
                vec![]
            }
            Ok(Request::Send(_)) => {
                let mut v = vec![frame(req.request_id, &sent(7))];
                v.extend(held.drain(..).map(|id| frame(id, &sent(999))));
                v
            }
            _ => return,
        };
        for a in answers {
            if f.send(a).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_an_answer_times_out_and_the_connection_goes_on() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let server = tokio::spawn(stand_in(l));
    let limit = Duration::from_millis(300);
    let opts = ClientOptions {
        request_timeout: limit,
        ..ClientOptions::default()
    };
    let c = Client::connect(&addr, opts).await.expect("connect");

    let t = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        c.send(OutgoingMessage::new("slow", b"x".to_vec())),
    )
    .await
    .expect("the call ended within 10 s");
    let took = t.elapsed();
    match r {
        Err(e @ ClientError::Timeout(_)) => assert!(e.is_retryable(), "a timeout is retryable"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        took >= limit,
        "timed out after {took:?}, before the {limit:?} limit"
    );
    assert!(took < limit * 10, "timed out only after {took:?}");

    // The same connection answers the next call with its own answer, though the held
    // answer (id 999) follows it on the wire.
    for _ in 0..3 {
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            c.send(OutgoingMessage::new("fast", b"y".to_vec())),
        )
        .await
        .expect("an answer within 5 s")
        .expect("sent");
        assert_eq!(
            got.message_id,
            format!("{:032x}", 7u128),
            "a call got another call's answer"
        );
    }
    server.abort();
}
