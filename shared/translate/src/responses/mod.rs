//! The OpenAI Responses API (`/v1/responses`) <-> canonical model. To an OpenAI provider that
//! serves it the request goes natively (byte for byte); elsewhere it is translated: tool
//! namespaces flatten, hosted tools offered are left out, and what only OpenAI can do (stored
//! responses, forced hosted tools, item references) is refused by name.

mod request;
mod response;
mod stream;
mod tools;

pub use request::{check_translatable, decode_request, encode_request};
pub use response::{decode_response, encode_response, parse_usage, usage_json};
pub use stream::{Decoder, Encoder};
pub use tools::without_hosted_offers;

/// Marks redacted reasoning carried in a reasoning item's `encrypted_content`.
pub(crate) const REDACTED: &str = "redacted:";
