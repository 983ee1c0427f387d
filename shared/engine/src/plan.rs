//! Phase 2: where a request goes and what is sent there. The upstream body is the client's own
//! bytes when the formats match (only the model rewritten), else the canonical request encoded;
//! URL, headers and signature come from the provider's config and its format's wire contract.

use bytes::Bytes;
use gw_model::{ApiError, ChatRequest, ErrorKind, Fault, Format, Operation, UpstreamError};
use gw_route::{Provider, Target};
use gw_translate::{EncodeOpts, wire};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};

/// How a call goes to a provider: the wire format and operation it speaks there. A client API the
/// provider serves natively (the Responses API on an OpenAI provider that declares it) goes as
/// it came; otherwise the provider's own format's chat.
pub(crate) fn wire_for(client: Format, p: &Provider) -> (Format, Operation) {
    match wire::native_operation(client) {
        Some(op) if p.supports(op) => (client, op),
        _ => (p.format, Operation::Chat),
    }
}

/// The body for one target: `(bytes, fast)`. The error is the client's (its request cannot be
/// expressed in the target's format: an unsupported parameter), or a body that is no object.
pub(crate) fn upstream_body(
    client: Format,
    body: &[u8],
    req: &ChatRequest,
    p: &Provider,
    target: &Target,
) -> Result<(Vec<u8>, bool), ApiError> {
    let (format, _) = wire_for(client, p);
    let (b, fast) = if format == client && wire::can_forward(client, req) {
        let b = wire::fast_request(client, body, &target.model, req)
            .ok_or_else(|| ApiError::invalid("request body must be a JSON object"))?;
        (b, true)
    } else {
        let opts = EncodeOpts {
            model: &target.model,
            provider: &p.id,
            default_max_tokens: p.default_max_tokens,
            max_tokens_field: &p.max_tokens_field,
        };
        (gw_translate::encode_request(format, req, &opts)?, false)
    };
    if p.body_patches.is_empty() {
        return Ok((b, fast));
    }
    // The provider's own body fields (Vertex's `anthropic_version`, no `model`).
    let patches: Vec<(&str, Option<&str>)> = p
        .body_patches
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    let b = gw_translate::fast::patch_fields(&b, &patches)
        .ok_or_else(|| ApiError::invalid("request body must be a JSON object"))?;
    Ok((b, fast))
}

/// The complete upstream request, unsigned (the attempt signs it: a token may need fetching).
pub(crate) fn upstream_request(
    p: &Provider,
    client: Format,
    client_headers: &HeaderMap,
    op: Operation,
    stream: bool,
    model: &str,
    body: Vec<u8>,
) -> Result<Request<Bytes>, UpstreamError> {
    let refused = |class, fault, message: String| UpstreamError {
        error: ApiError::new(ErrorKind::Api, message),
        fault,
        status: None,
        class,
        retry_after_secs: None,
    };
    let url = p.url_for(op, stream, model).ok_or_else(|| {
        refused(
            "unsupported",
            Fault::Client,
            format!("provider `{}` does not serve {}", p.id, op.as_str()),
        )
    })?;
    let format = if op == Operation::Responses {
        client
    } else {
        p.format
    };
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .body(Bytes::from(body))
        .map_err(|_| {
            refused(
                "config",
                Fault::Upstream,
                format!("provider `{}`: the upstream URL is not valid", p.id),
            )
        })?;
    let h = req.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "accept",
        HeaderValue::from_static(wire::accept(format, op, stream)),
    );
    for (k, v) in wire::required_headers(format)
        .iter()
        .chain(wire::call_headers(format, stream))
    {
        h.insert(*k, HeaderValue::from_static(v));
    }
    // Validated at config load; a header that does not parse is skipped rather than sent broken.
    for (k, v) in &p.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    if client == format {
        for name in wire::passthrough_headers(format) {
            if let Some(v) = client_headers.get(*name) {
                h.insert(*name, v.clone());
            }
        }
    }
    Ok(req)
}
