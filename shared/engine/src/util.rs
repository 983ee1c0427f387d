//! Response builders and small body helpers.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use gw_model::{ApiError, Format, Usage};
use gw_ports::{BodyStream, ByteStream};
use http::{Response, StatusCode};
use serde_json::Value;

pub(crate) fn once(b: Bytes) -> BodyStream {
    Box::pin(futures_util::stream::once(async move { b }))
}

pub(crate) fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<BodyStream> {
    let mut r = Response::new(once(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", http::HeaderValue::from_static(content_type));
    r
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response<BodyStream> {
    bytes_response(
        status,
        "application/json",
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    )
}

/// An error in the client's own format, with the error's status.
pub(crate) fn error_response(format: Format, e: &ApiError) -> Response<BodyStream> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
    bytes_response(
        status,
        "application/json",
        Bytes::from(gw_translate::encode_error(format, e)),
    )
}

/// Reads a body to the end, failing past `limit` bytes.
pub(crate) async fn read_all(body: &mut ByteStream, limit: usize) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let c = chunk.map_err(|e| e.message)?;
        if buf.len() + c.len() > limit {
            return Err(format!("body larger than {limit} bytes"));
        }
        buf.extend_from_slice(&c);
    }
    Ok(buf.freeze())
}

/// Usage from a complete response body, read without decoding the rest.
pub(crate) fn usage_of_body(format: Format, body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Probe {
        usage: Option<Value>,
    }
    let u = serde_json::from_slice::<Probe>(body).ok()?.usage?;
    Some(match format {
        Format::OpenAi => gw_translate::openai::parse_usage(&u),
        Format::Anthropic => gw_translate::anthropic::parse_usage(&u),
    })
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
