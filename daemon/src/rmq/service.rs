//! `apache.rocketmq.v2.MessagingService` on the broker layer: each RPC checks the
//! credentials, decodes (see `convert`), calls the broker and encodes. Refusals are
//! in-band `Status` codes; gRPC statuses are left to the transport.

use super::convert::{self, name_of, ok, status, Refusal};
use super::sessions::Sessions;
use crate::broker::{Broker, MAX_BATCH, MAX_WAIT};
use crate::metrics;
use crate::partial;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_engine::{Error, ReceiptHandle, ReceiveRequest, TopicInfo, TopicKind, MAX_RECEIVE};
use sundial_rmq_proto::digest::ChecksumForm;
use sundial_rmq_proto::v2::{self, messaging_service_server::MessagingService, Code};
use sundial_rmq_proto::{auth, time};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Streaming};

/// The `op` label of each RPC that reaches the broker, and of the renewals of
/// auto-renew deliveries.
pub const OPS: [&str; 10] = [
    "QueryRoute",
    "SendMessage",
    "QueryAssignment",
    "ReceiveMessage",
    "AckMessage",
    "ForwardMessageToDeadLetterQueue",
    "ChangeInvisibleDuration",
    "RecallMessage",
    "RecallLookup",
    "AutoRenew",
];

/// Messages in one `ReceiveMessage` answer when the client asks for none in particular
/// (the clients ask for 32).
const DEFAULT_BATCH: usize = 32;
/// Long-poll wait when the request names none (the reference proxy's default).
const DEFAULT_POLL: Duration = Duration::from_secs(20);
/// A long poll ends this long before the client's deadline, so its answer arrives.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);
/// Invisible duration of a receive that names none and does not auto-renew.
const DEFAULT_INVISIBLE: Duration = Duration::from_secs(30);
/// Stored bytes in one receive's messages (at least one message is always sent).
const MAX_RECEIVE_BYTES: usize = 64 << 20;
/// Answers a Telemetry stream may have unread before it is closed.
const TELEMETRY_BACKLOG: usize = 16;

type Stream2<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;
type Reply<T> = Result<Response<T>, tonic::Status>;

/// What the service is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Access key and secret the clients must sign with.
    pub credentials: Option<(String, String)>,
    /// How long a client message id is remembered.
    pub dedupe_window: Duration,
    /// The engine's body limit, told to producers.
    pub max_body_bytes: usize,
    /// Deliveries before the dead-letter topic, told to consumers.
    pub max_delivery_attempts: u32,
    /// Retry backoff after failures, told to push consumers.
    pub retry_backoff: Vec<Duration>,
}

impl Settings {
    /// The settings a client is to use: its own, with the server's values merged in.
    fn for_client(&self, mut s: v2::Settings) -> v2::Settings {
        use v2::retry_policy::Strategy;
        use v2::settings::PubSub;
        let ms = |n| {
            Some(prost_types::Duration {
                seconds: 0,
                nanos: n * 1_000_000,
            })
        };
        match &mut s.pub_sub {
            Some(PubSub::Publishing(p)) => {
                p.max_body_size = i32::try_from(self.max_body_bytes).unwrap_or(i32::MAX);
                p.validate_message_type = true;
                s.backoff_policy = Some(v2::RetryPolicy {
                    max_attempts: 3,
                    strategy: Some(Strategy::ExponentialBackoff(v2::ExponentialBackoff {
                        initial: ms(10),
                        max: Some(prost_types::Duration {
                            seconds: 1,
                            nanos: 0,
                        }),
                        multiplier: 2.0,
                    })),
                });
            }
            Some(PubSub::Subscription(sub)) => {
                sub.fifo = Some(false);
                sub.receive_batch_size = Some(DEFAULT_BATCH as i32);
                if sub.long_polling_timeout.is_none() {
                    sub.long_polling_timeout = Some(convert::proto_duration(DEFAULT_POLL));
                }
                s.backoff_policy = Some(v2::RetryPolicy {
                    max_attempts: i32::try_from(self.max_delivery_attempts).unwrap_or(i32::MAX),
                    strategy: Some(Strategy::CustomizedBackoff(v2::CustomizedBackoff {
                        next: self
                            .retry_backoff
                            .iter()
                            .map(|d| convert::proto_duration(*d))
                            .collect(),
                    })),
                });
            }
            None => {}
        }
        s.metric = Some(v2::Metric {
            on: false,
            endpoints: None,
        });
        s
    }
}

/// The gRPC service.
pub struct Service {
    broker: Arc<Broker>,
    sessions: Arc<Sessions>,
    settings: Settings,
    stop: watch::Receiver<bool>,
}

impl Service {
    /// A service on `broker`; `sessions` is shared with the renewal task.
    pub fn new(broker: Arc<Broker>, sessions: Arc<Sessions>, settings: Settings) -> Self {
        let stop = broker.stopping();
        Service {
            broker,
            sessions,
            settings,
            stop,
        }
    }

    /// Checks the clients' signature when credentials are configured.
    fn authorize(&self, md: &MetadataMap) -> Result<(), Refusal> {
        let Some((ak, sk)) = &self.settings.credentials else {
            return Ok(());
        };
        let text = |k: &str| md.get(k).and_then(|v| v.to_str().ok());
        let refused = |why: String| {
            metrics::unauthorized();
            Refusal::new(Code::Unauthorized, why)
        };
        let header = text(auth::AUTHORIZATION).ok_or_else(|| {
            refused("no authorization header: configure the access key and secret".into())
        })?;
        let date =
            text(auth::DATE_TIME).ok_or_else(|| refused("no x-mq-date-time header".into()))?;
        auth::verify(header, date, ak, sk.as_bytes()).map_err(|e| refused(e.to_string()))
    }

    /// Counts a request refused before it reached the broker.
    fn refused(&self, op: &'static str, started: Instant, r: &Refusal) {
        metrics::request_done(op, started, Some(r.code.as_str_name()));
    }

    fn queue(
        &self,
        topic: v2::Resource,
        info: &TopicInfo,
        endpoints: v2::Endpoints,
    ) -> v2::MessageQueue {
        let types = match info.kind {
            TopicKind::Delay => vec![v2::MessageType::Delay],
            TopicKind::Normal => vec![v2::MessageType::Normal],
            TopicKind::Mixed => vec![v2::MessageType::Normal, v2::MessageType::Delay],
        };
        v2::MessageQueue {
            topic: Some(topic),
            id: 0,
            permission: v2::Permission::ReadWrite as i32,
            broker: Some(v2::Broker {
                name: "sundial".into(),
                id: 0,
                endpoints: Some(endpoints),
            }),
            accept_message_types: types.into_iter().map(|t| t as i32).collect(),
        }
    }

    /// The queue of a topic, for a route or an assignment, once the caller's credentials
    /// are checked; a refusal is counted under `op`.
    async fn topic_queue(
        &self,
        op: &'static str,
        md: &MetadataMap,
        topic: Option<v2::Resource>,
        asked: Option<v2::Endpoints>,
        local: Option<std::net::SocketAddr>,
    ) -> Result<v2::MessageQueue, Refusal> {
        let started = Instant::now();
        let answer = async {
            self.authorize(md)?;
            let name = name_of(topic.as_ref(), "topic", Code::IllegalTopic)?;
            let info = self.broker.topic_info(op, name).await?;
            Ok(self.queue(topic.unwrap_or_default(), &info, endpoints(asked, local)))
        }
        .await;
        if let Err(r) = &answer {
            self.refused(op, started, r);
        }
        answer
    }

    /// Sends the messages of one `SendMessage` in one commit; one entry per message.
    async fn send_all(&self, messages: Vec<v2::Message>) -> Vec<v2::SendResultEntry> {
        const OP: &str = "SendMessage";
        let started = Instant::now();
        let entry = |id: String, status, recall_handle| v2::SendResultEntry {
            status: Some(status),
            message_id: id,
            transaction_id: String::new(),
            offset: 0,
            recall_handle,
        };
        let mut ids = Vec::with_capacity(messages.len());
        let mut refused = Vec::with_capacity(messages.len());
        let mut accepted = Vec::new();
        for m in messages {
            ids.push(
                m.system_properties
                    .as_ref()
                    .map(|p| p.message_id.clone())
                    .unwrap_or_default(),
            );
            match convert::new_message(m) {
                Ok(x) => {
                    refused.push(None);
                    accepted.push(x);
                }
                Err(r) => {
                    self.refused(OP, started, &r);
                    refused.push(Some(r));
                }
            }
        }
        let mut sent = match accepted.is_empty() {
            true => Vec::new(),
            false => match self
                .broker
                .send_once_batch(OP, accepted, self.settings.dedupe_window)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    let r = Refusal::from(e);
                    return ids
                        .into_iter()
                        .map(|id| entry(id, r.status(), String::new()))
                        .collect();
                }
            },
        }
        .into_iter();
        ids.into_iter()
            .zip(refused)
            .map(|(id, refused)| match refused {
                Some(r) => entry(id, r.status(), String::new()),
                None => match sent.next() {
                    Some(Ok(receipt)) => entry(id, ok(), receipt.recall_handle()),
                    Some(Err(e)) => entry(id, Refusal::from(e).status(), String::new()),
                    None => entry(
                        id,
                        status(Code::InternalServerError, "no result for the message"),
                        String::new(),
                    ),
                },
            })
            .collect()
    }

    async fn receive(
        &self,
        req: v2::ReceiveMessageRequest,
        client: &str,
        deadline: Option<Duration>,
        form: ChecksumForm,
    ) -> Result<Vec<v2::ReceiveMessageResponse>, Refusal> {
        use v2::receive_message_response::Content;
        let group = name_of(
            req.group.as_ref(),
            "consumer group",
            Code::IllegalConsumerGroup,
        )?;
        let topic_res = req.message_queue.and_then(|q| q.topic);
        let topic = name_of(topic_res.as_ref(), "topic", Code::IllegalTopic)?;
        let namespace = topic_res.map(|t| t.resource_namespace).unwrap_or_default();
        let filter = convert::filter(req.filter_expression.as_ref())?;
        let max = match usize::try_from(req.batch_size) {
            Ok(0) | Err(_) => DEFAULT_BATCH,
            Ok(n) => n.min(MAX_RECEIVE),
        };
        let invisible = match &req.invisible_duration {
            Some(d) => convert::duration(d, Code::IllegalInvisibleTime, "invisible duration")?,
            None if req.auto_renew => self.sessions.lease(),
            None => DEFAULT_INVISIBLE,
        };
        let mut wait = match &req.long_polling_timeout {
            Some(d) => convert::duration(d, Code::IllegalPollingTime, "long polling timeout")?,
            None => DEFAULT_POLL,
        };
        if let Some(d) = deadline {
            // Answer before the client gives up: a second early, or half of a short one.
            let margin = DEADLINE_MARGIN.min(d / 2);
            wait = wait.min(d - margin);
        }
        let rr = ReceiveRequest {
            topic: topic.clone(),
            group: group.clone(),
            filter,
            max_messages: max,
            invisible_duration: invisible,
            max_bytes: Some(MAX_RECEIVE_BYTES),
        };
        let got = self
            .broker
            .receive("ReceiveMessage", rr, wait.min(MAX_WAIT))
            .await?;
        if got.is_empty() {
            return Ok(vec![v2::ReceiveMessageResponse {
                content: Some(Content::Status(status(
                    Code::MessageNotFound,
                    "no message is ready",
                ))),
            }]);
        }
        let mut out = Vec::with_capacity(got.len() + 2);
        out.push(v2::ReceiveMessageResponse {
            content: Some(Content::Status(ok())),
        });
        for m in got {
            if req.auto_renew && !client.is_empty() {
                self.sessions
                    .renew(client, &topic, &group, &m.receipt_handle);
            }
            out.push(v2::ReceiveMessageResponse {
                content: Some(Content::Message(convert::delivered(
                    m, &topic, &namespace, invisible, form,
                ))),
            });
        }
        out.push(v2::ReceiveMessageResponse {
            content: Some(Content::DeliveryTimestamp(time::timestamp_of_ms(
                sundial_wire::now_ms() as i64,
            ))),
        });
        Ok(out)
    }

    async fn ack(
        &self,
        req: v2::AckMessageRequest,
    ) -> Result<Vec<v2::AckMessageResultEntry>, Refusal> {
        let group = name_of(
            req.group.as_ref(),
            "consumer group",
            Code::IllegalConsumerGroup,
        )?;
        let topic = name_of(req.topic.as_ref(), "topic", Code::IllegalTopic)?;
        if req.entries.len() > MAX_BATCH {
            return Err(Refusal::new(
                Code::BadRequest,
                format!(
                    "an ack holds at most {MAX_BATCH} entries, not {}",
                    req.entries.len()
                ),
            ));
        }
        let used: Vec<Result<ReceiptHandle, Error>> = req
            .entries
            .iter()
            .map(|e| self.sessions.current(&e.receipt_handle))
            .collect();
        // Text that is no receipt handle is refused on its own; the rest go in one ack.
        let handles = partial::sendable(&used);
        let acked = if handles.is_empty() {
            Vec::new()
        } else {
            self.broker
                .ack("AckMessage", topic.clone(), group.clone(), handles)
                .await?
        };
        let mut results = partial::in_order(used.clone(), acked, || {
            Error::Internal("an ack result is missing".into())
        });
        // A renewal may have replaced the receipt while the ack was on its way.
        for (i, e) in req.entries.iter().enumerate() {
            if matches!(results[i], Err(Error::BadReceiptHandle(_))) {
                let Ok(now) = self.sessions.current(&e.receipt_handle) else {
                    continue;
                };
                if Some(now) != used[i].clone().ok() {
                    let again = self
                        .broker
                        .ack("AckMessage", topic.clone(), group.clone(), vec![now])
                        .await?;
                    if let Some(r) = again.into_iter().next() {
                        results[i] = r;
                    }
                }
            }
        }
        Ok(req
            .entries
            .into_iter()
            .zip(results)
            .map(|(e, r)| {
                let status = match r {
                    Ok(()) => {
                        self.sessions.settled(&e.receipt_handle);
                        ok()
                    }
                    Err(err) => Refusal::from(err).status(),
                };
                v2::AckMessageResultEntry {
                    message_id: e.message_id,
                    receipt_handle: e.receipt_handle,
                    status: Some(status),
                }
            })
            .collect())
    }
}

/// The endpoints to advertise: the ones the client dialled, else this connection's
/// local address.
fn endpoints(asked: Option<v2::Endpoints>, local: Option<std::net::SocketAddr>) -> v2::Endpoints {
    if let Some(e) = asked.filter(|e| !e.addresses.is_empty()) {
        return e;
    }
    let (scheme, host, port) = match local {
        Some(a) => (
            if a.is_ipv4() {
                v2::AddressScheme::IPv4
            } else {
                v2::AddressScheme::IPv6
            },
            a.ip().to_string(),
            i32::from(a.port()),
        ),
        None => (v2::AddressScheme::IPv4, "127.0.0.1".into(), 8081),
    };
    v2::Endpoints {
        scheme: scheme as i32,
        addresses: vec![v2::Address { host, port }],
    }
}

/// The client id the clients send with every call (empty when missing).
fn client_id(md: &MetadataMap) -> String {
    md.get("x-mq-client-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The time the client gives the call, from its `grpc-timeout` header.
fn grpc_timeout(md: &MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (n, unit) = v.split_at(v.len() - 1);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The top-level status of a call with several entries: OK when all are, the entry's
/// own when there is one, MULTIPLE_RESULTS when they differ.
fn overall(entries: &[Option<v2::Status>]) -> v2::Status {
    let codes: Vec<i32> = entries
        .iter()
        .map(|s| s.as_ref().map_or(0, |s| s.code))
        .collect();
    if codes.iter().all(|c| *c == Code::Ok as i32) {
        return ok();
    }
    if entries.len() == 1 {
        return entries[0].clone().unwrap_or_else(ok);
    }
    status(
        Code::MultipleResults,
        "some entries failed; see each entry's status",
    )
}

fn one<T: Send + 'static>(items: Vec<T>) -> Stream2<T> {
    Box::pin(tokio_stream::iter(items.into_iter().map(Ok)))
}

#[tonic::async_trait]
impl MessagingService for Service {
    async fn query_route(
        &self,
        request: Request<v2::QueryRouteRequest>,
    ) -> Reply<v2::QueryRouteResponse> {
        let (local, md) = (request.local_addr(), request.metadata().clone());
        let req = request.into_inner();
        let answer = self
            .topic_queue("QueryRoute", &md, req.topic, req.endpoints, local)
            .await;
        Ok(Response::new(match answer {
            Ok(q) => v2::QueryRouteResponse {
                status: Some(ok()),
                message_queues: vec![q],
            },
            Err(r) => v2::QueryRouteResponse {
                status: Some(r.status()),
                message_queues: vec![],
            },
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<v2::HeartbeatRequest>,
    ) -> Reply<v2::HeartbeatResponse> {
        let status = match self.authorize(request.metadata()) {
            Ok(()) => ok(),
            Err(r) => r.status(),
        };
        Ok(Response::new(v2::HeartbeatResponse {
            status: Some(status),
        }))
    }

    async fn send_message(
        &self,
        request: Request<v2::SendMessageRequest>,
    ) -> Reply<v2::SendMessageResponse> {
        let started = Instant::now();
        if let Err(r) = self.authorize(request.metadata()) {
            self.refused("SendMessage", started, &r);
            return Ok(Response::new(v2::SendMessageResponse {
                status: Some(r.status()),
                entries: vec![],
            }));
        }
        let req = request.into_inner();
        let n = req.messages.len();
        if n == 0 || n > MAX_BATCH {
            let r = Refusal::new(
                Code::BadRequest,
                format!("a send holds 1 to {MAX_BATCH} messages, not {n}"),
            );
            self.refused("SendMessage", started, &r);
            return Ok(Response::new(v2::SendMessageResponse {
                status: Some(r.status()),
                entries: vec![],
            }));
        }
        let entries = self.send_all(req.messages).await;
        let statuses: Vec<_> = entries.iter().map(|e| e.status.clone()).collect();
        Ok(Response::new(v2::SendMessageResponse {
            status: Some(overall(&statuses)),
            entries,
        }))
    }

    async fn query_assignment(
        &self,
        request: Request<v2::QueryAssignmentRequest>,
    ) -> Reply<v2::QueryAssignmentResponse> {
        let (local, md) = (request.local_addr(), request.metadata().clone());
        let req = request.into_inner();
        let answer = self
            .topic_queue("QueryAssignment", &md, req.topic, req.endpoints, local)
            .await;
        Ok(Response::new(match answer {
            Ok(q) => v2::QueryAssignmentResponse {
                status: Some(ok()),
                assignments: vec![v2::Assignment {
                    message_queue: Some(q),
                }],
            },
            Err(r) => v2::QueryAssignmentResponse {
                status: Some(r.status()),
                assignments: vec![],
            },
        }))
    }

    async fn receive_message(
        &self,
        request: Request<v2::ReceiveMessageRequest>,
    ) -> Reply<Stream2<v2::ReceiveMessageResponse>> {
        use v2::receive_message_response::Content;
        let started = Instant::now();
        let client = client_id(request.metadata());
        let deadline = grpc_timeout(request.metadata());
        let form = ChecksumForm::for_language(
            request
                .metadata()
                .get("x-mq-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let answer = match self.authorize(request.metadata()) {
            Err(r) => Err(r),
            Ok(()) => {
                self.receive(request.into_inner(), &client, deadline, form)
                    .await
            }
        };
        let frames = answer.unwrap_or_else(|r| {
            self.refused("ReceiveMessage", started, &r);
            vec![v2::ReceiveMessageResponse {
                content: Some(Content::Status(r.status())),
            }]
        });
        Ok(Response::new(one(frames)))
    }

    async fn ack_message(
        &self,
        request: Request<v2::AckMessageRequest>,
    ) -> Reply<v2::AckMessageResponse> {
        let started = Instant::now();
        let answer = match self.authorize(request.metadata()) {
            Err(r) => Err(r),
            Ok(()) => self.ack(request.into_inner()).await,
        };
        Ok(Response::new(match answer {
            Ok(entries) => {
                let statuses: Vec<_> = entries.iter().map(|e| e.status.clone()).collect();
                v2::AckMessageResponse {
                    status: Some(overall(&statuses)),
                    entries,
                }
            }
            Err(r) => {
                self.refused("AckMessage", started, &r);
                v2::AckMessageResponse {
                    status: Some(r.status()),
                    entries: vec![],
                }
            }
        }))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<v2::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Reply<v2::ForwardMessageToDeadLetterQueueResponse> {
        const OP: &str = "ForwardMessageToDeadLetterQueue";
        let started = Instant::now();
        let answer = async {
            self.authorize(request.metadata())?;
            let req = request.into_inner();
            let group = name_of(
                req.group.as_ref(),
                "consumer group",
                Code::IllegalConsumerGroup,
            )?;
            let topic = name_of(req.topic.as_ref(), "topic", Code::IllegalTopic)?;
            let current = self.sessions.current(&req.receipt_handle)?;
            self.broker.dead_letter(OP, topic, group, current).await?;
            self.sessions.settled(&req.receipt_handle);
            Ok::<_, Refusal>(())
        }
        .await;
        let status = match answer {
            Ok(()) => ok(),
            Err(r) => {
                self.refused(OP, started, &r);
                r.status()
            }
        };
        Ok(Response::new(v2::ForwardMessageToDeadLetterQueueResponse {
            status: Some(status),
        }))
    }

    async fn telemetry(
        &self,
        request: Request<Streaming<v2::TelemetryCommand>>,
    ) -> Reply<Stream2<v2::TelemetryCommand>> {
        use v2::telemetry_command::Command;
        if let Err(r) = self.authorize(request.metadata()) {
            return Ok(Response::new(one(vec![v2::TelemetryCommand {
                status: Some(r.status()),
                command: None,
            }])));
        }
        let client = client_id(request.metadata());
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(TELEMETRY_BACKLOG);
        let presence = self.sessions.open(&client);
        let mut stop = self.stop.clone();
        let settings = self.settings.clone();
        tokio::spawn(async move {
            let _alive = presence;
            loop {
                let next = tokio::select! {
                    n = inbound.message() => n,
                    _ = stop.changed() => break,
                };
                match next {
                    Ok(Some(cmd)) => {
                        let Some(Command::Settings(s)) = cmd.command else {
                            // Answers to commands sundial never sends.
                            continue;
                        };
                        let reply = v2::TelemetryCommand {
                            status: Some(ok()),
                            command: Some(Command::Settings(settings.for_client(s))),
                        };
                        if tx.try_send(Ok(reply)).is_err() {
                            tracing::debug!(
                                client,
                                "closing a Telemetry stream whose client reads no answers"
                            );
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(client, error = %e, "Telemetry stream ended");
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn notify_client_termination(
        &self,
        request: Request<v2::NotifyClientTerminationRequest>,
    ) -> Reply<v2::NotifyClientTerminationResponse> {
        let status = match self.authorize(request.metadata()) {
            Ok(()) => ok(),
            Err(r) => r.status(),
        };
        Ok(Response::new(v2::NotifyClientTerminationResponse {
            status: Some(status),
        }))
    }

    async fn change_invisible_duration(
        &self,
        request: Request<v2::ChangeInvisibleDurationRequest>,
    ) -> Reply<v2::ChangeInvisibleDurationResponse> {
        const OP: &str = "ChangeInvisibleDuration";
        let started = Instant::now();
        let mut given = String::new();
        let answer = async {
            self.authorize(request.metadata())?;
            let req = request.into_inner();
            given = req.receipt_handle.clone();
            let group = name_of(
                req.group.as_ref(),
                "consumer group",
                Code::IllegalConsumerGroup,
            )?;
            let topic = name_of(req.topic.as_ref(), "topic", Code::IllegalTopic)?;
            let d = req.invisible_duration.as_ref().ok_or_else(|| {
                Refusal::new(
                    Code::IllegalInvisibleTime,
                    "no invisible duration in the request",
                )
            })?;
            let d = convert::duration(d, Code::IllegalInvisibleTime, "invisible duration")?;
            // A push consumer nacks by changing the duration to its backoff, which is 0
            // ("visible again now") when it has none, as the Node.js client does with a
            // customized backoff it does not implement. Refusing it made that client retry
            // the change forever, and the message never came back while the client lived.
            // Below the engine's minimum means the minimum.
            let d = d.max(sundial_engine::MIN_INVISIBLE);
            let current = self.sessions.current(&req.receipt_handle)?;
            let new = self
                .broker
                .change_invisible(OP, topic, group, current, d)
                .await?;
            self.sessions.settled(&req.receipt_handle);
            Ok::<_, Refusal>(new)
        }
        .await;
        Ok(Response::new(match answer {
            Ok(new) => v2::ChangeInvisibleDurationResponse {
                status: Some(ok()),
                receipt_handle: new.to_string(),
            },
            Err(r) => {
                self.refused(OP, started, &r);
                // The Python client stores this handle before it looks at the status:
                // hand back the one it sent, so a later ack still names the delivery.
                v2::ChangeInvisibleDurationResponse {
                    status: Some(r.status()),
                    receipt_handle: given,
                }
            }
        }))
    }

    async fn recall_message(
        &self,
        request: Request<v2::RecallMessageRequest>,
    ) -> Reply<v2::RecallMessageResponse> {
        const OP: &str = "RecallMessage";
        let started = Instant::now();
        let answer = async {
            self.authorize(request.metadata())?;
            let req = request.into_inner();
            let handle = req.recall_handle;
            // The id the client knows, read before the recall removes the message.
            let sundial_id = handle.get(16..).unwrap_or_default().to_string();
            let client_id = match self
                .broker
                .show_message("RecallLookup", sundial_id.clone())
                .await
            {
                Ok(v) => v
                    .properties
                    .get(crate::broker::CLIENT_ID_PROPERTY)
                    .cloned()
                    .unwrap_or(sundial_id),
                Err(_) => sundial_id,
            };
            self.broker.recall(OP, handle).await?;
            Ok::<_, Refusal>(client_id)
        }
        .await;
        Ok(Response::new(match answer {
            Ok(id) => v2::RecallMessageResponse {
                status: Some(ok()),
                message_id: id,
            },
            Err(r) => {
                self.refused(OP, started, &r);
                v2::RecallMessageResponse {
                    status: Some(r.status()),
                    message_id: String::new(),
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let t = |v: &str| {
            let mut md = MetadataMap::new();
            md.insert("grpc-timeout", MetadataValue::try_from(v).unwrap());
            grpc_timeout(&md)
        };
        assert_eq!(t("8000m"), Some(Duration::from_secs(8)));
        assert_eq!(t("23S"), Some(Duration::from_secs(23)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("2M"), Some(Duration::from_secs(120)));
        assert_eq!(t("5000000u"), Some(Duration::from_secs(5)));
        assert_eq!(t("7n"), Some(Duration::from_nanos(7)));
        assert_eq!(t("12x"), None);
        assert_eq!(t("S"), None);
        assert_eq!(t("1234567890S"), None);
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }

    #[test]
    fn the_overall_status_of_several_entries() {
        let bad = Some(status(Code::InvalidReceiptHandle, "x"));
        assert_eq!(overall(&[Some(ok()), Some(ok())]).code, Code::Ok as i32);
        assert_eq!(
            overall(std::slice::from_ref(&bad)).code,
            Code::InvalidReceiptHandle as i32
        );
        assert_eq!(
            overall(&[Some(ok()), bad]).code,
            Code::MultipleResults as i32
        );
    }

    #[test]
    fn routes_advertise_what_the_client_dialled() {
        let asked = v2::Endpoints {
            scheme: v2::AddressScheme::DomainName as i32,
            addresses: vec![v2::Address {
                host: "localhost".into(),
                port: 9876,
            }],
        };
        assert_eq!(endpoints(Some(asked.clone()), None), asked);
        let local = "127.0.0.1:8081".parse().ok();
        let e = endpoints(None, local);
        assert_eq!(e.scheme, v2::AddressScheme::IPv4 as i32);
        assert_eq!(e.addresses[0].port, 8081);
    }
}
