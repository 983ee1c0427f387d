//! Anthropic Messages API <-> canonical model.

mod error;
mod request;
mod response;
mod stream;

pub(crate) use error::body_snippet;
pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request};
pub(crate) use response::usage_from_raw;
pub use response::{
    JSON_TOOL, decode_response, encode_response, parse_usage, stop_from_reason, stop_reason,
};
pub use stream::{Decoder, Encoder};
