//! Anthropic error bodies: `{"type":"error","error":{"type","message"}}`.

use gw_model::{ApiError, ErrorKind};
use serde_json::{Value, json};

pub(crate) fn type_for(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Api => "api_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
    }
}

fn kind_for(ty: &str) -> Option<ErrorKind> {
    Some(match ty {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" => ErrorKind::Permission,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" => ErrorKind::RateLimit,
        "api_error" => ErrorKind::Api,
        "overloaded_error" => ErrorKind::Overloaded,
        "timeout_error" => ErrorKind::Timeout,
        _ => return None,
    })
}

/// Encodes an error body (also the `data` of a stream `error` event).
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"type": "error", "error": {"type": type_for(err.kind), "message": err.message}}),
    )
    .unwrap_or_default()
}

/// Decodes an upstream error body.
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let e = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = e
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .and_then(kind_for)
        .unwrap_or_else(|| ApiError::kind_for_status(status));
    let message = e
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| body_snippet(body), str::to_owned);
    ApiError::new(kind, message).with_status(status)
}

/// A short printable excerpt of a body that is not a known error shape.
pub(crate) fn body_snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.is_empty() {
        return "upstream returned an empty error body".to_owned();
    }
    let mut end = s.len().min(300);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
