//! Google Gemini `generateContent` <-> canonical model (Google AI Studio, and Gemini-compatible
//! endpoints). Function calls carry no ids upstream: the gateway makes them, carrying each
//! call's `thoughtSignature` so it comes back on the same part (see [`ids`]).

mod error;
mod ids;
mod request;
mod response;
mod schema;
mod stream;

pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request};
pub use response::{
    decode_response, encode_response, finish_reason, parse_usage, stop_from_finish, usage_json,
};
pub use stream::{Decoder, Encoder};

pub(crate) use ids::bare as bare_call_id;
