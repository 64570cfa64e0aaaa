//! RocketMQ 5's gRPC protocol for sundial: the wire types and the `MessagingService`
//! server and client generated from the crate's own `.proto` files, and the protocol's
//! facts that do not depend on the daemon (delivery times, body digests, request
//! signatures, decoding a request by RPC name).
//!
//! The front end that serves the protocol lives on the daemon's broker layer; this
//! crate only knows the wire.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod convert;
pub mod decode;
pub mod digest;
pub mod time;

pub use decode::{decode_request, DecodeError, Request, RPCS};

/// The generated `apache.rocketmq.v2` package: messages, enums, and the
/// `messaging_service_server` / `messaging_service_client` modules.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v2 {
    tonic::include_proto!("apache.rocketmq.v2");
}

/// The gRPC service name, as in every request path `/<SERVICE>/<Rpc>`.
pub const SERVICE: &str = "apache.rocketmq.v2.MessagingService";
