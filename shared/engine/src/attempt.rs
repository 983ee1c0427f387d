//! Phase 3: one upstream attempt, bounded in time up to the first body chunk (streams) or the
//! whole body (complete answers), and classified: a stream to relay, a body to answer with, or
//! an [`UpstreamError`] that says whose fault it was.

use crate::{Gateway, util};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use gw_model::{ApiError, ErrorKind, Fault, Format, UpstreamError};
use gw_ports::{ByteStream, Clock, HttpClient, LogSink, TransportErrorKind};
use gw_route::Provider;
use gw_state::StateStore;
use gw_translate::wire;
use http::{Request, StatusCode};

/// Error bodies are read up to this much (the message is all the gateway needs).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// How an attempt ended.
pub(crate) enum Outcome {
    /// A streamed answer whose first chunk arrived.
    Stream {
        status: StatusCode,
        first: Bytes,
        rest: ByteStream,
    },
    /// A complete answer.
    Full { status: StatusCode, body: Bytes },
    /// A failure, with its fault.
    Failed(UpstreamError),
}

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    /// Sends `req` to `p` and waits at most `budget_ms` for the first chunk (or the whole body).
    pub(crate) async fn attempt(
        &self,
        req: Request<Bytes>,
        p: &Provider,
        format: Format,
        stream: bool,
        budget_ms: u64,
    ) -> Outcome {
        let work = self.exchange(req, p, format, stream);
        let timer = self.inner.clock.sleep(budget_ms);
        match select(Box::pin(work), Box::pin(timer)).await {
            Either::Left((o, _)) => o,
            Either::Right(((), _)) => Outcome::Failed(wire::transport_error(
                "timeout",
                ApiError::new(
                    ErrorKind::Timeout,
                    format!("provider `{}` did not answer within {budget_ms} ms", p.id),
                ),
                None,
            )),
        }
    }

    /// `format`: what the upstream speaks on this call (its errors are decoded as that).
    async fn exchange(
        &self,
        req: Request<Bytes>,
        p: &Provider,
        format: Format,
        stream: bool,
    ) -> Outcome {
        let failed = |class, message: String, status: Option<StatusCode>| {
            Outcome::Failed(wire::transport_error(
                class,
                ApiError::new(ErrorKind::Api, message),
                status.map(|s| s.as_u16()),
            ))
        };
        let resp = match self.inner.http.send(req).await {
            Ok(r) => r,
            Err(e) => {
                let class = match e.kind {
                    TransportErrorKind::Connect => "connect",
                    TransportErrorKind::Timeout => "timeout",
                    _ => "transport",
                };
                return failed(
                    class,
                    format!("provider `{}` unreachable: {}", p.id, e.message),
                    None,
                );
            }
        };
        let (parts, mut body) = resp.into_parts();
        let status = parts.status;
        if !status.is_success() {
            let raw = util::read_all(&mut body, MAX_ERROR_BODY)
                .await
                .unwrap_or_default();
            let mut e = wire::upstream_error(format, status.as_u16(), None, &raw);
            e.retry_after_secs = wire::retry_after_secs(&parts.headers);
            e.error.message = format!(
                "provider `{}` returned {}: {}",
                p.id,
                status.as_u16(),
                e.error.message
            );
            if e.fault == Fault::Credential {
                // The gateway's credential was refused: say which variable to check.
                e.error.message = format!("{} (check {})", e.error.message, p.auth.vars());
            }
            return Outcome::Failed(e);
        }
        if !stream {
            return match util::read_all(&mut body, self.inner.cfg.server.max_upstream_body_bytes)
                .await
            {
                Ok(b) => Outcome::Full { status, body: b },
                Err(e) => failed(
                    "transport",
                    format!("provider `{}` body failed: {e}", p.id),
                    Some(status),
                ),
            };
        }
        loop {
            match body.next().await {
                Some(Ok(c)) if c.is_empty() => continue,
                Some(Ok(first)) => {
                    return Outcome::Stream {
                        status,
                        first,
                        rest: body,
                    };
                }
                Some(Err(e)) => {
                    return failed(
                        "transport",
                        format!(
                            "provider `{}` stream broke before its first byte: {}",
                            p.id, e.message
                        ),
                        Some(status),
                    );
                }
                None => {
                    return failed(
                        "empty_stream",
                        format!("provider `{}` sent an empty stream", p.id),
                        Some(status),
                    );
                }
            }
        }
    }
}
