//! Each format's wire contract beyond bodies: which client endpoints speak it, the upstream path,
//! headers and framing of each operation, the same-format request patch, usage on the fast path,
//! model listings, and what an upstream error means. The engine asks here and never matches on a
//! format itself; a new format adds its arms in this file and its own module.

use crate::{Format, anthropic, openai};
use gw_model::{ApiError, ChatRequest, ErrorKind, Fault, Framing, Operation, UpstreamError, Usage};
use http::{HeaderMap, Method};
use serde_json::{Value, json};

/// What a client called, decided from the method, path and headers alone (one place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An API operation in a client format.
    Api {
        /// The client's format.
        format: Format,
        /// The operation.
        op: Operation,
    },
    /// The model list, or one model (`id`), in a client format's shape.
    Models {
        /// The shape to answer in.
        format: Format,
        /// One model's id (percent-decoded), or the list.
        id: Option<String>,
    },
    /// Liveness.
    Health,
    /// A known path with the wrong method.
    MethodNotAllowed {
        /// The format to answer in.
        format: Format,
    },
    /// Nothing here.
    NotFound {
        /// The format to answer in.
        format: Format,
    },
}

/// The format a client speaks, from the path or its headers (for errors on any path).
pub fn client_format(path: &str, headers: &HeaderMap) -> Format {
    if path.starts_with("/v1/messages") || headers.contains_key("anthropic-version") {
        Format::Anthropic
    } else {
        Format::OpenAi
    }
}

/// Maps a request line to an endpoint.
pub fn endpoint(method: &Method, path: &str, headers: &HeaderMap) -> Endpoint {
    let format = client_format(path, headers);
    let api = |f, op| Endpoint::Api { format: f, op };
    let post = method == Method::POST;
    let get = method == Method::GET;
    match path {
        "/v1/chat/completions" if post => api(Format::OpenAi, Operation::Chat),
        "/v1/messages" if post => api(Format::Anthropic, Operation::Chat),
        "/v1/messages/count_tokens" if post => api(Format::Anthropic, Operation::CountTokens),
        "/v1/models" if get => Endpoint::Models { format, id: None },
        "/health" if get => Endpoint::Health,
        p if get && p.starts_with("/v1/models/") => Endpoint::Models {
            format,
            id: Some(gw_codec::percent_decode(&p["/v1/models/".len()..])),
        },
        "/health"
        | "/v1/chat/completions"
        | "/v1/messages"
        | "/v1/messages/count_tokens"
        | "/v1/models" => Endpoint::MethodNotAllowed { format },
        _ => Endpoint::NotFound { format },
    }
}

/// The default path (after the provider's base URL) of an operation, as a template that may
/// name `{model}`; `None` when the format has no such operation.
pub fn default_path(format: Format, op: Operation, _stream: bool) -> Option<&'static str> {
    match (format, op) {
        (Format::OpenAi, Operation::Chat) => Some("/chat/completions"),
        (Format::OpenAi, Operation::CountTokens) => None,
        (Format::Anthropic, Operation::Chat) => Some("/v1/messages"),
        (Format::Anthropic, Operation::CountTokens) => Some("/v1/messages/count_tokens"),
    }
}

/// How the upstream frames a streamed answer.
pub fn framing(format: Format, _op: Operation) -> Framing {
    match format {
        Format::OpenAi | Format::Anthropic => Framing::Sse,
    }
}

/// The `Accept` header of an upstream call.
pub fn accept(format: Format, op: Operation, stream: bool) -> &'static str {
    match (stream, framing(format, op)) {
        (true, Framing::Sse) => "text/event-stream",
        (false, _) => "application/json",
    }
}

/// Headers every upstream request of this format carries unless the provider's config or a
/// same-format client sets them.
pub fn required_headers(format: Format) -> &'static [(&'static str, &'static str)] {
    match format {
        Format::OpenAi => &[],
        Format::Anthropic => &[("anthropic-version", "2023-06-01")],
    }
}

/// Client headers forwarded to an upstream of the same format (API versions, betas: Claude
/// Code relies on them).
pub fn passthrough_headers(format: Format) -> &'static [&'static str] {
    match format {
        Format::OpenAi => &[],
        Format::Anthropic => &["anthropic-version", "anthropic-beta"],
    }
}

/// The client's body for an upstream of its own format, with only the model (and, for OpenAI
/// streams, the usage option the gateway needs for accounting) rewritten. `None`: not an object.
pub fn fast_request(
    format: Format,
    body: &[u8],
    model: &str,
    req: &ChatRequest,
) -> Option<Vec<u8>> {
    let model = crate::fast::json_string(model);
    let mut patches: Vec<(&str, Option<&str>)> = vec![("model", Some(&model))];
    if format == Format::OpenAi && req.stream && !req.include_usage {
        // The relay drops the extra chunk the client did not ask for.
        patches.push(("stream_options", Some(r#"{"include_usage":true}"#)));
    }
    crate::fast::patch_fields(body, &patches)
}

/// Usage from a complete response body, read without building the rest; an error when the
/// body is not one JSON object (every byte is still checked: garbage never passes as an answer).
pub fn usage_of_body(format: Format, body: &[u8]) -> Result<Option<Usage>, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        usage: Option<Value>,
    }
    let p = serde_json::from_slice::<Probe>(body)
        .map_err(|e| format!("the body is not a JSON object ({e})"))?;
    Ok(p.usage.map(|u| match format {
        Format::OpenAi => openai::parse_usage(&u),
        Format::Anthropic => anthropic::parse_usage(&u),
    }))
}

/// One model-list entry in a client format's shape.
pub fn model_entry(format: Format, id: &str, owner: &str) -> Value {
    match format {
        Format::OpenAi => json!({"id": id, "object": "model", "created": 0, "owned_by": owner}),
        Format::Anthropic => {
            json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
        }
    }
}

/// A model list in a client format's shape; `ids` are the entries' ids, in order.
pub fn model_list(format: Format, entries: Vec<Value>, ids: &[&str]) -> Value {
    match format {
        Format::OpenAi => json!({"object": "list", "data": entries}),
        Format::Anthropic => json!({
            "data": entries, "has_more": false,
            "first_id": ids.first(), "last_id": ids.last(),
        }),
    }
}

/// What an upstream's error answer means: its decoded message, whose fault it is, and the
/// status the client should see.
pub fn upstream_error(
    format: Format,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> UpstreamError {
    let mut error = crate::decode_error(format, status, body);
    let retry_after_secs = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
    let (fault, class) = match status {
        401 | 403 => (Fault::Credential, "upstream_auth"),
        429 => (Fault::Upstream, "rate_limited"),
        529 => (Fault::Upstream, "overloaded"),
        408 | 409 => (Fault::Upstream, "upstream_error"),
        s if s >= 500 => (Fault::Upstream, "upstream_error"),
        _ => (Fault::Client, "client_error"),
    };
    match fault {
        // Not the client's fault, and not its proxy key: never a 401/403 to the client.
        Fault::Credential => {
            error.kind = ErrorKind::Api;
            error.status = 502;
            error.code = Some("upstream_auth_failed".into());
        }
        // A provider failure is a bad gateway, except "overloaded", which clients retry.
        Fault::Upstream if status >= 500 && status != 503 && status != 529 => error.status = 502,
        _ => {}
    }
    UpstreamError {
        error,
        fault,
        status: Some(status),
        class,
        retry_after_secs,
    }
}

/// A failure with no upstream answer to decode (connect errors, timeouts, broken or garbage
/// bodies): the provider's fault.
pub fn transport_error(class: &'static str, error: ApiError, status: Option<u16>) -> UpstreamError {
    UpstreamError {
        error,
        fault: Fault::Upstream,
        status,
        class,
        retry_after_secs: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_client_formats() {
        let h = HeaderMap::new();
        let mut anth = HeaderMap::new();
        anth.insert("anthropic-version", "2023-06-01".parse().unwrap());
        assert_eq!(
            endpoint(&Method::POST, "/v1/messages/count_tokens", &h),
            Endpoint::Api {
                format: Format::Anthropic,
                op: Operation::CountTokens
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/models/groq%2Fllama", &anth),
            Endpoint::Models {
                format: Format::Anthropic,
                id: Some("groq/llama".into())
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/chat/completions", &h),
            Endpoint::MethodNotAllowed {
                format: Format::OpenAi
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "/nope", &anth),
            Endpoint::NotFound {
                format: Format::Anthropic
            }
        );
    }

    #[test]
    fn upstream_errors_carry_fault_and_client_status() {
        let e = upstream_error(
            Format::OpenAi,
            401,
            None,
            br#"{"error":{"message":"bad key"}}"#,
        );
        assert_eq!(
            (e.fault, e.error.status, e.class),
            (Fault::Credential, 502, "upstream_auth")
        );
        assert_eq!(e.error.code.as_deref(), Some("upstream_auth_failed"));
        let e = upstream_error(Format::Anthropic, 529, Some("7"), b"{}");
        assert_eq!(
            (e.fault, e.error.status, e.retry_after_secs),
            (Fault::Upstream, 529, Some(7))
        );
        let e = upstream_error(Format::OpenAi, 500, None, b"oops");
        assert_eq!((e.fault, e.error.status), (Fault::Upstream, 502));
        let e = upstream_error(Format::OpenAi, 404, None, b"{}");
        assert!(!e.fault.fails_over() && e.error.status == 404);
    }
}
