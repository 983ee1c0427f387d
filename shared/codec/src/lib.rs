//! Sans-IO stream framing (bytes go in, frames come out; no allocation per byte, no panics on
//! any input) and URL percent-encoding.

mod sse;
mod url;

pub use sse::{Overflow, SseFrame, SseParser, write_sse};
pub use url::{percent_decode, percent_encode};
