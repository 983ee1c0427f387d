//! OpenAI error bodies: `{"error":{"message","type","param","code"}}`.

use gw_model::{ApiError, ErrorKind};
use serde_json::{Value, json};

fn type_for(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::RequestTooLarge => {
            "invalid_request_error"
        }
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Api => "api_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
    }
}

/// The error object (without the outer `error` key), as it also appears in a stream.
pub(crate) fn error_object(err: &ApiError) -> Value {
    json!({
        "message": err.message,
        "type": type_for(err.kind),
        "param": err.param,
        "code": err.code,
    })
}

/// Encodes an error body.
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    serde_json::to_vec(&json!({ "error": error_object(err) })).unwrap_or_default()
}

/// Decodes an upstream error body; unknown shapes keep the status and a trimmed body as message.
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let kind = ApiError::kind_for_status(status);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let obj = parsed.as_ref().and_then(|v| v.get("error"));
    let message = match obj {
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_owned),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
    .unwrap_or_else(|| crate::anthropic::body_snippet(body));
    let mut err = ApiError::new(kind, message).with_status(status);
    if let Some(Value::Object(o)) = obj {
        err.param = o.get("param").and_then(Value::as_str).map(str::to_owned);
        err.code = o.get("code").and_then(|c| match c {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    }
    err
}
