//! The front end for sundial's own frames: connections (`server`), and one function
//! per request that decodes it, calls the broker and encodes the answer (`requests`),
//! with the conversions between wire and engine types (`convert`).

mod convert;
mod requests;
mod server;

pub use requests::OPS;
pub use server::{run, ServerOptions};
