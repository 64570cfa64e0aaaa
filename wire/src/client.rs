//! The async client: one pipelined connection per [`Client`], reconnected on the next
//! call after a loss, and the [`Producer`], [`SimpleConsumer`] and [`PushConsumer`] built
//! on it.

use crate::answer::decode_response;
use crate::frame::{
    Frame, FrameCodec, Inbound, DEFAULT_MAX_FRAME, HEADER_LEN, PROTOCOL_VERSION, RESPONSE_HEADROOM,
};
use crate::message::{
    encode, encode_sized, Delivered, Delivery, ErrorCode, GroupInfo, Hello, MessageInfo,
    OutgoingMessage, Receipt, ReceiptHandle, Request, Response, StartFrom, StatsReport,
    TopicCounts, TopicInfo, TopicType, Welcome, WireFailure,
};
use crate::tls::BoxedIo;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// Why a client call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The daemon refused the request with a SPEC §6 code.
    #[error("{0}")]
    Refused(WireFailure),
    /// No connection could be made.
    #[error("cannot connect to {addr}: {why}")]
    Connect {
        /// The address tried.
        addr: String,
        /// What went wrong.
        why: String,
    },
    /// The connection broke before the answer came; the request may or may not have
    /// taken effect. The next call reconnects.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// No answer in time; the request may or may not have taken effect.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The daemon answered something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The error code: the daemon's SPEC §6 code, or `Unavailable` / `Timeout` /
    /// `Malformed` for failures on the client's side.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Refused(f) => f.code.as_str(),
            ClientError::Connect { .. } | ClientError::ConnectionLost(_) => "Unavailable",
            ClientError::Timeout(_) => "Timeout",
            ClientError::Protocol(_) => "Malformed",
        }
    }

    /// Whether trying again later may succeed (connection trouble, throttling, a
    /// stopping daemon, a full disk).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Refused(f) => matches!(
                f.code,
                ErrorCode::Throttled | ErrorCode::ShuttingDown | ErrorCode::StorageFull
            ),
            ClientError::Connect { .. }
            | ClientError::ConnectionLost(_)
            | ClientError::Timeout(_) => true,
            ClientError::Protocol(_) => false,
        }
    }
}

/// Result of client calls.
pub type ClientResult<T> = Result<T, ClientError>;

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The shared token, when the daemon requires one.
    pub token: Option<String>,
    /// Limit for establishing a connection and its handshake.
    pub connect_timeout: Duration,
    /// Limit for one answer (a receive adds its long-poll wait to this).
    pub request_timeout: Duration,
    /// Largest frame this client accepts.
    pub max_frame: usize,
    /// Sent in the handshake, for the daemon's logs.
    pub client_name: String,
    /// Speak TLS to the daemon (it must have `--tls-cert`).
    pub tls: Option<crate::tls::ClientTls>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            token: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_FRAME,
            client_name: format!("sundial-wire/{}", env!("CARGO_PKG_VERSION")),
            tls: None,
        }
    }
}

type Waiter = oneshot::Sender<ClientResult<Response>>;

/// Requests waiting for answers; `None` once the connection is closed, so nobody can
/// register after the reader has failed everyone.
struct Waiters(Mutex<Option<HashMap<u64, Waiter>>>);

impl Waiters {
    fn register(&self, id: u64, w: Waiter) -> Result<(), Waiter> {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some(m) => {
                m.insert(id, w);
                Ok(())
            }
            None => Err(w),
        }
    }

    fn take(&self, id: u64) -> Option<Waiter> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .and_then(|m| m.remove(&id))
    }

    fn forget(&self, id: u64) {
        let _ = self.take(id);
    }

    /// Closes the connection: every waiting request fails with `why`.
    fn fail_all(&self, why: &ClientError) {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        for (_, w) in all.into_iter().flatten() {
            let _ = w.send(Err(why.clone()));
        }
    }

    fn is_closed(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }
}

/// One TCP connection after its handshake, with a writer task that batches frames into
/// few syscalls and a reader task that routes answers by request id.
struct Connection {
    out: mpsc::Sender<Frame>,
    waiters: Arc<Waiters>,
    next_id: AtomicU64,
    tasks: [JoinHandle<()>; 2],
    welcome: Welcome,
    /// Largest request frame both sides accept.
    max_request: usize,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.waiters
            .fail_all(&ClientError::ConnectionLost("client dropped".into()));
    }
}

impl Connection {
    async fn open(addr: &str, opts: &ClientOptions) -> ClientResult<Connection> {
        let connect_err = |why: String| ClientError::Connect {
            addr: addr.to_string(),
            why,
        };
        let stream = tokio::time::timeout(opts.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("no connection within {:?}", opts.connect_timeout)))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        // A silently dropped connection shows up within about a minute, not ~15.
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(30))
                .with_interval(Duration::from_secs(10)),
        );
        let io: BoxedIo = match &opts.tls {
            None => Box::new(stream),
            Some(tls) => Box::new(
                tokio::time::timeout(opts.connect_timeout, tls.connect(stream))
                    .await
                    .map_err(|_| connect_err("no TLS handshake in time".into()))?
                    .map_err(|e| connect_err(format!("TLS: {e}")))?,
            ),
        };
        let codec =
            FrameCodec::new(opts.max_frame + RESPONSE_HEADROOM).with_max_outgoing(opts.max_frame);
        let mut framed = Framed::new(io, codec);
        let hello = Request::Hello(Hello {
            version: PROTOCOL_VERSION,
            token: opts.token.clone(),
            client: opts.client_name.clone(),
        });
        let payload = encode(&hello).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let handshake = async {
            framed
                .send(Frame {
                    request_id: 0,
                    payload: Bytes::from(payload),
                })
                .await
                .map_err(|e| connect_err(e.to_string()))?;
            match framed.next().await {
                Some(Ok(Inbound::Frame(f))) => {
                    decode_response(&f.payload).map_err(|e| ClientError::Protocol(e.to_string()))
                }
                Some(Ok(Inbound::Oversized { len, .. })) => Err(ClientError::Protocol(format!(
                    "a handshake answer of {len} bytes"
                ))),
                Some(Err(e)) => Err(connect_err(e.to_string())),
                None => Err(connect_err("closed during the handshake".into())),
            }
        };
        let welcome = match tokio::time::timeout(opts.connect_timeout, handshake)
            .await
            .map_err(|_| connect_err("no handshake answer".into()))??
        {
            Response::Welcome(w) => w,
            Response::Failed(f) => return Err(ClientError::Refused(f)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected a handshake answer, got {other:?}"
                )))
            }
        };
        let (mut sink, mut stream) = framed.split();
        let waiters = Arc::new(Waiters(Mutex::new(Some(HashMap::new()))));
        let (out, mut rx) = mpsc::channel::<Frame>(4096);
        let w = waiters.clone();
        let writer = tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                let mut r = sink.feed(f).await;
                while r.is_ok() {
                    match rx.try_recv() {
                        Ok(f) => r = sink.feed(f).await,
                        Err(_) => break,
                    }
                }
                if let Err(e) = r.and(sink.flush().await) {
                    w.fail_all(&ClientError::ConnectionLost(e.to_string()));
                    return;
                }
            }
        });
        let w = waiters.clone();
        let reader = tokio::spawn(async move {
            // A connection-level refusal (request id 0) comes before the daemon closes;
            // answers to requests it had already read may still follow, so keep reading
            // and fail only what is left, as lost (it may or may not have taken effect).
            let mut refusal: Option<WireFailure> = None;
            let why = loop {
                match stream.next().await {
                    Some(Ok(Inbound::Frame(f))) => {
                        let r = decode_response(&f.payload)
                            .map_err(|e| ClientError::Protocol(e.to_string()));
                        if f.request_id == 0 {
                            if let Ok(Response::Failed(fail)) = r {
                                refusal = Some(fail);
                            }
                            continue;
                        }
                        if let Some(waiter) = w.take(f.request_id) {
                            let _ = waiter.send(r);
                        }
                    }
                    Some(Ok(Inbound::Oversized { request_id, len })) => {
                        if let Some(waiter) = w.take(request_id) {
                            let _ = waiter.send(Err(ClientError::Protocol(format!(
                                "an answer of {len} bytes is over this client's limit"
                            ))));
                        }
                    }
                    Some(Err(e)) => break e.to_string(),
                    None => break "closed by the daemon".to_string(),
                }
            };
            let why = match refusal {
                Some(f) => format!("{why} after refusing the connection: {f}"),
                None => why,
            };
            w.fail_all(&ClientError::ConnectionLost(why));
        });
        let max_request = opts
            .max_frame
            .min(usize::try_from(welcome.max_frame).unwrap_or(usize::MAX));
        Ok(Connection {
            out,
            waiters,
            next_id: AtomicU64::new(1),
            tasks: [writer, reader],
            welcome,
            max_request,
        })
    }

    async fn call(&self, req: &Request, timeout: Duration) -> ClientResult<Response> {
        let payload =
            encode_sized(req, req.size_hint()).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if HEADER_LEN + payload.len() > self.max_request {
            // Refused here, for this call alone: the connection and its other calls go on.
            return Err(ClientError::Refused(WireFailure::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "a request of {} bytes is over the {}-byte frame limit",
                    HEADER_LEN + payload.len(),
                    self.max_request
                ),
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if self.waiters.register(id, tx).is_err() {
            return Err(ClientError::ConnectionLost("connection closed".into()));
        }
        let frame = Frame {
            request_id: id,
            payload: Bytes::from(payload),
        };
        let exchange = async {
            if self.out.send(frame).await.is_err() {
                return Err(ClientError::ConnectionLost("connection closed".into()));
            }
            rx.await
                .unwrap_or_else(|_| Err(ClientError::ConnectionLost("connection closed".into())))
        };
        match tokio::time::timeout(timeout, exchange).await {
            // The reader took the waiter out to answer it.
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.waiters.forget(id);
                Err(e)
            }
            Err(_) => {
                self.waiters.forget(id);
                Err(ClientError::Timeout(timeout))
            }
        }
    }
}

/// A handle to one daemon: cheap to clone, safe to share; concurrent calls are
/// pipelined on one connection. After a connection loss the call in progress fails
/// with a retryable error and the next call connects again.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientShared>,
}

struct ClientShared {
    addr: String,
    opts: ClientOptions,
    /// The current connection: read by every call without waiting.
    conn: Mutex<Option<Arc<Connection>>>,
    /// Held while a new connection is made, so concurrent calls after a loss make one.
    connecting: tokio::sync::Mutex<()>,
}

/// What a receive asks for.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// Tag filter for this call; the group's subscription when `None`.
    pub filter: Option<String>,
    /// At most this many messages.
    pub max_messages: u32,
    /// How long received messages stay invisible to the group.
    pub invisible: Duration,
    /// How long to wait when nothing is Ready.
    pub wait: Duration,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            filter: None,
            max_messages: 16,
            invisible: Duration::from_secs(30),
            wait: Duration::from_secs(10),
        }
    }
}

macro_rules! expect {
    ($resp:expr, $pat:pat => $out:expr) => {
        match $resp {
            $pat => Ok($out),
            Response::Failed(f) => Err(ClientError::Refused(f)),
            other => Err(ClientError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    };
}

impl Client {
    /// Connects (and shakes hands) now, so a wrong address or token fails here.
    pub async fn connect(addr: &str, opts: ClientOptions) -> ClientResult<Client> {
        let c = Client {
            inner: Arc::new(ClientShared {
                addr: addr.to_string(),
                opts,
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        };
        c.connection().await?;
        Ok(c)
    }

    /// The daemon's address.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// What the daemon said in the handshake of the current connection.
    pub async fn welcome(&self) -> ClientResult<Welcome> {
        Ok(self.connection().await?.welcome.clone())
    }

    /// The open connection, if it has not failed.
    fn current(&self) -> Option<Arc<Connection>> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| !c.waiters.is_closed())
            .cloned()
    }

    async fn connection(&self) -> ClientResult<Arc<Connection>> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.inner.connecting.lock().await;
        // Another call may have connected while this one waited.
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let c = Arc::new(Connection::open(&self.inner.addr, &self.inner.opts).await?);
        *self.inner.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Sends any request and returns the raw answer (refusals included).
    pub async fn call(&self, req: &Request) -> ClientResult<Response> {
        let mut timeout = self.inner.opts.request_timeout;
        if let Request::Receive { wait_ms, .. } = req {
            timeout += Duration::from_millis(*wait_ms);
        }
        self.connection().await?.call(req, timeout).await
    }

    /// Creates a topic.
    pub async fn create_topic(&self, topic: &str, t: TopicType) -> ClientResult<TopicInfo> {
        let r = self
            .call(&Request::CreateTopic {
                topic: topic.into(),
                message_type: t,
            })
            .await?;
        expect!(r, Response::Topic(t) => t)
    }

    /// Deletes a topic with its groups and ready log.
    pub async fn delete_topic(&self, topic: &str) -> ClientResult<()> {
        let r = self
            .call(&Request::DeleteTopic {
                topic: topic.into(),
            })
            .await?;
        expect!(r, Response::Done => ())
    }

    /// Every topic.
    pub async fn list_topics(&self) -> ClientResult<Vec<TopicInfo>> {
        let r = self.call(&Request::ListTopics).await?;
        expect!(r, Response::Topics(t) => t)
    }

    /// One topic's counters.
    pub async fn show_topic(&self, topic: &str) -> ClientResult<TopicCounts> {
        let r = self
            .call(&Request::ShowTopic {
                topic: topic.into(),
            })
            .await?;
        expect!(r, Response::TopicCounts(t) => t)
    }

    /// Creates a consumer group (or updates its filter).
    pub async fn create_group(
        &self,
        topic: &str,
        group: &str,
        from: StartFrom,
        filter: Option<&str>,
    ) -> ClientResult<GroupInfo> {
        let r = self
            .call(&Request::CreateGroup {
                topic: topic.into(),
                group: group.into(),
                from,
                filter: filter.map(str::to_string),
            })
            .await?;
        expect!(r, Response::Group(g) => g)
    }

    /// Groups, of one topic or all.
    pub async fn list_groups(&self, topic: Option<&str>) -> ClientResult<Vec<GroupInfo>> {
        let r = self
            .call(&Request::ListGroups {
                topic: topic.map(str::to_string),
            })
            .await?;
        expect!(r, Response::Groups(g) => g)
    }

    /// Resets a group to the messages that became Ready at or after `to_ms`; returns
    /// the group's new ready-log offset.
    pub async fn reset_offset(&self, topic: &str, group: &str, to_ms: u64) -> ClientResult<u64> {
        let r = self
            .call(&Request::ResetOffset {
                topic: topic.into(),
                group: group.into(),
                to_ms,
            })
            .await?;
        expect!(r, Response::Offset(o) => o)
    }

    /// Sends one message; the receipt means it is durable.
    pub async fn send(&self, m: OutgoingMessage) -> ClientResult<Receipt> {
        let r = self.call(&Request::Send(m)).await?;
        expect!(r, Response::Sent(s) => s.receipt())
    }

    /// Sends many messages in one commit; each succeeds or fails on its own.
    pub async fn send_batch(
        &self,
        ms: Vec<OutgoingMessage>,
    ) -> ClientResult<Vec<Result<Receipt, WireFailure>>> {
        let n = ms.len();
        let r = self.call(&Request::SendBatch(ms)).await?;
        let v = expect!(r, Response::SentBatch(v) => v)?;
        if v.len() != n {
            return Err(ClientError::Protocol(format!(
                "{} results for {n} messages",
                v.len()
            )));
        }
        Ok(v.into_iter().map(|r| r.map(|s| s.receipt())).collect())
    }

    /// Receives Ready messages, waiting up to `o.wait` when none are.
    pub async fn receive(
        &self,
        topic: &str,
        group: &str,
        o: &ReceiveOptions,
    ) -> ClientResult<Vec<Delivered>> {
        let ds = self.receive_deliveries(topic, group, o).await?;
        Ok(ds.into_iter().map(|d| d.delivered(topic)).collect())
    }

    /// [`Client::receive`] as the wire carries it: numeric ids and no topic copied into
    /// each message, for consumers that keep neither the printed id nor the topic.
    pub async fn receive_deliveries(
        &self,
        topic: &str,
        group: &str,
        o: &ReceiveOptions,
    ) -> ClientResult<Vec<Delivery>> {
        let r = self
            .call(&Request::Receive {
                topic: topic.into(),
                group: group.into(),
                filter: o.filter.clone(),
                max_messages: o.max_messages,
                invisible_ms: o.invisible.as_millis() as u64,
                wait_ms: o.wait.as_millis() as u64,
            })
            .await?;
        expect!(r, Response::Messages(m) => m)
    }

    /// Acknowledges deliveries; one result per receipt, in order.
    pub async fn ack(
        &self,
        topic: &str,
        group: &str,
        receipts: Vec<ReceiptHandle>,
    ) -> ClientResult<Vec<Result<(), WireFailure>>> {
        let req = Request::Ack {
            topic: topic.into(),
            group: group.into(),
            receipts,
        };
        self.settle(req).await
    }

    /// Gives deliveries back for redelivery after the retry backoff.
    pub async fn nack(
        &self,
        topic: &str,
        group: &str,
        receipts: Vec<ReceiptHandle>,
    ) -> ClientResult<Vec<Result<(), WireFailure>>> {
        let req = Request::Nack {
            topic: topic.into(),
            group: group.into(),
            receipts,
        };
        self.settle(req).await
    }

    async fn settle(&self, req: Request) -> ClientResult<Vec<Result<(), WireFailure>>> {
        let n = match &req {
            Request::Ack { receipts, .. } | Request::Nack { receipts, .. } => receipts.len(),
            _ => 0,
        };
        let r = self.call(&req).await?;
        let v = expect!(r, Response::Settled(v) => v)?;
        if v.len() != n {
            return Err(ClientError::Protocol(format!(
                "{} results for {n} receipts",
                v.len()
            )));
        }
        Ok(v)
    }

    /// Makes a delivery invisible for `d` from now; returns the new receipt handle.
    pub async fn change_invisible_duration(
        &self,
        topic: &str,
        group: &str,
        receipt: &ReceiptHandle,
        d: Duration,
    ) -> ClientResult<ReceiptHandle> {
        let r = self
            .call(&Request::ChangeInvisible {
                topic: topic.into(),
                group: group.into(),
                receipt: *receipt,
                invisible_ms: d.as_millis() as u64,
            })
            .await?;
        expect!(r, Response::NewReceipt(h) => h)
    }

    /// Cancels a Timing message.
    pub async fn recall(&self, handle: &str) -> ClientResult<()> {
        let r = self
            .call(&Request::Recall {
                handle: handle.into(),
            })
            .await?;
        expect!(r, Response::Done => ())
    }

    /// Moves a Timing message to a new delivery time.
    pub async fn reschedule(&self, handle: &str, deliver_at_ms: i64) -> ClientResult<Receipt> {
        let r = self
            .call(&Request::Reschedule {
                handle: handle.into(),
                deliver_at_ms,
            })
            .await?;
        expect!(r, Response::Sent(s) => s.receipt())
    }

    /// One message's state.
    pub async fn show_message(&self, id: &str) -> ClientResult<MessageInfo> {
        let r = self
            .call(&Request::ShowMessage {
                message_id: id.into(),
            })
            .await?;
        expect!(r, Response::Message(m) => m)
    }

    /// Ids of retained messages of `topic` with lookup key `key`.
    pub async fn find_messages(&self, topic: &str, key: &str) -> ClientResult<Vec<String>> {
        let r = self
            .call(&Request::FindMessages {
                topic: topic.into(),
                key: key.into(),
            })
            .await?;
        expect!(r, Response::MessageIds(v) => v)
    }

    /// Counters and storage figures.
    pub async fn stats(&self) -> ClientResult<StatsReport> {
        let r = self.call(&Request::Stats).await?;
        expect!(r, Response::Stats(s) => s)
    }
}

/// Now, in Unix milliseconds, by this machine's clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The absolute delivery time `delay` from now (Unix ms).
pub fn deliver_at_after(delay: Duration) -> i64 {
    now_ms().saturating_add(delay.as_millis().min(i64::MAX as u128) as i64)
}

/// Sends messages; clone it or share it to keep many sends in flight on one connection.
#[derive(Clone)]
pub struct Producer {
    client: Client,
}

impl Producer {
    /// A producer on a client.
    pub fn new(client: Client) -> Self {
        Producer { client }
    }

    /// Sends one message; the receipt means it is durable.
    pub async fn send(&self, m: OutgoingMessage) -> ClientResult<Receipt> {
        self.client.send(m).await
    }

    /// Sends one message to be delivered `delay` from now (converted to an absolute
    /// time here, by this machine's clock).
    pub async fn send_after(&self, m: OutgoingMessage, delay: Duration) -> ClientResult<Receipt> {
        self.client
            .send(m.deliver_at(deliver_at_after(delay)))
            .await
    }

    /// Sends many messages in one commit; each succeeds or fails on its own.
    pub async fn send_batch(
        &self,
        ms: Vec<OutgoingMessage>,
    ) -> ClientResult<Vec<Result<Receipt, WireFailure>>> {
        self.client.send_batch(ms).await
    }
}

/// Receives from one topic for one group and settles each delivery explicitly.
#[derive(Clone)]
pub struct SimpleConsumer {
    client: Client,
    topic: String,
    group: String,
    options: ReceiveOptions,
}

impl SimpleConsumer {
    /// A consumer of `topic` in `group` with default options (30 s invisible, 10 s wait).
    pub fn new(client: Client, topic: &str, group: &str) -> Self {
        SimpleConsumer {
            client,
            topic: topic.into(),
            group: group.into(),
            options: ReceiveOptions::default(),
        }
    }

    /// Replaces the receive options (filter, invisible duration, wait).
    pub fn with_options(mut self, o: ReceiveOptions) -> Self {
        self.options = o;
        self
    }

    /// Receives up to `max` messages, long-polling when none are Ready.
    pub async fn receive(&self, max: u32) -> ClientResult<Vec<Delivered>> {
        let o = ReceiveOptions {
            max_messages: max,
            ..self.options.clone()
        };
        self.client.receive(&self.topic, &self.group, &o).await
    }

    /// Acknowledges one delivery.
    pub async fn ack(&self, receipt: &ReceiptHandle) -> ClientResult<()> {
        let v = self
            .client
            .ack(&self.topic, &self.group, vec![*receipt])
            .await?;
        one(v)
    }

    /// Gives one delivery back for redelivery after the retry backoff.
    pub async fn nack(&self, receipt: &ReceiptHandle) -> ClientResult<()> {
        let v = self
            .client
            .nack(&self.topic, &self.group, vec![*receipt])
            .await?;
        one(v)
    }

    /// Makes a delivery invisible for `d` from now; returns the new receipt handle.
    pub async fn change_invisible_duration(
        &self,
        receipt: &ReceiptHandle,
        d: Duration,
    ) -> ClientResult<ReceiptHandle> {
        self.client
            .change_invisible_duration(&self.topic, &self.group, receipt, d)
            .await
    }
}

fn one(v: Vec<Result<(), WireFailure>>) -> ClientResult<()> {
    match v.into_iter().next() {
        Some(r) => r.map_err(ClientError::Refused),
        None => Err(ClientError::Protocol("no result for the receipt".into())),
    }
}

/// What a push consumer's listener decides about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Processed: the message is acked.
    Success,
    /// Not processed: the message is nacked and comes back after the retry backoff.
    Failure,
}

/// How a [`PushConsumer`] runs.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Listener calls running at once.
    pub concurrency: usize,
    /// Receive options; `max_messages` is capped by free listener slots.
    pub receive: ReceiveOptions,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            concurrency: 16,
            receive: ReceiveOptions {
                max_messages: 32,
                ..ReceiveOptions::default()
            },
        }
    }
}

/// What a push consumer did, returned by [`PushConsumer::stop`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Messages handed to the listener.
    pub received: u64,
    /// Listener said Success and the ack was accepted.
    pub acked: u64,
    /// Listener said Failure (or panicked) and the nack was accepted.
    pub nacked: u64,
    /// Acks or nacks the daemon refused or that were lost with the connection; those
    /// messages come back after their invisible duration.
    pub settle_errors: u64,
    /// Receives that failed (each followed by a backoff).
    pub receive_errors: u64,
}

impl PushReport {
    fn add(&mut self, o: PushReport) {
        self.received += o.received;
        self.acked += o.acked;
        self.nacked += o.nacked;
        self.settle_errors += o.settle_errors;
        self.receive_errors += o.receive_errors;
    }
}

/// Long-polls a topic for a group and runs a listener on each message with bounded
/// concurrency: Success acks it, Failure (or a panic) nacks it. Each delivery is
/// settled at most once.
pub struct PushConsumer {
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<PushReport>,
}

impl PushConsumer {
    /// Starts consuming on the current tokio runtime.
    pub fn start<F, Fut>(
        client: Client,
        topic: &str,
        group: &str,
        options: PushOptions,
        listener: F,
    ) -> PushConsumer
    where
        F: Fn(Delivered) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ConsumeResult> + Send + 'static,
    {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(push_loop(
            client,
            topic.to_string(),
            group.to_string(),
            options,
            Arc::new(listener),
            stop_rx,
        ));
        PushConsumer { stop, task }
    }

    /// Stops receiving, waits for running listeners and their acks, and reports.
    /// A receive cut short by the stop may leave messages invisible until their
    /// invisible duration ends; they are then redelivered (at-least-once).
    pub async fn stop(self) -> PushReport {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

async fn push_loop<F, Fut>(
    client: Client,
    topic: String,
    group: String,
    options: PushOptions,
    listener: Arc<F>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> PushReport
where
    F: Fn(Delivered) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ConsumeResult> + Send + 'static,
{
    use futures_util::FutureExt;
    let slots = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let mut report = PushReport::default();
    let mut backoff = Duration::from_millis(100);
    let stopped = |s: &tokio::sync::watch::Receiver<bool>| *s.borrow();
    while !stopped(&stop) {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let mut permits = vec![first];
        let want = options.receive.max_messages.max(1) as usize;
        while permits.len() < want {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let o = ReceiveOptions {
            max_messages: permits.len() as u32,
            ..options.receive.clone()
        };
        let got = tokio::select! {
            r = client.receive(&topic, &group, &o) => r,
            _ = stop.changed() => break,
        };
        let msgs = match got {
            Ok(m) => {
                backoff = Duration::from_millis(100);
                m
            }
            Err(e) => {
                report.receive_errors += 1;
                tracing::warn!(error = %e, "push consumer: receive failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut msgs = msgs;
        if msgs.len() > permits.len() {
            // More than asked for: give the extras back rather than run them unbounded.
            let extra: Vec<ReceiptHandle> = msgs
                .split_off(permits.len())
                .into_iter()
                .map(|m| m.receipt_handle)
                .collect();
            let _ = client.nack(&topic, &group, extra).await;
        }
        for (m, permit) in msgs.into_iter().zip(permits) {
            let (client, topic, group, listener) = (
                client.clone(),
                topic.clone(),
                group.clone(),
                listener.clone(),
            );
            running.spawn(async move {
                let _permit = permit;
                let receipt = m.receipt_handle;
                // A panic in the listener, before or while its future runs, is a Failure.
                let outcome =
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener(m))) {
                        Ok(fut) => std::panic::AssertUnwindSafe(fut)
                            .catch_unwind()
                            .await
                            .unwrap_or(ConsumeResult::Failure),
                        Err(_) => ConsumeResult::Failure,
                    };
                let mut r = PushReport {
                    received: 1,
                    ..PushReport::default()
                };
                let settled = match outcome {
                    ConsumeResult::Success => client.ack(&topic, &group, vec![receipt]).await,
                    ConsumeResult::Failure => client.nack(&topic, &group, vec![receipt]).await,
                };
                match settled
                    .map_err(|e| e.to_string())
                    .and_then(|v| one(v).map_err(|e| e.to_string()))
                {
                    Ok(()) if outcome == ConsumeResult::Success => r.acked = 1,
                    Ok(()) => r.nacked = 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "push consumer: settling a message failed");
                        r.settle_errors = 1;
                    }
                }
                r
            });
        }
        while let Some(done) = running.try_join_next() {
            report.add(done.unwrap_or_default());
        }
    }
    while let Some(done) = running.join_next().await {
        report.add(done.unwrap_or_default());
    }
    report
}
