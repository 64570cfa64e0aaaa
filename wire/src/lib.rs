//! sundial's wire protocol: length-prefixed frames ([`frame`]) carrying bincode
//! payloads ([`message`]), and the async client ([`client`]).

#![deny(missing_docs)]

pub mod client;
pub mod frame;
pub mod message;

pub use client::{
    deliver_at_after, now_ms, Client, ClientError, ClientOptions, ClientResult, ConsumeResult,
    Producer, PushConsumer, PushOptions, PushReport, ReceiveOptions, SimpleConsumer,
};
pub use frame::{
    Frame, FrameCodec, WireError, DEFAULT_MAX_FRAME, HEADER_LEN, MAGIC, PROTOCOL_VERSION,
};
pub use message::{
    decode, encode, Delivered, ErrorCode, FamilyCounts, GroupCounts, GroupInfo, GroupState, Hello,
    MessageInfo, OutgoingMessage, Receipt, Request, Response, StartFrom, StatsReport, TopicCounts,
    TopicInfo, TopicType, Welcome, WireFailure, ALL_CODES,
};

/// Default address of the protocol port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";
