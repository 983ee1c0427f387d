//! The client's request body: read only after the proxy key was accepted, bounded in size and
//! time, and never passed on unless it arrived whole.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use gw_model::{ApiError, ErrorKind};
use gw_ports::{ByteStream, Clock};
use http::HeaderMap;

/// A request body as a runtime hands it over: complete (Lambda's event, tests) or still arriving
/// (a socket, a Worker's stream).
pub enum Body {
    /// Already complete.
    Full(Bytes),
    /// Still arriving; an error item means it broke off (cut short, bad chunked framing).
    Stream(ByteStream),
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::Full(b)
    }
}

pub(crate) fn too_large(len: usize, limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::RequestTooLarge,
        format!(
            "request body is {len} bytes or more; the limit is {limit} (server.max_body_bytes)"
        ),
    )
}

/// Reads the whole body: 413 past `limit` (from `Content-Length` alone when it says so), 408
/// when it does not arrive within `timeout_ms`, 400 when it breaks off.
pub(crate) async fn read<C: Clock>(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout_ms: u64,
    clock: &C,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        return Err(too_large(usize::try_from(n).unwrap_or(usize::MAX), limit));
    }
    let mut stream = match body {
        Body::Full(b) if b.len() > limit => return Err(too_large(b.len(), limit)),
        Body::Full(b) => return Ok(b),
        Body::Stream(s) => s,
    };
    let collect = async {
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let c = chunk.map_err(|e| {
                ApiError::invalid(format!(
                    "the request body could not be read whole ({}); nothing was sent upstream",
                    e.message
                ))
            })?;
            if buf.len() + c.len() > limit {
                return Err(too_large(buf.len() + c.len(), limit));
            }
            buf.extend_from_slice(&c);
        }
        Ok(buf.freeze())
    };
    let timer = clock.sleep(timeout_ms);
    match select(Box::pin(collect), Box::pin(timer)).await {
        Either::Left((r, _)) => r,
        Either::Right(((), _)) => Err(ApiError::new(
            ErrorKind::Timeout,
            format!(
                "the request body did not arrive within {timeout_ms} ms (server.body_read_timeout_ms)"
            ),
        )
        .with_status(408)
        .with_code("request_timeout")),
    }
}
