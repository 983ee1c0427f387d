//! AWS Bedrock Converse / ConverseStream <-> canonical model. Requests are signed with SigV4
//! (the provider's `aws_sigv4` auth); streams are AWS event-stream, framed by `gw_codec`.

mod request;
mod response;
mod stream;

pub use request::{decode_request, encode_request};
pub use response::{
    decode_error, decode_response, encode_error, encode_response, parse_usage, stop_from_reason,
    stop_reason, usage_json,
};
pub use stream::{Decoder, Encoder};
