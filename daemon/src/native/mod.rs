//! The front end for sundial's own frames: connections (`server`), and one function
//! per request that decodes it, calls the broker and encodes the answer (`requests`),
//! with the conversions between wire and engine types (`convert`).

mod convert;
mod requests;
mod server;

pub use requests::OPS;
pub use server::{run, ServerOptions};

// The request decoder refuses lists longer than `MAX_LIST` before the broker sees them:
// it must not refuse a batch the broker would take.
const _: () = assert!(sundial_wire::MAX_LIST >= crate::broker::MAX_BATCH);
