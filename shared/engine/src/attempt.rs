//! Phase 3: one upstream attempt, bounded in time up to the first body chunk (streams) or the
//! whole body (complete answers), and classified: a stream to relay, a body to answer with, or
//! an [`UpstreamError`] that says whose fault it was.

use crate::{Gateway, util};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use gw_auth::Signer;
use gw_model::{ApiError, ErrorKind, Fault, Format, UpstreamError};
use gw_ports::{ByteStream, Clock, HttpClient, LogSink, TransportErrorKind};
use gw_route::Provider;
use gw_state::StateStore;
use gw_translate::wire;
use http::{Request, StatusCode};

/// A copy of a request, to send again (the body is shared, not copied).
pub(crate) fn copy(req: &Request<Bytes>) -> Request<Bytes> {
    let mut r = Request::new(req.body().clone());
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.headers_mut() = req.headers().clone();
    r
}

/// Between polls of a two-step upstream's answer.
const POLL_MS: u64 = 500;

fn failed_credential(p: &Provider, why: &str) -> Outcome {
    Outcome::Failed(UpstreamError {
        error: ApiError::new(
            ErrorKind::Api,
            format!(
                "provider `{}`: cannot sign the request ({why}); check {}",
                p.id,
                p.auth.vars()
            ),
        ),
        fault: Fault::Credential,
        status: None,
        class: "credential",
        retry_after_secs: None,
    })
}

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
    /// Signs `req` with `signer`, sends it to `p` and waits at most `budget_ms` (the signing
    /// included: a token may need fetching) for the first chunk (or the whole body). A token the
    /// upstream refuses with 401 is renewed and the request sent once more.
    pub(crate) async fn attempt(
        &self,
        req: Request<Bytes>,
        signer: &Signer,
        p: &Provider,
        format: Format,
        stream: bool,
        budget_ms: u64,
    ) -> Outcome {
        let work = async {
            let Some(source) = signer.token_source() else {
                return self.signed_exchange(req, signer, p, format, stream).await.0;
            };
            let again = copy(&req);
            match self.signed_exchange(req, signer, p, format, stream).await {
                (Outcome::Failed(e), Some(token)) if e.status == Some(401) => {
                    source.invalidate(&token);
                    self.signed_exchange(again, signer, p, format, stream)
                        .await
                        .0
                }
                (o, _) => o,
            }
        };
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

    /// Signs and sends; also returns the token used, if the signer has a token source.
    async fn signed_exchange(
        &self,
        mut req: Request<Bytes>,
        signer: &Signer,
        p: &Provider,
        format: Format,
        stream: bool,
    ) -> (Outcome, Option<String>) {
        let now = self.inner.clock.now().0 / 1_000_000;
        if let Err(e) = signer.sign(&mut req, now, &self.inner.http).await {
            return (failed_credential(p, &e.to_string()), None);
        }
        let token = signer.token_source().and_then(|_| {
            let v = req.headers().get("authorization")?.to_str().ok()?;
            Some(v.strip_prefix("Bearer ")?.to_owned())
        });
        if !wire::two_step(format) {
            return (self.exchange(req, p, format, stream).await, token);
        }
        // Two steps (Replicate): the first answer is JSON saying where the real one is read:
        // the stream, or the prediction polled until it is done (within the attempt's budget).
        let mut out = self.exchange(req, p, format, false).await;
        let mut polls = 0u32;
        while let Outcome::Full { body, .. } = &out {
            let Some((url, is_stream)) = wire::follow_up(format, stream, body) else {
                break;
            };
            if !is_stream {
                if polls > 0 {
                    self.inner.clock.sleep(POLL_MS).await;
                }
                polls += 1;
            }
            let mut get = Request::new(Bytes::new());
            match url.parse() {
                Ok(u) => *get.uri_mut() = u,
                Err(_) => break,
            }
            let accept = if is_stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            get.headers_mut()
                .insert("accept", http::HeaderValue::from_static(accept));
            let now = self.inner.clock.now().0 / 1_000_000;
            if let Err(e) = signer.sign(&mut get, now, &self.inner.http).await {
                return (failed_credential(p, &e.to_string()), token);
            }
            out = self.exchange(get, p, format, is_stream).await;
        }
        (out, token)
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
