//! sundial's wire protocol: length-prefixed frames carrying bincode payloads.
//!
//! So far this crate holds the frame layer ([`frame`]) and the first payload types and
//! error codes ([`message`]); the full request/response enums and the async client come
//! with the daemon.

#![deny(missing_docs)]

pub mod frame;
pub mod message;

pub use frame::{
    Frame, FrameCodec, WireError, DEFAULT_MAX_FRAME, HEADER_LEN, MAGIC, PROTOCOL_VERSION,
};
pub use message::{ErrorCode, WireFailure};

/// Default address of the protocol port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";
