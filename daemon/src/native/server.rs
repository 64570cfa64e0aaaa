//! The protocol server: accepts connections on an already bound listener, bounds how
//! many are open, shakes hands, reads pipelined requests and answers each as soon as it
//! is done (out of order, the answers ready together in one write), and drains on
//! shutdown.

use super::requests;
use crate::broker::Broker;
use crate::metrics::{self, Live};
use bytes::BytesMut;
use futures_util::future::Either;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use sundial_wire::tls::{BoxedIo, TlsAcceptor};
use sundial_wire::{
    decode_request, encode_response_into, put_frame, ErrorCode, Frame, FrameCodec, Inbound,
    OutgoingMessage, Request, Response, Welcome, WireError, WireFailure, PROTOCOL_VERSION,
    RESPONSE_HEADROOM,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::Framed;

/// Limits of the protocol server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most connections open at once; more are refused with `Throttled`.
    pub max_connections: usize,
    /// Largest frame, length prefix excluded.
    pub max_frame: usize,
    /// Token every handshake must carry, if set.
    pub token: Option<String>,
    /// Speak TLS on every connection, if set.
    pub tls: Option<Arc<sundial_wire::tls::ServerConfig>>,
    /// Time a new connection has to complete its handshake.
    pub handshake_timeout: Duration,
    /// Time a connection may leave responses unread before it is closed.
    pub write_timeout: Duration,
    /// Requests of one connection being worked on at once; beyond it the server stops
    /// reading from that connection (backpressure).
    pub max_in_flight: usize,
}

/// Runs until the broker shuts down, then stops accepting, lets every connection finish
/// the requests it has read (long polls end early), and returns.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, opts: ServerOptions, live: Arc<Live>) {
    let limit = Arc::new(Semaphore::new(opts.max_connections));
    // Refusals are answered by a few tasks at most; beyond that, sockets just close.
    let refusals = Arc::new(Semaphore::new(64));
    let mut stopping = broker.stopping();
    // Every connection holds a clone; recv() returns None once all have finished.
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    let opts = Arc::new(opts);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        // Peers that vanish without a close free their connection slot in about a minute.
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(30))
                .with_interval(Duration::from_secs(10)),
        );
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics::connection(false);
            tracing::warn!(%peer, "connection refused: at the connection limit");
            // A TLS client cannot read a plain refusal: it only sees the close.
            if opts.tls.is_some() {
                continue;
            }
            if let Ok(p) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(p);
                });
            }
            continue;
        };
        metrics::connection(true);
        let (broker, opts, live, drain) =
            (broker.clone(), opts.clone(), live.clone(), drain_tx.clone());
        tokio::spawn(async move {
            live.connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection opened");
            if let Some(io) = secure(stream, &opts).await {
                serve_connection(io, broker, &opts).await;
            }
            live.connections.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection closed");
            drop(permit);
            drop(drain);
        });
    }
    tracing::info!("shutting down: no new connections; finishing requests in progress");
    drop(drain_tx);
    let _ = drain_rx.recv().await;
}

/// Tells a connection over the limit why it is closed: writes the refusal, shuts the
/// write side and reads briefly, so the close does not reset the refusal away.
async fn refuse(stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut framed = Framed::new(stream, FrameCodec::default());
    let refusal = failure(
        ErrorCode::Throttled,
        "too many connections; try again later",
    );
    if send_briefly(&mut framed, 0, &refusal, Duration::from_secs(1))
        .await
        .is_err()
    {
        return;
    }
    let mut stream = framed.into_inner();
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fn failure(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Failed(WireFailure::new(code, message))
}

/// Appends the frame answering `request_id` to `dst`, encoded in place. An answer that
/// would not fit `max` bytes becomes an `Internal` failure for its request, so the
/// request is answered and the connection goes on.
fn put_answer(dst: &mut BytesMut, request_id: u64, r: &Response, max: usize) {
    let Err(e) = put_frame(dst, request_id, max, r.size_hint(), |d| {
        encode_response_into(r, d)
    }) else {
        return;
    };
    let why = match e {
        WireError::FrameTooLarge { len, max } => {
            format!("the answer of {len} bytes is over the {max}-byte frame limit")
        }
        // Encoding our own types cannot fail short of a bug; say so rather than hang.
        e => format!("cannot encode the answer: {e}"),
    };
    let r = failure(ErrorCode::Internal, why);
    if put_frame(dst, request_id, usize::MAX, r.size_hint(), |d| {
        encode_response_into(&r, d)
    })
    .is_err()
    {
        tracing::error!(
            request_id,
            "cannot encode even a failure; the request stays unanswered"
        );
    }
}

fn wire_failure(e: &WireError) -> (ErrorCode, String) {
    let code = match e {
        WireError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
        WireError::Io(_) => ErrorCode::Internal,
        _ => ErrorCode::Malformed,
    };
    (code, e.to_string())
}

/// The connection's stream: as it is, or after a TLS handshake within the handshake
/// timeout (`None` when that fails).
async fn secure(stream: TcpStream, opts: &ServerOptions) -> Option<BoxedIo> {
    let Some(tls) = &opts.tls else {
        return Some(Box::new(stream));
    };
    let accept = TlsAcceptor::from(tls.clone()).accept(stream);
    match tokio::time::timeout(opts.handshake_timeout, accept).await {
        Ok(Ok(s)) => Some(Box::new(s)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed; closing");
            None
        }
        Err(_) => {
            tracing::debug!("no TLS handshake in time; closing");
            None
        }
    }
}

/// Most single sends of one connection, read together, that go to the engine as one
/// batch.
const SEND_GROUP: usize = 256;

/// An answer, for its request id.
type Answer = (u64, Response);

/// What a request future of a connection yields: its answer, or the answers of a group
/// of single sends. Returned by value once per request and moved straight into the
/// connection's list of answers, so its size is not kept anywhere; boxing the single
/// answer would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Answered {
    One(Answer),
    Many(Vec<Answer>),
}

impl Answered {
    /// Requests answered.
    fn len(&self) -> usize {
        match self {
            Answered::One(_) => 1,
            Answered::Many(v) => v.len(),
        }
    }

    fn into_answers(self, out: &mut Vec<Answer>) {
        match self {
            Answered::One(a) => out.push(a),
            Answered::Many(v) => out.extend(v),
        }
    }
}

/// One connection after its handshake. Everything happens in this one task: frames are
/// read and their requests started, and the answers that are ready together are encoded
/// into the connection's buffer and written with one flush. A request is a future
/// polled here, not a task of its own, so thousands of single sends answered by one WAL
/// sync wake this task once and leave in a few writes. Single sends read together (up
/// to [`SEND_GROUP`]) go to the engine as one batch, each answered on its own.
async fn serve_connection(stream: BoxedIo, broker: Arc<Broker>, opts: &ServerOptions) {
    let max_answer = opts.max_frame + RESPONSE_HEADROOM;
    let codec = FrameCodec::new(opts.max_frame).with_max_outgoing(max_answer);
    let mut framed = Framed::new(stream, codec);
    if !handshake(&mut framed, opts).await {
        return;
    }
    let mut stop = broker.stopping();
    let max_in_flight = opts.max_in_flight.max(1);
    let write_timeout = opts.write_timeout;
    let broker = &broker;
    let max_frame = opts.max_frame;
    let mut pending = FuturesUnordered::new();
    // Requests read and not answered yet (a send group counts each of its requests).
    let mut in_flight = 0usize;
    // Reading stops at the peer's end, a bad frame or shutdown; the requests already
    // read are still answered.
    let mut reading = true;
    // Said (for request id 0) once the requests already read are answered.
    let mut last_word = None;
    loop {
        if !reading && pending.is_empty() {
            break;
        }
        let mut out = Vec::new();
        tokio::select! {
            biased;
            Some(a) = pending.next(), if !pending.is_empty() => {
                let a: Answered = a;
                in_flight -= a.len();
                a.into_answers(&mut out);
                // Whatever else is answered by now leaves in the same write.
                while let Some(Some(a)) = pending.next().now_or_never() {
                    in_flight -= a.len();
                    a.into_answers(&mut out);
                }
            }
            _ = stop.wait_for(|s| *s), if reading => reading = false,
            next = framed.next(), if reading && in_flight < max_in_flight => {
                // This frame and those already read behind it.
                let mut sends = Vec::new();
                let mut item = next;
                loop {
                    match item {
                        None => reading = false,
                        Some(Ok(Inbound::Frame(Frame { request_id, payload }))) => {
                            in_flight += 1;
                            match decode_request(&payload) {
                                Ok(Request::Send(m)) => sends.push((request_id, m)),
                                decoded => pending.push(Either::Left(answer_one(
                                    broker, max_frame, request_id, decoded,
                                ))),
                            }
                        }
                        Some(Ok(Inbound::Oversized { request_id, len })) => {
                            // Skipped by the codec; the connection goes on.
                            metrics::request_done(
                                "oversized",
                                std::time::Instant::now(),
                                Some("FrameTooLarge"),
                            );
                            let msg = format!(
                                "a frame of {len} bytes is over the {}-byte limit",
                                opts.max_frame
                            );
                            out.push((request_id, failure(ErrorCode::FrameTooLarge, msg)));
                        }
                        Some(Err(e)) => {
                            // The byte stream cannot be trusted past a bad frame: say why
                            // and close.
                            let (code, msg) = wire_failure(&e);
                            tracing::debug!(error = %e, "bad frame; closing the connection");
                            last_word = Some((0, failure(code, msg)));
                            reading = false;
                        }
                    }
                    if !reading || sends.len() >= SEND_GROUP || in_flight >= max_in_flight {
                        break;
                    }
                    match framed.next().now_or_never() {
                        Some(more) => item = more,
                        None => break,
                    }
                }
                if !sends.is_empty() {
                    pending.push(Either::Right(answer_sends(broker, sends)));
                }
            },
        }
        if !out.is_empty() && !write_all(&mut framed, out, max_answer, write_timeout).await {
            // The peer is gone or does not read: what is still running is dropped.
            return;
        }
    }
    if let Some(a) = last_word {
        write_all(&mut framed, vec![a], max_answer, write_timeout).await;
    }
}

/// The answer to one request as decoded.
async fn answer_one(
    broker: &Broker,
    max_frame: usize,
    request_id: u64,
    decoded: Result<Request, WireError>,
) -> Answered {
    let resp = match decoded {
        Ok(req) => requests::answer(broker, max_frame, req).await,
        Err(e) => {
            metrics::request_done("undecodable", std::time::Instant::now(), Some("Malformed"));
            Response::Failed(WireFailure::new(ErrorCode::Malformed, e.to_string()))
        }
    };
    Answered::One((request_id, resp))
}

/// The answers to single sends read together.
async fn answer_sends(broker: &Broker, sends: Vec<(u64, OutgoingMessage)>) -> Answered {
    Answered::Many(requests::answer_sends(broker, sends).await)
}

/// Buffered answers beyond which [`write_all`] writes before encoding the next one, so
/// a connection's buffer holds about this much and one answer.
const WRITE_AT: usize = 64 * 1024;

/// Encodes `answers` straight into the connection's buffer (frames over `max_answer`
/// bytes become failures) and writes them, flushing once at the end and whenever
/// [`WRITE_AT`] bytes are waiting; false when the write fails or the peer leaves them
/// unread for `timeout`.
async fn write_all(
    framed: &mut Framed<BoxedIo, FrameCodec>,
    answers: Vec<Answer>,
    max_answer: usize,
    timeout: Duration,
) -> bool {
    let write = async {
        for (id, r) in answers {
            put_answer(framed.write_buffer_mut(), id, &r, max_answer);
            // The answer is encoded; its memory goes now, not after the write.
            drop(r);
            if framed.write_buffer().len() >= WRITE_AT {
                framed.flush().await?;
            }
        }
        framed.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "write failed; closing the connection");
            false
        }
        Err(_) => {
            tracing::warn!("a client left its responses unread for {timeout:?}; closing it");
            false
        }
    }
}

/// Reads the first frame, which must be a [`Request::Hello`] with the right version and
/// token. Returns whether the connection may go on.
async fn handshake(framed: &mut Framed<BoxedIo, FrameCodec>, opts: &ServerOptions) -> bool {
    let first = match tokio::time::timeout(opts.handshake_timeout, framed.next()).await {
        Err(_) => {
            tracing::debug!("no handshake in time; closing");
            return false;
        }
        Ok(None) => return false,
        Ok(Some(Err(e))) => {
            let (code, msg) = wire_failure(&e);
            let _ = send_briefly(framed, 0, &failure(code, msg), BRIEFLY).await;
            return false;
        }
        Ok(Some(Ok(Inbound::Oversized { request_id, len }))) => {
            let msg = format!("a handshake of {len} bytes");
            let refusal = failure(ErrorCode::FrameTooLarge, msg);
            let _ = send_briefly(framed, request_id, &refusal, BRIEFLY).await;
            return false;
        }
        Ok(Some(Ok(Inbound::Frame(f)))) => f,
    };
    let refusal = match decode_request(&first.payload) {
        Ok(Request::Hello(h)) => {
            let token_ok = match &opts.token {
                None => true,
                Some(t) => h
                    .token
                    .as_deref()
                    .is_some_and(|given| same_secret(given, t)),
            };
            if token_ok {
                tracing::debug!(client = %h.client, "handshake");
                let welcome = Response::Welcome(Welcome {
                    version: PROTOCOL_VERSION,
                    server: format!("sundial {}", env!("CARGO_PKG_VERSION")),
                    max_frame: opts.max_frame as u64,
                });
                return send_briefly(framed, first.request_id, &welcome, BRIEFLY)
                    .await
                    .is_ok();
            }
            metrics::unauthorized();
            tracing::warn!(client = %h.client, "handshake refused: missing or wrong token");
            (
                ErrorCode::Unauthorized,
                "missing or wrong token".to_string(),
            )
        }
        Ok(other) => (
            ErrorCode::BadRequest,
            format!(
                "the first request must be the handshake, not {}",
                other.op()
            ),
        ),
        Err(e) => (ErrorCode::Malformed, e.to_string()),
    };
    let refusal = failure(refusal.0, refusal.1);
    let _ = send_briefly(framed, first.request_id, &refusal, BRIEFLY).await;
    false
}

/// How long a handshake's answer may wait for the peer to read it.
const BRIEFLY: Duration = Duration::from_secs(5);

/// Writes one answer outside the request loop (handshakes, refusals), waiting at most
/// `timeout` for the peer to take it.
async fn send_briefly<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, FrameCodec>,
    request_id: u64,
    r: &Response,
    timeout: Duration,
) -> Result<(), WireError> {
    put_answer(framed.write_buffer_mut(), request_id, r, usize::MAX);
    match tokio::time::timeout(timeout, framed.flush()).await {
        Ok(r) => r,
        Err(_) => Err(WireError::Malformed("the peer does not read".into())),
    }
}

/// Compares secrets without stopping at the first differing byte.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames in `b`, decoded: request id and answer.
    fn answers(mut b: BytesMut) -> Vec<(u64, Response)> {
        use tokio_util::codec::Decoder;
        let mut c = FrameCodec::new(1 << 20);
        let mut out = Vec::new();
        while let Some(f) = c.decode(&mut b).expect("a sound frame") {
            let Inbound::Frame(f) = f else {
                panic!("an oversized frame");
            };
            let r = sundial_wire::decode::<Response>(&f.payload).expect("an answer");
            out.push((f.request_id, r));
        }
        assert!(b.is_empty(), "no partial frame left");
        out
    }

    #[test]
    fn an_answer_over_the_limit_becomes_a_failure_of_its_own_request() {
        let small = failure(ErrorCode::NotFound, "no such topic");
        let big = failure(ErrorCode::BadRequest, "x".repeat(5000));
        let mut b = BytesMut::new();
        put_answer(&mut b, 1, &small, 4096);
        put_answer(&mut b, 2, &big, 4096);
        put_answer(&mut b, 3, &small, 4096);
        let got = answers(b);
        assert_eq!(got.len(), 3, "every request answered once");
        assert_eq!(got[0], (1, small.clone()));
        assert_eq!(got[2], (3, small));
        let (id, Response::Failed(f)) = &got[1] else {
            panic!("the big answer was not replaced: {:?}", got[1]);
        };
        assert_eq!((*id, f.code), (2, ErrorCode::Internal));
        assert!(
            f.message.contains("over the 4096-byte frame limit"),
            "{}",
            f.message
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
