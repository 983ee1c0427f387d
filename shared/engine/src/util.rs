//! Response builders and small body helpers.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use gw_model::{ApiError, Format};
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
pub fn error_response(format: Format, e: &ApiError) -> Response<BodyStream> {
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

/// Returns `Pending` once (having asked to be polled again): other ready tasks on the executor
/// run before the caller goes on. Any executor, no runtime API.
#[derive(Default)]
pub(crate) struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
