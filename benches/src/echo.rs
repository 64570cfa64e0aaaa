//! The physical limit of the request path: a front end that decodes every request and
//! answers it at once, without an engine, on both protocols. The load generator runs
//! against it exactly as against the daemon, so the daemon's single-send rate can be
//! read as a share of what the transport, the codecs and this machine allow.
//!
//! It answers sends with a fresh receipt, receives with as many made-up messages as
//! asked for (bodies of `--body` bytes, unique ids), and acks with one success per
//! receipt, so both the single-send and the receive-one-ack-one workloads have a
//! ceiling.
//!
//! It runs in a process of its own (`sundial-bench echo-serve`, started by the
//! workloads), on a tokio runtime shaped like the daemon's, and prints the same startup
//! line as `sundial serve`.

use futures_util::{FutureExt, SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use sundial_rmq_proto::v2::{
    self,
    messaging_service_server::{MessagingService, MessagingServiceServer},
};
use sundial_wire::{
    decode_request, encode_response, Delivery, ErrorCode, Frame, FrameCodec, Inbound,
    ReceiptHandle, Request, Response, Sent, Welcome, WireFailure, PROTOCOL_VERSION,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// Largest request the echo accepts (the daemon's default frame limit).
const MAX_FRAME: usize = 16 << 20;

/// What the echo's answers carry.
pub(crate) struct Canned {
    /// The next message id (sends' receipts and received messages).
    ids: AtomicU64,
    /// The body of every received message.
    body: Vec<u8>,
}

/// Serves both echoes on 127.0.0.1 port 0 until killed (or stdin closes); received
/// messages carry `body_len` random bytes.
pub fn serve(body_len: usize) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let native = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let grpc = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let (na, ga) = (
            native.local_addr().map_err(|e| e.to_string())?,
            grpc.local_addr().map_err(|e| e.to_string())?,
        );
        println!("echo listening on {na}, grpc on {ga}");
        let canned = Arc::new(Canned {
            ids: AtomicU64::new(1),
            body: crate::bodies::body(&vec![b'e'; body_len]),
        });
        tokio::spawn(native_loop(native, canned.clone()));
        let svc = MessagingServiceServer::new(GrpcEcho { canned })
            .max_decoding_message_size(MAX_FRAME)
            .max_encoding_message_size(usize::MAX);
        // As the daemon's gRPC listener does: no Nagle delay on small answers.
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc).map(|s| {
            s.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .max_concurrent_streams(1024)
                .add_service(svc)
                .serve_with_incoming(incoming),
        );
        // Ends when the parent goes away.
        tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while std::io::Read::read(&mut std::io::stdin(), &mut sink).is_ok_and(|n| n > 0) {}
        })
        .await
        .map_err(|e| e.to_string())
    })
}

/// The native echo alone, on 127.0.0.1 port 0 in the caller's runtime (for tests): its
/// address, and what it answers with (whose id count says how many messages it took).
#[cfg(test)]
pub(crate) async fn native_here() -> Result<(String, Arc<Canned>), String> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?.to_string();
    let canned = Arc::new(Canned {
        ids: AtomicU64::new(1),
        body: vec![b'e'; 16],
    });
    tokio::spawn(native_loop(l, canned.clone()));
    Ok((addr, canned))
}

#[cfg(test)]
impl Canned {
    /// Message ids handed out so far (a receipt per message sent).
    pub(crate) fn handed_out(&self) -> u64 {
        self.ids.load(Ordering::Relaxed) - 1
    }
}

async fn native_loop(l: TcpListener, canned: Arc<Canned>) {
    while let Ok((s, _)) = l.accept().await {
        let _ = s.set_nodelay(true);
        tokio::spawn(native_connection(s, canned.clone()));
    }
}

/// One connection: the handshake, then every request answered in the order read, the
/// answers to what arrived together flushed together.
async fn native_connection(s: TcpStream, canned: Arc<Canned>) {
    let mut framed = Framed::new(s, FrameCodec::new(MAX_FRAME));
    loop {
        let Some(Ok(first)) = framed.next().await else {
            return;
        };
        if framed.feed(answer(first, &canned)).await.is_err() {
            return;
        }
        while let Some(Some(Ok(more))) = framed.next().now_or_never() {
            if framed.feed(answer(more, &canned)).await.is_err() {
                return;
            }
        }
        if framed.flush().await.is_err() {
            return;
        }
    }
}

fn answer(inbound: Inbound, canned: &Canned) -> Frame {
    let (request_id, resp) = match inbound {
        Inbound::Frame(f) => (f.request_id, reply(decode_request(&f.payload), canned)),
        Inbound::Oversized { request_id, .. } => (
            request_id,
            Response::Failed(WireFailure::new(ErrorCode::FrameTooLarge, "too large")),
        ),
    };
    Frame {
        request_id,
        payload: encode_response(&resp).unwrap_or_default().into(),
    }
}

/// What a daemon would answer, minus the work: sends get a fresh receipt, receives
/// made-up messages, acks a success per receipt.
fn reply(req: Result<Request, sundial_wire::WireError>, canned: &Canned) -> Response {
    let ids = &canned.ids;
    let receipt = |deliver_at_ms: Option<i64>| {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        Sent {
            id: u128::from(id),
            deliver_at_ms: deliver_at_ms.map_or(0, |t| t.max(0) as u64),
            adjusted: false,
        }
    };
    match req {
        Ok(Request::Hello(_)) => Response::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            server: "sundial echo".into(),
            max_frame: MAX_FRAME as u64,
        }),
        Ok(Request::Send(m)) => Response::Sent(receipt(m.deliver_at_ms)),
        Ok(Request::SendBatch(ms)) => {
            Response::SentBatch(ms.iter().map(|m| Ok(receipt(m.deliver_at_ms))).collect())
        }
        Ok(Request::Receive { max_messages, .. }) => {
            let now = sundial_wire::now_ms().max(0) as u64;
            let n = u64::from(max_messages.clamp(1, 1024));
            let first = ids.fetch_add(n, Ordering::Relaxed);
            Response::Messages(
                (first..first + n)
                    .map(|id| Delivery {
                        id: u128::from(id),
                        tag: None,
                        keys: Vec::new(),
                        properties: Default::default(),
                        body: canned.body.clone(),
                        deliver_at_ms: now,
                        ready_at_ms: now,
                        delivery_attempt: 1,
                        receipt: ReceiptHandle {
                            group: 1,
                            offset: id,
                            nonce: id,
                        },
                    })
                    .collect(),
            )
        }
        Ok(Request::Ack { receipts, .. }) => Response::Settled(vec![Ok(()); receipts.len()]),
        Ok(other) => Response::Failed(WireFailure::new(
            ErrorCode::BadRequest,
            format!(
                "the echo answers sends, receives and acks only, not {}",
                other.op()
            ),
        )),
        Err(e) => Response::Failed(WireFailure::new(ErrorCode::Malformed, e.to_string())),
    }
}

/// The gRPC echo: SendMessage answered OK per message with the client's id; every other
/// RPC is UNIMPLEMENTED.
struct GrpcEcho {
    canned: Arc<Canned>,
}

#[tonic::async_trait]
impl MessagingService for GrpcEcho {
    async fn send_message(
        &self,
        req: tonic::Request<v2::SendMessageRequest>,
    ) -> Result<tonic::Response<v2::SendMessageResponse>, tonic::Status> {
        let ok = || v2::Status {
            code: v2::Code::Ok as i32,
            message: "OK".into(),
        };
        let entries = req
            .into_inner()
            .messages
            .into_iter()
            .map(|m| {
                let id = self.canned.ids.fetch_add(1, Ordering::Relaxed);
                v2::SendResultEntry {
                    status: Some(ok()),
                    message_id: m
                        .system_properties
                        .map(|p| p.message_id)
                        .unwrap_or_default(),
                    transaction_id: String::new(),
                    offset: id as i64,
                    recall_handle: format!("echo-{id}"),
                }
            })
            .collect();
        Ok(tonic::Response::new(v2::SendMessageResponse {
            status: Some(ok()),
            entries,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canned(body: usize) -> Canned {
        Canned {
            ids: AtomicU64::new(1),
            body: vec![b'e'; body],
        }
    }

    #[test]
    fn receives_get_as_many_distinct_messages_as_asked_and_acks_a_success_each() {
        let c = canned(300);
        let receive = |max_messages| {
            reply(
                Ok(Request::Receive {
                    topic: "t".into(),
                    group: "g".into(),
                    filter: None,
                    max_messages,
                    invisible_ms: 1_000,
                    wait_ms: 0,
                }),
                &c,
            )
        };
        let mut ids = std::collections::HashSet::new();
        for max in [1, 3, 1] {
            let Response::Messages(ms) = receive(max) else {
                panic!("not messages");
            };
            assert_eq!(ms.len(), max as usize);
            for m in ms {
                assert_eq!(m.body.len(), 300);
                assert_eq!(m.receipt.offset as u128, m.id);
                assert!(ids.insert(m.id), "an id handed out twice");
            }
        }
        let r = reply(
            Ok(Request::Ack {
                topic: "t".into(),
                group: "g".into(),
                receipts: vec![
                    ReceiptHandle {
                        group: 1,
                        offset: 1,
                        nonce: 1
                    };
                    2
                ],
            }),
            &c,
        );
        assert_eq!(r, Response::Settled(vec![Ok(()), Ok(())]));
        let r = reply(Ok(Request::Stats), &c);
        assert!(matches!(r, Response::Failed(f) if f.code == ErrorCode::BadRequest));
    }
}
