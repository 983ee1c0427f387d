//! Google API error bodies: `{"error":{"code","message","status"}}`.

use gw_model::{ApiError, ErrorKind};
use serde_json::{Value, json};

/// The canonical `status` string for an HTTP status (google.rpc.Code names).
fn status_name(status: u16, kind: ErrorKind) -> &'static str {
    match (status, kind) {
        (401, _) => "UNAUTHENTICATED",
        (403, _) => "PERMISSION_DENIED",
        (404, _) => "NOT_FOUND",
        (408, _) | (504, _) => "DEADLINE_EXCEEDED",
        (409, _) => "ABORTED",
        (429, _) => "RESOURCE_EXHAUSTED",
        (501, _) => "UNIMPLEMENTED",
        (503, _) | (529, _) => "UNAVAILABLE",
        (s, _) if (400..500).contains(&s) => "INVALID_ARGUMENT",
        (_, ErrorKind::Timeout) => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

fn kind_for(status: &str) -> Option<ErrorKind> {
    Some(match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
        "UNAUTHENTICATED" => ErrorKind::Authentication,
        "PERMISSION_DENIED" => ErrorKind::Permission,
        "NOT_FOUND" => ErrorKind::NotFound,
        "RESOURCE_EXHAUSTED" => ErrorKind::RateLimit,
        "UNAVAILABLE" => ErrorKind::Overloaded,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        "INTERNAL" | "UNKNOWN" | "ABORTED" | "UNIMPLEMENTED" => ErrorKind::Api,
        _ => return None,
    })
}

/// The error object (without the outer key), as it also appears in a stream.
pub(crate) fn error_object(err: &ApiError) -> Value {
    json!({
        "code": err.status,
        "message": err.message,
        "status": status_name(err.status, err.kind),
    })
}

/// Encodes an error body.
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    serde_json::to_vec(&json!({ "error": error_object(err) })).unwrap_or_default()
}

/// Decodes an upstream error body (a Google error object, or a list holding one, as some Google
/// endpoints answer).
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let obj = parsed.as_ref().and_then(|v| match v {
        Value::Array(a) => a.first().and_then(|x| x.get("error")),
        v => v.get("error"),
    });
    let kind = obj
        .and_then(|o| o.get("status"))
        .and_then(Value::as_str)
        .and_then(kind_for)
        .unwrap_or_else(|| ApiError::kind_for_status(status));
    let message = obj
        .and_then(|o| o.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| crate::anthropic::body_snippet(body), str::to_owned);
    ApiError::new(kind, message).with_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_shape_both_ways() {
        let e = decode_error(
            400,
            br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(
            (e.kind, e.status, e.message.as_str()),
            (ErrorKind::InvalidRequest, 400, "API key not valid.")
        );
        let e = decode_error(
            429,
            br#"[{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}]"#,
        );
        assert_eq!(e.kind, ErrorKind::RateLimit);
        let v: Value = serde_json::from_slice(&encode_error(&ApiError::new(
            ErrorKind::NotFound,
            "no model",
        )))
        .unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": 404, "message": "no model", "status": "NOT_FOUND"}})
        );
    }
}
