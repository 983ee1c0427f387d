//! Cohere error bodies: `{"id"?, "message": "..."}`.

use gw_model::ApiError;
use serde_json::{Value, json};

/// Encodes an error body.
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    serde_json::to_vec(&json!({"message": err.message})).unwrap_or_default()
}

/// Decodes an upstream error body.
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| crate::anthropic::body_snippet(body));
    ApiError::new(ApiError::kind_for_status(status), message).with_status(status)
}
