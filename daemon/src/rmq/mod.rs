//! The RocketMQ 5 gRPC front end (SPEC §8): `apache.rocketmq.v2.MessagingService` over
//! HTTP/2, so the official RocketMQ clients work against sundial unchanged. Like the
//! native front end it only decodes, calls the broker layer and encodes; what it adds
//! is the protocol's own state: which clients are alive (their Telemetry streams) and
//! the renewal of auto-renew deliveries.

mod convert;
mod listener;
mod service;
mod sessions;

pub use service::{Settings, OPS};

use crate::broker::Broker;
use std::sync::Arc;
use std::time::Duration;
use sundial_rmq_proto::v2::messaging_service_server::MessagingServiceServer;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;

/// How often due renewals are looked for (at most: a third of the lease).
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Time in-flight calls get to finish once the daemon stops.
const DRAIN: Duration = Duration::from_secs(5);
/// Concurrent streams one connection may open (a client needs a handful).
const MAX_STREAMS: u32 = 1024;
/// Room around the body in one request: keys, properties and framing.
const REQUEST_HEADROOM: usize = 256 * 1024;

/// How the gRPC port runs.
pub struct Options {
    /// What the service tells and checks.
    pub settings: Settings,
    /// TLS, offered next to plaintext on the same port.
    pub tls: Option<Arc<ServerConfig>>,
    /// Connections at once.
    pub max_connections: usize,
    /// Time a new connection has to start HTTP/2 (or finish its TLS handshake).
    pub handshake_timeout: Duration,
    /// Invisible time of a push consumer's delivery between renewals.
    pub renew_lease: Duration,
}

/// Serves gRPC on `listener` until the broker shuts down.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, opts: Options) {
    let sessions = Arc::new(sessions::Sessions::new(opts.renew_lease));
    let limit = opts
        .settings
        .max_body_bytes
        .saturating_add(REQUEST_HEADROOM);
    let svc = service::Service::new(broker.clone(), sessions.clone(), opts.settings);
    let server = MessagingServiceServer::new(svc)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    let (conns, incoming) = tokio::sync::mpsc::channel(64);
    let accept = tokio::spawn(listener::accept(
        listener,
        opts.tls.map(|t| listener::grpc_tls(&t)),
        opts.max_connections,
        opts.handshake_timeout,
        conns,
    ));
    let opts_lease = opts.renew_lease;
    let renew = {
        let (sessions, broker) = (sessions.clone(), broker.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RENEW_EVERY.min(opts_lease / 3));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                sessions.renew_due(&broker, "AutoRenew").await;
                crate::metrics::grpc_sessions(sessions.clients(), sessions.renewing());
            }
        })
    };
    let mut stop = broker.stopping();
    let stopped = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    let serve = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(MAX_STREAMS)
        .http2_max_pending_accept_reset_streams(Some(256))
        .add_service(server)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(incoming),
            stopped,
        );
    let mut serve = std::pin::pin!(serve);
    let mut stop = broker.stopping();
    tokio::select! {
        r = &mut serve => if let Err(e) = r {
            tracing::error!(error = %e, "the gRPC server failed");
        },
        _ = async {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
            tokio::time::sleep(DRAIN).await;
        } => tracing::warn!("gRPC calls still running {DRAIN:?} after shutdown began; closing them"),
    }
    accept.abort();
    renew.abort();
}
