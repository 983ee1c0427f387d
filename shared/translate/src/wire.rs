//! Each format's wire contract beyond bodies: which client endpoints speak it, the upstream path,
//! headers and framing of each operation, the same-format request patch, usage on the fast path,
//! model listings, and what an upstream error means. The engine asks here and never matches on a
//! format itself; a new format adds its arms in this file and its own module.

use crate::{Format, anthropic, gemini, openai};
use gw_model::{ApiError, ChatRequest, ErrorKind, Fault, Framing, Operation, UpstreamError, Usage};
use http::{HeaderMap, Method};
use serde_json::value::RawValue;
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
        /// What the URL says of the call (Gemini puts the model and the stream there).
        call: UrlCall,
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
    /// Prometheus metrics of this instance.
    Metrics {
        /// The shape of errors.
        format: Format,
    },
    /// Run one round of health checks (admin key).
    HealthCheck {
        /// The shape of errors.
        format: Format,
    },
    /// A provider's native API, forwarded (`/providers/{id}/{rest}`).
    Passthrough {
        /// The shape of the gateway's own errors.
        format: Format,
        /// The provider's id.
        provider: String,
        /// The path after the id, with the query.
        rest: String,
    },
    /// A key's usage against its limits and budget.
    Usage {
        /// The shape of errors.
        format: Format,
    },
    /// Spend by key, provider and model per day, month and all time.
    Spend {
        /// The shape of errors.
        format: Format,
    },
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

/// What a URL fixes about a call, beyond the operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlCall {
    /// The model named in the path.
    pub model: Option<String>,
    /// Streamed or not, when the path decides it.
    pub stream: Option<bool>,
    /// A stream as one JSON array rather than SSE (Gemini without `alt=sse`).
    pub json_array: bool,
    /// Several inputs in one call (Gemini's `:batchEmbedContents`).
    pub batch: bool,
}

/// The format a client speaks, from the path or its headers (for errors on any path).
pub fn client_format(path: &str, headers: &HeaderMap) -> Format {
    // Google's SDKs name themselves in `x-goog-api-client`, whatever the API version.
    if path.starts_with("/v1beta/") || headers.contains_key("x-goog-api-client") {
        Format::Gemini
    } else if path.starts_with("/v1/responses") {
        Format::Responses
    } else if path.starts_with("/v1/messages") || headers.contains_key("anthropic-version") {
        Format::Anthropic
    } else {
        Format::OpenAi
    }
}

/// Gemini's `/v1beta/models/{model}:{method}` paths.
fn gemini_endpoint(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Endpoint> {
    // `/v1beta/models...`, and `/v1/models/{m}:{method}` (google-genai's default API version);
    // `/v1/models` itself is Gemini's only for a Google SDK.
    let rest = match path.strip_prefix("/v1beta/models") {
        Some(r) => r,
        None => {
            let r = path.strip_prefix("/v1/models")?;
            if !(r.contains(':') || headers.contains_key("x-goog-api-client")) {
                return None;
            }
            r
        }
    };
    let format = Format::Gemini;
    if rest.is_empty() || rest == "/" {
        return Some(if *method == Method::GET {
            Endpoint::Models { format, id: None }
        } else {
            Endpoint::MethodNotAllowed { format }
        });
    }
    let rest = rest.strip_prefix('/')?;
    let Some((model, verb)) = rest.rsplit_once(':') else {
        return Some(if *method == Method::GET {
            Endpoint::Models {
                format,
                id: Some(gw_codec::percent_decode(rest)),
            }
        } else {
            Endpoint::NotFound { format }
        });
    };
    let model = Some(gw_codec::percent_decode(model));
    let sse = query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    let (op, stream) = match verb {
        "generateContent" => (Operation::Chat, false),
        "streamGenerateContent" => (Operation::Chat, true),
        "countTokens" => (Operation::CountTokens, false),
        "embedContent" | "batchEmbedContents" => (Operation::Embeddings, false),
        _ => return Some(Endpoint::NotFound { format }),
    };
    if *method != Method::POST {
        return Some(Endpoint::MethodNotAllowed { format });
    }
    Some(Endpoint::Api {
        format,
        op,
        call: UrlCall {
            model,
            stream: Some(stream),
            json_array: stream && !sse,
            batch: verb == "batchEmbedContents",
        },
    })
}

/// Maps a request line to an endpoint.
pub fn endpoint(method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> Endpoint {
    if let Some(e) = gemini_endpoint(method, path, query, headers) {
        return e;
    }
    let format = client_format(path, headers);
    let api = |f, op| Endpoint::Api {
        format: f,
        op,
        call: UrlCall::default(),
    };
    let post = method == Method::POST;
    let get = method == Method::GET;
    match path {
        "/v1/chat/completions" if post => api(Format::OpenAi, Operation::Chat),
        "/v1/responses" if post => api(Format::Responses, Operation::Chat),
        "/v1/messages" if post => api(Format::Anthropic, Operation::Chat),
        "/v1/messages/count_tokens" if post => api(Format::Anthropic, Operation::CountTokens),
        "/v1/embeddings" if post => api(Format::OpenAi, Operation::Embeddings),
        "/v1/completions" if post => api(Format::OpenAi, Operation::Completions),
        p if p.starts_with("/providers/") => {
            let after = &p["/providers/".len()..];
            let (id, rest) = after.split_once('/').unwrap_or((after, ""));
            Endpoint::Passthrough {
                format,
                provider: gw_codec::percent_decode(id),
                rest: match query {
                    Some(q) => format!("{rest}?{q}"),
                    None => rest.to_owned(),
                },
            }
        }
        "/v1/models" if get => Endpoint::Models { format, id: None },
        "/health" if get => Endpoint::Health,
        "/metrics" if get => Endpoint::Metrics { format },
        "/admin/health-check" if post => Endpoint::HealthCheck { format },
        "/v1/usage" if get => Endpoint::Usage { format },
        "/v1/spend" if get => Endpoint::Spend { format },
        p if get && p.starts_with("/v1/models/") => Endpoint::Models {
            format,
            id: Some(gw_codec::percent_decode(&p["/v1/models/".len()..])),
        },
        "/health"
        | "/metrics"
        | "/admin/health-check"
        | "/v1/usage"
        | "/v1/spend"
        | "/v1/responses"
        | "/v1/chat/completions"
        | "/v1/messages"
        | "/v1/messages/count_tokens"
        | "/v1/embeddings"
        | "/v1/completions"
        | "/v1/models" => Endpoint::MethodNotAllowed { format },
        _ => Endpoint::NotFound { format },
    }
}

/// The default path (after the provider's base URL) of an operation, as a template that may
/// name `{model}`; `None` when the format has no such operation.
pub fn default_path(format: Format, op: Operation, stream: bool) -> Option<&'static str> {
    match (format, op) {
        (_, Operation::Embeddings) => crate::embed::EmbedWire::of(format).map(|w| w.default_path()),
        // Declared per provider (`paths.completions`): few OpenAI-format providers still serve it.
        (_, Operation::Completions) => None,
        // Native Responses is what a provider of that format serves; others declare it in config.
        (Format::Responses, Operation::Chat | Operation::Responses) => Some("/responses"),
        (_, Operation::Responses) | (Format::Responses, Operation::CountTokens) => None,
        (Format::OpenAi, Operation::Chat) => Some("/chat/completions"),
        (Format::OpenAi, Operation::CountTokens) => None,
        (Format::Anthropic, Operation::Chat) => Some("/v1/messages"),
        (Format::Anthropic, Operation::CountTokens) => Some("/v1/messages/count_tokens"),
        (Format::Gemini, Operation::Chat) if stream => {
            Some("/models/{model}:streamGenerateContent?alt=sse")
        }
        (Format::Gemini, Operation::Chat) => Some("/models/{model}:generateContent"),
        (Format::Gemini, Operation::CountTokens) => Some("/models/{model}:countTokens"),
        (Format::Cohere, Operation::Chat) => Some("/v2/chat"),
        (Format::Cohere, Operation::CountTokens) => None,
        (Format::Bedrock, Operation::Chat) if stream => Some("/model/{model}/converse-stream"),
        (Format::Bedrock, Operation::Chat) => Some("/model/{model}/converse"),
        (Format::Bedrock, Operation::CountTokens) => None,
        // Any model form: `owner/name`, `owner/name:version`, a version id (in the body).
        (Format::Replicate, Operation::Chat) => Some("/predictions"),
        (Format::Replicate, Operation::CountTokens) => None,
    }
}

/// The operation a client's call maps to on a provider that serves its API natively (the
/// Responses API on an OpenAI provider that declares it), if the client's format has one.
pub fn native_operation(client: Format) -> Option<Operation> {
    match client {
        Format::Responses => Some(Operation::Responses),
        _ => None,
    }
}

/// How the upstream frames a streamed answer.
pub fn framing(format: Format, _op: Operation) -> Framing {
    match format {
        Format::OpenAi
        | Format::Anthropic
        | Format::Gemini
        | Format::Cohere
        | Format::Responses
        | Format::Replicate => Framing::Sse,
        Format::Bedrock => Framing::EventStream,
    }
}

/// The content type of a streamed answer to a client.
pub fn stream_content_type(client: Format, req: &ChatRequest) -> &'static str {
    match client {
        Format::Gemini if req.stream_json_array => "application/json",
        _ => "text/event-stream; charset=utf-8",
    }
}

/// Whether a same-format call may forward the client's bytes both ways (the fast path): not
/// when the client reads a stream framed differently from what the upstream sends.
pub fn can_forward(format: Format, req: &ChatRequest) -> bool {
    !(format == Format::Gemini && req.stream_json_array)
}

/// The body of a token count the gateway estimated, in the client's shape.
pub fn count_tokens_body(client: Format, tokens: u64) -> Value {
    match client {
        Format::Gemini => json!({"totalTokens": tokens}),
        Format::OpenAi
        | Format::Anthropic
        | Format::Cohere
        | Format::Responses
        | Format::Replicate => json!({"input_tokens": tokens}),
        Format::Bedrock => json!({"inputTokens": tokens}),
    }
}

/// The `Accept` header of an upstream call.
pub fn accept(format: Format, op: Operation, stream: bool) -> &'static str {
    if two_step(format) {
        // The first call creates the prediction: JSON either way.
        return "application/json";
    }
    match (stream, framing(format, op)) {
        (true, Framing::Sse) => "text/event-stream",
        (true, Framing::EventStream) => "application/vnd.amazon.eventstream",
        (false, _) => "application/json",
    }
}

/// Headers every upstream request of this format carries unless the provider's config or a
/// same-format client sets them.
pub fn required_headers(format: Format) -> &'static [(&'static str, &'static str)] {
    match format {
        Format::OpenAi
        | Format::Gemini
        | Format::Cohere
        | Format::Bedrock
        | Format::Responses
        | Format::Replicate => &[],
        Format::Anthropic => &[("anthropic-version", "2023-06-01")],
    }
}

/// Headers a call of this format carries depending on whether it streams: Replicate holds a
/// whole answer's request open until the prediction is done (`Prefer: wait`, up to a minute).
pub fn call_headers(format: Format, stream: bool) -> &'static [(&'static str, &'static str)] {
    match format {
        Format::Replicate if !stream => &[("prefer", "wait")],
        _ => &[],
    }
}

/// Whether a call is two steps: the first answer says where the real one is read
/// ([`follow_up`]).
pub fn two_step(format: Format) -> bool {
    format == Format::Replicate
}

/// After a two-step format's first answer (or a poll): the URL to GET next, and whether it is
/// the stream; `None`: this body is the answer.
pub fn follow_up(format: Format, stream: bool, body: &[u8]) -> Option<(String, bool)> {
    match format {
        Format::Replicate => crate::replicate::follow_up(stream, body).map(|f| (f.url, f.stream)),
        _ => None,
    }
}

/// Client headers forwarded to an upstream of the same format (API versions, betas: Claude
/// Code relies on them).
pub fn passthrough_headers(format: Format) -> &'static [&'static str] {
    match format {
        Format::OpenAi
        | Format::Gemini
        | Format::Cohere
        | Format::Bedrock
        | Format::Responses
        | Format::Replicate => &[],
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
    if matches!(format, Format::Gemini | Format::Bedrock) {
        // The model is in the URL; the body goes as it came.
        return crate::fast::patch_fields(body, &[]);
    }
    let usage = format == Format::OpenAi && req.stream && !req.include_usage;
    if req.model == model && !usage {
        // Nothing to change: the body decoded as an object and its `model` (here the model
        // always comes from the body; Gemini's URL names it, above) is already the upstream's,
        // whatever its spelling. It goes byte for byte, without another scan.
        return Some(body.to_vec());
    }
    let model = crate::fast::json_string(model);
    let mut patches: Vec<(&str, Option<&str>)> = vec![("model", Some(&model))];
    if usage {
        // The relay drops the extra chunk the client did not ask for.
        patches.push(("stream_options", Some(r#"{"include_usage":true}"#)));
    }
    crate::fast::patch_fields(body, &patches)
}

/// Usage from a complete response body, read without building the rest; an error when the
/// body is not one JSON object (every byte is still checked: garbage never passes as an answer).
pub fn usage_of_body(format: Format, body: &[u8]) -> Result<Option<Usage>, String> {
    // Only the usage object is kept, as text; the rest of the body is checked and skipped.
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        usage: Option<&'a RawValue>,
        #[serde(rename = "usageMetadata", borrow)]
        usage_metadata: Option<&'a RawValue>,
    }
    let p = serde_json::from_slice::<Probe<'_>>(body)
        .map_err(|e| format!("the body is not a JSON object ({e})"))?;
    let tree = |raw: &RawValue| serde_json::from_str::<Value>(raw.get()).unwrap_or_default();
    Ok(match format {
        Format::OpenAi => p.usage.map(|u| openai::usage_from_raw(u.get())),
        Format::Anthropic => p.usage.map(|u| anthropic::usage_from_raw(u.get())),
        Format::Gemini => p.usage_metadata.map(|u| gemini::parse_usage(&tree(u))),
        Format::Cohere => p.usage.map(|u| crate::cohere::parse_usage(&tree(u))),
        Format::Bedrock => p.usage.map(|u| crate::bedrock::parse_usage(&tree(u))),
        Format::Responses => p.usage.map(|u| crate::responses::parse_usage(&tree(u))),
        Format::Replicate => None,
    })
}

/// One model-list entry in a client format's shape.
pub fn model_entry(format: Format, id: &str, owner: &str) -> Value {
    match format {
        Format::OpenAi | Format::Responses => {
            json!({"id": id, "object": "model", "created": 0, "owned_by": owner})
        }
        Format::Anthropic => {
            json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
        }
        Format::Gemini => json!({
            "name": format!("models/{id}"), "baseModelId": id, "version": "001", "displayName": id,
            "description": format!("{id}, served through the gateway by {owner}"),
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        }),
        Format::Cohere => json!({"name": id, "endpoints": ["chat"]}),
        Format::Bedrock => json!({"modelId": id, "providerName": owner}),
        Format::Replicate => json!({"owner": owner, "name": id}),
    }
}

/// A model list in a client format's shape; `ids` are the entries' ids, in order.
pub fn model_list(format: Format, entries: Vec<Value>, ids: &[&str]) -> Value {
    match format {
        Format::OpenAi | Format::Responses => json!({"object": "list", "data": entries}),
        Format::Anthropic => json!({
            "data": entries, "has_more": false,
            "first_id": ids.first(), "last_id": ids.last(),
        }),
        Format::Gemini | Format::Cohere => json!({"models": entries}),
        Format::Bedrock => json!({"modelSummaries": entries}),
        Format::Replicate => json!({"results": entries}),
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

/// How long an upstream asked the gateway to wait, in seconds (rounded up): `retry-after-ms`,
/// `retry-after` (seconds), or else OpenAI's and Groq's `x-ratelimit-reset-requests` /
/// `x-ratelimit-reset-tokens` durations (`1s`, `6m0s`, `20ms`; the longer one, so that nothing is
/// sent before either resets).
pub fn retry_after_secs(h: &HeaderMap) -> Option<u64> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    let ms = get("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .or_else(|| {
            get("retry-after")
                .and_then(|v| v.parse::<f64>().ok())
                .map(|s| s * 1000.0)
        })
        .or_else(|| {
            ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
                .iter()
                .filter_map(|k| get(k).and_then(duration_ms))
                .reduce(f64::max)
        })?;
    (ms.is_finite() && ms >= 0.0).then(|| (ms / 1000.0).ceil() as u64)
}

/// A Go-style duration (`1h2m3.5s`, `20ms`) in milliseconds.
fn duration_ms(v: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = v;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += value
            * match &rest[..unit] {
                "h" => 3_600_000.0,
                "m" => 60_000.0,
                "s" => 1_000.0,
                "ms" => 1.0,
                _ => return None,
            };
        rest = &rest[unit..];
    }
    Some(total)
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

    const USAGE_CASES: [&str; 9] = [
        r#"{"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 2}}"#,
        r#"{"prompt_tokens": 3, "completion_tokens": 1}"#,
        r#"{"prompt_tokens": "3", "completion_tokens": -1, "prompt_tokens_details": null}"#,
        r#"{"prompt_tokens": 3.5, "prompt_tokens_details": [4], "completion_tokens_details": "x"}"#,
        r#"{"prompt_tokens": 2, "prompt_tokens_details": {"cached_tokens": 9}}"#,
        r#"{"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2, "server_tool_use": {"web_search_requests": 1}}"#,
        r#"{"input_tokens": [1], "output_tokens": {"a": 1}, "cache_read_input_tokens": true}"#,
        r#"[7, 8]"#,
        r#"null"#,
    ];

    #[test]
    fn usage_of_a_body_matches_the_tree_readers() {
        for raw in USAGE_CASES {
            let tree: Value = serde_json::from_str(raw).unwrap();
            let body = format!(r#"{{"id": "x", "usage": {raw}}}"#);
            let of = |f| usage_of_body(f, body.as_bytes()).unwrap();
            // `"usage": null` is no usage, as an absent one.
            let want = |u| (!tree.is_null()).then_some(u);
            assert_eq!(
                of(Format::OpenAi),
                want(openai::parse_usage(&tree)),
                "{raw}"
            );
            let anthropic = want(anthropic::parse_usage(&tree));
            assert_eq!(of(Format::Anthropic), anthropic, "{raw}");
        }
        assert_eq!(usage_of_body(Format::OpenAi, br#"{"id": "x"}"#), Ok(None));
        assert!(usage_of_body(Format::OpenAi, b"not json").is_err());
    }

    #[test]
    fn a_fast_body_is_rewritten_only_when_something_changes() {
        let body = br#"{ "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}] }"#;
        let req = crate::decode_request(Format::OpenAi, body).unwrap();
        // Same model, usage already asked for: byte for byte.
        assert_eq!(
            fast_request(Format::OpenAi, body, "gpt-4o", &req).unwrap(),
            body
        );
        // Another upstream model: rewritten.
        let out = fast_request(Format::OpenAi, body, "gpt-4o-2024", &req).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "gpt-4o-2024");
        // A stream without usage: usage is asked for even when the model stays.
        let body = br#"{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#;
        let req = crate::decode_request(Format::OpenAi, body).unwrap();
        let v: Value =
            serde_json::from_slice(&fast_request(Format::OpenAi, body, "gpt-4o", &req).unwrap())
                .unwrap();
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
    }
    use super::*;

    #[test]
    fn retry_after_from_each_providers_headers() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            retry_after_secs(&m)
        };
        assert_eq!(h(&[("retry-after", "7")]), Some(7));
        assert_eq!(
            h(&[("retry-after-ms", "1500"), ("retry-after", "9")]),
            Some(2)
        );
        assert_eq!(
            h(&[
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-reset-tokens", "6m0s")
            ]),
            Some(360)
        );
        assert_eq!(h(&[("x-ratelimit-reset-tokens", "1h2m3.5s")]), Some(3724));
        assert_eq!(h(&[("x-ratelimit-reset-requests", "20ms")]), Some(1));
        assert_eq!(h(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]), None);
        assert_eq!(h(&[("x-ratelimit-reset-requests", "soon")]), None);
        assert_eq!(h(&[]), None);
    }

    #[test]
    fn endpoints_and_client_formats() {
        let h = HeaderMap::new();
        let mut anth = HeaderMap::new();
        anth.insert("anthropic-version", "2023-06-01".parse().unwrap());
        assert_eq!(
            endpoint(&Method::POST, "/v1/messages/count_tokens", None, &h),
            Endpoint::Api {
                format: Format::Anthropic,
                op: Operation::CountTokens,
                call: UrlCall::default(),
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/models/groq%2Fllama", None, &anth),
            Endpoint::Models {
                format: Format::Anthropic,
                id: Some("groq/llama".into())
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/chat/completions", None, &h),
            Endpoint::MethodNotAllowed {
                format: Format::OpenAi
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "/nope", None, &anth),
            Endpoint::NotFound {
                format: Format::Anthropic
            }
        );
        let g = |m: &Method, p: &str, q: Option<&str>| endpoint(m, p, q, &h);
        assert_eq!(
            g(
                &Method::POST,
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                Some("alt=sse")
            ),
            Endpoint::Api {
                format: Format::Gemini,
                op: Operation::Chat,
                call: UrlCall {
                    model: Some("gemini-2.5-flash".into()),
                    stream: Some(true),
                    json_array: false,
                    batch: false,
                },
            }
        );
        assert!(matches!(
            g(
                &Method::POST,
                "/v1beta/models/m:streamGenerateContent",
                None
            ),
            Endpoint::Api {
                call: UrlCall {
                    json_array: true,
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            g(&Method::POST, "/v1beta/models/m:countTokens", Some("key=k")),
            Endpoint::Api {
                op: Operation::CountTokens,
                ..
            }
        ));
        assert_eq!(
            g(&Method::GET, "/v1beta/models", None),
            Endpoint::Models {
                format: Format::Gemini,
                id: None
            }
        );
        assert_eq!(
            g(&Method::GET, "/v1beta/models/gemini-pro", None),
            Endpoint::Models {
                format: Format::Gemini,
                id: Some("gemini-pro".into())
            }
        );
        assert_eq!(
            g(&Method::POST, "/v1beta/models/m:batchEmbedContents", None),
            Endpoint::Api {
                format: Format::Gemini,
                op: Operation::Embeddings,
                call: UrlCall {
                    model: Some("m".into()),
                    stream: Some(false),
                    json_array: false,
                    batch: true,
                },
            }
        );
        assert_eq!(
            g(&Method::POST, "/v1beta/models/m:predict", None),
            Endpoint::NotFound {
                format: Format::Gemini
            }
        );
        assert_eq!(
            g(&Method::GET, "/v1beta/models/m:generateContent", None),
            Endpoint::MethodNotAllowed {
                format: Format::Gemini
            }
        );
        // google-genai's default API version is v1; its model list is told apart by its header.
        assert!(matches!(
            g(
                &Method::POST,
                "/v1/models/gemini-2.5-flash:generateContent",
                None
            ),
            Endpoint::Api {
                format: Format::Gemini,
                ..
            }
        ));
        let mut goog = HeaderMap::new();
        goog.insert(
            "x-goog-api-client",
            "google-genai-sdk/3.6.1".parse().unwrap(),
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/models", None, &goog),
            Endpoint::Models {
                format: Format::Gemini,
                id: None
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/models", None, &h),
            Endpoint::Models {
                format: Format::OpenAi,
                id: None
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
