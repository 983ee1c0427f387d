//! OpenAI Chat Completions <-> canonical model (also every OpenAI-compatible provider).

mod error;
mod request;
mod response;
mod stream;
mod typed;

pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request};
pub(crate) use response::usage_from_raw;
pub use response::{
    decode_response, encode_response, finish_reason, parse_usage, stop_from_finish, usage_json,
};
pub use stream::{Decoder, Encoder};
