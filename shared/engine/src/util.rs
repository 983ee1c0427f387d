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

/// Usage from a complete response body, read without building the rest; an error when the body
/// is not one JSON value (every byte is still checked, so garbage cannot pass as an answer).
pub(crate) fn usage_of_body(format: Format, body: &[u8]) -> Result<Option<Usage>, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        usage: Option<Value>,
    }
    let p = serde_json::from_slice::<Probe>(body)
        .map_err(|e| format!("the body is not a JSON object ({e})"))?;
    Ok(p.usage.map(|u| match format {
        Format::OpenAi => gw_translate::openai::parse_usage(&u),
        Format::Anthropic => gw_translate::anthropic::parse_usage(&u),
    }))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let (b'%', Some(&h), Some(&l)) = (b[i], b.get(i + 1), b.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_never_panics() {
        assert_eq!(percent_decode("groq%2Fllama-3%3A1"), "groq/llama-3:1");
        assert_eq!(percent_decode("a%zz%"), "a%zz%");
        assert_eq!(percent_decode("%é%4"), "%é%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
