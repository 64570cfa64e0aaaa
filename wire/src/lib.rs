//! sundial's wire protocol: length-prefixed frames carrying bincode payloads.
//!
//! This crate is a placeholder until the daemon issue lands: it fixes the protocol
//! constants so the engine and the daemon agree on them from the start.

/// Magic bytes that open every frame header.
pub const MAGIC: [u8; 2] = *b"SD";
/// The protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u16 = 1;
/// Default address of the protocol port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";
