//! Sans-IO stream framing — Server-Sent Events and AWS event-stream (bytes go in, frames come
//! out; no allocation per byte, no panics on any input) — and URL percent-encoding.

pub mod eventstream;
mod framer;
mod sse;
mod url;

pub use framer::{FrameFail, Framer};

pub use sse::{Overflow, SseFrame, SseParser, write_sse};
pub use url::{percent_decode, percent_encode};
