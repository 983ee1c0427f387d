//! Sans-IO stream framing. Bytes go in, frames come out; no allocation per byte, no panics on any input.

mod sse;

pub use sse::{Overflow, SseFrame, SseParser, write_sse};
