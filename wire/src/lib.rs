//! sundial's wire protocol: length-prefixed frames ([`frame`]) carrying bincode
//! payloads ([`message`]), and the async client ([`client`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use sundial_wire::{
//!     Client, ClientOptions, ConsumeResult, OutgoingMessage, Producer, PushConsumer,
//!     PushOptions, SimpleConsumer, StartFrom, TopicType,
//! };
//!
//! # async fn example() -> Result<(), sundial_wire::ClientError> {
//! let client = Client::connect("127.0.0.1:7700", ClientOptions::default()).await?;
//! client.create_topic("orders-delay", TopicType::Delay).await?;
//! client.create_group("orders-delay", "billing", StartFrom::Latest, None).await?;
//!
//! // The receipt arrives once the message is durable; the delay becomes an absolute time.
//! let producer = Producer::new(client.clone());
//! let receipt = producer
//!     .send_after(OutgoingMessage::new("orders-delay", "charge order 42").key("42"), Duration::from_secs(10))
//!     .await?;
//! println!("{} due at {}", receipt.message_id, receipt.deliver_at_ms);
//!
//! // Pull: long-polls up to 10 s, then settle each delivery.
//! let consumer = SimpleConsumer::new(client.clone(), "orders-delay", "billing");
//! for m in consumer.receive(16).await? {
//!     consumer.ack(&m.receipt_handle).await?;
//! }
//!
//! // Push: Success acks, Failure nacks (redelivered after the retry backoff).
//! let push = PushConsumer::start(client, "orders-delay", "billing", PushOptions::default(), |m| async move {
//!     println!("{:?}", String::from_utf8_lossy(&m.body));
//!     ConsumeResult::Success
//! });
//! // ... on shutdown: stops polling, waits for running listeners and their acks.
//! let report = push.stop().await;
//! # let _ = report;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod answer;
mod bounded;
pub mod client;
pub mod frame;
pub mod message;
pub mod tls;

pub use answer::{decode_response, encode_response, encode_response_into};
pub use client::{
    deliver_at_after, now_ms, Client, ClientError, ClientOptions, ClientResult, ConsumeResult,
    Producer, PushConsumer, PushOptions, PushReport, ReceiveOptions, SimpleConsumer,
};
pub use frame::{
    put_frame, Frame, FrameCodec, Inbound, WireError, DEFAULT_MAX_FRAME, HEADER_LEN, MAGIC,
    PROTOCOL_VERSION, RESPONSE_HEADROOM,
};
pub use message::{
    decode, decode_request, encode, encode_into, encode_sized, BadReceiptHandle, Delivered,
    Delivery, ErrorCode, FamilyCounts, GroupCounts, GroupInfo, GroupState, Hello, MessageInfo,
    OutgoingMessage, Receipt, ReceiptHandle, Request, Response, Sent, StartFrom, StatsReport,
    TopicCounts, TopicInfo, TopicType, Welcome, WireFailure, ALL_CODES, MAX_DECODE, MAX_LIST,
};

/// Default address of the protocol port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";
